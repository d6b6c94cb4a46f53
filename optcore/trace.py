"""Run an optimizer on a problem, or on a given stream of gradients, and record where it went."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .problems import Problem


@dataclass
class Trace:
    """The path θ₀, θ₁, …, θ_T of a run, the loss L(θ_t) at each point (None for a replayed
    gradient stream, which has no loss), and the optimizer, kept for its state."""

    thetas: torch.Tensor  # shape (T + 1, *θ.shape)
    losses: torch.Tensor | None  # shape (T + 1,)
    label: str = ""
    optimizer: torch.optim.Optimizer | None = None

    @property
    def steps(self) -> int:
        return self.thetas.shape[0] - 1

    @property
    def final(self) -> torch.Tensor:
        return self.thetas[-1]


def batches(n: int, batch_size: int, shuffle: bool, generator: torch.Generator):
    """Endless mini-batches of example indices, epoch after epoch.

    Each epoch visits every example once: in a fresh random order when ``shuffle``, else in
    storage order. A last batch smaller than ``batch_size`` is dropped, so every step averages
    the same number of examples.
    """
    while True:
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def as_float(x0) -> torch.Tensor:
    """A copy of the starting point as a floating-point tensor (an integer 0 becomes 0.0)."""
    x0 = torch.as_tensor(x0)
    if not (x0.is_floating_point() or x0.is_complex()):
        x0 = x0.to(torch.get_default_dtype())
    return x0.clone()


def scheduler(schedule, optimizer):
    """Two callables, ``before(t)`` and ``after()``, that a loop calls around step t = 1, 2, …
    to apply ``schedule`` to ``optimizer``:

    - ``None``: the learning rate stays as constructed;
    - a class or ``functools.partial`` of one, e.g. ``partial(StepLR, step_size=10)``: called
      with the optimizer, and its ``step()`` called without arguments after every optimizer
      step (any of ``torch.optim.lr_scheduler``'s or ``optcore.schedules``' but
      ``ReduceLROnPlateau``, which wants a metric);
    - any other callable ``lr(t)``: step t runs with learning rate ``lr(t)`` in every parameter
      group (the chapters' hand-written schedules: 1/√t, a list of η_t). It is called only
      for the steps that run, t = 1 … T. (``LambdaLR``'s function counts from 0 instead and
      multiplies the initial learning rate.) A lambda that builds a scheduler is taken for
      such a function: pass the class or a ``partial`` of it.
    """
    if schedule is None:
        return (lambda t: None), (lambda: None)
    if isinstance(schedule, type) or (isinstance(schedule, functools.partial)
                                      and isinstance(schedule.func, type)):
        return (lambda t: None), schedule(optimizer).step

    def before(t):
        for group in optimizer.param_groups:
            group["lr"] = schedule(t)
    return before, (lambda: None)


def run(problem: Problem, make_optimizer, *, steps: int, x0=None, batch_size: int | None = None,
        shuffle: bool = True, seed: int = 0, label: str = "", schedule=None,
        **hyperparameters) -> Trace:
    """Optimize ``problem`` for ``steps`` steps, starting from ``x0`` (default ``problem.x0``).

    ``make_optimizer`` is an optimizer class (optcore's or torch.optim's) or any callable
    ``(params, **hyperparameters) -> optimizer``. Each step computes the loss of one
    mini-batch of ``batch_size`` examples (the full loss when None), back-propagates, and calls
    ``optimizer.step(closure)``, so closure-based optimizers such as L-BFGS work too. The
    recorded losses are always the full loss, so runs with different batch sizes compare.
    ``schedule`` changes the learning rate between steps (see :func:`scheduler`).
    """
    theta = torch.nn.Parameter(as_float(problem.x0 if x0 is None else x0))
    optimizer = make_optimizer([theta], **hyperparameters)
    before_step, after_step = scheduler(schedule, optimizer)
    stream = None
    if batch_size is not None:
        n = getattr(problem, "n", None)
        if n is None or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be between 1 and the problem's number of "
                             f"examples ({n}), got {batch_size}")
        stream = batches(problem.n, batch_size, shuffle, torch.Generator().manual_seed(seed))

    thetas, losses = [theta.detach().clone()], [problem.loss(theta.detach())]
    for t in range(1, steps + 1):
        batch = None if stream is None else next(stream)

        def closure(batch=batch):
            optimizer.zero_grad()
            loss = problem.loss(theta, batch)
            loss.backward()
            return loss

        before_step(t)
        optimizer.step(closure)
        after_step()
        thetas.append(theta.detach().clone())
        losses.append(problem.loss(theta.detach()))
    return Trace(torch.stack(thetas), torch.stack(losses), label, optimizer)


def replay(make_optimizer, gradients, x0, *, steps: int | None = None, label: str = "",
           schedule=None, **hyperparameters) -> Trace:
    """Feed an optimizer a given stream of gradients and record θ after every step.

    ``gradients`` is a sequence of tensors shaped like ``x0`` (step t gets the t-th; a tensor
    of shape (T, *x0.shape) is such a sequence), or a callable ``grad(theta, t)`` for
    t = 1, …, ``steps`` that may look at the current θ (a detached copy): a noisy gradient, an
    adversary's online loss. This is what an optimizer sees of any problem, so a chapter can
    check an update rule on hand-picked gradients without inventing a loss for them.
    ``make_optimizer`` and ``schedule`` are as in :func:`run`, but an optimizer that needs a
    closure (L-BFGS) cannot be replayed: it evaluates the loss itself. The trace has no losses.
    """
    theta = torch.nn.Parameter(as_float(x0))
    optimizer = make_optimizer([theta], **hyperparameters)
    before_step, after_step = scheduler(schedule, optimizer)
    if callable(gradients):
        if steps is None:
            raise ValueError("replay(grad_fn, ...) needs steps=: a callable has no length")
        stream = (gradients(theta.detach().clone(), t) for t in range(1, steps + 1))
    else:
        if steps is not None and steps > len(gradients):
            raise ValueError(f"replay was given {len(gradients)} gradients for steps={steps}")
        stream = iter(gradients if steps is None else gradients[:steps])

    thetas = [theta.detach().clone()]
    for t, g in enumerate(stream, start=1):
        theta.grad = torch.as_tensor(g, dtype=theta.dtype, device=theta.device).clone()
        before_step(t)
        optimizer.step()
        after_step()
        thetas.append(theta.detach().clone())
    return Trace(torch.stack(thetas), None, label, optimizer)
