"""signSGD and Signum: step by the sign of the gradient or of its moving average
({ref}`ch-sign-methods`)."""

from __future__ import annotations

from .base import Optimizer, check, check_lr
from .pieces import decoupled_decay_, ema_, init_state, sign_step_


def signsgd_update(param, grad, state, *, lr, momentum, weight_decay):
    r"""One signSGD (``momentum == 0``) or Signum (``momentum > 0``) step on one tensor, in place.

    .. math::
        m_t &\leftarrow \mu\, m_{t-1} + (1 - \mu)\, g_t,\quad m_0 = 0  && \text{(Signum only)}\\
        \theta_t &\leftarrow \theta_{t-1}\,(1 - \eta\lambda) - \eta\,\operatorname{sign}(m_t)

    with :math:`m_t = g_t` when μ = 0. Bernstein, Wang, Azizzadenesheli & Anandkumar (2018),
    "signSGD: Compressed Optimisation for Non-Convex Problems", Algorithms 1 and 2
    ({ref}`ch-sign-methods`).
    Because only the sign of m is used, the factor 1 − μ never changes a step; it is kept so
    that m is an average of gradients, as in the paper. Weight decay is decoupled: added to g,
    an L2 term would only change the sign of the step, so its effect would not grow with λθ
    but jump to a full step of η towards zero once λθ outweighs g.
    A complex parameter arrives as real pairs; real and imaginary parts take their own signs.
    A NaN or infinite gradient entry shows up in θ (:func:`~optcore.optim.pieces.sign_step_`)
    instead of being silently dropped by sign(NaN) = 0.
    """
    if momentum != 0:
        init_state(state, param, "momentum_buffer")
        grad = ema_(state["momentum_buffer"], grad, momentum)
    decoupled_decay_(param, lr, weight_decay)
    sign_step_(param, grad, lr)


class SignSGD(Optimizer):
    """signSGD, or Signum with ``momentum > 0`` (state ``momentum_buffer`` = m)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0, maximize=False):
        check_lr(lr)
        check(0.0 <= momentum < 1.0, "momentum", momentum, "0 <= momentum < 1")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        signsgd_update(param, grad, state, lr=group["lr"], momentum=group["momentum"],
                       weight_decay=group["weight_decay"])
