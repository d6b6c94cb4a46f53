"""Adamax: ε inside the running max (chapter 10). The contract is in test_contract.py."""

import torch

from optcore.optim.adamax import Adamax
from parity import GRADIENT_SCALES as G
from parity import one_step


def test_adamax_puts_eps_inside_the_max_so_u_is_at_least_eps():
    """After one step u₁ = max(0, |g₁| + ε) = |g₁| + ε, and a zero gradient gives u = ε and a
    zero step instead of 0/0."""
    step, opt = one_step(Adamax, G, lr=0.01, eps=1e-3)
    state = next(iter(opt.state.values()))
    torch.testing.assert_close(state["exp_inf"], G.abs() + 1e-3, rtol=1e-15, atol=0)
    zero_step, opt = one_step(Adamax, torch.zeros(3, dtype=torch.float64), eps=1e-3)
    assert torch.equal(zero_step, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(next(iter(opt.state.values()))["exp_inf"], torch.full((3,), 1e-3,
                                                                             dtype=torch.float64))
