"""Adam and AdamW: one update, two ways of decaying the weights ({ref}`ch-adam`, {ref}`ch-adamw`,
{ref}`ch-amsgrad`).

AdamW is not a different algorithm but Adam plus decoupled decay. As in torch.optim 2.13,
``AdamW`` is a thin subclass of ``Adam`` that fixes ``decoupled_weight_decay=True`` and
changes the default ``weight_decay`` from 0 to 1e-2; ``Adam(..., decoupled_weight_decay=True)``
is the same optimizer bit for bit.
"""

from __future__ import annotations

import torch

from . import fused, multi_tensor
from .base import Optimizer, as_scalar, check, check_betas, check_lr
from .pieces import (bias_correction, count_step_, ema_, ema_sq_, init_state, running_max_,
                     weight_decay_)


def adam_update(param, grad, state, *, lr, beta1, beta2, eps, weight_decay, amsgrad=False,
                decoupled=False):
    r"""One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step on one tensor, in place.

    .. math::
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
            \text{ if decoupled, else } g_t \leftarrow g_t + \lambda\theta_{t-1}\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2\\
        v_t &\leftarrow \max(v_{t-1}^{\max}, v_t) \text{ if amsgrad}\\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,
            \frac{m_t}{\sqrt{v_t}/\sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m_0 = v_0 = 0` and :math:`t = 1, 2, \dots`. ε sits outside the root of the
    bias-corrected :math:`\hat v_t`, and AMSGrad keeps the maximum of the raw :math:`v_t`,
    bias-correcting it afterwards. Kingma & Ba (2015); AMSGrad: Reddi et al. (2018);
    decoupled decay: Loshchilov & Hutter (2019).
    """
    max_v = ["max_exp_avg_sq"] if amsgrad else []
    init_state(state, param, "step", "exp_avg", "exp_avg_sq", *max_v)
    t = count_step_(state)
    grad = weight_decay_(param, grad, lr, weight_decay, decoupled)
    # A tensor β₁ is cast to θ's dtype for the average, as torch does (bfloat16: 1 − 0.8984).
    m = ema_(state["exp_avg"], grad, beta1.to(param) if torch.is_tensor(beta1) else beta1)
    v = ema_sq_(state["exp_avg_sq"], grad, beta2)
    if amsgrad:
        v = running_max_(state["max_exp_avg_sq"], v)
    denom = (v.sqrt() / bias_correction(beta2, t) ** 0.5).add_(eps)
    param.addcdiv_(m, denom, value=-lr / bias_correction(beta1, t))


class Adam(Optimizer):
    """Drop-in replacement for ``torch.optim.Adam`` (same arguments, defaults and state)."""

    legacy_group_defaults = {"decoupled_weight_decay": False}
    fast_paths = ("foreach", "fused")
    param_like_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        # torch refuses a mix such as (0, 0.999): the int 0 is neither a float nor a tensor.
        both_floats = all(isinstance(beta, float) for beta in betas)
        both_tensors = all(isinstance(beta, torch.Tensor) for beta in betas)
        check(both_floats or both_tensors, "betas", betas, "both floats or both tensors")
        defaults = dict(lr=lr, betas=tuple(as_scalar(beta) for beta in betas), eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = map(as_scalar, group["betas"])  # also when a group gives them
        adam_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                    eps=group["eps"], weight_decay=group["weight_decay"],
                    amsgrad=group["amsgrad"], decoupled=group["decoupled_weight_decay"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.adam_foreach):
        beta1, beta2 = map(as_scalar, group["betas"])
        fast(params, grads, states, lr=group["lr"], beta1=beta1, beta2=beta2,
             eps=group["eps"], weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
             decoupled=group["decoupled_weight_decay"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused.adam_step)


class AdamW(Adam):
    """Drop-in replacement for ``torch.optim.AdamW``: Adam with ``decoupled_weight_decay=True``
    and a default ``weight_decay`` of 1e-2 instead of 0."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # an AdamW decouples, whatever a checkpoint says
            group["decoupled_weight_decay"] = True
