"""AdaGrad: a step size per coordinate, shrunk by the sum of that coordinate's squared gradients."""

from __future__ import annotations

import torch

from . import fused, multi_tensor
from .base import Optimizer, check, check_lr
from .pieces import count_step_, l2_penalty, step_counter


def adagrad_update(param, grad, state, *, lr, lr_decay, weight_decay, eps):
    r"""One AdaGrad step on one tensor, in place ({ref}`ch-adagrad`).

    .. math::
        \eta_t &= \eta \,/\, \bigl(1 + (t - 1)\,\gamma\bigr) && (\gamma = \text{lr\_decay})\\
        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} && \text{(L2 penalty)}\\
        G_t &= G_{t-1} + g_t^2, \quad G_0 = \text{initial\_accumulator\_value}\\
        \theta_t &= \theta_{t-1} - \eta_t\, g_t \,/\, \bigl(\sqrt{G_t} + \varepsilon\bigr)

    The diagonal AdaGrad of Duchi, Hazan & Singer (2011), with ε (their δ) outside the root as
    in torch.optim. A sparse gradient (``nn.Embedding(sparse=True)``) updates only the rows it
    names, which is the same math: a row with g = 0 keeps its G and its θ.
    """
    t = count_step_(state)
    eta_t = lr / (1 + (t - 1) * lr_decay)
    G = state["sum"]
    if grad.is_sparse:
        if weight_decay != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        _sparse_adagrad_(param, grad, G, eta_t, eps)
        return
    g = l2_penalty(grad, param, weight_decay)
    G.addcmul_(g, g)
    param.addcdiv_(g, G.sqrt().add_(eps), value=-eta_t)


def _sparse_adagrad_(param, grad, G, eta_t, eps):
    """The same step on the rows a sparse gradient names; the other rows are not touched."""
    # Squaring is not linear: an index that occurs twice must be summed before it is squared.
    grad = grad.coalesce()
    g = grad.values()
    G.add_(_sparse_like(grad, g * g))
    G_rows = G.sparse_mask(grad).values()
    param.add_(_sparse_like(grad, g / G_rows.sqrt().add_(eps)), alpha=-eta_t)


def _sparse_like(grad, values):
    """A sparse tensor with the (coalesced) indices of ``grad`` and the given values."""
    # The indices come from a valid coalesced tensor, so checking them again is wasted work.
    # Not marked is_coalesced: torch's own helper does not mark it either, and a dense
    # add_ of a tensor so marked takes another kernel that rounds differently.
    return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, check_invariants=False)


class Adagrad(Optimizer):
    """Drop-in replacement for ``torch.optim.Adagrad`` (same arguments, defaults and state),
    sparse gradients included."""

    supports_sparse_grad = True
    fast_paths = ("foreach", "fused")
    param_like_state = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        check_lr(lr)
        check(lr_decay >= 0.0, "lr_decay", lr_decay, "lr_decay >= 0")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        check(initial_accumulator_value >= 0.0, "initial_accumulator_value",
              initial_accumulator_value, "initial_accumulator_value >= 0")
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        # Unlike most torch.optim classes, Adagrad creates every parameter's state here, so a
        # fresh optimizer's state_dict already holds a step and a sum for each parameter.
        for group in self.param_groups:
            for param in group["params"]:
                self._init_state(param, self.state[param])

    def _init_state(self, param, state):
        # torch.optim reads G_0 from the constructor's defaults, never from the group: an
        # "initial_accumulator_value" given in a parameter group is stored but ignored.
        G_0 = self.defaults["initial_accumulator_value"]
        state["step"] = step_counter()
        # A complex parameter is two real ones, so both parts start at G_0.
        state["sum"] = torch.full_like(param, complex(G_0, G_0) if param.is_complex() else G_0,
                                       memory_format=torch.preserve_format)

    def update(self, param, grad, state, group):
        if not state:  # a parameter added later with add_param_group
            self._init_state(param, state)
        adagrad_update(param, grad, state, lr=group["lr"], lr_decay=group["lr_decay"],
                       weight_decay=group["weight_decay"], eps=group["eps"])

    def update_foreach(self, params, grads, states, group, fast=multi_tensor.adagrad_foreach):
        for param, state in zip(params, states):
            if not state:  # a parameter added later with add_param_group
                self._init_state(param, state)
        fast(params, grads, states, lr=group["lr"], lr_decay=group["lr_decay"],
             weight_decay=group["weight_decay"], eps=group["eps"])

    def update_fused(self, params, grads, states, group):
        self.update_foreach(params, grads, states, group, fast=fused.adagrad_step)

    def share_memory(self) -> None:
        """Move the accumulators to shared memory (for Hogwild-style training), as torch does."""
        for group in self.param_groups:
            for param in group["params"]:
                self.state[param]["sum"].share_memory_()
