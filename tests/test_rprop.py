"""Rprop: sign-based step sizes that grow, shrink and skip (chapter 13). The contract is in
test_contract.py."""

import pytest
import torch

from optcore.optim.rprop import Rprop


def _rprop_on_square(steps, cls=Rprop, **kwargs):
    """Minimise w² from w = 1; return w after each step."""
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = cls([w], **kwargs)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
        out.append(w.item())
    return out


def test_rprop_skips_the_step_after_a_sign_change():
    """iRprop⁻ on w² from w = 1 with lr = 0.6, etas = (0.5, 1.2): w goes 0.4 (s = 0.6),
    −0.32 (s = 0.72, same sign), stays at −0.32 (sign flipped: s halves to 0.36 and the step
    is skipped), then 0.04 (no history: s stays 0.36). torch.optim.Rprop does the same."""
    ours = _rprop_on_square(4, lr=0.6, etas=(0.5, 1.2))
    assert ours == pytest.approx([0.4, -0.32, -0.32, 0.04], rel=1e-12, abs=1e-15)
    assert ours == _rprop_on_square(4, torch.optim.Rprop, lr=0.6, etas=(0.5, 1.2))


def test_rprop_first_step_is_clamped_to_the_step_size_range():
    """lr = 0.1 above step_sizes[1] = 0.05: the first step moves every coordinate by exactly
    0.05, as in torch.optim (the contract's grid runs this setting for 25 steps)."""
    assert _rprop_on_square(1, lr=0.1, step_sizes=(1e-6, 0.05)) == [0.95]


def test_rprop_ignores_a_learning_rate_changed_after_the_first_step():
    """The learning rate only seeds the step sizes: setting lr to 10 after step 3 leaves the
    next 7 steps unchanged, in optcore as in torch.optim."""
    def run(cls, change):
        w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=0.01)
        for step in range(10):
            if change and step == 3:
                opt.param_groups[0]["lr"] = 10.0
            opt.zero_grad()
            (w**2 * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum().backward()
            opt.step()
        return w.detach()

    for cls in (Rprop, torch.optim.Rprop):
        assert torch.equal(run(cls, change=True), run(cls, change=False))
