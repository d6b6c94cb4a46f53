"""Curvature without forming the Hessian: Hessian-vector products, power iteration, Lanczos,
conjugate gradients, and the sharpness of a network.

Everything here works on a flat vector of length n, the parameters of a model laid end to end
(the order of ``params``), so the same function serves a 2-D test problem and a network. The
Hessian itself is formed only by :func:`hessian`, for models small enough that n² numbers fit;
every other function touches H through :func:`hvp`, which costs about two gradients.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .optim.base import check

__all__ = ["flat", "hvp", "hessian", "top_eigenvalue", "lanczos", "conjugate_gradient",
           "sharpness"]


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors laid end to end as one vector, in their order: the flat parameter vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def hvp(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
        v: torch.Tensor) -> torch.Tensor:
    """H v by double backward: differentiate the scalar gᵀv once more,

        H v = ∇_θ (∇_θ L(θ) · v),

    with ``loss_fn()`` computing L from ``params`` and ``v`` a flat vector of their total size.
    Costs about two gradient evaluations and never forms H; the product is exact, the same as
    Pearlmutter's (1994) forward-mode R-operator gives. Returns a flat vector."""
    params = list(params)
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    dot = (flat(grads) * v.detach()).sum()
    return flat(torch.autograd.grad(dot, params, materialize_grads=True)).detach()


def hessian(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The dense n × n Hessian of ``loss_fn()`` in the flat parameters: column j is H eⱼ, the
    Hessian-vector product with the j-th unit vector, all n of them in one batched backward
    pass. n² numbers: for small models only."""
    params = list(params)
    g = flat(torch.autograd.grad(loss_fn(), params, create_graph=True))
    eye = torch.eye(g.numel(), dtype=g.dtype, device=g.device)
    columns = torch.autograd.grad(g, params, eye, is_grads_batched=True, allow_unused=True)
    # a parameter that enters the loss linearly (the last bias) has no second derivative: None
    return torch.cat([g.new_zeros(g.numel(), p.numel()) if c is None else c.reshape(g.numel(), -1)
                      for c, p in zip(columns, params)], dim=1).detach()


def top_eigenvalue(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, *,
                   iterations: int = 20) -> tuple[float, torch.Tensor]:
    """Power iteration v ← Av/‖Av‖ on a symmetric operator given by ``matvec``, from ``v0``.

    Returns the Rayleigh quotient vᵀAv of the last unit vector and that vector. It converges to
    the eigenvalue of largest *magnitude* (with eigenvalues ordered by magnitude, the vector at
    the rate |λ₂/λ₁| per iteration, the Rayleigh quotient at its square); for a Hessian whose
    most negative eigenvalue is larger in size than its largest, that is the negative one. A
    Rayleigh quotient never exceeds λ_max, so an estimate of the top eigenvalue errs low.
    Warm-starting from the previous call's vector makes tracking a slowly moving λ cheap."""
    check(iterations >= 1, "iterations", iterations, "iterations >= 1")
    v = v0 / v0.norm()
    for _ in range(iterations):
        w = matvec(v)
        v = w / w.norm()
    return float(v @ matvec(v)), v


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor,
            steps: int) -> torch.Tensor:
    """The Ritz values (ascending) of ``steps`` Lanczos iterations from ``v0``.

    Lanczos builds an orthonormal basis Q of the Krylov space span{v, Av, …, A^{k−1}v} in which
    A is tridiagonal, T = QᵀAQ (α on the diagonal, β beside it); the eigenvalues of the small T
    approach A's extreme eigenvalues far faster than power iteration does. Full
    reorthogonalization keeps Q orthonormal in floating point (at k vector products of memory)."""
    check(1 <= steps <= v0.numel(), "steps", steps, "1 <= steps <= n")
    Q = [v0 / v0.norm()]
    alphas, betas = [], []
    for k in range(steps):
        w = matvec(Q[k])
        alphas.append(torch.dot(w, Q[k]))
        basis = torch.stack(Q)
        w = w - basis.T @ (basis @ w)  # subtract the components along every earlier q
        w = w - basis.T @ (basis @ w)  # twice is enough ("twice is enough", Kahan)
        if k + 1 < steps:
            betas.append(w.norm())
            Q.append(w / betas[-1])
    T = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *,
                       iterations: int | None = None, tol: float = 0.0,
                       x0: torch.Tensor | None = None) -> tuple[torch.Tensor, list[float]]:
    """Solve A x = b for a symmetric positive definite A given by ``matvec`` (Hestenes and
    Stiefel 1952). With residual r = b − A x and direction p, each iteration does

        α = rᵀr / pᵀAp,  x ← x + αp,  r_new = r − αAp,  p ← r_new + (r_newᵀr_new / rᵀr) p,

    one product with A per iteration. In exact arithmetic it ends after at most n iterations.
    Stops after ``iterations`` (default n) or once ‖r‖ ≤ ``tol``·‖b‖. Returns x and the
    residual norms ‖r_k‖ from k = 0."""
    iterations = b.numel() if iterations is None else iterations
    check(iterations >= 0, "iterations", iterations, "iterations >= 0")
    check(tol >= 0.0, "tol", tol, "tol >= 0")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p, rr = r.clone(), torch.dot(r, r)
    norms = [float(rr.sqrt())]
    for _ in range(iterations):
        if norms[-1] <= tol * float(b.norm()) or rr == 0:
            break
        Ap = matvec(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p, rr = r + (rr_new / rr) * p, rr_new
        norms.append(float(rr.sqrt()))
    return x, norms


def sharpness(net: torch.nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *,
              iterations: int = 20, v0: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """The sharpness λ_max of ``loss_fn(net, x, y)`` in ``net``'s parameters: power iteration
    (:func:`top_eigenvalue`) on Hessian-vector products, started from ``v0`` (default: a
    seeded random vector). Returns the estimate and the unit vector, to warm-start the next
    call. This is the quantity Cohen et al. (2021) track along a run of gradient descent."""
    params = [p for p in net.parameters() if p.requires_grad]
    if v0 is None:
        gen = torch.Generator().manual_seed(0)
        v0 = torch.randn(sum(p.numel() for p in params), generator=gen, dtype=torch.float64)
        v0 = v0.to(dtype=params[0].dtype, device=params[0].device)
    return top_eigenvalue(lambda v: hvp(lambda: loss_fn(net, x, y), params, v), v0,
                          iterations=iterations)
