"""Adamax: Adam with the root-mean-square replaced by an exponentially weighted max
({ref}`ch-adamax-nadam-radam`)."""

from __future__ import annotations

import torch

from .base import Optimizer, check, check_betas, check_lr
from .pieces import bias_correction, count_step_, ema_, init_state, l2_penalty, running_max_


def adamax_update(param, grad, state, *, lr, beta1, beta2, eps, weight_decay):
    r"""One Adamax step on one tensor, in place.

    .. math::
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1}\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t\\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)\\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,\frac{m_t}{u_t}

    :math:`u_t` is the limit :math:`p \to \infty` of Adam's :math:`L^p` average
    :math:`(v_t)^{1/p}`; a max is not biased towards its zero start, so only :math:`m_t` is
    bias-corrected. ε sits inside the max: :math:`u_t \ge \epsilon` and the division is safe.
    Kingma & Ba (2015), section 7.1.
    """
    init_state(state, param, "step", "exp_avg", "exp_inf")
    t = count_step_(state)
    grad = l2_penalty(grad, param, weight_decay)
    m = ema_(state["exp_avg"], grad, beta1)
    u = running_max_(state["exp_inf"].mul_(beta2), grad.abs().add_(eps))
    param.addcdiv_(m, u, value=-lr / bias_correction(beta1, t))


class Adamax(Optimizer):
    """Drop-in replacement for ``torch.optim.Adamax`` (same arguments, defaults and state).
    As in torch, ``foreach`` is the one speed switch that may be passed positionally."""

    param_like_state = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        adamax_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                      eps=group["eps"], weight_decay=group["weight_decay"])
