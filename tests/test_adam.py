"""Adam and AdamW: what the derivations of chapters 07 and 08 claim, with numbers.

Parity with torch.optim.Adam/AdamW over every argument (tensor betas included), resume,
state layout, complex parameters and refusals are in test_contract.py (table: optim_db.py).
"""

import copy
import math

import pytest
import torch

from optcore.optim.adam import Adam, AdamW
from optcore.training import tiny_net
from parity import GRADIENT_SCALES as G
from parity import one_step, train


def test_adamw_defaults_weight_decay_1e_2_where_adam_has_0():
    """AdamW's only default that differs from Adam's is weight_decay: 1e-2 instead of 0
    (the contract's grid runs AdamW(lr=1e-2) against torch with that default)."""
    w = [torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.AdamW(w).defaults["weight_decay"]
    assert AdamW(w).defaults["weight_decay"] == theirs == 1e-2
    assert Adam(w).defaults["weight_decay"] == 0


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_first_step_with_eps_0_is_exactly_lr_times_sign_whatever_the_gradient_scale(cls):
    """Bias correction with t = 1 makes m̂₁ = g₁ and v̂₁ = g₁²: |Δθ| = η for |g| from 1e-6
    to 700 (a correction with t − 1 would divide by zero; none would give 0.1/√0.001 η)."""
    step, _ = one_step(cls, G, lr=0.01, eps=0.0, weight_decay=0.0)
    torch.testing.assert_close(step, -0.01 * G.sign(), rtol=1e-15, atol=0)


def test_adam_eps_is_outside_the_root_of_v_hat_so_the_first_step_is_half_of_lr():
    """A constant gradient |g| = ε = 1e-3 gives v̂₁ = g²: Adam's first step is
    η·g/(|g| + ε) = η/2 (SparseAdam and RAdam add ε to the raw √v_t instead: see their
    files)."""
    adam, _ = one_step(Adam, torch.tensor([1e-3], dtype=torch.float64), lr=1.0, eps=1e-3)
    assert adam.item() == pytest.approx(-0.5, rel=1e-12)


def test_amsgrad_keeps_the_max_of_the_raw_v_then_bias_corrects_it():
    """Gradients 10, then 0.1 nine times: v₁ = (1−β₂)·100 = 0.1 stays the max of the raw v_t.
    Step 10 divides by √(0.1/(1−β₂¹⁰)) = √10.05, not by the max of v̂_t (v̂₁ = 100, √ = 10)."""
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Adam([theta], lr=1e-3, amsgrad=True, eps=0.0)
    for g in [10.0] + [0.1] * 9:
        before = theta.detach().clone()
        theta.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    state = opt.state[theta]
    assert state["max_exp_avg_sq"].item() == pytest.approx(0.1, rel=1e-12)
    assert state["exp_avg_sq"].item() < 0.1
    m_hat = state["exp_avg"].item() / (1 - 0.9**10)
    v_hat_max = 0.1 / (1 - 0.999**10)
    assert v_hat_max == pytest.approx(10.05, abs=0.01)
    step = (theta.detach() - before).item()
    assert step == pytest.approx(-1e-3 * m_hat / math.sqrt(v_hat_max), rel=1e-12)


def test_adamw_is_adam_with_decoupled_weight_decay_bit_for_bit():
    """AdamW subclasses Adam; Adam(decoupled_weight_decay=True) follows the same trajectory
    exactly over 25 steps; and loading an Adam checkpoint (decoupled False) into AdamW keeps
    it True."""
    assert issubclass(AdamW, Adam) and issubclass(torch.optim.AdamW, torch.optim.Adam)
    kwargs = dict(lr=1e-2, weight_decay=0.1, amsgrad=True)
    a = train(lambda p, **kw: Adam(p, decoupled_weight_decay=True, **kw), kwargs)
    b = train(AdamW, kwargs)
    assert all(torch.equal(x, y) for sa, sb in zip(a.snapshots, b.snapshots, strict=True)
               for x, y in zip(sa, sb, strict=True))

    coupled = train(Adam, kwargs, steps=2).optimizer.state_dict()
    for cls in (AdamW, torch.optim.AdamW):
        opt = cls(tiny_net().parameters(), **kwargs)
        opt.load_state_dict(copy.deepcopy(coupled))
        assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_adamw_with_zero_gradient_shrinks_weights_by_1_minus_lr_lambda_per_step():
    """m = v = 0, so only the decay acts: θ₁₀ = θ₀ (1 − 0.1·0.01)^10 = 0.999^10 θ₀."""
    theta = torch.full((3,), 2.0, dtype=torch.float64, requires_grad=True)
    opt = AdamW([theta], lr=0.1, weight_decay=0.01)
    for _ in range(10):
        theta.grad = torch.zeros_like(theta)
        opt.step()
    torch.testing.assert_close(theta.detach(), torch.full((3,), 2.0 * 0.999**10,
                                                         dtype=torch.float64), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_tensor_betas_are_cast_to_the_parameters_dtype_for_the_average_as_in_torch(dtype):
    """torch lerps m with a tensor β₁ converted to θ's dtype (in bfloat16, 1 − 0.8984): five
    steps bitwise equal to torch.optim.Adam, which a float32 β₁ would miss at step 1."""
    betas = (torch.tensor(0.9), torch.tensor(0.999))
    params = [torch.ones(16, dtype=dtype, requires_grad=True) for _ in range(2)]
    opts = [Adam([params[0]], lr=0.01, betas=betas),
            torch.optim.Adam([params[1]], lr=0.01, betas=betas, foreach=False)]
    for t in range(5):
        for p, opt in zip(params, opts):
            p.grad = torch.linspace(-1, 1, 16, dtype=dtype) * (t + 1)
            opt.step()
        assert torch.equal(params[0], params[1])
        assert torch.equal(opts[0].state[params[0]]["exp_avg"], opts[1].state[params[1]]["exp_avg"])


def test_one_element_betas_given_in_a_group_step_a_0_d_parameter_like_torch():
    """Betas of shape [1] in a parameter group are squeezed at every step, as torch does, so a
    0-d parameter stays 0-d (a shape-[1] β₁ would broadcast m to shape [1] and fail)."""
    betas = (torch.tensor([0.9]), torch.tensor([0.999]))
    ws = [torch.tensor(1.0, requires_grad=True) for _ in range(2)]
    opts = [Adam([{"params": [ws[0]], "betas": betas}], lr=0.1),
            torch.optim.Adam([{"params": [ws[1]], "betas": betas}], lr=0.1, foreach=False)]
    for _ in range(3):
        for w, opt in zip(ws, opts):
            w.grad = 2 * w.detach()
            opt.step()
    assert ws[0].shape == () and torch.equal(ws[0], ws[1])
