"""Loss functions to optimize: test functions with known answers and small synthetic data sets.

Every problem is a `Problem`: a loss ``f(θ)`` over parameters θ ∈ ℝᵈ with a starting point
and, where known, its minimizer, smoothness ``L`` and strong convexity ``mu``. Losses accept
a batch of parameter vectors (shape ``(..., d)``), so a 2-D problem can be evaluated on a
whole plotting grid at once. Problems built on data (`DataProblem`) also give the loss of a
mini-batch of examples, which is what stochastic gradient descent sees.
All tensors are float64: the book compares numbers to many digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

DTYPE = torch.float64


@dataclass
class Problem:
    """A loss ``f(θ)`` with what is known about it."""

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    minimizer: torch.Tensor | None = None
    bounds: tuple[float, float, float, float] | None = None  # (x_min, x_max, y_min, y_max)
    L: float | None = None  # largest Hessian eigenvalue: the gradient is L-Lipschitz
    mu: float | None = None  # smallest Hessian eigenvalue (strong convexity), if > 0
    hessian: torch.Tensor | None = None  # constant Hessian of a quadratic

    @property
    def dim(self) -> int:
        return self.x0.numel()

    @property
    def kappa(self) -> float:
        """Condition number κ = L/μ."""
        return self.L / self.mu

    @property
    def min_value(self) -> float | None:
        return None if self.minimizer is None else self.f(self.minimizer).item()

    def loss(self, theta: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """The loss at θ (a deterministic problem ignores ``batch``)."""
        return self.f(theta)

    def grad(self, theta: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """∇L(θ), by automatic differentiation."""
        theta = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(self.loss(theta, batch), theta)
        return g


@dataclass
class DataProblem(Problem):
    """Empirical risk ``L(θ) = (1/n) Σᵢ ℓ(θ; xᵢ, yᵢ)`` over a data set ``(X, y)``.

    The gradient of the full loss is an average over the data; a mini-batch gives a
    Monte-Carlo estimate of it ({ref}`ch-gradient-descent`).
    """

    X: torch.Tensor = field(default=None, repr=False)
    y: torch.Tensor = field(default=None, repr=False)
    example_loss: Callable = field(default=None, repr=False)  # (θ, X, y) -> losses, shape (..., n)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def loss(self, theta: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """The mean loss over the examples with indices ``batch`` (all when None)."""
        if batch is None:
            return self.example_loss(theta, self.X, self.y).mean(-1)
        return self.example_loss(theta, self.X[batch], self.y[batch]).mean(-1)


def rotation(angle: float) -> torch.Tensor:
    """The 2-D rotation by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=DTYPE)


def quadratic(kappa: float = 10.0, L: float = 1.0, angle: float = 0.0, dim: int = 2,
              center=None, x0=None) -> Problem:
    """``f(θ) = ½ (θ − c)ᵀ A (θ − c)`` with eigenvalues from μ = L/κ to L.

    In 2-D the axes of the bowl are rotated by ``angle``; in higher dimensions the eigenvalues
    are spaced geometrically from μ to L and the eigenbasis is the identity.
    """
    mu = L / kappa
    if dim == 2:
        Q = rotation(angle)
        eigenvalues = torch.tensor([L, mu], dtype=DTYPE)
    else:
        Q = torch.eye(dim, dtype=DTYPE)
        eigenvalues = torch.logspace(math.log10(L), math.log10(mu), dim, dtype=DTYPE)
    A = Q @ torch.diag(eigenvalues) @ Q.T
    c = torch.zeros(dim, dtype=DTYPE) if center is None else torch.as_tensor(center, dtype=DTYPE)
    if x0 is None:
        # Start off both axes of the bowl, so that every eigen-direction has work to do.
        x0 = c + (Q @ torch.tensor([-2.0, 1.5], dtype=DTYPE) if dim == 2
                  else torch.ones(dim, dtype=DTYPE))

    def f(theta):
        d = theta - c
        return 0.5 * torch.einsum("...i,ij,...j->...", d, A, d)

    return Problem(
        name=f"quadratic (κ = {kappa:g})", f=f, x0=torch.as_tensor(x0, dtype=DTYPE),
        minimizer=c, bounds=_box_around(c, 2.8) if dim == 2 else None,
        L=L, mu=mu, hessian=A,
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Problem:
    """``f(x, y) = (a − x)² + b (y − x²)²``: a curved, narrow valley with minimum at (a, a²)."""

    def f(theta):
        x, y = theta[..., 0], theta[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return Problem(name="Rosenbrock", f=f, x0=torch.tensor([-1.5, 2.0], dtype=DTYPE),
                   minimizer=torch.tensor([a, a * a], dtype=DTYPE), bounds=(-2.0, 2.0, -1.0, 3.0))


def saddle() -> Problem:
    """``f(x, y) = x²/2 + y⁴/4 − y²/2``: a saddle point at the origin between two minima (0, ±1)."""

    def f(theta):
        x, y = theta[..., 0], theta[..., 1]
        return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2

    return Problem(name="saddle", f=f, x0=torch.tensor([1.5, 1e-3], dtype=DTYPE),
                   minimizer=torch.tensor([0.0, 1.0], dtype=DTYPE), bounds=(-2.0, 2.0, -1.8, 1.8))


def _squared_error(theta, X, y):
    return 0.5 * (torch.einsum("nd,...d->...n", X, theta) - y) ** 2


def least_squares(n: int = 1000, d: int = 2, noise: float = 0.5, kappa: float = 5.0,
                  seed: int = 0) -> DataProblem:
    """Linear regression ``ℓ(θ; x, y) = ½ (xᵀθ − y)²`` on synthetic data.

    Features are Gaussian with covariance eigenvalues from 1 to 1/κ (so the Hessian XᵀX/n has
    condition number about κ); targets are ``xᵀθ* + noise·ε``. The exact minimizer, L and μ
    are computed from the data.
    """
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -0.5 * math.log10(kappa), d, dtype=DTYPE)
    X = torch.randn(n, d, generator=gen, dtype=DTYPE) * scales
    theta_true = torch.randn(d, generator=gen, dtype=DTYPE)
    y = X @ theta_true + noise * torch.randn(n, generator=gen, dtype=DTYPE)
    H = X.T @ X / n
    eig = torch.linalg.eigvalsh(H)
    minimizer = torch.linalg.solve(H, X.T @ y / n)
    return DataProblem(
        name="least squares", f=lambda theta: _squared_error(theta, X, y).mean(-1),
        x0=torch.zeros(d, dtype=DTYPE), minimizer=minimizer,
        bounds=_box_around(minimizer) if d == 2 else None,
        L=eig[-1].item(), mu=eig[0].item(), hessian=H, X=X, y=y, example_loss=_squared_error,
    )


def _logistic_loss(theta, X, y):
    # log(1 + exp(−y·xᵀθ)) for labels y ∈ {−1, +1}, computed stably by softplus.
    return torch.nn.functional.softplus(-y * torch.einsum("nd,...d->...n", X, theta))


def logistic_regression(n: int = 1000, d: int = 2, separation: float = 1.0, seed: int = 0,
                        sort_by_label: bool = False, intercept: bool = False) -> DataProblem:
    """Two Gaussian classes (labels −1, +1) with means ±separation·u and the logistic loss.

    With ``intercept=True`` the last feature is the constant 1, so the last parameter is the
    model's bias (and the data have d − 1 real features).

    With ``sort_by_label=True`` the examples come in label order (all −1 first), as data read
    class by class from disk would: the setting in which not shuffling hurts
    ({ref}`ch-gradient-descent`).
    The minimizer is found by Newton's method, to machine precision.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).to(DTYPE)
    features = d - 1 if intercept else d
    direction = torch.ones(features, dtype=DTYPE) / math.sqrt(features)
    X = y[:, None] * separation * direction + torch.randn(n, features, generator=gen, dtype=DTYPE)
    if intercept:
        X = torch.cat([X, torch.ones(n, 1, dtype=DTYPE)], dim=1)
    if sort_by_label:
        order = torch.argsort(y, stable=True)
        X, y = X[order], y[order]
    f = lambda theta: _logistic_loss(theta, X, y).mean(-1)  # noqa: E731
    minimizer = _newton(f, torch.zeros(d, dtype=DTYPE))
    H = torch.autograd.functional.hessian(f, minimizer)
    eig = torch.linalg.eigvalsh(H)
    # The logistic loss has curvature ≤ 1/4, so L ≤ λ_max(XᵀX)/(4n) everywhere.
    L = torch.linalg.eigvalsh(X.T @ X / n)[-1].item() / 4
    return DataProblem(
        name="logistic regression", f=f, x0=torch.zeros(d, dtype=DTYPE), minimizer=minimizer,
        bounds=_box_around(minimizer) if d == 2 else None, L=L, mu=eig[0].item(),
        X=X, y=y, example_loss=_logistic_loss,
    )


def _newton(f, theta, iterations: int = 50):
    for _ in range(iterations):
        g = torch.autograd.functional.jacobian(f, theta)
        H = torch.autograd.functional.hessian(f, theta)
        step = torch.linalg.solve(H, g)
        theta = theta - step
        if step.norm() < 1e-15:
            break
    return theta


def _box_around(point, span: float = 2.5):
    x, y = point.tolist()
    return (x - span, x + span, y - span, y + span)


def reddi_online(C: float = 3.0) -> DataProblem:
    """Reddi, Kale & Kumar's online problem, on which Adam converges to the worst point
    (reddi2018, §3: "On the Convergence of Adam and Beyond", ICLR 2018).

    The losses are linear in one parameter θ, ``f_t(θ) = c_t·θ`` with ``c_t = C`` when
    ``t mod 3 = 1`` and ``c_t = −1`` otherwise (t = 1, 2, …), and θ must stay in the feasible
    set F = [−1, 1]: the online method is *projected*, so every optimizer step is followed by
    ``θ.clamp_(−1, 1)``. Over one period the losses add up to (C − 2)·θ, so for C > 2 the point
    with the least regret is θ = −1 (``minimizer``); Reddi et al. show that Adam with β₁ = 0,
    β₂ = 1/(1 + C²) and step sizes α/√t goes to θ = +1 instead ({ref}`ch-amsgrad`).

    As a `DataProblem` the three losses of a period are three examples with x = C, −1, −1 (and
    unused targets y = 0): mini-batches of one example in storage order (``batch_size=1,
    shuffle=False`` in `optcore.trace.run`) replay f₁, f₂, f₃, f₁, …, and the full loss is their
    average, L(θ) = (C − 2)·θ/3.
    """
    if not C > 2:
        raise ValueError(f"Invalid C: {C!r} (expected C > 2, so that θ = −1 is the optimum)")
    X = torch.tensor([[C], [-1.0], [-1.0]], dtype=DTYPE)
    y = torch.zeros(3, dtype=DTYPE)

    def linear_loss(theta, X, y):
        return torch.einsum("nd,...d->...n", X, theta)

    return DataProblem(
        name=f"Reddi et al.'s online problem (C = {C:g})",
        f=lambda theta: linear_loss(theta, X, y).mean(-1),
        x0=torch.zeros(1, dtype=DTYPE), minimizer=torch.tensor([-1.0], dtype=DTYPE),
        L=0.0, X=X, y=y, example_loss=linear_loss,
    )


def rastrigin(dim: int = 2, A: float = 10.0, x0=None) -> Problem:
    """``f(θ) = A d + Σᵢ (θᵢ² − A cos 2πθᵢ)``: a bowl covered in ripples, with a local
    minimum near every integer point and the global minimum 0 at the origin (Rastrigin's test
    function in Mühlenbein et al.'s d-dimensional form; the usual box is [−5.12, 5.12]ᵈ)."""

    def f(theta):
        return A * theta.shape[-1] + (theta**2 - A * torch.cos(2 * math.pi * theta)).sum(-1)

    start = torch.full((dim,), 3.2, dtype=DTYPE) if x0 is None else torch.as_tensor(x0, dtype=DTYPE)
    return Problem(name=f"Rastrigin (d = {dim})", f=f, x0=start,
                   minimizer=torch.zeros(dim, dtype=DTYPE),
                   bounds=(-5.12, 5.12, -5.12, 5.12) if dim == 2 else None)


def ackley(dim: int = 2, a: float = 20.0, b: float = 0.2, c: float = 2 * math.pi, x0=None) -> Problem:
    """``f(θ) = −a exp(−b √(‖θ‖²/d)) − exp(Σᵢ cos(cθᵢ)/d) + a + e``: a nearly flat plateau
    with ripples and one deep funnel to the global minimum 0 at the origin (Ackley, 1987)."""

    def f(theta):
        d = theta.shape[-1]
        return (-a * torch.exp(-b * torch.sqrt((theta**2).sum(-1) / d))
                - torch.exp(torch.cos(c * theta).sum(-1) / d) + a + math.e)

    start = torch.full((dim,), 3.2, dtype=DTYPE) if x0 is None else torch.as_tensor(x0, dtype=DTYPE)
    return Problem(name=f"Ackley (d = {dim})", f=f, x0=start,
                   minimizer=torch.zeros(dim, dtype=DTYPE),
                   bounds=(-5.0, 5.0, -5.0, 5.0) if dim == 2 else None)
