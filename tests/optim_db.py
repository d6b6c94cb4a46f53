"""One contract table for the optimizer tests, in the spirit of PyTorch's ``optim_db``.

Each of optcore's 22 optimizers has one :class:`OptimizerInfo`: what it is checked against
(its ``torch.optim`` counterpart; for the schedule-free SGD and AdamW their authors' package
``schedulefree``, in train mode; for SOAP the ``pytorch-optimizer`` package with three
conventions aligned; for Lion, SignSGD, Shampoo and 8-bit Adam an independent reference
written out below), the argument grid that changes its math, its refusals, its complex and
sparse support, and the settings of the other contract checks. ``test_contract.py`` runs every
check over this table; the per-module test files keep only what is particular to one
algorithm (``test_schedule_free.py``: train()/eval() switches, checkpoints across packages).

A grid lists every argument value and combination that changes the update (maximize,
weight_decay and every flag included); it is the float64 parity grid. ``float32`` is a
subset of it that still turns every flag on, run in float32 against torch's single-tensor path.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import pytest
import pytorch_optimizer
import schedulefree
import torch
from pytorch_optimizer.optimizer import soap as pytorch_optimizer_soap

import optcore
from optcore.training import tiny_net, weights_and_biases
from parity import (RTOL, embedding_from_2, first_two_and_last, fit_matrix,
                    ill_conditioned_quadratic, matrix_net, shrink_from_3, train,
                    train_embedding)

# --- independent references for the optimizers torch.optim lacks ----------------------------


class Reference(torch.optim.Optimizer):
    """Hands ``numpy_update`` float64 arrays θ and g (maximize applied, complex as real pairs)
    and writes the θ it returns back into the parameter. The state is numpy arrays."""

    def __init__(self, params, **defaults):
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                real = torch.view_as_real if p.is_complex() else (lambda t: t)
                theta = real(p).double().numpy().copy()
                g = real(p.grad).double().numpy().copy()
                if group.get("maximize", False):
                    g = -g
                hyper = dict(group, lr=float(group["lr"]))
                theta = self.numpy_update(theta, g, self.state[p], hyper)
                real(p).copy_(torch.from_numpy(np.asarray(theta)))
        return loss


class ReferenceLion(Reference):
    """Chen et al. (2023), Algorithm 2, line by line."""

    def numpy_update(self, theta, g, st, h):
        b1, b2 = h.get("betas", (0.9, 0.99))
        lr, wd = h["lr"], h.get("weight_decay", 0.0)
        m = st.get("m", np.zeros_like(theta))
        c = b1 * m + (1 - b1) * g
        theta = theta - lr * (np.sign(c) + wd * theta)
        st["m"] = b2 * m + (1 - b2) * g
        return theta


class ReferenceSignSGD(Reference):
    """Bernstein et al. (2018), Algorithm 1 (signSGD) and 2 (Signum), plus decoupled decay."""

    def numpy_update(self, theta, g, st, h):
        mu, lr, wd = h.get("momentum", 0.0), h["lr"], h.get("weight_decay", 0.0)
        if mu > 0:
            st["m"] = mu * st.get("m", np.zeros_like(theta)) + (1 - mu) * g
            g = st["m"]
        return theta * (1 - lr * wd) - lr * np.sign(g)


def kron_all(mats):
    out = np.ones((1, 1))
    for m in mats:
        out = np.kron(out, m)
    return out


class ReferenceShampoo(Reference):
    """Gupta et al. (2018), Algorithm 2, with the preconditioner applied as one dense
    Kronecker product of all dimensions' P_i: vec(Ĝ) = (P₁ ⊗ … ⊗ P_k) vec(G) with row-major
    vec, which never forms a mode product."""

    def numpy_update(self, theta, g, st, h):
        lr, wd, mu = h["lr"], h.get("weight_decay", 0.0), h.get("momentum", 0.0)
        eps, beta, freq = h.get("epsilon", 1e-4), h.get("beta", 1.0), h.get("update_freq", 1)
        shape = theta.shape if theta.ndim > 0 else (1,)
        k = len(shape)
        G = (g + wd * theta).reshape(shape)
        if not st:
            st.update(t=0, H=[eps * np.eye(n) for n in shape])
        st["t"] += 1
        t = st["t"]
        for i in range(k):
            others = [j for j in range(k) if j != i]
            # Σ over all other indices of G[..a..] G[..b..]: the Gram matrix of the mode-i fibres.
            st["H"][i] = beta * st["H"][i] + np.tensordot(G, G, axes=(others, others))
        if (t - 1) % freq == 0:
            st["P"] = []
            for H in st["H"]:
                lam, Q = np.linalg.eigh(H)
                lam = np.maximum(lam, eps * beta**t)  # H ⪰ εβᵗI in exact arithmetic
                st["P"].append(Q @ np.diag(lam ** (-1 / (2 * k))) @ Q.T)
        G_hat = (kron_all(st["P"]) @ G.reshape(-1)).reshape(theta.shape)
        if mu > 0:
            st["buf"] = mu * st.get("buf", np.zeros_like(theta)) + G_hat
            G_hat = st["buf"]
        return theta - lr * G_hat


@functools.cache
def bitsandbytes_maps():
    """bitsandbytes' signed and unsigned dynamic maps, as float64 arrays (imported only when
    needed: the import prints a line about a CPU kernel it does not find)."""
    from bitsandbytes.functional import create_dynamic_map
    return tuple(create_dynamic_map(signed).double().numpy() for signed in (True, False))


def quantized(x, code, block):
    """x through block-wise quantization and back, by brute force: per block of ``block``
    elements, absmax = max|x|, and x/absmax replaced by the nearest value of ``code`` (argmin
    over all 256: the first, lower one on a tie), times absmax."""
    flat = np.concatenate([x.reshape(-1), np.zeros(-x.size % block)]).reshape(-1, block)
    absmax = np.abs(flat).max(axis=1, keepdims=True)
    normed = flat / np.where(absmax > 0, absmax, 1.0)
    nearest = np.abs(normed[..., None] - code).argmin(axis=-1)
    return (code[nearest] * absmax).reshape(-1)[:x.size].reshape(x.shape)


class ReferenceAdam8bit(Reference):
    """Dettmers et al. (2022), Algorithm 1 with bitsandbytes' conventions: AdamW's step (ε
    outside √v̂, decoupled decay), then m and v replaced by their block-wise quantization with
    bitsandbytes' own signed and unsigned maps; tensors below min_8bit_size keep them exact.
    The state keeps the dequantized m and v, the information the codes carry."""

    def numpy_update(self, theta, g, st, h):
        b1, b2 = h.get("betas", (0.9, 0.999))
        lr, eps, wd = h["lr"], h.get("eps", 1e-8), h.get("weight_decay", 0.0)
        if not st:
            st.update(t=0, m=np.zeros_like(theta), v=np.zeros_like(theta))
        st["t"] += 1
        t = st["t"]
        theta = theta * (1 - lr * wd)
        m = b1 * st["m"] + (1 - b1) * g
        v = b2 * st["v"] + (1 - b2) * g * g
        theta = theta - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
        if theta.size >= h.get("min_8bit_size", 4096):
            signed, unsigned = bitsandbytes_maps()
            m = quantized(m, signed, h.get("block_size", 256))
            v = quantized(v, unsigned, h.get("block_size", 256))
        st["m"], st["v"] = m, v
        return theta


class TorchWithFloat64ForFloat32:
    """The torch module, except that ``torch.float32`` is float64 (see :class:`ReferenceSOAP`)."""

    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


class ReferenceSOAP(pytorch_optimizer.SOAP):
    """pytorch-optimizer's SOAP (a port of the authors' code, github.com/nikhilvyas/SOAP), run
    as shipped except for three conventions, aligned here, each exactly in real arithmetic:

    - ε: the package adds ε to √v and folds √(1 − β₂ᵗ) into the step size; torch's Adam, and
      optcore.SOAP, add ε to √v/√(1 − β₂ᵗ). The package's step t therefore gets ε√(1 − β₂ᵗ).
    - decay: the package multiplies θ by 1 − ηλ after its step (Hugging Face's old AdamW),
      torch before it. The package gets weight_decay=0, and θ is decayed here before each of
      its steps (from its second call on: the first takes no step, in both).
    - QR in float32: for its eigenbasis refresh the package rounds S·Q to float32 whatever the
      parameter's dtype. Inside that method its ``torch.float32`` is made float64 here, so the
      float64 runs compare float64 arithmetic (with the rounding: 1e-8 to 1e-6 apart).

    A tensor lr is passed to it as a float.
    """

    def __init__(self, params, *, eps=1e-8, weight_decay=1e-2, **kwargs):
        super().__init__(params, eps=eps, weight_decay=0.0, **kwargs)
        self.aligned = dict(eps=eps, weight_decay=weight_decay)

    def get_orthogonal_matrix_qr(self, *args, **kwargs):
        with mock.patch.object(pytorch_optimizer_soap, "torch", TorchWithFloat64ForFloat32()):
            return super().get_orthogonal_matrix_qr(*args, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:  # the gradient at θ before the decay, as torch's AdamW takes it
            with torch.enable_grad():
                loss = closure()
        lrs = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            t = group.get("step", 0)  # the package's step t (none on its first call, t = 0)
            group["lr"] = float(group["lr"])
            group["eps"] = self.aligned["eps"] * math.sqrt(1 - group["betas"][1] ** t)
            for p in group["params"] if t else []:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * self.aligned["weight_decay"])
        super().step()
        for group, lr in zip(self.param_groups, lrs, strict=True):
            group["lr"] = lr
        return loss


def in_train_mode(cls, **defaults):
    """``cls`` that calls ``train()`` once built (``defaults`` are passed unless given): a
    schedule-free optimizer steps only in train mode, and the contract's runs build an
    optimizer and step it. The subclass keeps the name, module and signature of ``cls``."""
    class InTrainMode(cls):
        @functools.wraps(cls.__init__)
        def __init__(self, params, **kwargs):
            super().__init__(params, **{**defaults, **kwargs})
            self.train()

    InTrainMode.__name__ = InTrainMode.__qualname__ = cls.__name__
    InTrainMode.__module__ = cls.__module__
    return InTrainMode


# --- the table's vocabulary -------------------------------------------------------------------


def grid(**axes):
    """All combinations of the given axes, as kwargs dicts."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass(frozen=True)
class Refusal:
    """``cls(params, **kwargs)`` raises ValueError "Invalid {name}: {value!r}", the value
    being ``kwargs[name]`` (or ``kwargs["betas"][0]`` for the name ``betas[0]``); the torch
    counterpart refuses it too unless ``torch_refuses`` is False."""

    kwargs: dict
    name: str
    torch_refuses: bool = True

    @property
    def value(self):
        base, _, index = self.name.partition("[")
        value = self.kwargs[base]
        return value[int(index[:-1])] if index else value


@dataclass(frozen=True)
class Smoke:
    """A low-precision run: ``problem(make_opt, kwargs, dtype, steps, **extra)`` returns a
    number that must end below ``below``, the parameters and the optimizer."""

    problem: object
    kwargs: dict
    steps: int
    below: float
    extra: dict = field(default_factory=dict)

    def run(self, cls, dtype):
        return self.problem(cls, self.kwargs, dtype, self.steps, **self.extra)


@dataclass
class OptimizerInfo:
    cls: type
    reference: type  # torch.optim counterpart, or an independent reference from this file
    grid: list  # float64 parity: every argument value and combination that changes the math
    float32: list  # float32 bitwise against torch's single-tensor path: a subset, every flag on
    representative: dict  # one setting with state, for the checks that need only one
    groups: list  # two parameter groups + closure + one-element tensor lr
    resume: list  # checkpoint after 8 of 20 steps
    layout: list  # state_dict after 3 steps
    refusals: list
    smoke: Smoke
    supports_complex: bool = True
    complex: list = field(default_factory=list)  # complex128 parity settings
    complex_steps: int = 20
    complex_quartic: float = 0.0  # adds quartic·Σ|z|⁴ to the complex problem
    complex_progress: float = 1.0  # max|z − target| ends below this times max|target|
    sparse_grid: list = field(default_factory=list)  # parity on nn.Embedding(sparse=True)
    sparse_resume: list = field(default_factory=list)
    sparse_only: bool = False  # only sparse gradients: every run is on an embedding
    refuses_sparse_grad: bool = True  # a sparse gradient raises RuntimeError, as in torch
    closure_required: bool = False
    steps: int = 25
    rtol: float = RTOL
    rtol_reason: str = "float64 over 25 steps: rounding stays near 1e-14, far below 1e-9"
    complex_rtol: float = 1e-12
    moved: float = 1e-6  # the parity run's parameters move at least this much (relative)
    ulps: int = 0  # float32 agreement: 0 means bitwise
    ulps_reason: str = ""
    net: object = tiny_net
    param_groups: object = weights_and_biases
    resume_default_dtype: torch.dtype | None = None
    resume_reason: str = ""
    state_keys: list = field(default_factory=list)  # for references: keys per `layout` entry
    float32_state: tuple = ()  # state kept in float32 whatever the parameter's dtype
    dtypes: tuple = (torch.float32, torch.bfloat16)
    # A gradient entry that is NaN or inf: "as torch" (the same non-finite pattern as the
    # counterpart), "spreads" (the entry becomes non-finite: a sign would hide it) or
    # "refused" (step raises and changes nothing).
    non_finite: str = "as torch"

    @property
    def name(self):
        return self.cls.__name__

    def __repr__(self):  # short, for pytest's reports
        return f"OptimizerInfo({self.name})"

    @property
    def is_counterpart(self):
        """A drop-in class with the same interface and state layout: torch.optim's, or the
        schedulefree package's (the references written out in this file keep numpy state)."""
        return self.reference.__module__.startswith(("torch.", "schedulefree."))

    @property
    def arguments(self):
        return [p for p in inspect.signature(self.cls.__init__).parameters if p not in (
            "self", "params")]

    @property
    def train_kwargs(self):
        """What parity.train needs to know: the network, its two groups, the closure."""
        return dict(net=self.net, param_groups=self.param_groups, closure=self.closure_required)

    def train(self, make_opt, kwargs, steps=None, **train_kwargs):
        """parity.train on this optimizer's network, with a closure where it needs one; for a
        sparse-only optimizer, parity.train_embedding. Returns the Run."""
        steps = self.steps if steps is None else steps
        if self.sparse_only:
            return train_embedding(make_opt, kwargs, steps,
                                   dtype=train_kwargs.get("dtype", torch.float64))[0]
        return train(make_opt, kwargs, steps, **self.train_kwargs, **train_kwargs)


BETAS = [(0.9, 0.999), (0.5, 0.9)]
ON_OFF = [False, True]
LR = torch.tensor(0.05, dtype=torch.float64)  # a float64 tensor lr: 1 − ηλ stays in float64


def decay_is_meaningful(kw):
    """decoupled_weight_decay=True with weight_decay=0 repeats the coupled run: skip it."""
    return kw["weight_decay"] != 0 or not kw.get("decoupled_weight_decay", False)


def common_refusals(*names):
    """The refusals most optimizers share, for the arguments in ``names``."""
    table = {
        "lr": [Refusal(dict(lr=-0.1), "lr"), Refusal(dict(lr=torch.tensor([0.1, 0.2])), "lr")],
        "eps": [Refusal(dict(eps=-1e-8), "eps")],
        "betas": [Refusal(dict(betas=(1.0, 0.999)), "betas[0]"),
                  Refusal(dict(betas=(0.9, -0.1)), "betas[1]")],
        "weight_decay": [Refusal(dict(weight_decay=-1e-4), "weight_decay")],
    }
    return [r for name in names for r in table[name]]


ADAM_SMOKE = Smoke(shrink_from_3, dict(lr=0.1), 60, 0.3)

SGD_GRID = [kw for kw in grid(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                               weight_decay=[0.0, 0.01], nesterov=ON_OFF, maximize=ON_OFF)
            if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))]
SGD_SPARSE_GRID = [kw for kw in grid(lr=[0.1, torch.tensor(0.1)], momentum=[0.0, 0.9],
                                      dampening=[0.0, 0.3], nesterov=ON_OFF, maximize=ON_OFF)
                   if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))]

# Tensor betas (float32 0-d or 1-element): 1 − β^t is then computed in float32, as torch does.
TENSOR_BETAS = [dict(lr=1e-2, betas=betas, weight_decay=0.1, amsgrad=True) for betas in [
    (torch.tensor(0.9), torch.tensor(0.999)), (torch.tensor([0.8]), torch.tensor([0.99]))]]

MUON_GRID = [
    kw for kw in grid(lr=[0.02], weight_decay=[0.0, 0.1], momentum=[0.0, 0.95],
                      nesterov=[True, False], adjust_lr_fn=[None, "match_rms_adamw"])
    if not (kw["momentum"] == 0.0 and not kw["nesterov"])  # with μ = 0 both forms are D_t = g_t
] + [
    dict(lr=0.02, adjust_lr_fn="original"),
    dict(lr=0.02, ns_coefficients=(1.5, -0.5, 0.0), ns_steps=8),  # the classic cubic iteration
    dict(lr=0.02, ns_steps=2),
    dict(lr=0.02, eps=10.0),  # ε above ‖D‖_F: divides by ε instead of the norm
]

LBFGS_GRID = [
    dict(lr=1 if ls else 0.1, max_iter=max_iter, history_size=history, line_search_fn=ls)
    for ls, (max_iter, history) in itertools.product(
        [None, "strong_wolfe"], [(1, 100), (4, 2), (8, 3)])
] + [
    dict(lr=0.1, max_iter=6, max_eval=4),  # the evaluation budget ends each step early
    dict(lr=1, max_iter=6, max_eval=9, line_search_fn="strong_wolfe"),
    dict(lr=0.1, max_iter=6, tolerance_grad=0.2),  # some steps stop early at max|g| ≤ 0.2
    # some steps stop early on a small change of loss, step or bracket
    dict(lr=1, max_iter=6, tolerance_change=1e-2, line_search_fn="strong_wolfe"),
    dict(lr=torch.tensor(0.5), max_iter=3),  # LBFGS takes one group only: tensor lr here
]

# Parity with pytorch-optimizer needs every eigenbasis refresh to see statistics of full rank:
# QR(S·Q) orthonormalizes rounding noise in S's null space, so two implementations (or one on
# two BLAS libraries) then disagree there at O(1), and their steps at O(η) (test_soap.py shows
# it). A gradient of tiny_net's 1×8 output weight, or of a bias, has rank one, and a refresh at
# step t sees t + 1 of them: so these settings refresh the 8-sides and the 8-bias only from t = 10
# (precondition_frequency=10), or keep them as they are (max_precondition_dim=7: the 4-sides
# and the 1-sides are full rank from the first gradient on).
SOAP_GRID = [
    dict(lr=0.01, betas=betas, weight_decay=wd, maximize=maximize, precondition_frequency=f,
         max_precondition_dim=dim, precondition_1d=one_d)
    for betas, wd, maximize, (f, dim, one_d) in itertools.product(
        [(0.95, 0.95), (0.9, 0.999)], [0.0, 0.1], ON_OFF,
        [(10, 10000, False), (10, 10000, True), (1, 7, False), (3, 7, True)])
] + [dict(lr=0.01, shampoo_beta=0.5), dict(lr=0.01, eps=1e-3),  # ε comparable to √v̂
     dict(lr=0.01, shampoo_beta=0.0, precondition_frequency=1, max_precondition_dim=4)]

LINSPACE_TARGET = torch.linspace(-1, 1, 12).reshape(4, 3)

INFOS = [
    OptimizerInfo(
        optcore.SGD, torch.optim.SGD,
        grid=SGD_GRID,
        float32=[dict(lr=0.05), dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                 dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True),
                 dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01, maximize=True)],
        representative=dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        groups=[dict(lr=torch.tensor(0.05), momentum=0.9, nesterov=True, weight_decay=0.01)],
        resume=[dict(lr=0.05), dict(lr=0.05, momentum=0.9, dampening=0.1)],
        layout=[dict(lr=0.1, momentum=0.9), dict(lr=0.1)],  # no momentum: no state at all
        complex=[dict(lr=0.1, momentum=0.9, weight_decay=0.01)],
        refusals=common_refusals("lr") + [
            Refusal(dict(lr=0.1, momentum=-0.5), "momentum"),
            Refusal(dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
            Refusal(dict(lr=0.1, nesterov=True), "nesterov"),
            Refusal(dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov")],
        smoke=Smoke(shrink_from_3, dict(lr=0.1, momentum=0.5), 30, 0.1),
        sparse_grid=SGD_SPARSE_GRID, refuses_sparse_grad=False,
        sparse_resume=[dict(lr=0.1, momentum=0.9, dampening=0.1)],
    ),
    OptimizerInfo(
        optcore.Adam, torch.optim.Adam,
        grid=[kw for kw in grid(lr=[1e-2], betas=BETAS, eps=[1e-8, 1e-3],
                                weight_decay=[0.0, 0.1], amsgrad=ON_OFF, maximize=ON_OFF,
                                decoupled_weight_decay=ON_OFF)
              if decay_is_meaningful(kw)] + TENSOR_BETAS,
        float32=[dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
                 dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-3, maximize=True),
                 dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True,
                      maximize=True)] + TENSOR_BETAS[1:],
        representative=dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
        groups=[dict(lr=torch.tensor([0.02]), weight_decay=0.05, amsgrad=True)],
        resume=[dict(lr=1e-2, amsgrad=True, weight_decay=0.1)],
        layout=[dict(lr=1e-2), dict(lr=1e-2, amsgrad=True)],
        complex=[dict(lr=0.1, weight_decay=0.01, amsgrad=True)],
        refusals=common_refusals("lr", "eps", "betas", "weight_decay") + [
            # Adam wants both betas floats or both tensors: the int 0 is refused.
            Refusal(dict(betas=(0, 0.999)), "betas"),
            Refusal(dict(betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.999))), "betas[0]")],
        smoke=ADAM_SMOKE,
    ),
    OptimizerInfo(
        optcore.AdamW, torch.optim.AdamW,
        grid=grid(lr=[1e-2], betas=BETAS, weight_decay=[0.0, 0.1], amsgrad=ON_OFF,
                  maximize=ON_OFF) + [dict(lr=1e-2)] + TENSOR_BETAS,  # lr only: default decay 1e-2
        float32=[dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)]
        + TENSOR_BETAS[:1],
        representative=dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
        groups=[dict(lr=torch.tensor([0.02]), weight_decay=0.05, amsgrad=True)],
        resume=[dict(lr=1e-2, amsgrad=True)],
        layout=[dict(lr=1e-2)],
        complex=[dict(lr=0.1, weight_decay=0.01, amsgrad=True)],
        refusals=common_refusals("lr", "eps", "betas", "weight_decay") + [
            Refusal(dict(betas=(0.9, torch.tensor(0.999))), "betas")],
        smoke=ADAM_SMOKE,
    ),
    OptimizerInfo(
        optcore.Adamax, torch.optim.Adamax,
        grid=grid(lr=[1e-2], betas=BETAS, eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                  maximize=ON_OFF),
        float32=[dict(lr=1e-2), dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1,
                                     maximize=True)],
        representative=dict(lr=1e-2, weight_decay=0.1),
        groups=[dict(lr=torch.tensor([0.02]), weight_decay=0.05)],
        resume=[dict(lr=1e-2, weight_decay=0.1)],
        layout=[dict(lr=1e-2)],
        complex=[dict(lr=0.1, weight_decay=0.01)],
        refusals=common_refusals("lr", "eps", "betas", "weight_decay"),
        smoke=ADAM_SMOKE,
    ),
    OptimizerInfo(
        optcore.NAdam, torch.optim.NAdam,
        grid=[kw for kw in grid(lr=[1e-2], betas=BETAS, weight_decay=[0.0, 0.1],
                                momentum_decay=[4e-3, 0.0, 0.5], decoupled_weight_decay=ON_OFF,
                                maximize=ON_OFF)
              if decay_is_meaningful(kw)],
        float32=[dict(lr=1e-2), dict(lr=1e-2, betas=(0.5, 0.9), weight_decay=0.1,
                                     momentum_decay=0.5),
                 dict(lr=1e-2, weight_decay=0.1, momentum_decay=0.0, decoupled_weight_decay=True,
                      maximize=True)],
        representative=dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        groups=[dict(lr=torch.tensor([0.02]), weight_decay=0.05, decoupled_weight_decay=True)],
        resume=[dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)],
        resume_default_dtype=torch.float64,
        resume_reason="torch's load_state_dict casts the float32 mu_product to the parameter's "
                      "float64 (test_nadam.py); under a float64 default it is float64 already",
        layout=[dict(lr=1e-2)],
        complex=[dict(lr=0.1, weight_decay=0.01),
                 dict(lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)],
        refusals=common_refusals("lr", "eps", "betas", "weight_decay") + [
            Refusal(dict(momentum_decay=-1e-3), "momentum_decay")],
        smoke=ADAM_SMOKE,
    ),
    OptimizerInfo(
        optcore.RAdam, torch.optim.RAdam,
        # β₂ = 0.999 switches from momentum SGD to rectified steps at t = 6; β₂ = 0.5 never does
        # (ρ∞ = 3 < 5); β₂ = 0.9 switches at t = 6 too but with a much smaller ρ∞ = 19.
        grid=[kw for kw in grid(lr=[1e-2], betas=[(0.9, 0.999), (0.5, 0.5), (0.9, 0.9)],
                                eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                                decoupled_weight_decay=ON_OFF, maximize=ON_OFF)
              if decay_is_meaningful(kw)],
        float32=[dict(lr=1e-2), dict(lr=1e-2, betas=(0.5, 0.5), eps=1e-3, weight_decay=0.1),
                 dict(lr=1e-2, betas=(0.9, 0.9), weight_decay=0.1, decoupled_weight_decay=True,
                      maximize=True)],
        representative=dict(lr=1e-2, weight_decay=0.1),
        groups=[dict(lr=torch.tensor([0.02]), weight_decay=0.05, decoupled_weight_decay=True)],
        resume=[dict(lr=1e-2, weight_decay=0.1)],
        layout=[dict(lr=1e-2)],
        complex=[dict(lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)],
        refusals=common_refusals("lr", "eps", "betas", "weight_decay"),
        smoke=ADAM_SMOKE,
    ),
    OptimizerInfo(
        optcore.SparseAdam, torch.optim.SparseAdam,
        sparse_only=True, steps=20, refuses_sparse_grad=False,
        grid=[],  # every run is on the sparse embedding: see sparse_grid
        # torch's SparseAdam is slow on CPU (its dense += sparse add_), so tensor lr gets two cases.
        sparse_grid=grid(lr=[0.05], betas=BETAS, eps=[1e-8, 1e-2], maximize=ON_OFF)
        + grid(lr=[torch.tensor([0.05])], betas=BETAS, eps=[1e-2], maximize=[True]),
        float32=[dict(lr=0.05), dict(lr=0.05, betas=(0.5, 0.9), eps=1e-2, maximize=True)],
        representative=dict(lr=0.05),
        groups=[],
        resume=[],
        sparse_resume=[dict(lr=0.05)],
        layout=[dict(lr=0.05)],
        supports_complex=False,
        refusals=[  # SparseAdam alone wants lr > 0 and eps > 0
            Refusal(dict(lr=0.0), "lr"), Refusal(dict(eps=0.0), "eps"),
            Refusal(dict(betas=(0.9, 1.0)), "betas[1]")],
        smoke=Smoke(embedding_from_2, dict(lr=0.1), 40, 0.5),
    ),
    OptimizerInfo(
        optcore.Adagrad, torch.optim.Adagrad,
        grid=grid(lr=[0.05], lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.01],
                  initial_accumulator_value=[0.0, 0.5], eps=[1e-10, 0.1], maximize=ON_OFF),
        float32=[dict(lr=0.05), dict(lr=0.05, lr_decay=0.1, weight_decay=0.01,
                                     initial_accumulator_value=0.5, eps=0.1, maximize=True)],
        representative=dict(lr=0.05, lr_decay=0.1, initial_accumulator_value=0.5,
                            weight_decay=0.01),
        groups=[dict(lr=torch.tensor(0.05), lr_decay=0.1, initial_accumulator_value=0.5,
                     weight_decay=0.01)],
        resume=[dict(lr=0.05, lr_decay=0.1, initial_accumulator_value=0.5)],
        layout=[dict(lr=0.05)],
        complex=[dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, weight_decay=0.01)],
        refusals=common_refusals("lr") + [
            Refusal(dict(lr_decay=-0.1), "lr_decay"),
            Refusal(dict(weight_decay=-0.1), "weight_decay"),
            Refusal(dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
            Refusal(dict(eps=-1e-10), "eps")],
        smoke=Smoke(shrink_from_3, dict(lr=0.5), 40, 0.5),
        sparse_grid=grid(lr=[0.1, torch.tensor(0.1)], lr_decay=[0.0, 0.1],
                         initial_accumulator_value=[0.0, 0.5], eps=[1e-10, 0.1], maximize=ON_OFF),
        refuses_sparse_grad=False,
        sparse_resume=[dict(lr=0.1, lr_decay=0.05)],
    ),
    OptimizerInfo(
        optcore.RMSprop, torch.optim.RMSprop,
        grid=grid(lr=[0.01], alpha=[0.99, 0.5], eps=[1e-8, 0.1], weight_decay=[0.0, 0.01],
                  momentum=[0.0, 0.9], centered=ON_OFF, maximize=ON_OFF)
        + [dict(lr=1e-9, alpha=1.0, eps=1e-8)],  # the edge alpha = 1: v stays 0, steps η·g/ε
        float32=[dict(lr=0.01), dict(lr=0.01, momentum=0.9, weight_decay=0.01),
                 dict(lr=0.01, centered=True, maximize=True),
                 dict(lr=0.01, alpha=0.5, eps=0.1, momentum=0.9, centered=True,
                      weight_decay=0.01)],
        representative=dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01),
        groups=[dict(lr=torch.tensor(0.01), momentum=0.9, centered=True, weight_decay=0.01)],
        resume=[dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)],
        layout=[dict(lr=0.01, momentum=0.9, centered=True), dict(lr=0.01)],
        complex=[dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)],
        refusals=common_refusals("lr", "eps") + [
            Refusal(dict(momentum=-0.9), "momentum"), Refusal(dict(alpha=-0.5), "alpha"),
            Refusal(dict(weight_decay=-0.1), "weight_decay")],
        smoke=Smoke(shrink_from_3, dict(lr=0.1, momentum=0.5, centered=True), 40, 0.5),
    ),
    OptimizerInfo(
        optcore.Adadelta, torch.optim.Adadelta,
        grid=grid(lr=[1.0, 0.5], rho=[0.9, 0.5], eps=[1e-6, 1e-3], weight_decay=[0.0, 0.01],
                  maximize=ON_OFF)
        + [dict(lr=0.05, rho=1.0)],  # the edge rho = 1: plain gradient descent (test_adadelta)
        float32=[dict(lr=1.0), dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.01, maximize=True)],
        representative=dict(lr=1.0, rho=0.8, weight_decay=0.01),
        groups=[dict(lr=torch.tensor(0.5), rho=0.8, weight_decay=0.01)],
        resume=[dict(lr=1.0, rho=0.8, weight_decay=0.01)],
        layout=[dict(lr=1.0)],
        complex=[dict(lr=1.0, rho=0.8, eps=1e-3, weight_decay=0.01)],
        refusals=[Refusal(dict(lr=-1.0), "lr"), Refusal(dict(rho=1.1), "rho"),
                  Refusal(dict(rho=-0.1), "rho"), Refusal(dict(eps=-1e-6), "eps"),
                  Refusal(dict(weight_decay=-0.1), "weight_decay")],
        smoke=Smoke(shrink_from_3, dict(lr=1.0, eps=1e-2), 40, 0.5),
    ),
    OptimizerInfo(
        optcore.Rprop, torch.optim.Rprop,
        grid=grid(lr=[0.01, 0.001], etas=[(0.5, 1.2), (0.3, 1.5)],
                  step_sizes=[(1e-6, 50), (1e-3, 0.02)], maximize=ON_OFF)
        + [dict(lr=0.1, step_sizes=(1e-6, 0.05))],  # lr above the largest step: clamped
        float32=[dict(lr=0.01), dict(lr=0.001, etas=(0.3, 1.5), step_sizes=(1e-3, 0.02),
                                     maximize=True)],
        representative=dict(lr=0.01, etas=(0.3, 1.5)),
        groups=[dict(lr=torch.tensor(0.01), etas=(0.3, 1.5))],
        resume=[dict(lr=0.01, etas=(0.3, 1.5), step_sizes=(1e-4, 0.05))],
        layout=[dict(lr=0.01)],
        complex=[dict(lr=0.05, etas=(0.3, 1.5), maximize=False)],
        refusals=common_refusals("lr") + [
            Refusal(dict(etas=(0.5, 1.0)), "etas"), Refusal(dict(etas=(0.0, 1.2)), "etas"),
            Refusal(dict(etas=(1.0, 1.2)), "etas")],
        smoke=Smoke(shrink_from_3, dict(lr=0.1), 40, 0.5),
    ),
    OptimizerInfo(
        optcore.ASGD, torch.optim.ASGD,
        grid=grid(lr=[0.05], lambd=[1e-4, 0.5], alpha=[0.75, 0.5], t0=[1e6, 5],
                  weight_decay=[0.0, 0.01], maximize=ON_OFF),
        float32=[dict(lr=0.05), dict(lr=0.05, lambd=0.5, alpha=0.5, t0=5, weight_decay=0.01,
                                     maximize=True)],
        representative=dict(lr=0.05, lambd=0.5, t0=2, weight_decay=0.01),
        groups=[dict(lr=torch.tensor(0.05), lambd=0.5, t0=5, weight_decay=0.01)],
        resume=[dict(lr=0.05, lambd=0.5, t0=5, weight_decay=0.01)],  # already averaging at 8
        layout=[dict(lr=0.05)],
        complex=[dict(lr=0.1, lambd=0.5, t0=5, weight_decay=0.01)],
        refusals=common_refusals("lr") + [Refusal(dict(weight_decay=-0.1), "weight_decay")],
        smoke=Smoke(shrink_from_3, dict(lr=0.1, t0=10), 40, 0.5),
    ),
    OptimizerInfo(
        optcore.Adafactor, torch.optim.Adafactor,
        grid=grid(lr=[0.05], beta2_decay=[-0.8, -0.5], eps=[(None, 1e-3), (0.05, 1.0)],
                  d=[1.0, 1.5], weight_decay=[0.0, 0.1], maximize=ON_OFF)
        # ρ_t = min(lr, 1/√t) is lr for every t ≤ 400 above; lr = 0.5 takes 1/√t from t = 5.
        + [dict(lr=0.5), dict(lr=0.5, weight_decay=0.1, d=1.5)],
        float32=[dict(lr=0.05), dict(lr=0.05, beta2_decay=-0.5, eps=(0.05, 1.0), d=1.5,
                                     weight_decay=0.1, maximize=True)],
        representative=dict(lr=0.05, weight_decay=0.1),
        groups=[dict(lr=torch.tensor(0.05), weight_decay=0.1)],
        resume=[dict(lr=0.05), dict(lr=0.05, weight_decay=0.1, d=1.5)],
        layout=[dict(lr=0.05)],
        supports_complex=False,
        refusals=common_refusals("lr") + [
            Refusal(dict(beta2_decay=0.5), "beta2_decay"),
            Refusal(dict(eps=(-1e-30, 1e-3)), "eps[0]"),
            Refusal(dict(eps=(None, -1e-3)), "eps[1]"),
            Refusal(dict(d=0.5), "d"),
            Refusal(dict(weight_decay=-1e-4), "weight_decay")],
        # Weights at 3.0 shrink below 0.5 within 30 steps of lr=0.1 (≈10% relative steps).
        smoke=Smoke(shrink_from_3, dict(lr=0.1), 30, 0.5, dict(shapes=((8, 4), (4,)))),
    ),
    OptimizerInfo(
        optcore.Muon, torch.optim.Muon,
        net=matrix_net, param_groups=first_two_and_last,
        grid=MUON_GRID,
        float32=[dict(lr=0.02), dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=False,
                                     adjust_lr_fn="match_rms_adamw"),
                 dict(lr=0.02, adjust_lr_fn="original", ns_steps=2, eps=10.0),
                 dict(lr=0.02, ns_coefficients=(1.5, -0.5, 0.0), ns_steps=8)],
        representative=dict(lr=0.02, weight_decay=0.1),
        groups=[dict(lr=torch.tensor(0.02), weight_decay=0.1)],
        resume=[dict(lr=0.02, weight_decay=0.1)],
        layout=[dict(lr=0.02)],
        supports_complex=False,
        moved=1e-3,
        refusals=common_refusals("lr") + [
            Refusal(dict(momentum=-0.5), "momentum"),
            Refusal(dict(weight_decay=-1e-4), "weight_decay"),
            Refusal(dict(adjust_lr_fn="spectral"), "adjust_lr_fn"),
            Refusal(dict(ns_steps=100), "ns_steps", torch_refuses=False),
            Refusal(dict(ns_coefficients=(1.5, -0.5)), "ns_coefficients", torch_refuses=False)],
        # Fitting a 6×4 matrix from zero: ‖W − T‖/‖T‖ falls from 1 to below 0.2 in 60 steps.
        smoke=Smoke(fit_matrix, dict(lr=0.05, weight_decay=0.0), 60, 0.2,
                    dict(target=torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))),
    ),
    OptimizerInfo(
        optcore.LBFGS, torch.optim.LBFGS,
        closure_required=True,
        steps=20,
        refuses_sparse_grad=False,  # it flattens every gradient, densifying sparse ones, as torch
        grid=LBFGS_GRID,
        float32=[dict(lr=0.1, max_iter=4, history_size=2),
                 dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe")],
        representative=dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe"),
        groups=[],  # LBFGS refuses parameter groups, as torch does (test_lbfgs.py)
        resume=[dict(lr=0.1, max_iter=4, history_size=3),
                dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe")],
        layout=[dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe")],
        # A complex problem with a quartic term, 5 steps of max_iter = 5 (both see z as reals).
        complex=[dict(lr=0.5, max_iter=5, line_search_fn=None),
                 dict(lr=1, max_iter=5, line_search_fn="strong_wolfe")],
        complex_steps=5, complex_quartic=0.1,
        refusals=common_refusals("lr") + [
            Refusal(dict(line_search_fn="backtracking"), "line_search_fn", torch_refuses=False),
            Refusal(dict(history_size=0), "history_size", torch_refuses=False)],
        # Curvatures 1 … 100 from 3.0: three strong-Wolfe steps cut the loss by more than 100×.
        smoke=Smoke(ill_conditioned_quadratic, dict(line_search_fn="strong_wolfe", max_iter=10),
                    3, 0.01),
    ),
    OptimizerInfo(
        optcore.Lion, ReferenceLion, non_finite="spreads",
        grid=grid(lr=[0.01], betas=[(0.9, 0.99), (0.95, 0.5), (0.0, 0.9)],
                  weight_decay=[0.0, 0.5], maximize=ON_OFF),
        rtol=1e-12, rtol_reason="a sign step has no rounding to accumulate", moved=1e-3,
        float32=[],
        representative=dict(lr=0.01, weight_decay=0.1),
        groups=[dict(lr=LR, betas=(0.9, 0.99), weight_decay=0.1)],
        resume=[dict(lr=0.01, weight_decay=0.1)],
        layout=[dict(lr=0.01)], state_keys=[{"exp_avg"}],
        complex=[dict(lr=0.1, weight_decay=0.1)], complex_steps=30, complex_progress=0.5,
        refusals=[Refusal(dict(lr=-1e-4), "lr"), Refusal(dict(lr=torch.tensor([0.1, 0.2])), "lr"),
                  Refusal(dict(betas=(1.0, 0.99)), "betas[0]"),
                  Refusal(dict(betas=(0.9, -0.1)), "betas[1]"),
                  Refusal(dict(weight_decay=-0.1), "weight_decay")],
        smoke=Smoke(fit_matrix, dict(lr=0.02), 150, 0.1, dict(target=LINSPACE_TARGET)),
    ),
    OptimizerInfo(
        optcore.SignSGD, ReferenceSignSGD, non_finite="spreads",
        grid=grid(lr=[0.01], momentum=[0.0, 0.5, 0.9], weight_decay=[0.0, 0.5], maximize=ON_OFF),
        rtol=1e-12, rtol_reason="a sign step has no rounding to accumulate", moved=1e-3,
        float32=[],
        representative=dict(lr=0.01, momentum=0.9, weight_decay=0.1),
        groups=[dict(lr=LR, momentum=0.9, weight_decay=0.1)],
        resume=[dict(lr=0.01, momentum=0.9, weight_decay=0.1), dict(lr=0.01)],
        layout=[dict(lr=0.01), dict(lr=0.01, momentum=0.9)],
        state_keys=[set(), {"momentum_buffer"}],
        complex=[dict(lr=0.1, momentum=0.9, weight_decay=0.1), dict(lr=0.1, maximize=True)],
        complex_steps=30, complex_progress=0.5,
        refusals=[Refusal(dict(lr=-1e-3), "lr"), Refusal(dict(momentum=1.0), "momentum"),
                  Refusal(dict(momentum=-0.5), "momentum"),
                  Refusal(dict(weight_decay=-0.1), "weight_decay")],
        smoke=Smoke(fit_matrix, dict(lr=0.02, momentum=0.9), 150, 0.1,
                    dict(target=LINSPACE_TARGET)),
    ),
    OptimizerInfo(
        optcore.Shampoo, ReferenceShampoo, non_finite="refused",
        grid=grid(lr=[0.02], momentum=[0.0, 0.9], weight_decay=[0.0, 0.05], beta=[1.0, 0.9],
                  update_freq=[1, 3], maximize=ON_OFF),
        rtol=1e-9, rtol_reason="float64 eigh against numpy's eigh and a dense Kronecker product",
        moved=1e-3,
        float32=[],
        representative=dict(lr=0.02, momentum=0.9, weight_decay=0.01, beta=0.9, update_freq=3),
        groups=[dict(lr=LR, momentum=0.5, weight_decay=0.01, epsilon=1e-2, update_freq=2)],
        # With update_freq = 3, step 9 reuses the preconditioners of step 7 from the file.
        resume=[dict(lr=0.02, momentum=0.9, weight_decay=0.01, beta=0.9, update_freq=3)],
        layout=[dict(lr=0.01), dict(lr=0.01, momentum=0.9)],
        state_keys=[{"step", "statistics", "preconditioners"},
                    {"step", "statistics", "preconditioners", "momentum_buffer"}],
        supports_complex=False,
        float32_state=("statistics", "preconditioners"),
        refusals=[Refusal(dict(lr=-0.1), "lr"), Refusal(dict(momentum=1.0), "momentum"),
                  Refusal(dict(momentum=-0.1), "momentum"),
                  Refusal(dict(weight_decay=-0.1), "weight_decay"),
                  Refusal(dict(epsilon=0.0), "epsilon"), Refusal(dict(epsilon=-1e-4), "epsilon"),
                  Refusal(dict(beta=0.0), "beta"), Refusal(dict(beta=1.5), "beta"),
                  Refusal(dict(update_freq=0), "update_freq"),
                  Refusal(dict(update_freq=2.0), "update_freq"),
                  Refusal(dict(update_freq=True), "update_freq")],
        smoke=Smoke(fit_matrix, dict(lr=0.2, momentum=0.5), 60, 0.1, dict(target=LINSPACE_TARGET)),
    ),
    OptimizerInfo(
        optcore.SOAP, ReferenceSOAP, non_finite="refused",
        grid=SOAP_GRID,
        rtol=1e-10, rtol_reason="float64 eigh and QR of statistics within ~1e-16 of the "
        "package's; an eigenvector moves by that over the eigenvalue gap: 2.3e-13 measured",
        moved=1e-3,
        float32=[],
        representative=dict(lr=0.01, weight_decay=0.1, precondition_frequency=2,
                            max_precondition_dim=7, precondition_1d=True),
        groups=[dict(lr=LR, weight_decay=0.1, precondition_frequency=3, max_precondition_dim=7,
                     precondition_1d=True)],
        # Eigenbases refreshed at steps 7 and 14 (the first call takes none): the checkpoint
        # after 8 calls holds a fresh basis and a reordered second moment.
        resume=[dict(lr=0.01, weight_decay=0.1, precondition_frequency=7, precondition_1d=True),
                dict(lr=0.01)],
        layout=[dict(lr=0.01)],
        state_keys=[{"step", "exp_avg", "exp_avg_sq", "statistics", "eigenbases"}],
        supports_complex=False,
        float32_state=("exp_avg", "exp_avg_sq"),  # (and the lists statistics, eigenbases)
        refusals=[Refusal(dict(lr=-0.1), "lr"), Refusal(dict(lr=torch.tensor([0.1, 0.2])), "lr"),
                  Refusal(dict(betas=(1.0, 0.95)), "betas[0]"),
                  Refusal(dict(betas=(0.9, -0.1)), "betas[1]"),
                  Refusal(dict(shampoo_beta=1.0), "shampoo_beta"),
                  Refusal(dict(shampoo_beta=-0.1), "shampoo_beta"),
                  Refusal(dict(weight_decay=-0.1), "weight_decay"),
                  Refusal(dict(precondition_frequency=0), "precondition_frequency"),
                  Refusal(dict(precondition_frequency=2.0), "precondition_frequency"),
                  Refusal(dict(precondition_frequency=True), "precondition_frequency"),
                  Refusal(dict(max_precondition_dim=-1), "max_precondition_dim"),
                  Refusal(dict(max_precondition_dim=8.5), "max_precondition_dim"),
                  Refusal(dict(eps=-1e-8), "eps")],
        # Fitting the 4×3 matrix from zero: ‖W − T‖/‖T‖ falls from 1 to 0.05 in 60 steps
        # (float64, float32 and bfloat16 alike).
        smoke=Smoke(fit_matrix, dict(lr=0.1, weight_decay=0.0), 60, 0.1,
                    dict(target=LINSPACE_TARGET)),
    ),
    OptimizerInfo(
        # The package on its single-tensor path: foreach=None, optcore's default, which it
        # reads as False (so that the param_groups compare equal).
        in_train_mode(optcore.SGDScheduleFree),
        in_train_mode(schedulefree.SGDScheduleFree, foreach=None),
        grid=[dict(lr=0.5, momentum=momentum, weight_decay=wd, warmup_steps=warmup,
                   r=r, weight_lr_power=power)
              for momentum, wd, warmup, (r, power) in itertools.product(
                  [0.9, 0.5], [0.0, 0.1], [0, 10], [(0.0, 2), (1.0, 2), (0.0, 0)])],
        steps=60, rtol=0.0, rtol_reason="bitwise: the package's operations in its order",
        float32=[dict(lr=0.5), dict(lr=0.5, momentum=0.5, weight_decay=0.1, warmup_steps=10,
                                    r=1.0)],
        representative=dict(lr=0.5, weight_decay=0.1, warmup_steps=5, r=1.0),
        groups=[dict(lr=LR, weight_decay=0.1, warmup_steps=5)],
        resume=[dict(lr=0.5, weight_decay=0.1, warmup_steps=10, r=1.0)],  # split in the warm-up
        layout=[dict(lr=0.5)],
        complex=[dict(lr=0.2, weight_decay=0.01, warmup_steps=5)], complex_progress=0.5,
        refusals=[Refusal(dict(lr=-0.1), "lr"), Refusal(dict(lr=torch.tensor([0.1, 0.2])), "lr"),
                  Refusal(dict(momentum=0.0), "momentum"), Refusal(dict(momentum=1.0), "momentum"),
                  Refusal(dict(weight_decay=-1e-4), "weight_decay"),
                  Refusal(dict(warmup_steps=-1), "warmup_steps", torch_refuses=False),
                  Refusal(dict(warmup_steps=2.5), "warmup_steps", torch_refuses=False),
                  Refusal(dict(r=-1.0), "r", torch_refuses=False),
                  Refusal(dict(weight_lr_power=-2.0), "weight_lr_power", torch_refuses=False)],
        # Σw² from 3.0, 100 steps of lr = 0.05: max|y| is 0.112 in float64, 0.114 in bfloat16.
        smoke=Smoke(shrink_from_3, dict(lr=0.05), 100, 0.2),
    ),
    OptimizerInfo(
        in_train_mode(optcore.AdamWScheduleFree),
        in_train_mode(schedulefree.AdamWScheduleFree, foreach=None),
        grid=[dict(lr=0.02, betas=betas, weight_decay=wd, warmup_steps=warmup, r=r,
                   weight_lr_power=power)
              for betas, wd, warmup, (r, power) in itertools.product(
                  [(0.9, 0.999), (0.5, 0.9)], [0.0, 0.1], [0, 10],
                  [(0.0, 2.0), (1.0, 2.0), (0.0, 0.0)])]
        + [dict(lr=0.02, eps=0.1)],  # ε comparable to √v̂
        steps=60, rtol=0.0, rtol_reason="bitwise: the package's operations in its order",
        float32=[dict(lr=0.02), dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1,
                                     warmup_steps=10, r=1.0)],
        representative=dict(lr=0.02, weight_decay=0.1, warmup_steps=5, r=1.0),
        groups=[dict(lr=LR, weight_decay=0.1, warmup_steps=5)],
        resume=[dict(lr=0.02, weight_decay=0.1, warmup_steps=10, r=1.0)],
        layout=[dict(lr=0.02)],
        supports_complex=False,
        refusals=[Refusal(dict(lr=-0.1), "lr", torch_refuses=False),
                  Refusal(dict(eps=-1e-8), "eps", torch_refuses=False),
                  Refusal(dict(betas=(0.0, 0.999)), "betas[0]", torch_refuses=False),
                  Refusal(dict(betas=(1.0, 0.999)), "betas[0]", torch_refuses=False),
                  Refusal(dict(betas=(0.9, -0.1)), "betas[1]", torch_refuses=False),
                  Refusal(dict(weight_decay=-1e-4), "weight_decay", torch_refuses=False),
                  Refusal(dict(warmup_steps=-1), "warmup_steps", torch_refuses=False),
                  Refusal(dict(r=-1.0), "r", torch_refuses=False),
                  Refusal(dict(weight_lr_power=-2.0), "weight_lr_power", torch_refuses=False)],
        # Σw² from 3.0, 100 steps of lr = 0.2: max|y| is 0.018 in float64, 0.020 in bfloat16.
        smoke=Smoke(shrink_from_3, dict(lr=0.2), 100, 0.1),
    ),
    OptimizerInfo(
        optcore.Adam8bit, ReferenceAdam8bit, non_finite="refused",
        # 4 → 40 → 1: a 40×4 weight is 2 full blocks of 64 and a short one of 32.
        net=functools.partial(tiny_net, hidden=40),
        grid=grid(lr=[1e-2], betas=BETAS, eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                  min_8bit_size=[0, 4096], block_size=[64])
        + [dict(lr=1e-2, min_8bit_size=0), dict(lr=1e-2, min_8bit_size=100, block_size=128)],
        rtol_reason="float64: rounding near 1e-14 flips no code (a flip would cost ~1e-3)",
        float32=[],
        representative=dict(lr=1e-2, weight_decay=0.1, min_8bit_size=0, block_size=64),
        groups=[dict(lr=LR, weight_decay=0.1, min_8bit_size=0, block_size=64)],
        resume=[dict(lr=1e-2, weight_decay=0.1, min_8bit_size=0, block_size=64),
                dict(lr=1e-2, weight_decay=0.1)],
        layout=[dict(lr=1e-2)],  # below min_8bit_size: Adam's state (8-bit: test_adam8bit.py)
        state_keys=[{"step", "exp_avg", "exp_avg_sq"}],
        supports_complex=False,
        refusals=common_refusals("lr", "eps", "betas", "weight_decay") + [
            Refusal(dict(block_size=32), "block_size"),
            Refusal(dict(block_size=100), "block_size"),
            Refusal(dict(block_size=256.0), "block_size"),
            Refusal(dict(min_8bit_size=-1), "min_8bit_size"),
            Refusal(dict(min_8bit_size=10.5), "min_8bit_size")],
        smoke=ADAM_SMOKE,  # below min_8bit_size (the test wants state in the parameter's dtype)
    ),
]

BY_NAME = {info.name: info for info in INFOS}
COUNTERPARTS = [info for info in INFOS if info.is_counterpart]


def cases(attribute, infos=INFOS):
    """pytest parameters (info, kwargs) for every kwargs in ``info.<attribute>``."""
    return [pytest.param(info, kwargs, id=f"{info.name}-{kwargs}")
            for info in infos for kwargs in getattr(info, attribute)]


def each(infos=INFOS, where=lambda info: True):
    """pytest parameters, one per optimizer (that satisfies ``where``)."""
    return [pytest.param(info, id=info.name) for info in infos if where(info)]
