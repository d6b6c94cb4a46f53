"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from . import fused, multi_tensor
from .base import Optimizer, check, check_lr
from .pieces import count_step_, ema_, ema_sq_, init_state, l2_penalty


def rmsprop_update(param, grad, state, *, lr, alpha, eps, weight_decay, momentum, centered):
    r"""One RMSprop step on one tensor, in place ({ref}`ch-rmsprop-adadelta`).

    .. math::
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} && \text{(L2 penalty)}\\
        v_t &= \alpha\, v_{t-1} + (1 - \alpha)\, g_t^2,\quad v_0 = 0\\
        m_t &= \alpha\, m_{t-1} + (1 - \alpha)\, g_t,\quad m_0 = 0 && \text{(centered only)}\\
        s_t &= \sqrt{v_t - m_t^2} + \varepsilon \text{ if centered else } \sqrt{v_t} + \varepsilon\\
        b_t &= \beta\, b_{t-1} + g_t / s_t,\quad b_0 = 0 && (\beta = \text{momentum})\\
        \theta_t &= \theta_{t-1} - \eta\, b_t \text{ if } \beta > 0
                    \text{ else } \theta_{t-1} - \eta\, g_t / s_t

    Tieleman & Hinton (2012, lecture 6.5); the centered form and the momentum on the scaled
    step are from Graves (2013), who puts ε inside the root. torch.optim adds ε outside the
    root and does no bias correction: v_0 = 0, so v_1 = (1 − α) g_1² and the first step has
    length about η/√(1 − α) per coordinate (10η for the default α = 0.99).
    """
    buffers = (["momentum_buffer"] if momentum > 0 else []) + (["grad_avg"] if centered else [])
    init_state(state, param, "step", "square_avg", *buffers)
    count_step_(state)
    grad = l2_penalty(grad, param, weight_decay)
    v = ema_sq_(state["square_avg"], grad, alpha)
    if centered:
        m = ema_(state["grad_avg"], grad, alpha)
        s = v.addcmul(m, m, value=-1).sqrt_()  # the variance v − m², not the raw second moment
    else:
        s = v.sqrt()
    s.add_(eps)
    if momentum > 0:
        b = state["momentum_buffer"]
        b.mul_(momentum).addcdiv_(grad, s)  # the heavy ball on the scaled gradient g / s
        param.add_(b, alpha=-lr)
    else:
        param.addcdiv_(grad, s, value=-lr)


class RMSprop(Optimizer):
    """Drop-in replacement for ``torch.optim.RMSprop`` (same arguments, defaults and state).

    torch.optim.RMSprop has no ``fused`` argument, so neither has this constructor; a
    parameter group with ``"fused": True`` selects the compiled path."""

    fast_paths = ("foreach", "fused")

    param_like_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check(momentum >= 0.0, "momentum", momentum, "momentum >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        # torch.optim checks only alpha >= 0; alpha = 1 freezes v at zero and alpha > 1 is
        # accepted too.
        check(alpha >= 0.0, "alpha", alpha, "alpha >= 0")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        rmsprop_update(param, grad, state, lr=group["lr"], alpha=group["alpha"],
                       eps=group["eps"], weight_decay=group["weight_decay"],
                       momentum=group["momentum"], centered=group["centered"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.rmsprop_foreach):
        fast(params, grads, states, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
             weight_decay=group["weight_decay"], momentum=group["momentum"],
             centered=group["centered"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused.rmsprop_step)
