"""Shampoo: one preconditioner per dimension of a tensor, a Kronecker product
({ref}`ch-shampoo-soap`)."""

from __future__ import annotations

import numbers
from itertools import chain

import torch

from .base import Optimizer, check, check_lr
from .pieces import count_step_, heavy_ball_, init_state, l2_penalty


def statistics_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype Shampoo keeps its statistics and preconditioners in for a parameter of ``dtype``.

    Half precisions are promoted to float32: ``torch.linalg.eigh`` has no bfloat16/float16
    kernels, a sum of squared gradients overflows float16 (max 65504) quickly, and bfloat16's
    8-bit mantissa would drop each new G Gᵀ once the running sum is ~256× larger.
    """
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def inverse_root(H, p, floor):
    r"""H^{-1/p} for a symmetric positive-definite H, by eigendecomposition H = Q diag(λ) Qᵀ.

    Eigenvalues are clamped from below at ``floor``. In exact arithmetic H = ε βᵗ I + (a positive
    semi-definite sum), so every eigenvalue is at least ε βᵗ and the clamp changes nothing;
    in floating point ``eigh`` returns the small eigenvalues only to within ~u‖H‖, possibly
    below the bound or negative, where λ^{-1/p} would be huge or NaN. Clamping at the exact
    bound removes just that rounding noise.
    """
    lam, Q = torch.linalg.eigh(H)
    lam = lam.clamp(min=floor)
    return (Q * lam.pow(-1.0 / p)) @ Q.mT


def mode_product(G, P, i):
    """G ×ᵢ P: multiply every mode-i fibre of G by the matrix P."""
    return torch.tensordot(P, G.movedim(i, 0), dims=1).movedim(0, i)


def shampoo_update(param, grad, state, *, lr, momentum, weight_decay, epsilon, beta,
                   update_freq):
    r"""One Shampoo step on one tensor of order k, in place ({ref}`ch-shampoo-soap`).

    .. math::
        G_t &= g_t + \lambda\,\theta_{t-1}                            && \text{(L2 penalty)}\\
        H^i_t &= \beta H^i_{t-1} + G_{t(i)} G_{t(i)}^\top,\ H^i_0 = \varepsilon I
                                                                      && i = 1, \dots, k\\
        P^i &= (H^i_t)^{-1/(2k)}                          && t = 1,\ 1 + f,\ 1 + 2f, \dots\\
        \hat G_t &= G_t \times_1 P^1 \times_2 P^2 \cdots \times_k P^k\\
        b_t &= \mu\, b_{t-1} + \hat G_t,\ b_0 = 0;\quad \hat G_t \leftarrow b_t
                                                                      && \text{(if } \mu > 0)\\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, \hat G_t

    :math:`G_{(i)}` is the mode-i unfolding (dimension i first, the rest flattened) and
    f = ``update_freq``. Gupta, Koren & Singer (2018), "Shampoo: Preconditioned Stochastic
    Tensor Optimization", Algorithm 2; for a matrix (k = 2) this is Algorithm 1,
    :math:`\theta_t = \theta_{t-1} - \eta\, L_t^{-1/4} G_t R_t^{-1/4}`. β = 1 is the paper's
    running sum; β < 1 an exponential average, in which the ε I start decays as εβᵗ. A 0-d
    parameter is treated as a vector of one entry (order 1: AdaGrad's η g/√(ε + Σ g²)).
    Each dimension of size n costs an n × n statistic and an n³ eigendecomposition. A
    non-finite gradient is refused (:func:`refuse_non_finite`).
    """
    shape = param.shape if param.dim() > 0 else (1,)
    k = len(shape)
    dtype = statistics_dtype(param.dtype)
    G = l2_penalty(grad, param, weight_decay).reshape(shape).to(dtype)
    refuse_non_finite(G)
    init_state(state, param, "step", ("statistics", lambda p: [
        epsilon * torch.eye(n, dtype=dtype, device=p.device) for n in shape]))
    t = int(count_step_(state))

    for i, H in enumerate(state["statistics"]):
        G_i = G.movedim(i, 0).reshape(shape[i], -1)
        H.mul_(beta).addmm_(G_i, G_i.mT)
    if (t - 1) % update_freq == 0:
        state["preconditioners"] = [inverse_root(H, 2 * k, epsilon * beta**t)
                                    for H in state["statistics"]]

    for i, P in enumerate(state["preconditioners"]):
        G = mode_product(G, P, i)
    G = G.reshape(param.shape).to(param.dtype)
    if momentum != 0:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param)
        G = heavy_ball_(state["momentum_buffer"], G, momentum)
    param.add_(G, alpha=-lr)


def refuse_non_finite(G, name="Shampoo"):
    """Stop before a NaN or infinite gradient reaches the statistics: H would stay non-finite
    for good, and every later eigendecomposition would fail. ``name``: the optimizer's."""
    if not torch.isfinite(G).all():
        raise FloatingPointError(
            f"{name} got a non-finite gradient (NaN or inf) for a parameter of shape "
            f"{tuple(G.shape)}. The step was not taken: no parameter or statistic changed. "
            "Find where the loss or its gradient overflows (lower the learning rate, clip "
            "gradients), or skip such steps: torch.amp.GradScaler's scaler.step(optimizer) "
            "does that for you, and so does checking torch.isfinite on the loss.")


def reload_statistics(optimizer, state_dict, keys):
    """After ``torch.optim.Optimizer.load_state_dict``: put the state under ``keys`` (tensors,
    or lists of matrices and None) back in :func:`statistics_dtype`. torch casts every
    floating-point state tensor to its parameter's dtype
    (Optimizer._process_value_according_to_param_policy), which would round the float32
    statistics of a bfloat16 parameter to bfloat16."""
    def restore(value, param):
        if isinstance(value, list):
            return [restore(v, param) for v in value]
        if value is None:
            return None
        return value.to(device=param.device, dtype=statistics_dtype(param.dtype))

    saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
    params = chain.from_iterable(g["params"] for g in optimizer.param_groups)
    for saved_id, param in zip(saved_ids, params, strict=True):
        saved = state_dict["state"].get(saved_id, {})
        for key in keys:
            if key in saved:
                optimizer.state[param][key] = restore(saved[key], param)


class Shampoo(Optimizer):
    """Shampoo with optional heavy-ball momentum and L2 weight decay.

    State per parameter: ``step``; ``statistics`` and ``preconditioners``, lists of one
    n × n matrix per dimension (float32 for a bfloat16/float16 parameter, see
    :func:`statistics_dtype`); ``momentum_buffer`` when ``momentum > 0``. Complex parameters
    are refused: seen as real pairs they would gain a spurious dimension of size 2.
    """

    supports_complex = False
    #: A non-finite gradient is refused tensor by tensor, after the tensors before it were
    #: updated: the undo makes the refusal leave every tensor as it was.
    undo_failed_steps = True

    def __init__(self, params, lr=0.1, momentum=0.0, weight_decay=0.0, epsilon=1e-4, beta=1.0,
                 update_freq=1, maximize=False):
        check_lr(lr)
        check(0.0 <= momentum < 1.0, "momentum", momentum, "0 <= momentum < 1")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(epsilon > 0.0, "epsilon", epsilon, "epsilon > 0")
        check(0.0 < beta <= 1.0, "beta", beta, "0 < beta <= 1")
        check(isinstance(update_freq, numbers.Integral) and not isinstance(update_freq, bool)
              and update_freq >= 1, "update_freq", update_freq, "an integer >= 1")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, epsilon=epsilon,
                        beta=beta, update_freq=update_freq, maximize=maximize)
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        reload_statistics(self, state_dict, ("statistics", "preconditioners"))

    def update(self, param, grad, state, group):
        shampoo_update(param, grad, state, lr=group["lr"], momentum=group["momentum"],
                       weight_decay=group["weight_decay"], epsilon=group["epsilon"],
                       beta=group["beta"], update_freq=group["update_freq"])
