"""The named pieces the optimizers are built from (cf. optax's transforms), each introduced by
one chapter of the book and written here once.

Each piece is a line or two of math, in place where it updates a buffer, in torch.optim's
order of floating-point operations (so that an optimizer built from them equals its torch
counterpart bit for bit, float32 included). An optimizer's update then reads as its lineage:
Adam is state, step counter, decay, two moving averages, (a running maximum), and a
bias-corrected step.
"""

from __future__ import annotations

import torch

# --- state -----------------------------------------------------------------------------


def step_counter(value: float = 0.0, device=None) -> torch.Tensor:
    """The step counter as torch.optim stores it: a 0-d float tensor (float64 under a float64
    default dtype; on the CPU unless ``device`` is given), so that optcore and torch.optim
    checkpoints have the same layout. Other scalar state (NAdam's Π_t, ASGD's η_t) alike."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(float(value), dtype=dtype, device=device)


def init_state(state: dict, param: torch.Tensor, *layout) -> dict:
    """Create an optimizer's state on its first step, entry by entry in the order of
    ``layout``, which is torch.optim's order, so that ``state_dict`` layouts match.

    ``"step"`` is the step counter, any other name a zero tensor shaped like ``param``, and
    a pair ``(name, make)`` the tensor ``make(param)``. A state that exists is left alone.
    """
    if not state:
        for entry in layout:
            name, make = entry if isinstance(entry, tuple) else (entry, None)
            if make is not None:
                state[name] = make(param)
            elif name == "step":
                state[name] = step_counter()
            else:
                state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def count_step_(state: dict) -> float:
    """t ← t + 1 in the state's counter; returns the new t (1 on the first step)."""
    if not torch.is_tensor(state["step"]):  # a checkpoint from torch < 1.12 stored a float
        state["step"] = step_counter(state["step"])
    state["step"] += 1
    return state["step"].item()


# --- averages: ch-momentum, ch-ema -------------------------------------------------------------


def heavy_ball_(buf, x, momentum, dampening=0.0):
    """M ← βM + (1 − τ)x, in place: Polyak's heavy-ball buffer, with torch's dampening τ
    ({ref}`ch-momentum`). SGD starts it at the first gradient, M₁ = g₁; started at zero it
    gives the same M₁ when τ = 0."""
    return buf.mul_(momentum).add_(x, alpha=1 - dampening)


def ema_(avg, x, beta):
    """avg ← β·avg + (1 − β)·x, in place: an exponential moving average ({ref}`ch-ema`),
    written as torch writes it, a linear interpolation towards x."""
    return avg.lerp_(x, 1 - beta)


def ema_sq_(avg, x, beta):
    """avg ← β·avg + (1 − β)·x², in place: the moving average of squares
    ({ref}`ch-rmsprop-adadelta`)."""
    return avg.mul_(beta).addcmul_(x, x, value=1 - beta)


def bias_correction(beta, step):
    """1 − β^t: the total weight of an EMA started at zero after t steps ({ref}`ch-ema`).
    Dividing the average by it removes the start-up bias exactly for a constant signal."""
    return 1 - beta**step


def running_max_(max_buf, v):
    """v_max ← max(v_max, v), in place, elementwise: AMSGrad's memory of the largest second
    moment, which keeps the denominator from shrinking ({ref}`ch-amsgrad`; with torch's
    bias correction the step η√(1 − β₂ᵗ)/(1 − β₁ᵗ) can still grow), and Adamax's
    exponentially weighted infinity norm ({ref}`ch-adamax-nadam-radam`)."""
    return torch.maximum(max_buf, v, out=max_buf)


# --- steps --------------------------------------------------------------------------------


def sign_step_(param, direction, lr):
    """θ ← θ − η·sign(d), in place: every coordinate moves by η ({ref}`ch-sign-methods`).

    torch.sign maps NaN to 0, which would freeze a coordinate whose gradient went NaN while
    the NaN sits on in the momentum. A non-finite entry of d is passed through instead, so a
    NaN or infinite gradient shows up in θ, as it does with torch.optim's SGD and Adam
    families (torch's Rprop, also a sign method, hides it; optcore.Rprop follows torch)."""
    step = torch.where(direction.isfinite(), direction.sign(), direction)
    return param.add_(step, alpha=-lr)


# --- weight decay: ch-adamw ---------------------------------------------------------------------


def l2_penalty(grad, param, weight_decay):
    """g + λθ: the gradient of L(θ) + (λ/2)‖θ‖², the coupled "weight decay" of SGD and Adam.
    Written as torch.optim writes it, ``add(param, alpha=λ)``, which rounds once; the obvious
    ``grad + λ * param`` rounds twice and differs in the last bit for some elements (about
    2% at λ = 0.01, 9% at λ = 0.1 in float32)."""
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


def decoupled_decay_(param, lr, weight_decay):
    """θ ← θ·(1 − ηλ), in place: decay applied to the weights, not through the gradient
    (Loshchilov & Hutter 2019; torch multiplies λ by the learning rate, {ref}`ch-adamw`)."""
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    return param


def weight_decay_(param, grad, lr, weight_decay, decoupled):
    """The two meanings of ``weight_decay`` in the Adam family ({ref}`ch-adamw`): decoupled
    decay of θ in place (AdamW: λ never reaches m or v), or the L2 penalty added to the
    gradient (Adam: λθ is then divided by √v like g). Returns the gradient to use."""
    if decoupled:
        decoupled_decay_(param, lr, weight_decay)
        return grad
    return l2_penalty(grad, param, weight_decay)
