"""RAdam: Adam that takes momentum steps until its adaptive step's variance can be estimated
and rectified (ρ_t > 5, as torch; {ref}`ch-adamax-nadam-radam`)."""

from __future__ import annotations

from .base import Optimizer, check, check_betas, check_lr
from .pieces import bias_correction, count_step_, ema_, ema_sq_, init_state, weight_decay_


def radam_update(param, grad, state, *, lr, beta1, beta2, eps, weight_decay, decoupled=False):
    r"""One RAdam step on one tensor, in place.

    .. math::
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
            \text{ if decoupled, else } g_t \leftarrow g_t + \lambda\theta_{t-1}\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
        \hat m_t = m_t / (1 - \beta_1^t)\\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t\, \beta_2^t}{1 - \beta_2^t}\\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t \cdot
        \begin{cases}
            r_t\, \dfrac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}, &
            r_t = \sqrt{\dfrac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}
                              {(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}}
            \quad\text{if } \rho_t > 5\\
            1 & \text{otherwise (momentum SGD)}
        \end{cases}

    :math:`\rho_t` is the length of the simple moving average that :math:`v_t` approximates.
    With :math:`\hat v_t` modelled as a scaled χ² variable with ρ_t degrees of freedom,
    :math:`1/\sqrt{\hat v_t}` has a finite variance for :math:`\rho_t > 2`; the first-order
    approximation of it behind :math:`r_t` needs :math:`\rho_t > 4`, the paper's rule, which
    with β₂ = 0.999 adapts from step 5 (ρ₅ ≈ 4.996). The authors' code (:math:`\rho_t \ge 5`)
    and torch (:math:`\rho_t > 5`) take plain momentum steps until then (with β₂ = 0.999:
    steps 1 to 5). Unlike Adam, ε is added to the raw :math:`\sqrt{v_t}` before bias
    correction. Liu et al. (2020), "On the Variance of the Adaptive Learning Rate and Beyond".
    """
    init_state(state, param, "step", "exp_avg", "exp_avg_sq")
    t = count_step_(state)
    grad = weight_decay_(param, grad, lr, weight_decay, decoupled)
    m = ema_(state["exp_avg"], grad, beta1)
    v = ema_sq_(state["exp_avg_sq"], grad, beta2)
    m_hat = m / bias_correction(beta1, t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / bias_correction(beta2, t)
    if rho_t > 5.0:
        adaptive = bias_correction(beta2, t) ** 0.5 / v.sqrt().add_(eps)
        r_t = ((rho_t - 4) * (rho_t - 2) * rho_inf
               / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        param.add_(m_hat * lr * adaptive * r_t, alpha=-1.0)  # in torch's order of products
    else:
        param.add_(m_hat * lr, alpha=-1.0)


class RAdam(Optimizer):
    """Drop-in replacement for ``torch.optim.RAdam`` (same arguments, defaults and state)."""

    legacy_group_defaults = {"decoupled_weight_decay": False}
    param_like_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        radam_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                     eps=group["eps"], weight_decay=group["weight_decay"],
                     decoupled=group["decoupled_weight_decay"])
