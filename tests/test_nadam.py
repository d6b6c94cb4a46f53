"""NAdam: the μ_t schedule, its float32 product, and how torch's load_state_dict treats it
(chapter 10). The contract is in test_contract.py."""

import copy
import math

import pytest
import torch

from optcore.optim.nadam import NAdam, nadam_mu
from optcore.training import Run, fit, max_rel_error, regression_batches, tiny_net
from parity import GRADIENT_SCALES as G
from parity import RTOL, one_step, reload_through_checkpoint, train


def test_nadam_first_step_is_1_0565_lr_times_sign():
    """NAdam's m̂₁ = μ₂(1−β₁)g/(1 − μ₁μ₂) + (1−μ₁)g/(1−μ₁) = 1.0565 g with the default
    ψ = 4e-3 (μ₁ = 0.45007, μ₂ = 0.45015): the look-ahead adds 5.65 % to Adam's first step."""
    mu1, mu2 = nadam_mu(0.9, 4e-3, 1), nadam_mu(0.9, 4e-3, 2)
    factor = mu2 * 0.1 / (1 - mu1 * mu2) + 1
    assert factor == pytest.approx(1.0565, abs=1e-4)
    step, _ = one_step(NAdam, G, lr=0.01, eps=0.0)
    # Π₁ = μ₁ is stored in float32, hence 1e-7 rather than 1e-15.
    torch.testing.assert_close(step, -0.01 * factor * G.sign(), rtol=1e-7, atol=0)


def test_nadam_mu_product_is_the_float32_product_of_the_mu_schedule():
    """Π₂₅ = ∏ β₁(1 − ½·0.96^{tψ}) over t = 1..25, rounded to float32 like torch's state; with
    ψ = 4e-3 μ₁ = 0.45007 ≈ β₁/2, and with ψ = 0 μ_t = β₁/2 for every t."""
    assert nadam_mu(0.9, 4e-3, 1) == pytest.approx(0.4500735, rel=1e-6)
    assert nadam_mu(0.9, 0.0, 1000) == 0.45
    for psi in (4e-3, 0.0):
        run = train(NAdam, dict(lr=1e-2, momentum_decay=psi), steps=25)
        pi = run.optimizer.state[next(run.net.parameters())]["mu_product"]
        exact = math.prod(nadam_mu(0.9, psi, t) for t in range(1, 26))
        assert pi.dtype == torch.float32
        assert pi.item() == pytest.approx(exact, rel=1e-5)


NADAM_RESUME = dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)


def resumed_run(make_opt, kwargs, steps=20, split=9):
    """A run interrupted after ``split`` steps and reloaded through a checkpoint; returns
    the final parameters (as a Run) and the optimizer's state right after loading."""
    first = train(make_opt, kwargs, split)
    net, opt = reload_through_checkpoint(first.net, first.optimizer, tiny_net,
                                         lambda module: make_opt(module.parameters(), **kwargs))
    loaded = copy.deepcopy(opt.state_dict()["state"])
    fit(net, opt, regression_batches(steps)[split:], snapshots=False)
    return Run([], [[p.detach() for p in net.parameters()]]), loaded


def test_nadam_resume_follows_torch_which_casts_mu_product_to_the_parameter_dtype():
    """torch's load_state_dict casts every state tensor but ``step`` to the parameter's dtype:
    NAdam's float32 mu_product comes back float64, so in torch a resumed run is not bit-exact
    (here ~1e-8 off). optcore inherits that load_state_dict: its resumed run follows torch's
    resumed run to 1e-9. (Under a float64 default dtype the resume is bit-exact: the
    contract's resume check runs NAdam so.)"""
    ours, ours_loaded = resumed_run(NAdam, NADAM_RESUME)
    theirs, theirs_loaded = resumed_run(torch.optim.NAdam, NADAM_RESUME)
    assert max_rel_error(ours, theirs) <= RTOL
    for loaded in (ours_loaded, theirs_loaded):
        assert loaded[0]["mu_product"].dtype == torch.float64  # was float32 when saved
    straight = train(torch.optim.NAdam, NADAM_RESUME, steps=20)
    assert 1e-12 < max_rel_error(theirs, Run([], straight.snapshots[-1:])) < 1e-6
