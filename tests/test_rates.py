"""optcore.rates: the iteration matrices of (momentum) gradient descent on a quadratic."""

import math

import numpy as np

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import optcore  # noqa: E402
from optcore import plot, problems, rates  # noqa: E402


@pytest.mark.parametrize("lr, momentum, nesterov", [
    (0.1, 0.0, False), (0.5, 0.6, False), (1.2, 0.9, False), (0.5, 0.6, True), (1.2, 0.9, True)])
def test_iteration_matrix_reproduces_sgd_on_a_diagonal_quadratic(lr, momentum, nesterov):
    h = torch.tensor([0.05, 0.4, 1.0], dtype=torch.float64)
    theta = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optcore.SGD([theta], lr=lr, momentum=momentum, nesterov=nesterov)
    A = rates.iteration_matrix(h, lr, momentum, nesterov)
    state = torch.stack([torch.zeros(3, dtype=torch.float64), theta.detach().clone()], -1)
    for _ in range(25):
        opt.zero_grad()
        (0.5 * (h * theta**2).sum()).backward()
        opt.step()
        state = (A @ state[..., None])[..., 0]
        assert torch.allclose(state[:, 1], theta.detach(), rtol=1e-12, atol=1e-14)


def test_gradient_descent_rate_is_max_of_one_minus_lr_h():
    h = torch.tensor([0.1, 1.0], dtype=torch.float64)
    lrs = torch.linspace(0.01, 2.5, 50, dtype=torch.float64)
    expected = (1 - lrs[:, None] * h).abs().amax(-1)
    assert torch.allclose(rates.convergence_rate(h, lrs), expected, atol=1e-12)


def test_optimal_heavy_ball_attains_the_accelerated_rate_and_nothing_on_a_grid_beats_it():
    mu, L = 0.01, 1.0
    sqrt_kappa = math.sqrt(L / mu)
    lr = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2
    beta = ((sqrt_kappa - 1) / (sqrt_kappa + 1)) ** 2
    eig = torch.linspace(mu, L, 64, dtype=torch.float64)
    best = rates.convergence_rate(eig, lr, beta).item()
    assert best == pytest.approx((sqrt_kappa - 1) / (sqrt_kappa + 1), rel=1e-6)
    lrs = torch.linspace(0.05, 4.0, 120, dtype=torch.float64)
    betas = torch.linspace(0.0, 0.99, 100, dtype=torch.float64)
    grid = rates.convergence_rate(eig, lrs[:, None], betas[None, :])
    assert grid.shape == (120, 100)
    assert grid.min().item() >= best - 1e-9


def test_rate_map_draws_the_grid_with_divergence_blank():
    eig = torch.tensor([0.1, 1.0], dtype=torch.float64)
    lrs = torch.linspace(0.1, 4.0, 30, dtype=torch.float64)
    betas = torch.linspace(0.0, 0.95, 20, dtype=torch.float64)
    grid = rates.convergence_rate(eig, lrs[:, None], betas[None, :])
    fig, ax = matplotlib.pyplot.subplots()
    mesh = plot.rate_map(ax, lrs, betas, grid)
    shown = np.ma.getmaskarray(mesh.get_array())
    assert shown.sum() == (grid >= 1).sum().item() > 0
    matplotlib.pyplot.close(fig)
