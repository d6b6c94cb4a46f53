"""Adafactor: Adam's second moment with sublinear memory, factored into row and column means."""

from __future__ import annotations

import torch

from .base import Optimizer, check, check_lr
from .pieces import count_step_, decoupled_decay_, init_state


def rms(x) -> float:
    """Root mean square, ‖x‖₂ / √n, as a Python float (the norm rounded once, as in torch)."""
    return x.norm(2).item() / x.numel() ** 0.5


def adafactor_update(param, grad, state, *, lr, beta2_decay, eps1, eps2, d, weight_decay):
    r"""One Adafactor step on one tensor, in place ({ref}`ch-memory`).

    For a matrix :math:`G_t \in \mathbb{R}^{n\times m}` (or a stack of them: the last two
    dimensions are factored) only a row statistic :math:`R_t \in \mathbb{R}^{n}` and a column
    statistic :math:`C_t \in \mathbb{R}^{m}` are kept, :math:`n + m` numbers instead of
    Adam's :math:`nm`:

    .. math::
        \hat\beta_{2,t} &= 1 - t^{\omega},\qquad
        \rho_t = \min(\eta, 1/\sqrt{t}),\qquad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t\\
        \theta &\leftarrow \theta_{t-1}(1 - \eta\lambda)           && \text{(decoupled decay)}\\
        R_t &= \hat\beta_{2,t} R_{t-1}
            + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(G_t^2)\\
        C_t &= \hat\beta_{2,t} C_{t-1}
            + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{rows}}(G_t^2)\\
        \hat V_t &= R_t C_t^\top / \max(\mathrm{mean}(R_t), \epsilon_1)
            && \text{(rank-one estimate)}\\
        U_t &= G_t / \max(\sqrt{\hat V_t}, \epsilon_1),\qquad
        \hat U_t = U_t / \max(1, \mathrm{RMS}(U_t)/d)      && \text{(update clipping)}\\
        \theta_t &= \theta - \alpha_t \hat U_t

    Vectors and scalars keep the full :math:`\hat V_t = \hat\beta_{2,t}\hat V_{t-1} +
    (1-\hat\beta_{2,t}) G_t^2`. Here :math:`\omega` is ``beta2_decay`` (−0.8; torch writes
    τ), so :math:`1-\hat\beta_{2,1} = 1`: the first step uses :math:`G_1^2` itself, and no bias
    correction is needed. Shazeer & Stern (2018), "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", with torch.optim's choices: ``lr`` caps the relative step size
    :math:`\rho_t` and scales the decay (the paper has no ``lr``), and :math:`\epsilon_1` is
    applied to the estimate, not added to :math:`G_t^2`.
    """
    factored = grad.dim() > 1
    if factored:
        init_state(state, param, "step", ("row_var", lambda p: p.new_zeros(p.shape[:-1] + (1,))),
                   ("col_var", lambda p: p.new_zeros(p.shape[:-2] + (1, p.shape[-1]))))
    else:
        init_state(state, param, "step", "variance")
    t = count_step_(state)
    one_minus_beta2 = t**beta2_decay
    rho = min(lr, 1 / t**0.5)
    # The step is relative to the size of the weights, measured before they decay.
    alpha = max(eps2, rms(param)) * rho
    decoupled_decay_(param, lr, weight_decay)

    if factored:
        R, C = state["row_var"], state["col_var"]
        R.lerp_(mean_square(grad, dim=-1), one_minus_beta2)
        C.lerp_(mean_square(grad, dim=-2), one_minus_beta2)
        # R Cᵀ / mean(R) has row means R and column means C: the outer-product estimate.
        V = (R @ C).div_(R.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        V = state["variance"].lerp_(grad * grad, one_minus_beta2).clone()

    # max(√V, ε₁) = √max(V, ε₁²)
    U = V.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
    clip = max(1.0, U.norm(2).item() / (U.numel() ** 0.5 * d))  # max(1, RMS(U) / d)
    param.add_(U, alpha=-alpha / clip)


def mean_square(x, dim):
    """The mean of x² along ``dim`` (kept as a dimension of size 1), computed as torch does,
    ‖x‖² / n."""
    return torch.norm(x, dim=dim, keepdim=True).square_().div_(x.size(dim))


class Adafactor(Optimizer):
    """Drop-in replacement for ``torch.optim.Adafactor`` (same arguments, defaults and state:
    ``step``, and ``row_var``/``col_var`` for tensors of two or more dimensions, ``variance``
    for vectors and scalars)."""

    #: Factoring the real and imaginary parts of a matrix separately has no meaning that
    #: torch.optim would vouch for; it refuses complex parameters too.
    supports_complex = False

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, foreach=None, maximize=False):
        check_lr(lr)
        check(beta2_decay <= 0.0, "beta2_decay", beta2_decay, "beta2_decay <= 0")
        check(eps[0] is None or eps[0] >= 0.0, "eps[0]", eps[0], "None or eps[0] >= 0")
        check(eps[1] >= 0.0, "eps[1]", eps[1], "eps[1] >= 0")
        check(d >= 1.0, "d", d, "clipping threshold d >= 1")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def update_group(self, params, grads, states, group):
        # ε₁ = None means the machine epsilon of the group's first parameter with a gradient,
        # used for the whole group, as torch does (a bfloat16 first parameter sets it for all).
        eps1, eps2 = group["eps"]
        if eps1 is None:
            group = {**group, "eps": (torch.finfo(params[0].dtype).eps, eps2)}
        super().update_group(params, grads, states, group)

    def update(self, param, grad, state, group):
        eps1, eps2 = group["eps"]
        adafactor_update(param, grad, state, lr=group["lr"], beta2_decay=group["beta2_decay"],
                         eps1=eps1, eps2=eps2, d=group["d"], weight_decay=group["weight_decay"])
