"""The multi-tensor (``foreach=True``) updates: each optimizer's step on a whole list of
tensors at once, written line by line beside its single-tensor update.

``torch._foreach_op(list, ...)`` applies one operation to every tensor of a list. On a GPU
it launches one kernel for many tensors instead of one per tensor, which is what makes it
fast when a model has hundreds of small tensors; on a CPU it loops over the tensors in C++.
Each function below takes the lists of one parameter group that share a device and a dtype
(``Optimizer.update_group`` splits a group so) and performs, operation for operation, what
the single-tensor update performs on each tensor, so the two paths agree bit for bit. Where
the single-tensor update uses a number that depends on the tensor's own step count (Adam's
bias corrections), the list version passes a list of numbers, one per tensor.

A learning rate given as a tensor takes part in the same tensor arithmetic as in the
single-tensor update (``1 - lr * λ``, ``-lr / (1 - β₁ᵗ)``), and the result is read as a
number (:func:`number`) where the single-tensor update passes it as ``alpha=`` or ``value=``.
"""

from __future__ import annotations

import torch

from .pieces import bias_correction, init_state, step_counter


def number(x):
    """A hyperparameter as a Python number (a 0-d tensor read once)."""
    return x.item() if torch.is_tensor(x) else x


def count_steps_(states):
    """t ← t + 1 in every state's counter (one foreach add); returns the new t's as numbers."""
    for state in states:
        if not torch.is_tensor(state["step"]):  # a checkpoint from torch < 1.12
            state["step"] = step_counter(state["step"])
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    return [step.item() for step in steps]


def l2_penalties(grads, params, weight_decay):
    """g + λθ for every tensor (:func:`~optcore.optim.pieces.l2_penalty`)."""
    return torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads


def sgd_foreach(params, grads, states, *, lr, momentum, dampening, weight_decay, nesterov):
    """:func:`~optcore.optim.sgd.sgd_update` on lists (same equations, same order)."""
    grads = l2_penalties(grads, params, weight_decay)
    if momentum != 0:
        bufs = [state.get("momentum_buffer") for state in states]
        old = [i for i, buf in enumerate(bufs) if buf is not None]
        for i, (buf, grad, state) in enumerate(zip(bufs, grads, states)):
            if buf is None:  # M₁ = g₁
                bufs[i] = state["momentum_buffer"] = grad.clone()
        if old:  # M ← βM + (1 − τ)g
            torch._foreach_mul_([bufs[i] for i in old], momentum)
            torch._foreach_add_([bufs[i] for i in old], [grads[i] for i in old],
                                alpha=1 - dampening)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    torch._foreach_add_(params, grads, alpha=number(-lr))


def adam_foreach(params, grads, states, *, lr, beta1, beta2, eps, weight_decay,
                 amsgrad=False, decoupled=False):
    """:func:`~optcore.optim.adam.adam_update` on lists (same equations, same order)."""
    max_v = ["max_exp_avg_sq"] if amsgrad else []
    for param, state in zip(params, states):
        init_state(state, param, "step", "exp_avg", "exp_avg_sq", *max_v)
    t = count_steps_(states)
    if decoupled:
        if weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
    else:
        grads = l2_penalties(grads, params, weight_decay)
    m = [state["exp_avg"] for state in states]
    v = [state["exp_avg_sq"] for state in states]
    # a tensor β₁ is cast to θ's dtype for the average, as in adam_update
    beta1_m = beta1.to(params[0]) if torch.is_tensor(beta1) else beta1
    torch._foreach_lerp_(m, grads, 1 - beta1_m)  # m ← β₁m + (1 − β₁)g
    torch._foreach_mul_(v, beta2)  # v ← β₂v + (1 − β₂)g²
    torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
    if amsgrad:
        v_max = [state["max_exp_avg_sq"] for state in states]
        torch._foreach_maximum_(v_max, v)  # v_max ← max(v_max, v)
        v = v_max
    denom = torch._foreach_sqrt(v)  # √v / √(1 − β₂ᵗ) + ε, one t per tensor
    torch._foreach_div_(denom, [bias_correction(beta2, t_i) ** 0.5 for t_i in t])
    torch._foreach_add_(denom, eps)
    step_size = [number(-lr / bias_correction(beta1, t_i)) for t_i in t]
    torch._foreach_addcdiv_(params, m, denom, step_size)  # θ ← θ − η/(1 − β₁ᵗ)·m/denom


def rmsprop_foreach(params, grads, states, *, lr, alpha, eps, weight_decay, momentum,
                    centered):
    """:func:`~optcore.optim.rmsprop.rmsprop_update` on lists (same equations, same order)."""
    buffers = (["momentum_buffer"] if momentum > 0 else []) + (["grad_avg"] if centered else [])
    for param, state in zip(params, states):
        init_state(state, param, "step", "square_avg", *buffers)
    count_steps_(states)
    grads = l2_penalties(grads, params, weight_decay)
    v = [state["square_avg"] for state in states]
    torch._foreach_mul_(v, alpha)  # v ← αv + (1 − α)g²
    torch._foreach_addcmul_(v, grads, grads, value=1 - alpha)
    if centered:
        m = [state["grad_avg"] for state in states]
        torch._foreach_lerp_(m, grads, 1 - alpha)  # m ← αm + (1 − α)g
        s = torch._foreach_addcmul(v, m, m, value=-1)  # s = √(v − m²)
        torch._foreach_sqrt_(s)
    else:
        s = torch._foreach_sqrt(v)
    torch._foreach_add_(s, eps)
    if momentum > 0:
        b = [state["momentum_buffer"] for state in states]
        torch._foreach_mul_(b, momentum)  # b ← βb + g/s
        torch._foreach_addcdiv_(b, grads, s)
        torch._foreach_add_(params, b, alpha=number(-lr))
    else:
        torch._foreach_addcdiv_(params, grads, s, value=number(-lr))


def adagrad_foreach(params, grads, states, *, lr, lr_decay, weight_decay, eps):
    """:func:`~optcore.optim.adagrad.adagrad_update` on lists (dense gradients)."""
    t = count_steps_(states)
    eta = [lr / (1 + (t_i - 1) * lr_decay) for t_i in t]
    G = [state["sum"] for state in states]
    grads = l2_penalties(grads, params, weight_decay)
    torch._foreach_addcmul_(G, grads, grads)  # G ← G + g²
    denom = torch._foreach_sqrt(G)  # θ ← θ − η_t g / (√G + ε)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, grads, denom, [number(-eta_i) for eta_i in eta])


def lion_foreach(params, grads, states, *, lr, betas, weight_decay):
    """:func:`~optcore.optim.lion.lion_update` on lists (same equations, same order)."""
    beta1, beta2 = betas
    for param, state in zip(params, states):
        init_state(state, param, "exp_avg")
    m = [state["exp_avg"] for state in states]
    c = torch._foreach_mul(m, beta1)  # c = β₁m + (1 − β₁)g, a fresh list
    torch._foreach_add_(c, torch._foreach_mul(grads, 1 - beta1))
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    # sign(c), with a non-finite entry passed through (pieces.sign_step_)
    steps = [torch.where(c_i.isfinite(), s_i, c_i) for c_i, s_i in zip(c, torch._foreach_sign(c))]
    torch._foreach_add_(params, steps, alpha=number(-lr))
    torch._foreach_lerp_(m, grads, 1 - beta2)


def muon_foreach(params, grads, states, *, lr, weight_decay, momentum, nesterov,
                 ns_coefficients, eps, ns_steps, adjust_lr_fn):
    """:func:`~optcore.optim.muon.muon_update` on lists: the momentum and the Nesterov blend
    for all matrices at once; Newton–Schulz stays one matrix at a time."""
    from .muon import adjusted_lr, newton_schulz  # muon imports this module
    for param, state in zip(params, states):
        init_state(state, param, "momentum_buffer")
    M = [state["momentum_buffer"] for state in states]
    torch._foreach_lerp_(M, grads, 1 - momentum)  # M ← βM + (1 − β)g
    D = torch._foreach_lerp(grads, M, momentum) if nesterov else M  # (1 − β)g + βM
    O = [newton_schulz(D_i, ns_coefficients, ns_steps, eps) for D_i in D]
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    for param, O_i in zip(params, O):  # η' depends on each matrix's shape
        param.add_(O_i, alpha=number(-adjusted_lr(lr, adjust_lr_fn, param.shape)))
