"""SparseAdam: "lazy" Adam for sparse gradients, as produced by ``nn.Embedding(sparse=True)``."""

from __future__ import annotations

import math

from .base import Optimizer, check, check_betas, check_lr
from .pieces import bias_correction, init_state


def sparse_adam_update(param, grad, state, *, lr, beta1, beta2, eps):
    r"""One SparseAdam step on one dense tensor with a sparse gradient, in place.

    Only the entries :math:`i` present in the gradient change; the others keep
    :math:`\theta_i`, :math:`m_i` and :math:`v_i` (Adam would decay their moments and keep
    moving them). For each present :math:`i`:

    .. math::
        m_i &\leftarrow \beta_1 m_i + (1 - \beta_1)\, g_i, \qquad
        v_i \leftarrow \beta_2 v_i + (1 - \beta_2)\, g_i^2\\
        \theta_i &\leftarrow \theta_i - \eta\, \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\,
            \frac{m_i}{\sqrt{v_i} + \epsilon}

    t counts the steps of the whole tensor, not of row i, so a row first seen late is
    bias-corrected as if its moments had been averaging all along. ε is added to the raw
    :math:`\sqrt{v_i}`, as in the original paper's efficient form, not to
    :math:`\sqrt{\hat v_i}` as in ``adam_update``. Kingma & Ba (2015), section 2.
    """
    # The step is a Python int here, unlike in every other torch.optim optimizer.
    init_state(state, param, ("step", lambda _: 0), "exp_avg", "exp_avg_sq")
    state["step"] += 1  # advances even when the gradient below turns out to be empty
    t = state["step"]

    grad = grad.coalesce()  # sum repeated indices first: the update is nonlinear in g
    if grad.values().numel() == 0:
        return
    i = tuple(grad.indices())  # advanced index selecting the entries the gradient touches
    g = grad.values()
    # Each EMA written as an increment, m ← m + (1 − β)(g − m), in torch's order of operations.
    m_old, v_old = state["exp_avg"][i], state["exp_avg_sq"][i]
    m = g.sub(m_old).mul_(1 - beta1).add_(m_old)
    v = g.pow(2).sub_(v_old).mul_(1 - beta2).add_(v_old)
    state["exp_avg"][i] = m
    state["exp_avg_sq"][i] = v
    step_size = lr * math.sqrt(bias_correction(beta2, t)) / bias_correction(beta1, t)
    # m and v are stored: the step is computed in their buffers, and added to θ's rows in
    # place (``param[i] += step`` would gather a copy of the rows first).
    step = m.div_(v.sqrt_().add_(eps)).mul_(-step_size)
    param.index_put_(i, step, accumulate=True)


class SparseAdam(Optimizer):
    """Drop-in replacement for ``torch.optim.SparseAdam``: dense parameters, sparse gradients
    only (a dense gradient is refused: use Adam), no weight decay, no complex parameters."""

    supports_sparse_grad = True
    supports_complex = False
    param_like_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        check_lr(lr)
        check(lr > 0.0, "lr", lr, "lr > 0")
        check(eps > 0.0, "eps", eps, "eps > 0")
        check_betas(betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        where = [([i, j], p) for i, group in enumerate(self.param_groups)
                 for j, p in enumerate(group["params"])]
        sparse = [ij for ij, p in where if p.is_sparse]
        check(not sparse, "params", f"sparse tensors at {sparse}",
              "dense parameters (SparseAdam wants sparse gradients, not sparse parameters)")

    def _check_sparse(self, grad):
        if not grad.is_sparse:
            raise RuntimeError("SparseAdam does not support dense gradients, please use "
                               "optcore.Adam (or torch.optim.Adam) instead")

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        sparse_adam_update(param, grad, state, lr=group["lr"], beta1=beta1,
                           beta2=beta2, eps=group["eps"])
