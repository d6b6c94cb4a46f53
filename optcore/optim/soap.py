"""SOAP: Adam run in the eigenbasis of Shampoo's Kronecker factors ({ref}`ch-shampoo-soap`)."""

from __future__ import annotations

import numbers

import torch

from .base import Optimizer, check, check_betas, check_lr
from .pieces import (bias_correction, count_step_, decoupled_decay_, ema_, ema_sq_,
                     init_state)
from .shampoo import reload_statistics, refuse_non_finite, statistics_dtype


def rotate(X, Q, back=False):
    r"""X into the eigenbasis, :math:`X \times_1 Q_1^\top \times_2 Q_2^\top \cdots`, or back
    out of it (``back``): :math:`X \times_1 Q_1 \times_2 Q_2 \cdots`; a ``None`` in ``Q``
    leaves its mode as it is. Each contraction sums over X's first axis and puts the new axis
    last, so after one per mode the axes are in their order again."""
    for Q_i in Q:
        X = X.movedim(0, -1) if Q_i is None else torch.tensordot(
            X, Q_i, dims=([0], [1 if back else 0]))
    return X


def accumulate_(statistics, G, beta):
    """S_i ← β S_i + (1 − β) G_(i) G_(i)ᵀ for every preconditioned mode i: the exponential
    average of the Gram matrix of G's mode-i fibres (G Gᵀ and Gᵀ G for a matrix)."""
    for i, S in enumerate(statistics):
        if S is not None:
            others = [j for j in range(G.dim()) if j != i]
            ema_(S, torch.tensordot(G, G, dims=(others, others)), beta)


def eigenbasis(S):
    """The eigenvectors of a symmetric S as columns, by decreasing eigenvalue."""
    return torch.linalg.eigh(S).eigenvectors.flip(1)


def power_iteration_(S, Q, v, dim):
    """One step of power iteration from the current basis Q, re-orthonormalized by QR: the
    next eigenbasis of S, at the cost of a QR instead of an eigendecomposition. The columns
    are first sorted by their Rayleigh quotients qᵀSq, largest first, so that Gram–Schmidt
    keeps the dominant directions; the second moment ``v`` keeps its coordinates with their
    columns (reordered in place along ``dim``)."""
    SQ = S @ Q
    order = torch.argsort((Q * SQ).sum(0), descending=True)
    v.copy_(v.index_select(dim, order))
    return torch.linalg.qr(SQ[:, order]).Q


def soap_update(param, grad, state, *, lr, beta1, beta2, shampoo_beta, eps, weight_decay,
                precondition_frequency, max_precondition_dim, precondition_1d):
    r"""One SOAP step on one tensor of order k, in place ({ref}`ch-shampoo-soap`).

    .. math::
        G'_t &= G_t \times_1 Q_1^\top \cdots \times_k Q_k^\top
            && \text{(into the eigenbasis; } Q_L^\top G_t Q_R \text{ for a matrix)}\\
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}\\
        M_t &= \beta_1 M_{t-1} + (1 - \beta_1)\, G_t, \qquad
        V_t = \beta_2 V_{t-1} + (1 - \beta_2)\, G_t'^{\,2}\\
        N'_t &= \frac{\eta}{1 - \beta_1^t}\,
            \frac{M_t \times_1 Q_1^\top \cdots \times_k Q_k^\top}
                 {\sqrt{V_t}/\sqrt{1 - \beta_2^t} + \epsilon}\\
        \theta_t &= \theta_{t-1} - N'_t \times_1 Q_1 \cdots \times_k Q_k
            && \text{(back out of it)}\\
        S^i_t &= \beta_s S^i_{t-1} + (1 - \beta_s)\, G_{t(i)} G_{t(i)}^\top,
            \quad Q_i \leftarrow \mathrm{QR}(S^i_t Q_i) \text{ if } f \mid t
            && \text{(} L, R \text{ for a matrix)}

    Vyas et al. (2024), "SOAP: Improving and Stabilizing Shampoo using Adam", Algorithm 3:
    AdamW whose second moment V lives in the eigenbasis of Shampoo's factors :math:`S^i` (L
    and R for a matrix), while the first moment M stays in the parameter's coordinates and is
    rotated when used; every f = ``precondition_frequency`` steps one step of power iteration
    and a QR refresh the bases. :math:`\beta_s` is ``shampoo_beta`` (β₂ when None). A mode
    larger than ``max_precondition_dim``, and a vector unless ``precondition_1d``, keeps its
    coordinates (:math:`Q_i = I`): with every mode so, SOAP is AdamW.

    The algorithm box leaves out the start and the bias correction; as in the authors' code
    (github.com/nikhilvyas/SOAP) and pytorch-optimizer's port of it, the first call takes no
    step: it gathers the statistics and takes the first bases by ``eigh`` (by decreasing
    eigenvalue), so that no step is rotated by a basis made from its own gradient, and t
    counts the steps after it; and a refresh sorts the columns by :math:`q^\top S q` before
    the QR, and V's coordinates with them. Where that code follows Hugging Face's old AdamW,
    optcore follows torch's, so that with Q = I SOAP is ``torch.optim.AdamW`` bit for bit:

    - ε is added to :math:`\sqrt{V}/\sqrt{1 - \beta_2^t}`; theirs adds it to :math:`\sqrt{V}`
      and folds :math:`\sqrt{1 - \beta_2^t}` into η, which is our ε times
      :math:`\sqrt{1 - \beta_2^t}`;
    - θ decays before the step; theirs after it, a difference of ηλ times the step.

    For a half-precision parameter M, V, the statistics and the bases are float32
    (:func:`statistics_dtype`; the authors' code keeps them float32 for every dtype,
    pytorch-optimizer rounds to float32 for its QR only): a bfloat16 M (error 4e-3), rotated,
    would leave its rounding in directions where V holds only float32 rounding. A non-finite
    gradient is refused, as Shampoo refuses it: it would stay in the statistics for good.
    """
    dtype = statistics_dtype(param.dtype)
    G = grad.to(dtype)
    refuse_non_finite(G, "SOAP")
    beta_s = beta2 if shampoo_beta is None else shampoo_beta
    if not state:  # the first call: statistics and a first basis, no step
        kept = param.dim() == 1 and not precondition_1d
        zeros = lambda p: torch.zeros_like(p, dtype=dtype)  # noqa: E731
        init_state(state, param, "step", ("exp_avg", zeros), ("exp_avg_sq", zeros), (
            "statistics", lambda p: [None if kept or n > max_precondition_dim
                                     else p.new_zeros(n, n, dtype=dtype) for n in p.shape]))
        accumulate_(state["statistics"], G, beta_s)
        state["eigenbases"] = [None if S is None else eigenbasis(S)
                               for S in state["statistics"]]
        return
    t = count_step_(state)
    Q = state["eigenbases"]
    decoupled_decay_(param, lr, weight_decay)
    m = ema_(state["exp_avg"], G, beta1)
    v = ema_sq_(state["exp_avg_sq"], rotate(G, Q), beta2)
    denom = (v.sqrt() / bias_correction(beta2, t) ** 0.5).add_(eps)
    # η/(1 − β₁ᵗ)·m', then ÷ denom: torch's addcdiv order, so that with Q = I this is AdamW's step.
    step = rotate(m, Q).mul(-lr / bias_correction(beta1, t)).div_(denom)
    param.add_(rotate(step, Q, back=True))

    accumulate_(state["statistics"], G, beta_s)
    if t % precondition_frequency == 0:
        state["eigenbases"] = [None if S is None else power_iteration_(S, Q_i, v, i)
                               for i, (S, Q_i) in enumerate(zip(state["statistics"], Q))]


class SOAP(Optimizer):
    """SOAP (Vyas et al., 2024) with decoupled weight decay, as pytorch-optimizer's
    ``SOAP`` (arguments, defaults), with torch AdamW's ε and decay (see :func:`soap_update`).

    Left out of pytorch-optimizer's arguments: ``merge_dims`` and ``data_format`` (reshape a
    convolution's kernel yourself), ``normalize_gradient`` (not in the paper's algorithm; the
    authors' code notes it helps at ``precondition_frequency`` ~100 and hurts at ~10) and
    ``correct_bias`` (always on, as in torch's Adam). The arguments after
    ``max_precondition_dim`` are keyword-only, so that a positional call written for
    pytorch-optimizer (whose next one is ``merge_dims``) fails instead of binding wrongly.
    ``max_precondition_dim=0`` preconditions nothing: AdamW.

    State per parameter: ``step`` (the steps taken, 0 after the first call), ``exp_avg`` (M,
    in the parameter's coordinates), ``exp_avg_sq`` (V, in the eigenbasis), and
    ``statistics`` and ``eigenbases``: one n × n matrix per mode, or None for a mode kept as
    it is; all float32 for a bfloat16/float16 parameter. Complex parameters are refused.
    """

    supports_complex = False
    #: A non-finite gradient is refused tensor by tensor, after the tensors before it were
    #: updated: the undo makes the refusal leave every tensor as it was.
    undo_failed_steps = True

    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None,
                 weight_decay=1e-2, precondition_frequency=10, max_precondition_dim=10000, *,
                 precondition_1d=False, eps=1e-8, maximize=False):
        check_lr(lr)
        check_betas(betas)
        check(shampoo_beta is None or 0.0 <= shampoo_beta < 1.0, "shampoo_beta", shampoo_beta,
              "None or 0 <= shampoo_beta < 1")
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        for name, value, least in [("precondition_frequency", precondition_frequency, 1),
                                   ("max_precondition_dim", max_precondition_dim, 0)]:
            check(isinstance(value, numbers.Integral) and not isinstance(value, bool)
                  and value >= least, name, value, f"an integer >= {least}")
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        defaults = dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, weight_decay=weight_decay,
                        precondition_frequency=precondition_frequency,
                        max_precondition_dim=max_precondition_dim,
                        precondition_1d=precondition_1d, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        reload_statistics(self, state_dict, ("exp_avg", "exp_avg_sq", "statistics",
                                             "eigenbases"))

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        soap_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                    shampoo_beta=group["shampoo_beta"], eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    precondition_frequency=group["precondition_frequency"],
                    max_precondition_dim=group["max_precondition_dim"],
                    precondition_1d=group["precondition_1d"])
