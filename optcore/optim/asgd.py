"""ASGD: SGD with a decaying step size and a running (Polyak–Ruppert) average of the iterates."""

from __future__ import annotations

import torch

from .base import Optimizer, check, check_lr
from .pieces import count_step_, init_state, l2_penalty, step_counter


def asgd_update(param, grad, state, *, lr, lambd, alpha, t0, weight_decay):
    r"""One ASGD step on one tensor, in place.

    .. math::
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} && \text{(L2 penalty)}\\
        \theta_t &= (1 - \nu\,\eta_t)\,\theta_{t-1} - \eta_t\, g_t && (\nu = \text{lambd})\\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_t\,(\theta_t - \bar\theta_{t-1})\\
        \eta_{t+1} &= \eta \,/\, (1 + \nu\,\eta\, t)^{\alpha},\quad \eta_1 = \eta\\
        \mu_{t+1} &= 1 \,/\, \max(1,\ t - t_0),\quad \mu_1 = 1

    Averaged SGD of Polyak & Juditsky (1992) with the step-size schedule of Bottou (2012,
    "Stochastic gradient descent tricks"); ν is that paper's L2 coefficient, applied as
    a decay of θ, and λ (``weight_decay``) is a second, ordinary L2 penalty. The average
    :math:`\bar\theta` (state ``ax``) is only recorded: θ itself is never replaced by it.

    As in torch.optim, η_t and μ_t are 0-d tensors in the state, rounded to the default dtype
    (float32 unless changed) when stored, and η_t and μ_t are computed at the end of step
    t − 1: μ_t < 1 first at t = t₀ + 3, so :math:`\bar\theta` averages θ from step t₀ + 2
    on.
    """
    # Unlike the other optimizers, ASGD keeps its scalars on the parameter's device, as torch.
    init_state(state, param, ("step", lambda p: step_counter(0.0, p.device)),
               ("eta", lambda p: step_counter(lr, p.device)),
               ("mu", lambda p: step_counter(1.0, p.device)), "ax")
    t = count_step_(state)
    g = l2_penalty(grad, param, weight_decay)
    eta_t, mu_t, avg = state["eta"].item(), state["mu"], state["ax"]
    param.mul_(1 - lambd * eta_t)
    param.add_(g, alpha=-eta_t)
    if mu_t.item() != 1:
        avg.add_(param.sub(avg).mul_(mu_t))
    else:
        avg.copy_(param)  # before averaging starts, the "average" is the last iterate
    state["eta"].copy_(torch.as_tensor(lr / (1 + lambd * lr * t) ** alpha))
    state["mu"].copy_(torch.as_tensor(1 / max(1, t - t0)))


class ASGD(Optimizer):
    """Drop-in replacement for ``torch.optim.ASGD`` (same arguments, defaults and state)."""

    param_like_state = ("ax",)

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        check_lr(lr)
        # lambd, alpha and t0 are not checked by torch.optim either.
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        asgd_update(param, grad, state, lr=group["lr"], lambd=group["lambd"],
                    alpha=group["alpha"], t0=group["t0"], weight_decay=group["weight_decay"])
