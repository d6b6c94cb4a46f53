"""ASGD: the average it keeps and the 0-d tensors η_t and μ_t (chapter 01's averaging). The
contract is in test_contract.py."""

import pytest
import torch

from optcore.optim.asgd import ASGD
from optcore.training import Run, max_rel_error
from optim_db import BY_NAME
from parity import RTOL, shrink_from_3, train


@pytest.mark.parametrize("kwargs", [kw for kw in BY_NAME["ASGD"].grid if kw["weight_decay"]],
                         ids=str)
def test_asgd_state_matches_torch_ax_to_1e_9_and_eta_mu_step_exactly(kwargs):
    """The average ax, η_t and μ_t (which the parameters do not show) agree with
    torch.optim.ASGD after 25 steps in two groups: ax to 1e-9, the 0-d tensors η_t, μ_t and
    step exactly, in the same dtype."""
    ours = train(ASGD, kwargs, groups=True).optimizer
    theirs = train(torch.optim.ASGD, kwargs, groups=True).optimizer
    a, b = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert a.keys() == b.keys()
    for i in b:
        assert max_rel_error(Run([], [[a[i]["ax"]]]), Run([], [[b[i]["ax"]]])) <= RTOL
        for key in ("step", "eta", "mu"):
            assert a[i][key].dtype == b[i][key].dtype and a[i][key].shape == ()
            assert torch.equal(a[i][key], b[i][key]), key


@pytest.mark.parametrize("default_dtype, rtol", [(torch.float32, 1e-7), (torch.float64, 1e-14)])
def test_asgd_averages_the_iterates_from_step_t0_plus_2(default_dtype, rtol):
    """With t0 = 5, μ_t first drops below 1 at t = 8 (it is computed one step late), so after
    12 steps ax is the mean of θ_7 … θ_12, in optcore and in torch.optim alike. μ_t is
    stored in the default dtype: with float32 the float64 average is only good to 1e-7,
    with float64 to 1e-14."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        for cls in (ASGD, torch.optim.ASGD):
            w = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
            opt = cls([w], lr=0.1, t0=5)
            iterates = []
            for _ in range(12):
                opt.zero_grad()
                (w**2).sum().backward()
                opt.step()
                iterates.append(w.detach().clone())
            ax = opt.state[w]["ax"]
            assert opt.state[w]["mu"].dtype == default_dtype
            torch.testing.assert_close(ax, torch.stack(iterates[6:]).mean(0), rtol=rtol, atol=0)
            assert not torch.allclose(ax, torch.stack(iterates[5:]).mean(0), rtol=1e-3, atol=0)
    finally:
        torch.set_default_dtype(previous)


def test_asgd_eta_is_rounded_to_the_default_dtype():
    """η_t lives in a 0-d tensor of the default dtype (float32 here), even for float64
    parameters: after 10 steps with lr = 0.05, lambd = 0.5, alpha = 0.75 it equals
    float32(0.05 / (1 + 0.5·0.05·10)^0.75), bit for bit, in optcore and torch.optim."""
    assert torch.get_default_dtype() == torch.float32
    expected = torch.tensor(0.05 / (1 + 0.5 * 0.05 * 10) ** 0.75, dtype=torch.float32)
    for cls in (ASGD, torch.optim.ASGD):
        w = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=0.05, lambd=0.5)
        for _ in range(10):
            opt.zero_grad()
            (w**2).sum().backward()
            opt.step()
        eta = opt.state[w]["eta"]
        assert eta.dtype == torch.float32 and torch.equal(eta, expected)
        assert opt.state[w]["mu"].item() == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_asgd_average_in_low_precision_also_gets_below_0_5(dtype):
    """The contract's low-precision run (‖w‖² from 3, 40 steps, t0 = 10): the average ax,
    which the parameters do not show, also ends below 0.5 in every coordinate."""
    _, (w,), opt = shrink_from_3(ASGD, dict(lr=0.1, t0=10), dtype, 40)
    assert opt.state[w]["ax"].dtype == dtype and opt.state[w]["ax"].abs().max() < 0.5
