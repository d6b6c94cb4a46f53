"""Muon: momentum whose update matrix is orthogonalized by a Newton–Schulz iteration."""

from __future__ import annotations

import math

import torch

from .adam import adam_update
from .base import Optimizer, check, check_betas, check_lr
from . import fused, multi_tensor
from .pieces import decoupled_decay_, ema_, init_state

#: Keller Jordan's quintic coefficients (a, b, c), tuned for the largest slope at zero.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
EPS = 1e-7


def newton_schulz(G, coefficients=NS_COEFFICIENTS, steps=NS_STEPS, eps=EPS,
                  dtype=torch.bfloat16):
    r"""Approximate the orthogonal factor :math:`UV^\top` of :math:`G = U\Sigma V^\top`.

    .. math::
        X_0 = G / \max(\lVert G\rVert_F, \varepsilon),\qquad
        X_{k+1} = a X_k + (b A_k + c A_k^2) X_k,\quad A_k = X_k X_k^\top

    Each step applies the odd polynomial :math:`p(\sigma) = a\sigma + b\sigma^3 + c\sigma^5`
    to every singular value and leaves the singular vectors alone. Dividing by the Frobenius
    norm puts all singular values in :math:`(0, 1]`; the default coefficients push them
    towards 1 fast but only into a band around it (for a rectangular Gaussian matrix about
    0.68–1.14 after 5 steps; a square one can keep its few smallest singular values below
    the band, as they start nearer 0; Jordan 2024 quotes 0.5–1.5), which trains as well as
    :math:`UV^\top`.
    A wide matrix is iterated as is and a tall one transposed, so that :math:`A_k` is the
    smaller Gram matrix.

    The iteration runs in ``dtype``, bfloat16 as in torch.optim.Muon, whatever the
    parameter's dtype; pass ``dtype=torch.float64`` to see the iteration without rounding.
    Returns a tensor of ``dtype``.
    """
    check(steps < 100, "ns_steps", steps, "ns_steps < 100")
    check(len(coefficients) == 3, "ns_coefficients", coefficients, "three numbers (a, b, c)")
    if G.ndim != 2:
        raise ValueError(f"Newton-Schulz needs a 2-D matrix, got shape {tuple(G.shape)}")
    a, b, c = coefficients
    tall = G.size(0) > G.size(1)
    # A copy even when G already has the dtype (G is then the momentum buffer), so that the
    # normalization can divide in place without changing G, as the copy's only user.
    X = G.to(dtype, copy=True)
    if tall:
        X = X.T
    X.div_(X.norm().clamp(min=eps))
    for _ in range(steps):
        A = X @ X.T
        # addmm rounds once per fused product and sum; writing b*A + c*(A@A) out would round
        # twice more in bfloat16 and drift from torch.optim by bfloat16's 4e-3.
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b A + c A²
        X = torch.addmm(X, B, X, beta=a)  # a X + B X
    return X.T if tall else X


def adjusted_lr(lr, adjust_lr_fn, shape):
    r"""The learning rate for a matrix of shape (A, B) = (fan_out, fan_in).

    ``None``/``"original"``: :math:`\eta\sqrt{\max(1, A/B)}` (Jordan); ``"match_rms_adamw"``:
    :math:`0.2\,\eta\sqrt{\max(A, B)}`, which gives the update AdamW's typical RMS so that
    AdamW's ``lr`` and ``weight_decay`` carry over (Liu et al. 2025, "Muon is Scalable for
    LLM Training").
    """
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, A / B))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(A, B))
    else:
        ratio = 1.0
    return lr * ratio


def muon_update(param, grad, state, *, lr, weight_decay, momentum, nesterov, ns_coefficients,
                eps, ns_steps, adjust_lr_fn):
    r"""One Muon step on one weight matrix, in place ({ref}`ch-muon`).

    .. math::
        M_t &= \beta M_{t-1} + (1-\beta)\, g_t,\quad M_0 = 0      && \text{(an EMA, {ref}`ch-ema`)}\\
        D_t &= (1-\beta)\, g_t + \beta M_t \text{ if nesterov else } M_t\\
        O_t &= \mathrm{NS}_{k}^{(a,b,c)}(D_t;\ \varepsilon)   && \text{(≈ orthogonal factor)}\\
        \theta_t &= \theta_{t-1}(1 - \eta\lambda) - \eta'\, O_t

    with :math:`\beta` = ``momentum`` and :math:`\eta'` from :func:`adjusted_lr`. The decay
    uses the unadjusted :math:`\eta`. Jordan et al. (2024), "Muon: An optimizer for hidden
    layers in neural networks". torch's docstring writes the momentum as :math:`\mu` and
    :math:`M_t = \mu M_{t-1} + g_t`; the code keeps an EMA, which differs only by the factor
    :math:`1-\mu` that the normalization in Newton–Schulz removes.
    """
    if grad.ndim != 2:
        raise ValueError(f"Muon's gradient must be a 2-D matrix, got shape {tuple(grad.shape)}")
    init_state(state, param, "momentum_buffer")
    M = ema_(state["momentum_buffer"], grad, momentum)
    D = grad.lerp(M, momentum) if nesterov else M
    O = newton_schulz(D, ns_coefficients, ns_steps, eps)
    eta = adjusted_lr(lr, adjust_lr_fn, param.shape)
    decoupled_decay_(param, lr, weight_decay)
    param.add_(O, alpha=-eta)  # O is bfloat16; add_ computes θ − η'·O in θ's dtype


class Muon(Optimizer):
    """Drop-in replacement for ``torch.optim.Muon`` (same arguments, defaults and state:
    ``momentum_buffer``). Every parameter must be a 2-D matrix.

    One deliberate difference: for bfloat16 weights with ``nesterov=False``, torch 2.13
    normalizes the momentum buffer in place on every step (``buf.bfloat16()`` is ``buf``
    itself and Newton–Schulz divides it by its norm with ``div_``); here the buffer stays
    the EMA of the gradients that the algorithm describes.
    """

    #: A complex matrix seen as real pairs is no longer the matrix to orthogonalize.
    supports_complex = False
    #: torch.optim.Muon has neither argument, so neither has the constructor: a parameter
    #: group with ``"foreach": True`` or ``"fused": True`` selects the path for the momentum.
    fast_paths = ("foreach", "fused")

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=EPS, ns_steps=NS_STEPS,
                 adjust_lr_fn=None):
        check_lr(lr)
        check(momentum >= 0.0, "momentum", momentum, "momentum >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(adjust_lr_fn in (None, "original", "match_rms_adamw"), "adjust_lr_fn",
              adjust_lr_fn, 'None, "original" or "match_rms_adamw"')
        # torch.optim refuses these two only inside step(); refusing them here fails earlier.
        check(ns_steps < 100, "ns_steps", ns_steps, "ns_steps < 100")
        check(len(ns_coefficients) == 3, "ns_coefficients", ns_coefficients,
              "three numbers (a, b, c)")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if p.ndim != 2:
                self.param_groups.pop()
                raise ValueError(
                    f"Muon only optimizes 2-D weight matrices, but got a parameter of shape "
                    f"{tuple(p.shape)}. Give biases, norm gains, embeddings and other non-2-D "
                    f"parameters to a second optimizer such as optcore.AdamW (step both "
                    f"each iteration), or reshape a higher-dimensional weight, e.g. a conv "
                    f"kernel, to 2-D (out_channels, -1) before handing it to Muon.")

    def update(self, param, grad, state, group):
        muon_update(param, grad, state, lr=group["lr"], weight_decay=group["weight_decay"],
                    momentum=group["momentum"], nesterov=group["nesterov"],
                    ns_coefficients=group["ns_coefficients"], eps=group["eps"],
                    ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.muon_foreach):
        fast(params, grads, states, lr=group["lr"], weight_decay=group["weight_decay"],
             momentum=group["momentum"], nesterov=group["nesterov"],
             ns_coefficients=group["ns_coefficients"], eps=group["eps"],
             ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused.muon_step)


def muon_param_groups(model, exclude=()):
    """Two parameter groups for :class:`MuonWithAdamW`: the model's 2-D parameters (the
    weight matrices), except those of ``torch.nn.Embedding`` modules and of the modules in
    ``exclude``, for Muon; every other parameter (biases, norm gains, embeddings, and the
    excluded modules, typically the input layer and the output head, which play the parts of
    an embedding and a classifier) for AdamW. Each parameter lands in exactly one group."""
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    skipped = {id(p) for module in [*exclude, *embeddings] for p in module.parameters()}
    hidden = [p for p in model.parameters() if p.ndim == 2 and id(p) not in skipped]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": hidden, "use_muon": True}, {"params": rest, "use_muon": False}]


class MuonWithAdamW(Optimizer):
    """Muon for the hidden weight matrices and AdamW for everything else, as one optimizer.

    Muon is meant for hidden matrices only ({ref}`ch-muon`); a model also has biases, an
    embedding and a head, which go to AdamW. Keeping both kinds of groups in one
    ``torch.optim.Optimizer`` (``group["use_muon"]`` says which update a group gets) means
    one ``zero_grad``, one ``step``, one ``state_dict`` and one learning-rate scheduler for
    the pair. Build the groups with :func:`muon_param_groups`. A Muon group's ``lr`` defaults
    to ``lr`` and an AdamW group's to ``adam_lr`` (``lr`` when None), so with
    ``adjust_lr_fn="match_rms_adamw"`` (Muon's update scaled to AdamW's RMS, Liu et al.
    2025) one learning rate and one ``weight_decay`` serve both, and a scheduler scales both
    groups together. Muon groups accept only 2-D parameters.
    """

    supports_complex = False

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=EPS, ns_steps=NS_STEPS,
                 adjust_lr_fn="match_rms_adamw", adam_lr=None, betas=(0.9, 0.999),
                 adam_eps=1e-8):
        check_lr(lr)
        if adam_lr is not None:
            check(adam_lr >= 0.0, "adam_lr", adam_lr, "adam_lr >= 0")
        check(momentum >= 0.0, "momentum", momentum, "momentum >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(adjust_lr_fn in (None, "original", "match_rms_adamw"), "adjust_lr_fn",
              adjust_lr_fn, 'None, "original" or "match_rms_adamw"')
        check(ns_steps < 100, "ns_steps", ns_steps, "ns_steps < 100")
        check_betas(betas)
        check(adam_eps >= 0.0, "adam_eps", adam_eps, "adam_eps >= 0")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn, adam_lr=lr if adam_lr is None else adam_lr,
                        betas=betas, adam_eps=adam_eps, use_muon=True)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        param_group = dict(param_group)
        if not param_group.get("use_muon", True):
            param_group.setdefault("lr", param_group.get("adam_lr", self.defaults["adam_lr"]))
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        bad = [p for p in group["params"] if p.ndim != 2] if group["use_muon"] else []
        if bad:
            self.param_groups.pop()
            raise ValueError(f"Invalid use_muon: True for a parameter of shape "
                             f"{tuple(bad[0].shape)} (expected 2-D matrices only; give it a "
                             f"group with use_muon=False, as muon_param_groups does)")

    def update(self, param, grad, state, group):
        if group["use_muon"]:
            muon_update(param, grad, state, lr=group["lr"], weight_decay=group["weight_decay"],
                        momentum=group["momentum"], nesterov=group["nesterov"],
                        ns_coefficients=group["ns_coefficients"], eps=group["eps"],
                        ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"])
        else:
            beta1, beta2 = group["betas"]
            adam_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                        eps=group["adam_eps"], weight_decay=group["weight_decay"],
                        decoupled=True)
