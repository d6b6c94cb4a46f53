"""Stochastic gradient descent, with torch's momentum, dampening and Nesterov forms."""

from __future__ import annotations

from . import fused, multi_tensor
from .base import Optimizer, check, check_lr
from .pieces import heavy_ball_, l2_penalty


def sgd_update(param, grad, state, *, lr, momentum, dampening, weight_decay, nesterov):
    r"""One SGD step on one tensor, in place ({ref}`ch-gradient-descent`, {ref}`ch-momentum`,
    {ref}`ch-nesterov`).

    .. math::
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1}                       && \text{(L2 penalty)}\\
        M_t &\leftarrow \beta M_{t-1} + (1 - \tau)\, g_t,\quad M_1 = g_1   && \text{(momentum)}\\
        d_t &= g_t + \beta M_t \text{ if nesterov else } M_t\\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, d_t

    With ``momentum == 0`` this is plain gradient descent,
    :math:`\theta_t = \theta_{t-1} - \eta g_t`.
    The buffer starts at the first gradient, undamped, as in torch.optim (not at zero);
    the Nesterov form is Sutskever et al. (2013) reparameterized ({ref}`ch-nesterov`).

    A sparse gradient (``nn.Embedding(sparse=True)``) goes through the same lines: every
    operation here is linear, so sparse and dense give the same θ. With momentum the buffer
    is a sparse tensor too, and a row keeps moving after it has left the batch (its buffer
    decays by β per step), exactly as with a dense buffer. The L2 penalty would add a dense
    term to a sparse gradient; torch.optim fails on it too (``add(sparse, dense)``).
    """
    if grad.is_sparse and weight_decay != 0:
        raise RuntimeError("weight_decay option is not compatible with sparse gradients")
    grad = l2_penalty(grad, param, weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.clone()
        else:
            heavy_ball_(buf, grad, momentum, dampening)
        grad = grad.add(buf, alpha=momentum) if nesterov else buf
    param.add_(grad, alpha=-lr)


class SGD(Optimizer):
    """Drop-in replacement for ``torch.optim.SGD`` (same arguments, defaults and state)."""

    supports_sparse_grad = True
    param_like_state = ("momentum_buffer",)
    #: Every operation is linear, so complex tensors go through as they are, as in torch.
    complex_as_real = False
    fast_paths = ("foreach", "fused")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        check_lr(lr)
        check(momentum >= 0.0, "momentum", momentum, "momentum >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(not nesterov or (momentum > 0 and dampening == 0), "nesterov", nesterov,
              "nesterov=True only with momentum > 0 and dampening == 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        sgd_update(param, grad, state, lr=group["lr"], momentum=group["momentum"],
                   dampening=group["dampening"], weight_decay=group["weight_decay"],
                   nesterov=group["nesterov"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.sgd_foreach):
        fast(params, grads, states, lr=group["lr"], momentum=group["momentum"],
             dampening=group["dampening"], weight_decay=group["weight_decay"],
             nesterov=group["nesterov"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused.sgd_step)
