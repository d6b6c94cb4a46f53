"""Adversarial examples: the optimizer turned on the input (chapter 22).

An attack keeps the weights fixed and *maximizes* the loss over the input ``x``, inside a
budget: a ball ‖δ‖ ≤ ε around the clean input, and the box of valid inputs (pixels in [0, 1]).
FGSM (Goodfellow et al., 2015) is one signSGD step of length ε; PGD (Madry et al., 2018) is
projected signSGD (or projected normalized gradient ascent for the L2 ball) from a random start.

Every attack here works on a batch (dimension 0 indexes the examples), on whatever device the
model and ``x`` live on, puts the model in eval mode while it runs (dropout off, batch norm on
its running statistics) and restores each submodule's mode afterwards, and differentiates with
``torch.autograd.grad`` with respect to the input only, so no parameter's ``.grad`` changes.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .optim.base import check

NORMS = ("inf", "2")


class Standardize(torch.nn.Module):
    """``(x − mean) / std``: put in front of a network trained on standardized features, so
    that attacks can work in the units of the data (pixels), where the budget means something."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("std", torch.as_tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


def cross_entropy(logits, y):
    """Per-example cross-entropy (the attacks rank restarts example by example)."""
    return F.cross_entropy(logits, y, reduction="none")


def margin_loss(logits, y):
    """Per-example margin max_{k≠y} z_k − z_y (Carlini and Wagner, 2017): positive exactly when
    the example is misclassified, and unlike the cross-entropy it does not saturate when the
    logits are scaled up, so its gradient cannot underflow to zero."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - true


def project_linf(delta, eps):
    """The closest point to ``delta`` in the L∞ ball of radius ``eps``: clip every entry."""
    return delta.clamp(-eps, eps)


def project_l2(delta, eps):
    """The closest point to each example's ``delta`` in the L2 ball of radius ``eps``: shrink
    it radially to length ``eps`` when it is longer, leave it alone otherwise."""
    norms = torch.linalg.vector_norm(delta.flatten(1), dim=1).view(-1, *[1] * (delta.dim() - 1))
    return delta * torch.clamp(eps / norms.clamp_min(torch.finfo(delta.dtype).tiny), max=1.0)


def project(delta, eps, norm: str):
    """Project onto the ``norm`` ball ("inf" or "2") of radius ``eps``."""
    check(norm in NORMS, "norm", norm, "'inf' or '2'")
    return project_linf(delta, eps) if norm == "inf" else project_l2(delta, eps)


@contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode inside the block; afterwards every submodule gets back its own mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def input_gradient(model, x, y, loss_fn=cross_entropy):
    """∇ₓ Σᵢ loss_fn(model(x), y)ᵢ, the gradient of the summed loss with respect to the input
    only: each example's row is the gradient of its own loss."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_fn(model(x), y).sum(), x)
    return grad


def _check(x, y, eps, lo, hi):
    check(eps >= 0, "eps", eps, "eps >= 0")
    check(x.shape[0] == y.shape[0], "y", tuple(y.shape), f"{x.shape[0]} labels, one per input")
    check(bool(torch.all(torch.as_tensor(lo) <= torch.as_tensor(hi))), "lo", lo, "lo <= hi")


def fgsm(model, x, y, eps, *, lo=0.0, hi=1.0, loss_fn=cross_entropy):
    """Fast gradient sign method: one signSGD step of length ``eps`` uphill on the loss,
    x̃ = clip(x + ε sign ∇ₓ ℓ(x, y), lo, hi)."""
    _check(x, y, eps, lo, hi)
    with evaluating(model):
        grad = input_gradient(model, x, y, loss_fn)
    return torch.clamp(x.detach() + eps * grad.sign(), lo, hi)


def random_start(x, eps, norm: str, generator: torch.Generator | None = None):
    """A uniform random point of the ``norm`` ball of radius ``eps`` for every example, drawn on
    the CPU from ``generator`` (so every device starts from the same points)."""
    shape, d = x.shape, x[0].numel()
    if norm == "inf":
        delta = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) * eps
    else:
        direction = torch.randn(shape, generator=generator, dtype=torch.float64)
        radius = torch.rand(shape[0], generator=generator, dtype=torch.float64) ** (1 / d)
        norms = torch.linalg.vector_norm(direction.flatten(1), dim=1)
        delta = direction * (eps * radius / norms).view(-1, *[1] * (x.dim() - 1))
    return delta.to(dtype=x.dtype, device=x.device)


def pgd(model, x, y, eps, *, steps: int = 10, alpha=None, norm: str = "inf",
        restarts: int = 1, random_init: bool = True, lo=0.0, hi=1.0, loss_fn=cross_entropy,
        generator: torch.Generator | None = None):
    """Projected gradient ascent on the loss over the ``norm`` ball of radius ``eps`` around
    ``x``, intersected with the box [lo, hi] (Madry et al., 2018):

        δ ← Π(δ + α sign ∇ℓ)          (L∞),   δ ← Π(δ + α ∇ℓ / ‖∇ℓ‖₂)   (L2),
        then δ ← clip(x + δ, lo, hi) − x,

    ``steps`` times, from a uniform random point of the ball (``random_init``), ``restarts``
    times; each example keeps the restart with the largest final loss. ``alpha`` defaults to
    2.5 ε / steps, so that the steps together could cross the ball (diameter 2ε) from any
    start. For the L∞ ball the two projections give the exact projection onto the intersection
    (both are boxes)."""
    _check(x, y, eps, lo, hi)
    check(norm in NORMS, "norm", norm, "'inf' or '2'")
    check(isinstance(steps, int) and steps >= 1, "steps", steps, "an integer >= 1")
    check(isinstance(restarts, int) and restarts >= 1, "restarts", restarts, "an integer >= 1")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    check(alpha >= 0, "alpha", alpha, "alpha >= 0")
    x = x.detach()
    shape = (-1, *[1] * (x.dim() - 1))
    best, best_loss = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
    with evaluating(model):
        for _ in range(restarts):
            delta = random_start(x, eps, norm, generator) if random_init else torch.zeros_like(x)
            x_adv = torch.clamp(x + delta, lo, hi)
            for _ in range(steps):
                grad = input_gradient(model, x_adv, y, loss_fn)
                if norm == "inf":
                    step = grad.sign()
                else:
                    length = torch.linalg.vector_norm(grad.flatten(1), dim=1).view(shape)
                    step = grad / length.clamp_min(torch.finfo(grad.dtype).tiny)
                delta = project(x_adv - x + alpha * step, eps, norm)
                x_adv = torch.clamp(x + delta, lo, hi)
            with torch.no_grad():
                loss = loss_fn(model(x_adv), y).to(best_loss.dtype)
            better = loss > best_loss
            best[better], best_loss[better] = x_adv[better], loss[better]
    return best


@torch.no_grad()
def accuracy(model, x, y) -> float:
    """The fraction of ``x`` that ``model`` (in eval mode) classifies as ``y``."""
    with evaluating(model):
        return (model(x).argmax(1) == y).double().mean().item()
