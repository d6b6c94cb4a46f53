"""Adafactor: Adam's second moment with sublinear memory, factored into row and column means."""

from __future__ import annotations

import torch

from .base import Optimizer, as_scalar, check, check_lr, scalar_step_tensor
from .pieces import decoupled_decay_


def rms(x):
    """Root mean square, ‖x‖₂ / √n."""
    return x.norm(2) / x.numel() ** 0.5


def adafactor_update(param, grad, state, *, lr, beta2_decay, eps1, eps2, d, weight_decay):
    r"""One Adafactor step on one tensor, in place (chapter 15).

    For a matrix :math:`G_t \in \mathbb{R}^{n\times m}` (or a stack of them: the last two
    dimensions are factored) only a row statistic :math:`R_t \in \mathbb{R}^{n}` and a column
    statistic :math:`C_t \in \mathbb{R}^{m}` are kept, :math:`n + m` numbers instead of
    Adam's :math:`nm`:

    .. math::
        \hat\beta_{2,t} &= 1 - t^{\tau},\qquad
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
    (1-\hat\beta_{2,t}) G_t^2`. Here :math:`\tau` is ``beta2_decay`` (−0.8), so
    :math:`1-\hat\beta_{2,1} = 1`: the first step uses :math:`G_1^2` itself, and no bias
    correction is needed. Shazeer & Stern (2018), "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", with torch.optim's choices: ``lr`` caps the relative step size
    :math:`\rho_t` and scales the decay (the paper has no ``lr``), and :math:`\epsilon_1` is
    applied to the estimate, not added to :math:`G_t^2`.
    """
    state["step"] += 1
    t = state["step"].item()
    one_minus_beta2 = t**beta2_decay
    rho = min(lr, 1 / t**0.5)
    # The step is relative to the size of the weights, measured before they decay.
    alpha = max(eps2, rms(param).item()) * rho
    decoupled_decay_(param, lr, weight_decay)

    g2 = grad * grad
    if grad.dim() > 1:
        R, C = state["row_var"], state["col_var"]
        R.lerp_(g2.mean(dim=-1, keepdim=True), one_minus_beta2)
        C.lerp_(g2.mean(dim=-2, keepdim=True), one_minus_beta2)
        # R Cᵀ / mean(R) has row means R and column means C: the outer-product estimate.
        V = (R @ C).div_(R.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        state["variance"].lerp_(g2, one_minus_beta2)
        V = state["variance"].clone()

    # max(√V, ε₁) = √max(V, ε₁²)
    U = V.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
    clip = max(1.0, rms(U).item() / d)
    param.sub_(U * (alpha / clip))


class Adafactor(Optimizer):
    """Drop-in replacement for ``torch.optim.Adafactor`` (same arguments, defaults and state:
    ``step``, and ``row_var``/``col_var`` for tensors of two or more dimensions, ``variance``
    for vectors and scalars)."""

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

    def update(self, param, grad, state, group):
        if not state:
            state["step"] = scalar_step_tensor()
            if grad.dim() > 1:
                state["row_var"] = grad.new_zeros(grad.shape[:-1] + (1,))
                state["col_var"] = grad.new_zeros(grad.shape[:-2] + (1, grad.shape[-1]))
            else:
                state["variance"] = torch.zeros_like(grad)
        eps1, eps2 = group["eps"]
        lr = group["lr"]
        adafactor_update(
            param, grad, state,
            lr=as_scalar(lr),
            beta2_decay=group["beta2_decay"],
            eps1=torch.finfo(param.dtype).eps if eps1 is None else eps1,
            eps2=eps2, d=group["d"], weight_decay=group["weight_decay"],
        )

    def _update_real(self, param, grad, state, group):
        # Factoring the real and imaginary parts of a matrix separately has no meaning that
        # torch.optim would vouch for, so complex parameters are refused, as there.
        if torch.is_complex(param):
            raise RuntimeError("Adafactor does not support complex parameters")
        super()._update_real(param, grad, state, group)
