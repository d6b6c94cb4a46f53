"""Run an optimizer on a problem and record where it went."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .problems import Problem


@dataclass
class Trace:
    """The path θ₀, θ₁, …, θ_T of a run and the full loss L(θ_t) at each point."""

    thetas: torch.Tensor  # shape (T + 1, d)
    losses: torch.Tensor  # shape (T + 1,)
    label: str = ""

    @property
    def steps(self) -> int:
        return self.losses.numel() - 1

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


def run(problem: Problem, make_optimizer, *, steps: int, x0=None, batch_size: int | None = None,
        shuffle: bool = True, seed: int = 0, label: str = "", **hyperparameters) -> Trace:
    """Optimize ``problem`` for ``steps`` steps, starting from ``x0`` (default ``problem.x0``).

    ``make_optimizer`` is an optimizer class (optcore's or torch.optim's) or any callable
    ``(params, **hyperparameters) -> optimizer``. Each step computes the loss of one
    mini-batch of ``batch_size`` examples (the full loss when None), back-propagates, and calls
    ``optimizer.step(closure)``, so closure-based optimizers such as L-BFGS work too. The
    recorded losses are always the full loss, so runs with different batch sizes compare.
    """
    theta = torch.nn.Parameter(torch.as_tensor(problem.x0 if x0 is None else x0).clone())
    optimizer = make_optimizer([theta], **hyperparameters)
    stream = None
    if batch_size is not None:
        stream = batches(problem.n, batch_size, shuffle, torch.Generator().manual_seed(seed))

    thetas, losses = [theta.detach().clone()], [problem.loss(theta.detach())]
    for _ in range(steps):
        batch = None if stream is None else next(stream)

        def closure(batch=batch):
            optimizer.zero_grad()
            loss = problem.loss(theta, batch)
            loss.backward()
            return loss

        optimizer.step(closure)
        thetas.append(theta.detach().clone())
        losses.append(problem.loss(theta.detach()))
    return Trace(torch.stack(thetas), torch.stack(losses), label)
