"""NAdam: Adam with Nesterov momentum and a warming-up momentum schedule
({ref}`ch-adamax-nadam-radam`)."""

from __future__ import annotations

from .base import Optimizer, check, check_betas, check_lr
from .pieces import (bias_correction, count_step_, ema_, ema_sq_, init_state, step_counter,
                     weight_decay_)


def nadam_mu(beta1, momentum_decay, t):
    r""":math:`\mu_t = \beta_1\,(1 - \tfrac12\, 0.96^{t\psi})`: the momentum of step t, which
    starts near :math:`\beta_1/2` and creeps up to :math:`\beta_1` (ψ = ``momentum_decay``)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def nadam_update(param, grad, state, *, lr, beta1, beta2, eps, weight_decay, momentum_decay,
                 decoupled=False):
    r"""One NAdam (or, with ``decoupled``, NAdamW) step on one tensor, in place.

    .. math::
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
            \text{ if decoupled, else } g_t \leftarrow g_t + \lambda\theta_{t-1}\\
        \mu_t &= \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \qquad
        \Pi_t = \textstyle\prod_{i=1}^{t} \mu_i\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2\\
        \hat m_t &= \frac{\mu_{t+1}\, m_t}{1 - \Pi_t\,\mu_{t+1}}
            + \frac{(1 - \mu_t)\, g_t}{1 - \Pi_t}\\
        \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    The Nesterov look-ahead: the step uses the momentum of the *next* step, :math:`\mu_{t+1}`,
    on :math:`m_t` and the current :math:`1 - \mu_t` on the fresh gradient. The EMA itself uses
    the constant :math:`\beta_1`, as in torch and Keras; the schedule only enters
    :math:`\hat m_t`. (Dozat's Algorithm 2 averages with :math:`\mu_t`, for which
    :math:`1 - \Pi_t` is the exact bias correction.) Dozat (2016), "Incorporating Nesterov
    Momentum into Adam".
    """
    # Π_t is a 0-d tensor like the step, as in torch: float32 unless the default dtype is
    # float64, so it is rounded to float32 even for float64 parameters (and torch's
    # load_state_dict later casts it to the parameter's dtype, bfloat16 included).
    init_state(state, param, "step", ("mu_product", lambda _: step_counter(1.0)), "exp_avg",
               "exp_avg_sq")
    t = count_step_(state)
    grad = weight_decay_(param, grad, lr, weight_decay, decoupled)
    mu, mu_next = nadam_mu(beta1, momentum_decay, t), nadam_mu(beta1, momentum_decay, t + 1)
    state["mu_product"] *= mu
    pi = state["mu_product"].item()

    m = ema_(state["exp_avg"], grad, beta1)
    v = ema_sq_(state["exp_avg_sq"], grad, beta2)
    denom = v.div(bias_correction(beta2, t)).sqrt_().add_(eps)
    # η m̂_t / denom as two steps, the fresh gradient's and the momentum's, with η folded into
    # each coefficient as torch does (a float32 tensor η then rounds both alike).
    param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - pi))
    param.addcdiv_(m, denom, value=-lr * mu_next / (1.0 - pi * mu_next))


class NAdam(Optimizer):
    """Drop-in replacement for ``torch.optim.NAdam`` (same arguments, defaults and state)."""

    legacy_group_defaults = {"decoupled_weight_decay": False}
    param_like_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(momentum_decay >= 0.0, "momentum_decay", momentum_decay, "momentum_decay >= 0")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        nadam_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                     eps=group["eps"], weight_decay=group["weight_decay"],
                     momentum_decay=group["momentum_decay"],
                     decoupled=group["decoupled_weight_decay"])
