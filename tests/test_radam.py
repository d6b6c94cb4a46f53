"""RAdam: momentum SGD until the variance is tractable, then rectified steps (chapter 10).
The contract is in test_contract.py."""

import math

import pytest
import torch

from optcore.optim.radam import RAdam
from parity import GRADIENT_SCALES as G


def test_radam_takes_momentum_sgd_steps_until_rho_t_exceeds_5_at_t_6():
    """With β₂ = 0.999, ρ_t = 1.0, 2.0, 3.0, 4.0, 4.996 for t = 1..5 and 5.994 at t = 6: the
    first five steps are θ −= η m̂_t, independent of ε (and θ₁ = −η g₁ exactly); step 6 is the
    first rectified one, where ε matters."""
    def run(eps):
        theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        opt = RAdam([theta], lr=0.01, eps=eps)
        path = []
        for _ in range(6):
            theta.grad = G.clone()
            opt.step()
            path.append(theta.detach().clone())
        return path
    small, large = run(1e-8), run(10.0)
    torch.testing.assert_close(small[0], -0.01 * G, rtol=1e-15, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(small[:5], large[:5], strict=True))
    assert not torch.equal(small[5], large[5])


def test_radam_adds_eps_to_the_raw_root_of_v_so_its_first_rectified_step_is_0_0718_r6_lr():
    """A constant gradient |g| = ε = 1e-3: RAdam adds ε to the raw √v_t = √(1−β₂^t)|g|, so its
    first rectified step (t = 6) is η r₆ √b/(√b + 1) with b = 1 − β₂⁶, i.e. 0.0718 r₆ η
    instead of the r₆ η/2 that ε outside √v̂_t (Adam's placement) would give."""
    g = torch.tensor([1e-3], dtype=torch.float64)
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = RAdam([theta], lr=1.0, eps=1e-3)
    for _ in range(6):
        before = theta.item()
        theta.grad = g.clone()
        opt.step()
    rho_inf, b = 2 / 0.001 - 1, 1 - 0.999**6
    rho = rho_inf - 2 * 6 * 0.999**6 / b
    r6 = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    assert math.sqrt(b) / (math.sqrt(b) + 1) == pytest.approx(0.0718, abs=1e-4)
    assert theta.item() - before == pytest.approx(-r6 * math.sqrt(b) / (math.sqrt(b) + 1),
                                                  rel=1e-12)
