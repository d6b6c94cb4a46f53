"""Small named pieces that several optimizers are built from (cf. optax's transforms).

Each piece is one line of math, written once and used by every optimizer that needs it, so
that an optimizer's update reads as a composition: AdamW is Adam's moments, Adam's bias
correction, and decoupled decay.
"""

from __future__ import annotations


def ema_(avg, x, beta):
    """avg ← β·avg + (1 − β)·x, in place: an exponential moving average (chapter 04)."""
    return avg.lerp_(x, 1 - beta)


def ema_sq_(avg, x, beta):
    """avg ← β·avg + (1 − β)·x², in place (x·conj(x) for complex x, as torch.optim)."""
    return avg.mul_(beta).addcmul_(x, x.conj(), value=1 - beta)


def bias_correction(beta, step):
    """1 − β^t: the total weight of an EMA started at zero after t steps (chapter 04).
    Dividing the average by it removes the start-up bias exactly for a constant signal."""
    return 1 - beta**step


def l2_penalty(grad, param, weight_decay):
    """g + λθ: the gradient of L(θ) + (λ/2)‖θ‖², the coupled "weight decay" of SGD and Adam.
    Written as torch.optim writes it, ``add(param, alpha=λ)``, which rounds once; the obvious
    ``grad + λ * param`` rounds twice and differs in the last bit for about one element in ten."""
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


def decoupled_decay_(param, lr, weight_decay):
    """θ ← θ·(1 − ηλ), in place: decay applied to the weights, not through the gradient
    (Loshchilov & Hutter 2019; torch multiplies λ by the learning rate, chapter 08)."""
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    return param


def weight_decay_(param, grad, lr, weight_decay, decoupled):
    """The two meanings of ``weight_decay`` in the Adam family (chapter 08): decoupled decay
    of θ in place (AdamW: λ never reaches m or v), or the L2 penalty added to the gradient
    (Adam: λθ is then divided by √v like g). Returns the gradient to use."""
    if decoupled:
        decoupled_decay_(param, lr, weight_decay)
        return grad
    return l2_penalty(grad, param, weight_decay)
