"""optcore.search: gradient-free methods under one interface and an exact evaluation budget."""

import math

import pytest
import torch

from optcore import problems, search

P = problems.rastrigin(3)
METHODS = list(search.METHODS.items())


@pytest.mark.parametrize("name,method", METHODS)
def test_every_method_respects_the_budget_and_records_a_search_trace(name, method):
    """Never more than the budget, and exactly the budget except for GD, whose steps cost d + 1 = 4
    evaluations (⌊97/4⌋ = 24 of them: 96), and ES, whose steps cost 2·pairs + 1 and which stops
    with fewer than 3 left (1 + 4·21 + 11 = 96); evaluations counted up row by row, the best loss
    never rising and equal to f at the best point."""
    counted = []

    def f(points):
        counted.append(points.shape[0])
        return P.f(points)

    run = method(f, P.x0, budget=97, seed=1)
    assert run.label == name and isinstance(run, search.SearchTrace)
    used = run.evaluations[-1].item()
    assert used == (96 if method in (search.gradient_descent, search.evolution_strategy) else 97)
    assert sum(counted) == (24 if method is search.gradient_descent else used)  # GD: 1 per step
    assert (run.evaluations.diff() > 0).all() and (run.best_losses.diff() <= 0).all()
    assert run.thetas.shape == (len(run.losses), 3)
    assert run.best_losses[-1].item() == pytest.approx(P.f(run.best).item(), abs=1e-12)
    assert run.best_losses[-1] <= run.losses.min() + 1e-12


@pytest.mark.parametrize("name,method", METHODS)
def test_the_same_seed_gives_the_same_search_and_another_seed_another(name, method):
    a, b = method(P.f, P.x0, budget=60, seed=3), method(P.f, P.x0, budget=60, seed=3)
    assert torch.equal(a.thetas, b.thetas) and torch.equal(a.best_losses, b.best_losses)
    if method is not search.gradient_descent:  # deterministic by design
        c = method(P.f, P.x0, budget=60, seed=4)
        assert not torch.equal(a.thetas, c.thetas)


def test_budget_refuses_one_evaluation_too_many():
    oracle = search.Budget(P.f, 5)
    oracle(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="2 evaluations asked for, 1 of 5 left"):
        oracle(torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("call,name", [
    (lambda: search.annealing(P.f, P.x0, budget=0), "budget"),
    (lambda: search.annealing(P.f, P.x0, budget=10.0), "budget"),
    (lambda: search.annealing(P.f, P.x0, budget=10, step=0.0), "step"),
    (lambda: search.annealing(P.f, P.x0, budget=10, temperature=-1.0), "temperature"),
    (lambda: search.genetic(P.f, P.x0, budget=10, population=1), "population"),
    (lambda: search.genetic(P.f, P.x0, budget=10, tournament=50), "tournament"),
    (lambda: search.genetic(P.f, P.x0, budget=10, crossover=1.5), "crossover"),
    (lambda: search.genetic(P.f, P.x0, budget=10, elite=40), "elite"),
    (lambda: search.evolution_strategy(P.f, P.x0, budget=10, sigma=0.0), "sigma"),
    (lambda: search.evolution_strategy(P.f, P.x0, budget=10, pairs=0), "pairs"),
    (lambda: search.cma_es(P.f, P.x0, budget=10, sigma=-1.0), "sigma"),
    (lambda: search.random_search(P.f, P.x0, budget=10, radius=0.0), "radius"),
    (lambda: search.gradient_descent(P.f, P.x0, budget=10, lr=-0.1), "lr"),
    (lambda: search.gradient_descent(P.f, P.x0, budget=10, gradient_cost=11), "gradient_cost"),
])
def test_bad_hyperparameters_are_refused_by_name(call, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        call()


def test_es_estimator_is_unbiased_on_a_quadratic_with_error_falling_as_one_over_root_n():
    """On f = ½θᵀAθ the antithetic differences are exactly 2σ εᵀAθ, so ĝ = (1/n) Σ εεᵀ Aθ: mean
    Aθ = ∇f (the smoothing adds only a constant), and E‖ĝ − ∇f‖² = (‖∇f‖² + tr(I)‖∇f‖²)/n =
    (d + 1)‖∇f‖²/n for Gaussian ε. Checked over 4000 repetitions for n = 5 and 80 (±10 %: the
    Monte-Carlo error of a mean squared error over 4000 repetitions is about 3 %)."""
    Q = problems.quadratic(kappa=10.0, dim=4)
    theta = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    grad = Q.grad(theta)
    gen = torch.Generator().manual_seed(0)
    for n in (5, 80):
        estimates = torch.stack([search.es_gradient(Q.f, theta, 0.3, n, gen) for _ in range(4000)])
        se = grad.norm() * math.sqrt((4 + 1) / n / 4000)  # standard error of the mean, per norm
        assert (estimates.mean(0) - grad).norm() < 4 * se
        mse = ((estimates - grad) ** 2).sum(1).mean() / ((4 + 1) * grad.norm() ** 2 / n)
        assert 0.9 < mse < 1.1


def test_es_estimator_targets_the_smoothed_rastrigin_not_rastrigin():
    """E cos 2π(x + σε) = e^{−2π²σ²} cos 2πx, so ∇f_σ = 2θ + 2πA e^{−2π²σ²} sin 2πθ; with σ = 0.4
    the ripples' share of the gradient shrinks 23-fold and ĝ averages to ∇f_σ, far from ∇f."""
    theta = torch.tensor([0.3, -1.2, 2.1], dtype=torch.float64)
    sigma, damping = 0.4, math.exp(-2 * math.pi**2 * 0.4**2)
    smooth = 2 * theta + 2 * math.pi * 10 * damping * torch.sin(2 * math.pi * theta)
    gen = torch.Generator().manual_seed(1)
    mean = search.es_gradient(P.f, theta, sigma, 400_000, gen)
    assert (mean - smooth).abs().max() < 0.05 * smooth.abs().max()
    assert (P.grad(theta) - smooth).abs().max() > 10


def test_metropolis_accepts_with_probability_min_one_exp_minus_delta_over_t():
    gen = torch.Generator().manual_seed(0)
    delta = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64).repeat(200_000, 1)
    rate = search.metropolis(delta, 0.5, gen).double().mean(0)
    expected = torch.tensor([1.0, 1.0, math.exp(-1.0), math.exp(-4.0)], dtype=torch.float64)
    assert (rate - expected).abs().max() < 4 * math.sqrt(0.25 / 200_000)
    assert search.metropolis(torch.tensor([-1e-9, 1e-9]), 0, gen).tolist() == [True, False]


def test_rastrigin_and_ackley_have_their_global_minimum_zero_at_the_origin():
    for P_ in (problems.rastrigin(4), problems.ackley(4)):
        assert abs(P_.min_value) < 1e-12
        grid = 4 * torch.rand(10_000, 4, dtype=torch.float64) - 2
        assert (P_.f(grid) > P_.min_value).all()
    # a local minimum near every integer point: near 1, at 1 − δ with 2 ≈ 2πA·2πδ, δ ≈ 0.005,
    # Rastrigin's derivative goes from negative to positive
    below, above = (problems.rastrigin(1).grad(torch.tensor([x], dtype=torch.float64)).item()
                    for x in (0.990, 0.998))
    assert below < 0 < above
