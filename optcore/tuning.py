"""Hyperparameter search: grid, random, and Bayesian optimization with a Gaussian process.

Every search here works in the unit cube [0, 1]^d; a :class:`Space` maps a point of the cube to
hyperparameters (uniformly, or log-uniformly for scales such as a learning rate). The Gaussian
process (:class:`GaussianProcess`), its expected improvement (:func:`expected_improvement`) and
the search loops (:func:`search`) are written out in torch, float64, as chapter 21 derives them;
:func:`tpe` runs the same search with Optuna's TPE sampler, for comparison. :func:`staged_digits`
trains the digits network in stages and reports the validation loss after each, which is what a
pruner needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .optim.base import check
from .trace import batches
from .training import Digits, cross_entropy, digits_net, fit

METHODS = ("grid", "random", "gp-ei")


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter, from ``low`` to ``high``; ``log`` spaces it log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        check(self.low < self.high, "high", self.high, f"high > low = {self.low}")
        if self.log:
            check(self.low > 0, "low", self.low, "low > 0 on a log scale")

    def value(self, u: float) -> float:
        """The hyperparameter at the fraction ``u`` ∈ [0, 1] of the way from low to high."""
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Space:
    """Named dimensions: ``Space({"lr": Dimension(1e-4, 1, log=True), ...})``."""

    dimensions: dict

    @property
    def dim(self) -> int:
        return len(self.dimensions)

    def values(self, u: torch.Tensor) -> dict:
        """The hyperparameters at the point ``u`` of the unit cube."""
        return {name: d.value(float(x)) for (name, d), x in zip(self.dimensions.items(), u)}


def grid(dim: int, budget: int) -> torch.Tensor:
    """The largest full grid of at most ``budget`` points in [0, 1]^dim: k = ⌊budget^(1/dim)⌋
    values per axis, at the centres of k equal cells, (i + ½)/k. Shape (k^dim, dim)."""
    check(isinstance(dim, int) and dim >= 1, "dim", dim, "an integer >= 1")
    check(isinstance(budget, int) and budget >= 1, "budget", budget, "an integer >= 1")
    k = int(round(budget ** (1 / dim)))
    k = k if k**dim <= budget else k - 1
    axis = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    return torch.cartesian_prod(*[axis] * dim).reshape(-1, dim)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, length_scale: float) -> torch.Tensor:
    """k(a, b) = exp(−‖a − b‖² / (2ℓ²)) for all rows of ``a`` (n, d) and ``b`` (m, d)."""
    return torch.exp(-0.5 * torch.cdist(a, b).pow(2) / length_scale**2)


class GaussianProcess:
    """A Gaussian-process regression with covariance σ_f² k(x, x') (k: :func:`rbf_kernel`) and
    observation noise of variance σ_n² (``noise``), conditioned on observations (X, y):

        m(x) = k_xᵀ K⁻¹ y,   s²(x) = σ_f² − k_xᵀ K⁻¹ k_x,   K = σ_f² k(X, X) + σ_n² I,

    with k_x = σ_f² k(X, x), solved through the Cholesky factor K = L Lᵀ (Rasmussen & Williams,
    2006, Algorithm 2.1). s(x) is the standard deviation of the latent function, without the
    observation noise. The prior mean is 0: standardize y first (:func:`fit_gp` does)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, *, length_scale: float,
                 signal_variance: float = 1.0, noise: float = 1e-6):
        check(length_scale > 0, "length_scale", length_scale, "length_scale > 0")
        check(signal_variance > 0, "signal_variance", signal_variance, "signal_variance > 0")
        check(noise >= 0, "noise", noise, "noise >= 0")
        check(X.ndim == 2 and y.shape == X.shape[:1], "y", tuple(y.shape),
              f"one value per row of X {tuple(X.shape)}")
        self.X, self.y = X, y
        self.length_scale, self.signal_variance, self.noise = length_scale, signal_variance, noise
        K = signal_variance * rbf_kernel(X, X, length_scale)
        K = K + noise * torch.eye(len(X), dtype=X.dtype)
        self.L = torch.linalg.cholesky(K)
        self.alpha = torch.cholesky_solve(y[:, None], self.L)[:, 0]  # K⁻¹ y

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean m(x) and standard deviation s(x) at the rows of ``x``."""
        k = self.signal_variance * rbf_kernel(self.X, x, self.length_scale)  # (n, m)
        v = torch.linalg.solve_triangular(self.L, k, upper=False)
        variance = (self.signal_variance - v.pow(2).sum(0)).clamp_min(0.0)
        return k.T @ self.alpha, variance.sqrt()

    def log_marginal_likelihood(self) -> float:
        """log p(y | X) = −½ yᵀK⁻¹y − Σᵢ log Lᵢᵢ − (n/2) log 2π."""
        n = len(self.y)
        return (-0.5 * self.y @ self.alpha - self.L.diagonal().log().sum()
                - 0.5 * n * math.log(2 * math.pi)).item()


def fit_gp(X: torch.Tensor, y: torch.Tensor,
           length_scales=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0),
           noises=(1e-6, 1e-3, 1e-2, 1e-1)) -> GaussianProcess:
    """Standardize y, then choose the kernel by the marginal likelihood: for each length scale
    and noise ratio r on the grids, the best signal variance has a closed form, σ_f² = yᵀK₁⁻¹y/n
    with K₁ = k(X, X) + r I (the profile likelihood); keep the triple of largest
    log p(y | X). The returned process is conditioned on the standardized y."""
    y = (y - y.mean()) / y.std().clamp_min(1e-12) if len(y) > 1 else y - y.mean()
    best = None
    for ell in length_scales:
        for r in noises:
            unit = GaussianProcess(X, y, length_scale=ell, signal_variance=1.0, noise=r)
            s2 = max((y @ unit.alpha).item() / len(y), 1e-12)
            gp = GaussianProcess(X, y, length_scale=ell, signal_variance=s2, noise=r * s2)
            lml = gp.log_marginal_likelihood()
            if best is None or lml > best[0]:
                best = (lml, gp)
    return best[1]


def expected_improvement(mean: torch.Tensor, std: torch.Tensor, best: float) -> torch.Tensor:
    """E max(best − f, 0) for f ~ N(m, s²) (mean, std), minimizing (Jones et al., 1998):
    EI = (best − m) Φ(z) + s φ(z), z = (best − m)/s; max(best − m, 0) where s = 0."""
    gap = best - mean
    safe = std.clamp_min(1e-300)
    z = gap / safe
    normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    ei = gap * normal.cdf(z) + std * normal.log_prob(z).exp()
    return torch.where(std > 0, ei, gap.clamp_min(0.0))


@dataclass
class Trials:
    """What a search tried, in order: the points of the unit cube, their hyperparameters, and
    the objective's values."""

    points: list = field(default_factory=list)
    params: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def best(self) -> tuple[dict, float]:
        """The hyperparameters of the lowest value, and that value."""
        i = min(range(len(self.values)), key=self.values.__getitem__)
        return self.params[i], self.values[i]

    def running_best(self) -> list[float]:
        """The lowest value after each trial."""
        out, low = [], math.inf
        for v in self.values:
            low = min(low, v)
            out.append(low)
        return out


def search(objective, space: Space, budget: int, method: str = "random", *, seed: int = 0,
           initial: int = 5, candidates: int = 2000) -> Trials:
    """Minimize ``objective(**hyperparameters)`` over ``space`` with at most ``budget`` calls.

    ``"grid"``: :func:`grid` (k^d ≤ budget points, in order); ``"random"``: ``budget`` uniform
    points of the cube; ``"gp-ei"``: ``initial`` uniform points, then, each call, the point of
    largest :func:`expected_improvement` among ``candidates`` fresh uniform points under the
    process :func:`fit_gp` fits to all values so far. Seeded by ``seed``."""
    check(method in METHODS, "method", method, f"one of {METHODS}")
    check(isinstance(budget, int) and budget >= 1, "budget", budget, "an integer >= 1")
    check(isinstance(initial, int) and initial >= 1, "initial", initial, "an integer >= 1")
    gen = torch.Generator().manual_seed(seed)
    trials = Trials()

    def evaluate(u):
        params = space.values(u)
        trials.points.append(u)
        trials.params.append(params)
        trials.values.append(float(objective(**params)))

    if method == "grid":
        for u in grid(space.dim, budget):
            evaluate(u)
        return trials
    first = budget if method == "random" else min(initial, budget)
    for u in torch.rand(first, space.dim, generator=gen, dtype=torch.float64):
        evaluate(u)
    for _ in range(budget - first):
        X, y = torch.stack(trials.points), torch.tensor(trials.values, dtype=torch.float64)
        gp = fit_gp(X, y)
        pool = torch.rand(candidates, space.dim, generator=gen, dtype=torch.float64)
        mean, std = gp.posterior(pool)
        evaluate(pool[expected_improvement(mean, std, gp.y.min().item()).argmax()])
    return trials


def tpe(objective, space: Space, budget: int, *, seed: int = 0, startup: int = 5) -> Trials:
    """The same search with Optuna's TPE sampler (``startup`` random trials first), in memory
    and silent. Returns :class:`Trials` whose points are the cube coordinates of Optuna's
    suggestions."""
    import optuna  # imported here: only this search needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed,
                                                                   n_startup_trials=startup))
    trials = Trials()

    def run(trial):
        params = {name: trial.suggest_float(name, d.low, d.high, log=d.log)
                  for name, d in space.dimensions.items()}
        u = [math.log(v / d.low) / math.log(d.high / d.low) if d.log
             else (v - d.low) / (d.high - d.low)
             for v, d in zip(params.values(), space.dimensions.values())]
        value = float(objective(**params))
        trials.points.append(torch.tensor(u, dtype=torch.float64))
        trials.params.append(params)
        trials.values.append(value)
        return value

    study.optimize(run, n_trials=budget)
    return trials


def validation_split(data: Digits, size: int = 300) -> Digits:
    """Hold ``size`` of the training images out for tuning: a :class:`Digits` whose "test"
    images are that validation set. The real test images are not in it, so a search never
    sees them."""
    check(0 < size < len(data.y_train), "size", size, f"0 < size < {len(data.y_train)}")
    x, y = data.x_train, data.y_train
    return Digits(x[size:], y[size:], x[:size], y[:size])


def staged_digits(make_optimizer, stages, data: Digits, *, hidden: int = 16, batch_size: int = 64,
                  seed: int = 0, **hyperparameters):
    """Train :func:`~optcore.training.digits_net` on ``data`` as
    :func:`~optcore.training.train_digits` does (same network, same batches), but in stages:
    after ``stages[0]``, ``stages[1]``, ... steps in all, yield (steps, loss on data's held-out
    images). Stop consuming the generator to stop training, as a pruner does."""
    check(list(stages) == sorted(set(stages)) and stages[0] > 0, "stages", stages,
          "increasing positive step counts")
    net = digits_net(hidden, seed=seed, dtype=data.x_train.dtype, device=data.x_train.device)
    optimizer = make_optimizer(net.parameters(), **hyperparameters)
    order = batches(len(data.y_train), batch_size, True, torch.Generator().manual_seed(seed))
    done = 0
    for stop in stages:
        pairs = [(data.x_train[i], data.y_train[i]) for _, i in zip(range(stop - done), order)]
        fit(net, optimizer, pairs, loss_fn=cross_entropy, snapshots=False)
        done = stop
        with torch.no_grad():
            loss = cross_entropy(net, data.x_test, data.y_test).item()
        yield done, (loss if math.isfinite(loss) else math.inf)
