"""Lion: the sign of an interpolated momentum, found by program search ({ref}`ch-sign-methods`)."""

from __future__ import annotations

from . import fused as fused_paths, multi_tensor
from .base import Optimizer, check, check_betas, check_lr
from .pieces import decoupled_decay_, ema_, init_state, sign_step_


def lion_update(param, grad, state, *, lr, betas, weight_decay):
    r"""One Lion step on one tensor, in place ({ref}`ch-sign-methods`).

    .. math::
        c_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t                                  \\
        \theta_t &\leftarrow \theta_{t-1}\,(1 - \eta\lambda) - \eta\,\operatorname{sign}(c_t) \\
        m_t &\leftarrow \beta_2 m_{t-1} + (1 - \beta_2)\, g_t,\quad m_0 = 0

    Chen et al. (2023), "Symbolic Discovery of Optimization Algorithms", Algorithm 2. Two
    decay rates play two roles: β₁ mixes the current gradient into the direction of *this*
    step, β₂ (closer to 1) sets how long the stored momentum remembers. Every entry moves by
    exactly η (plus decay), so η is typically 3–10× smaller than AdamW's and λ as much larger.
    A complex parameter arrives as real pairs: the real and imaginary parts each take their own
    sign, as torch.optim.Rprop does.
    A NaN or infinite gradient entry shows up in θ (:func:`~optcore.optim.pieces.sign_step_`)
    instead of being silently dropped by sign(NaN) = 0.
    """
    beta1, beta2 = betas
    init_state(state, param, "exp_avg")
    m = state["exp_avg"]
    # c_t is a fresh tensor: interpolating into m in place would store β₁, not β₂, in the state.
    c = beta1 * m + (1 - beta1) * grad
    decoupled_decay_(param, lr, weight_decay)
    sign_step_(param, c, lr)
    ema_(m, grad, beta2)


class Lion(Optimizer):
    """Lion (EvoLved Sign Momentum) with decoupled weight decay; state ``exp_avg`` = m."""

    fast_paths = ("foreach", "fused")

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False,
                 *, foreach=None, fused=None):
        check_lr(lr)
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        lion_update(param, grad, state, lr=group["lr"], betas=group["betas"],
                    weight_decay=group["weight_decay"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.lion_foreach):
        fast(params, grads, states, lr=group["lr"], betas=group["betas"],
             weight_decay=group["weight_decay"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused_paths.lion_step)
