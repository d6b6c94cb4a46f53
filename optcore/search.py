"""Gradient-free search: minimize a function you can only evaluate, under a budget.

Every method has one interface, ``method(f, x0, *, budget, seed=0, **hyperparameters)``:
``f`` maps a batch of points, shape ``(n, d)``, to their losses, shape ``(n,)`` (every
`optcore.problems.Problem`'s ``f`` does); ``budget`` is the number of points f may be
evaluated at, counted by a `Budget` that refuses one more; ``seed`` fixes every random draw.
Each returns a `SearchTrace`: the method's own path (its current point, population best or
mean after every iteration), as `optcore.trace` records an optimizer's, and the best loss found
after each number of evaluations, which is what a budgeted search is judged by
({ref}`ch-gradient-free`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .optim.base import check
from .trace import Trace


@dataclass
class SearchTrace(Trace):
    """A `Trace` whose rows are iterations of a search: ``thetas[k]`` is the method's point after
    iteration k (row 0: the start) and ``losses[k]`` its loss; ``evaluations[k]`` is how many
    points f had been evaluated at by then, and ``best_losses[k]`` the lowest loss among them,
    reached at ``best``."""

    evaluations: torch.Tensor | None = None
    best_losses: torch.Tensor | None = None
    best: torch.Tensor | None = None


class Budget:
    """``f`` with a meter: evaluating it at n points spends n of ``budget`` evaluations, and one
    point past the budget raises. It remembers the best point seen and records the search."""

    def __init__(self, f, budget: int):
        check(isinstance(budget, int) and budget >= 1, "budget", budget, "an int >= 1")
        self.f, self.budget, self.used = f, budget, 0
        self.best, self.best_loss = None, math.inf
        self.rows = []

    @property
    def left(self) -> int:
        return self.budget - self.used

    def spend(self, n: int) -> None:
        if n > self.left:
            raise RuntimeError(f"{n} evaluations asked for, {self.left} of {self.budget} left")
        self.used += n

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """The losses at ``points`` (shape (n, d)), n evaluations spent."""
        self.spend(points.shape[0])
        with torch.no_grad():
            losses = self.f(points)
        i = int(losses.argmin())
        if losses[i] < self.best_loss:
            self.best, self.best_loss = points[i].clone(), losses[i].item()
        return losses

    def value_and_grad(self, theta: torch.Tensor, cost: int):
        """f(θ) and ∇f(θ) by automatic differentiation, charged ``cost`` evaluations."""
        self.spend(cost)
        theta = theta.detach().requires_grad_(True)
        loss = self.f(theta[None])[0]
        (grad,) = torch.autograd.grad(loss, theta)
        if loss.item() < self.best_loss:
            self.best, self.best_loss = theta.detach().clone(), loss.item()
        return loss.detach(), grad

    def record(self, theta: torch.Tensor, loss) -> None:
        self.rows.append((theta.detach().clone(), float(loss), self.used, self.best_loss))

    def trace(self, label: str) -> SearchTrace:
        thetas, losses, used, best = zip(*self.rows)
        as64 = dict(dtype=torch.float64)
        return SearchTrace(torch.stack(thetas), torch.tensor(losses, **as64), label,
                           evaluations=torch.tensor(used), best_losses=torch.tensor(best, **as64),
                           best=self.best)


def _start(f, x0, budget: int):
    x0 = torch.as_tensor(x0)
    x0 = (x0 if x0.is_floating_point() else x0.to(torch.float64)).clone().flatten()
    return Budget(f, budget), x0


def metropolis(delta: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Metropolis et al.'s acceptance test, elementwise: accept a move that changes the loss by
    ``delta`` with probability min(1, exp(−delta/T)). Downhill moves always pass; at T = 0
    only they do (greedy descent)."""
    u = torch.rand(delta.shape, generator=generator, dtype=delta.dtype, device=delta.device)
    if temperature == 0:
        return delta < 0
    return u < torch.exp(-delta / temperature)


def geometric_cooling(start: float, end: float, steps: int):
    """T_k = start·(end/start)^(k/steps): a fixed factor per step, from ``start`` at k = 0 to
    ``end`` at k = ``steps`` (Kirkpatrick et al.'s schedule, in continuous form)."""
    return lambda k: start * (end / start) ** (k / steps)


def annealing(f, x0, *, budget: int, seed: int = 0, step: float = 0.5, temperature=None):
    """Simulated annealing (Kirkpatrick, Gelatt and Vecchi, 1983) with Gaussian proposals:
    θ' = θ + step·ξ, ξ ~ N(0, I), accepted by `metropolis` at temperature T_k. ``temperature``
    is a number (constant T: a Metropolis sampler of exp(−f/T)), a function k ↦ T_k for the
    proposals k = 1, 2, …, or None for `geometric_cooling` from 1 to 10⁻³ over the budget.
    One evaluation per proposal."""
    check(step > 0, "step", step, "step > 0")
    if temperature is None:
        temperature = geometric_cooling(1.0, 1e-3, budget)
    schedule = temperature if callable(temperature) else (lambda k: temperature)
    check(callable(temperature) or temperature >= 0, "temperature", temperature, ">= 0")
    gen = torch.Generator().manual_seed(seed)
    oracle, theta = _start(f, x0, budget)
    loss = oracle(theta[None])[0]
    oracle.record(theta, loss)
    for k in range(1, budget):
        proposal = theta + step * torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
        new_loss = oracle(proposal[None])[0]
        if metropolis(new_loss - loss, schedule(k), gen):
            theta, loss = proposal, new_loss
        oracle.record(theta, loss)
    return oracle.trace("simulated annealing")


def genetic(f, x0, *, budget: int, seed: int = 0, population: int = 40, radius: float = 1.0,
            tournament: int = 3, crossover: float = 0.9, mutation: float = 0.3, elite: int = 1):
    """A real-coded genetic algorithm (Holland, 1975; Goldberg, 1989). The first generation is
    x0 + radius·N(0, I). Each next one keeps the ``elite`` best and breeds the rest: two
    parents, each the best of ``tournament`` members drawn at random (selection); with
    probability ``crossover`` every coordinate of the child comes from either parent with
    probability ½ (uniform crossover), else the child copies the first parent; then each
    coordinate changes with probability 1/d by N(0, mutation²) (mutation). One evaluation per
    member; the last generation is cut to the budget."""
    check(isinstance(population, int) and population >= 2, "population", population, "an int >= 2")
    check(isinstance(tournament, int) and 1 <= tournament <= population, "tournament", tournament,
          "an int between 1 and population")
    check(0 <= crossover <= 1, "crossover", crossover, "a probability in [0, 1]")
    check(mutation >= 0, "mutation", mutation, "mutation >= 0")
    check(isinstance(elite, int) and 0 <= elite < population, "elite", elite,
          "an int between 0 and population - 1")
    check(radius > 0, "radius", radius, "radius > 0")
    gen = torch.Generator().manual_seed(seed)
    oracle, x0 = _start(f, x0, budget)
    d = x0.numel()
    pop = x0 + radius * torch.randn(population, d, generator=gen, dtype=x0.dtype)
    pop[0] = x0
    pop = pop[:budget]
    fitness = oracle(pop)
    oracle.record(pop[fitness.argmin()], fitness.min())
    while oracle.left > 0:
        n = min(population - elite, oracle.left)

        def select():
            contestants = torch.randint(len(pop), (n, tournament), generator=gen)
            return pop[contestants.gather(1, fitness[contestants].argmin(1, keepdim=True))[:, 0]]

        mother, father = select(), select()
        crossed = torch.rand(n, 1, generator=gen) < crossover
        mix = crossed & (torch.rand(n, d, generator=gen) < 0.5)
        child = torch.where(mix, father, mother)
        mutate = torch.rand(n, d, generator=gen) < 1 / d
        child = child + mutate * mutation * torch.randn(n, d, generator=gen, dtype=x0.dtype)
        keep = fitness.argsort()[:elite]
        pop, fitness = torch.cat([pop[keep], child]), torch.cat([fitness[keep], oracle(child)])
        oracle.record(pop[fitness.argmin()], fitness.min())
    return oracle.trace("genetic algorithm")


def es_gradient(f, theta: torch.Tensor, sigma: float, pairs: int, generator: torch.Generator):
    """The antithetic evolution-strategies estimate of ∇f_σ(θ), the gradient of the Gaussian
    smoothing f_σ(θ) = E f(θ + σξ), ξ ~ N(0, I) (Salimans et al., 2017):

        ĝ = 1/(2σn) Σᵢ [f(θ + σξᵢ) − f(θ − σξᵢ)] ξᵢ   over n = ``pairs`` draws ξᵢ,

    unbiased for ∇f_σ(θ) and costing 2n evaluations of f."""
    xi = torch.randn(pairs, theta.numel(), generator=generator, dtype=theta.dtype)
    losses = f(torch.cat([theta + sigma * xi, theta - sigma * xi]))
    return (losses[:pairs] - losses[pairs:]) @ xi / (2 * sigma * pairs)


def evolution_strategy(f, x0, *, budget: int, seed: int = 0, lr: float = 0.05, sigma: float = 0.5,
                       pairs: int = 10):
    """Evolution strategies in the plain form of Salimans et al. (2017), without their rank-based
    fitness shaping and Adam: SGD on the smoothed loss, θ ← θ − lr·ĝ with ĝ from `es_gradient`,
    plus one evaluation of f at the new θ to record it; 2·pairs + 1 evaluations per step, the last step cut to the budget (it stops with
    fewer than 3 left, so up to 2 evaluations may go unused)."""
    check(lr > 0, "lr", lr, "lr > 0")
    check(sigma > 0, "sigma", sigma, "sigma > 0")
    check(isinstance(pairs, int) and pairs >= 1, "pairs", pairs, "an int >= 1")
    gen = torch.Generator().manual_seed(seed)
    oracle, theta = _start(f, x0, budget)
    oracle.record(theta, oracle(theta[None])[0])
    while oracle.left >= 3:
        g = es_gradient(oracle, theta, sigma, min(pairs, (oracle.left - 1) // 2), gen)
        theta = theta - lr * g
        oracle.record(theta, oracle(theta[None])[0])
    return oracle.trace("evolution strategy")


def cma_es(f, x0, *, budget: int, seed: int = 0, sigma: float = 1.0, population: int | None = None):
    """CMA-ES (Hansen and Ostermeier, 2001; Hansen, 2016) through the ``cmaes`` package: sample a
    population from N(m, σ²C), move m to a weighted mean of the best half, adapt σ by the path
    length and C by rank-one and rank-μ updates. Default population 4 + ⌊3 ln d⌋; the last
    generation is cut to the budget (and not told to CMA-ES)."""
    from cmaes import CMA

    check(sigma > 0, "sigma", sigma, "sigma > 0")
    oracle, x0 = _start(f, x0, budget)
    oracle.record(x0, oracle(x0[None])[0])
    es = CMA(mean=x0.double().numpy(), sigma=sigma, seed=seed, population_size=population)
    while oracle.left > 0:
        xs = [es.ask() for _ in range(min(es.population_size, oracle.left))]
        points = torch.as_tensor(np.stack(xs), dtype=x0.dtype)
        losses = oracle(points)
        if len(xs) == es.population_size:
            es.tell(list(zip(xs, losses.tolist())))
        oracle.record(points[losses.argmin()], losses.min())
    return oracle.trace("CMA-ES")


def random_search(f, x0, *, budget: int, seed: int = 0, radius: float = 5.0):
    """Pure random search: x0, then points drawn uniformly from the box x0 ± radius. Row k of the
    trace is the best of the first k + 1 points."""
    check(radius > 0, "radius", radius, "radius > 0")
    gen = torch.Generator().manual_seed(seed)
    oracle, x0 = _start(f, x0, budget)
    uniform = torch.rand(budget - 1, x0.numel(), generator=gen, dtype=x0.dtype)
    points = torch.cat([x0[None], x0 + radius * (2 * uniform - 1)])
    losses = oracle(points)
    best = torch.cummin(losses, 0).indices.tolist()
    oracle.rows = [(points[i], losses[i].item(), k + 1, losses[i].item()) for k, i in enumerate(best)]
    return oracle.trace("random search")


def gradient_descent(f, x0, *, budget: int, seed: int = 0, lr: float = 0.01,
                     gradient_cost: int | None = None):
    """Gradient descent θ ← θ − lr·∇f(θ), the gradient by autograd but charged
    ``gradient_cost`` evaluations (default d + 1, what forward differences would cost a
    black-box user: f(θ) and one more point per coordinate). Deterministic; ``seed`` is
    accepted for the common interface."""
    check(lr > 0, "lr", lr, "lr > 0")
    oracle, theta = _start(f, x0, budget)
    cost = theta.numel() + 1 if gradient_cost is None else gradient_cost
    check(isinstance(cost, int) and 1 <= cost <= budget, "gradient_cost", gradient_cost,
          "an int between 1 and budget")
    loss, g = oracle.value_and_grad(theta, cost)
    oracle.record(theta, loss)
    while oracle.left >= cost:
        theta = theta - lr * g
        loss, g = oracle.value_and_grad(theta, cost)
        oracle.record(theta, loss)
    return oracle.trace("gradient descent")


METHODS = {"simulated annealing": annealing, "genetic algorithm": genetic,
           "evolution strategy": evolution_strategy, "CMA-ES": cma_es,
           "random search": random_search, "gradient descent": gradient_descent}
