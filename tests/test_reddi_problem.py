"""Reddi, Kale & Kumar's online problem (optcore.problems.reddi_online, chapter 09)."""

import math

import pytest
import torch

import optcore
from optcore import problems, trace


class Projected:
    """Online projected method: step with lr α/√t, then clamp θ onto F = [−1, 1] in place."""

    def __init__(self, params, make, alpha, **hyperparameters):
        self.inner = make(params, lr=alpha, **hyperparameters)
        self.alpha, self.t = alpha, 0

    def zero_grad(self):
        self.inner.zero_grad()

    def step(self, closure):
        self.t += 1
        for group in self.inner.param_groups:
            group["lr"] = self.alpha / math.sqrt(self.t)
        loss = self.inner.step(closure)
        with torch.no_grad():
            for group in self.inner.param_groups:
                for p in group["params"]:
                    p.clamp_(-1.0, 1.0)
        return loss


def play(P, steps, **hyperparameters):
    return trace.run(P, lambda params: Projected(params, optcore.Adam, **hyperparameters),
                     steps=steps, batch_size=1, shuffle=False)


@pytest.mark.parametrize("C", [2.5, 3.0, 10.0])
def test_batches_in_storage_order_replay_C_minus_1_minus_1(C):
    P = problems.reddi_online(C)
    stream = trace.batches(P.n, 1, False, torch.Generator().manual_seed(0))
    theta = torch.tensor([0.3], dtype=torch.float64)
    grads = [P.grad(theta, next(stream)).item() for _ in range(7)]
    assert grads == [C, -1.0, -1.0, C, -1.0, -1.0, C]
    # the full loss is the average over one period, (C − 2)θ/3, smallest on F at θ = −1
    assert P.loss(theta).item() == pytest.approx((C - 2) * 0.3 / 3, rel=1e-15)
    assert P.minimizer.item() == -1.0
    assert P.min_value == pytest.approx(-(C - 2) / 3, rel=1e-15)
    assert P.x0.tolist() == [0.0] and P.x0.dtype == torch.float64


@pytest.mark.parametrize("C", [2.0, 1.0, -3.0])
def test_refuses_C_at_most_2_naming_it(C):
    with pytest.raises(ValueError, match="C"):
        problems.reddi_online(C)


def test_adam_with_beta2_1_over_1_plus_C2_ends_at_plus_1_and_amsgrad_at_minus_1():
    C, steps = 3.0, 600
    P = problems.reddi_online(C)
    betas = (0.0, 1 / (1 + C**2))
    adam = play(P, steps, alpha=0.5, betas=betas, eps=0.0)
    ams = play(P, steps, alpha=0.5, betas=betas, eps=0.0, amsgrad=True)
    assert (adam.thetas[-150:] > 0.9).all()   # the worst point of F
    assert (ams.thetas[-150:] < -0.9).all()   # the optimum
    assert adam.thetas.abs().max() <= 1.0 and ams.thetas.abs().max() <= 1.0
