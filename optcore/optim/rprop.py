"""Rprop: move each coordinate by its own step size, grown while the gradient keeps its sign."""

from __future__ import annotations

import torch

from .base import Optimizer, check, check_lr
from .pieces import count_step_, init_state


def rprop_update(param, grad, state, *, lr, etas, step_sizes):
    r"""One Rprop step on one tensor, in place; torch's variant is iRprop⁻ ({ref}`ch-sign-methods`).

    .. math::
        s_t &= \operatorname{clip}\bigl(s_{t-1} \cdot f_t,\ s_{\min},\ s_{\max}\bigr),\quad
            s_0 = \eta,\quad
            f_t = \begin{cases} \eta_+ & g_t\, p_{t-1} > 0\\
                                \eta_- & g_t\, p_{t-1} < 0\\
                                1 & \text{otherwise} \end{cases}\\
        p_t &= \begin{cases} 0 & g_t\, p_{t-1} < 0\\ g_t & \text{otherwise} \end{cases},
            \quad p_0 = 0\\
        \theta_t &= \theta_{t-1} - \operatorname{sign}(p_t)\, s_t

    with ``etas`` = (η₋, η₊) and ``step_sizes`` = (s_min, s_max). Only the sign of the
    gradient is used. After a sign change the step is skipped and the gradient forgotten
    (p_t = 0), so the next step neither grows nor shrinks s: this is iRprop⁻ of Igel &
    Hüsken (2000), not the original Rprop of Riedmiller & Braun (1993), which also undoes the
    previous step. η is read only once, to start s: changing the learning rate later (a
    scheduler) has no effect.
    """
    eta_minus, eta_plus = etas
    s_min, s_max = step_sizes
    init_state(state, param, "step", "prev",
               ("step_size", lambda param: torch.full_like(param, float(lr))))
    count_step_(state)
    p, s = state["prev"], state["step_size"]
    agreement = grad.mul(p)  # > 0: same sign as last time; < 0: it flipped; 0: no history
    factor = torch.ones_like(grad).masked_fill_(agreement > 0, eta_plus)
    factor.masked_fill_(agreement < 0, eta_minus)
    s.mul_(factor).clamp_(s_min, s_max)
    g = grad.masked_fill(agreement < 0, 0)
    param.addcmul_(g.sign(), s, value=-1)
    p.copy_(g)


class Rprop(Optimizer):
    """Drop-in replacement for ``torch.optim.Rprop`` (same arguments, defaults and state)."""

    param_like_state = ("prev", "step_size")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        check_lr(lr)
        check(0.0 < etas[0] < 1.0 < etas[1], "etas", etas, "0 < etas[0] < 1 < etas[1]")
        # torch.optim does not check step_sizes; neither do we (s_min > s_max clamps to s_max).
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        # maximize: the base class hands us −g, and p stores −g, as torch.optim stores it.
        rprop_update(param, grad, state, lr=group["lr"], etas=group["etas"],
                     step_sizes=group["step_sizes"])
