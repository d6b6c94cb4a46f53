"""AdaDelta: RMSprop whose step size is a running RMS of the past steps themselves."""

from __future__ import annotations

from .base import Optimizer, check, check_lr
from .pieces import count_step_, ema_sq_, init_state, l2_penalty


def adadelta_update(param, grad, state, *, lr, rho, eps, weight_decay):
    r"""One AdaDelta step on one tensor, in place ({ref}`ch-rmsprop-adadelta`).

    .. math::
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} && \text{(L2 penalty)}\\
        v_t &= \rho\, v_{t-1} + (1 - \rho)\, g_t^2,\quad v_0 = 0 && (E[g^2])\\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \varepsilon}}{\sqrt{v_t + \varepsilon}}\; g_t\\
        u_t &= \rho\, u_{t-1} + (1 - \rho)\, \Delta_t^2,\quad u_0 = 0 && (E[\Delta\theta^2])\\
        \theta_t &= \theta_{t-1} - \eta\, \Delta_t

    Zeiler (2012), Algorithm 1, plus a learning rate η (1.0 recovers the paper). The ratio of
    the two RMS values gives Δ the units of θ; ε sits inside both roots and, with u_0 = 0,
    sets the size of the first steps: |Δ_1| ≈ √ε/√(1 − ρ) per coordinate while
    (1 − ρ)g² ≫ ε.
    """
    init_state(state, param, "step", "square_avg", "acc_delta")
    count_step_(state)
    grad = l2_penalty(grad, param, weight_decay)
    v = ema_sq_(state["square_avg"], grad, rho)
    u = state["acc_delta"]
    delta = u.add(eps).sqrt_().div_(v.add(eps).sqrt_()).mul_(grad)  # √(u + ε) / √(v + ε) · g
    ema_sq_(u, delta, rho)
    param.add_(delta, alpha=-lr)


class Adadelta(Optimizer):
    """Drop-in replacement for ``torch.optim.Adadelta`` (same arguments, defaults and state)."""

    param_like_state = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        check_lr(lr)
        # rho = 1 is accepted, as in torch.optim: both averages then stay at zero, the ratio of
        # roots is 1 and the update is plain gradient descent, Δ = g.
        check(0.0 <= rho <= 1.0, "rho", rho, "0 <= rho <= 1")
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        adadelta_update(param, grad, state, lr=group["lr"], rho=group["rho"], eps=group["eps"],
                        weight_decay=group["weight_decay"])
