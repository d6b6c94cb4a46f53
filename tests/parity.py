"""Helpers for checking an optcore optimizer against torch.optim or an independent reference.

Both optimizers drive identical copies of a small network through the same mini-batches
(``optcore.training``: the tiny network, the seeded batches and the training loop the chapters
use too); after every step the parameters must agree to a relative error of ``rtol`` (1e-9
unless the optimizer's entry in ``optim_db`` says why it needs otherwise). What only the tests
need lives here: the parity and resume assertions, the state-layout comparison, the checkpoint
round trip, and the complex, sparse-embedding and low-precision problems.
"""

from __future__ import annotations

import copy
import io

import torch

from optcore import training
from optcore.training import (Run, fit, max_rel_error, regression_batches, tiny_net,
                              weights_and_biases)

RTOL = 1e-9


def matrix_net(seed: int = 0, dtype=torch.float64, device="cpu") -> torch.nn.Module:
    """4 → 8 → 6 → 1 tanh MLP without biases, for Muon, which takes only matrices: a tall
    (8×4), a wide (6×8) and a row (1×6) weight, so both orientations of Newton–Schulz run."""
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(8, 6, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(6, 1, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.to(dtype=dtype, device=device)


def first_two_and_last(net, lr):
    """Two groups for a network without biases: the first two weights, and the last at half
    the learning rate."""
    *first, last = net.parameters()
    return [{"params": first}, {"params": [last], "lr": lr * 0.5}]


def train(make_opt, kwargs, steps=25, **train_kwargs) -> Run:
    """``optcore.training.train`` with the optimizer's arguments as one dict, as the contract
    table stores them (``kwargs["maximize"]`` makes the network maximize −loss)."""
    return training.train(make_opt, steps, **train_kwargs, **kwargs)


def assert_matches(ours, theirs, kwargs, steps=25, rtol=RTOL, moved=1e-6, **train_kwargs):
    """Assert that ``ours(params, **kwargs)`` follows ``theirs(params, **kwargs)`` after every
    step, and that the parameters moved (a parity test must not pass by standing still).
    Returns both runs."""
    a = train(ours, kwargs, steps, **train_kwargs)
    b = train(theirs, kwargs, steps, **train_kwargs)
    err = max_rel_error(a, b)
    assert err <= rtol, f"{ours.__name__}{kwargs}: relative error {err:.3e} > {rtol:.0e}"
    net = train_kwargs.get("net", tiny_net)
    start = Run([], [[p.detach() for p in net(seed=train_kwargs.get("seed", 0)).parameters()]])
    distance = max_rel_error(Run([], a.snapshots[-1:]), start)
    assert distance > moved, f"{ours.__name__}{kwargs}: parameters did not move ({distance:.1e})"
    return a, b


def assert_resume_is_exact(make_opt, kwargs, steps=20, split=8, **train_kwargs):
    """Interrupt a run after ``split`` steps, checkpoint model and optimizer through
    ``torch.save``, rebuild both from scratch, load, and continue: the result must be
    bit-identical to the uninterrupted run."""
    straight = train(make_opt, kwargs, steps, **train_kwargs)
    first = train(make_opt, kwargs, split, **train_kwargs)
    net = train_kwargs.get("net", tiny_net)
    split_groups = train_kwargs.get("param_groups", weights_and_biases)
    groups, lr = train_kwargs.get("groups", False), kwargs.get("lr", 1e-3)
    # Rebuilt from another seed, so that only the checkpoint can make the weights right.
    module, opt = reload_through_checkpoint(
        first.net, first.optimizer, lambda: net(seed=5),
        lambda m: make_opt(split_groups(m, lr) if groups else m.parameters(), **kwargs))
    fit(module, opt, regression_batches(steps)[split:], closure=train_kwargs.get("closure", False),
        maximize=kwargs.get("maximize", False), snapshots=False)
    for a, b in zip(module.parameters(), straight.snapshots[-1], strict=True):
        assert torch.equal(a.detach(), b), f"{make_opt.__name__}{kwargs}: resumed run differs"


def reload_through_checkpoint(module, opt, make_module, make_opt):
    """Save ``module`` and ``opt`` with torch.save and load them, with weights_only=True, into
    a fresh ``make_module()`` and ``make_opt(module)``: what resuming a training run does."""
    buffer = io.BytesIO()
    torch.save({"model": module.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    module = make_module()
    module.load_state_dict(checkpoint["model"])
    opt = make_opt(module)
    opt.load_state_dict(copy.deepcopy(checkpoint["opt"]))
    return module, opt


def resume_bfloat16_matrix(make_opt, steps, split):
    """Fit a 4×3 bfloat16 matrix W to a fixed target with ``make_opt([W])``: once for ``steps``
    steps straight, once interrupted after ``split`` steps, checkpointed with
    :func:`reload_through_checkpoint` and continued. Returns the two final matrices and the
    resumed optimizer's state entries as ``load_state_dict`` left them, for the optimizers that
    keep float32 statistics for bfloat16 weights (torch.optim's loading would cast them)."""
    target = torch.linspace(-1, 1, 12).reshape(4, 3)

    def fresh():
        module = torch.nn.Module()
        module.W = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.bfloat16))
        return module

    def run(W, opt, n):
        for _ in range(n):
            opt.zero_grad()
            ((W.float() - target) ** 2).sum().backward()
            opt.step()

    straight, first = fresh(), fresh()
    run(straight.W, make_opt([straight.W]), steps)
    opt = make_opt([first.W])
    run(first.W, opt, split)
    resumed, opt = reload_through_checkpoint(first, opt, fresh, lambda m: make_opt([m.W]))
    loaded = dict(opt.state[resumed.W])
    run(resumed.W, opt, steps - split)
    return straight.W, resumed.W, loaded


def assert_same_state_layout(ours, theirs):
    """Equal param_groups, and per parameter the same state keys in the same order, with the
    same types; tensors with the same shape, dtype, device and layout, lists of the same
    length."""
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert list(a["state"][i]) == list(b["state"][i])  # same keys, same order
        for key, value in a["state"][i].items():
            other = b["state"][i][key]
            assert type(value) is type(other), key
            if isinstance(value, torch.Tensor):
                assert (value.shape, value.dtype, value.device, value.layout) == (
                    other.shape, other.dtype, other.device, other.layout), key
            if isinstance(value, list):
                assert len(value) == len(other), key


def assert_same_state_values(ours, theirs, rtol=RTOL):
    """Every state tensor (dense or sparse, or in a list) agrees to ``rtol`` in norm; 0-d
    ones (step counters, ASGD's η_t and μ_t, NAdam's Π_t, L-BFGS's H_diag) exactly."""
    def tensors(value):
        if isinstance(value, torch.Tensor):
            return [value.to_dense() if value.is_sparse else value]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in tensors(v)]
        return []

    a, b = ours.state_dict()["state"], theirs.state_dict()["state"]
    for i in b:
        for key, value in b[i].items():
            for x, y in zip(tensors(a[i][key]), tensors(value), strict=True):
                x, y = torch.view_as_real(x) if x.is_complex() else x, (
                    torch.view_as_real(y) if y.is_complex() else y)
                if y.is_floating_point() and y.dim() > 0:
                    error = torch.linalg.vector_norm((x - y).double())
                    assert error <= rtol * max(torch.linalg.vector_norm(y.double()), 1e-300), key
                else:
                    assert x.dtype == y.dtype and torch.equal(x, y), key


# --- complex parameters -----------------------------------------------------------------------


def complex_target():
    """Five fixed complex128 numbers to fit."""
    return torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))


def fit_complex(make_opt, kwargs, steps=20, *, quartic=0.0, closure=False):
    """Fit a complex128 vector z, started at 0, to ``complex_target()`` by
    ‖z − target‖² + quartic·Σ|z|⁴ (with ``maximize``, maximize the negated loss); return z
    and the optimizer."""
    target = complex_target()
    z = torch.zeros(5, dtype=torch.complex128, requires_grad=True)
    opt = make_opt([z], **kwargs)
    sign = -1.0 if kwargs.get("maximize", False) else 1.0

    def evaluate():
        opt.zero_grad()
        loss = sign * ((z - target).abs().pow(2).sum() + quartic * z.abs().pow(4).sum())
        loss.backward()
        return loss

    for _ in range(steps):
        if closure:
            opt.step(evaluate)
        else:
            evaluate()
            opt.step()
    return z.detach(), opt


# --- sparse gradients: an embedding ----------------------------------------------------------


def embedding_problem(sparse=True, dtype=torch.float64):
    """An nn.Embedding(12, 3), random targets, and the generator of the batches."""
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.Embedding(12, 3, sparse=sparse, dtype=dtype)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(12, 3, generator=gen, dtype=torch.float64))
    target = torch.randn(12, 3, generator=gen, dtype=torch.float64).to(dtype)
    return emb, target, gen


def embedding_step(opt, emb, target, gen, maximize=False):
    """One step on a batch of 6 random rows out of the first 8 (repeats likely; rows 8–11
    never appear)."""
    idx = torch.randint(0, 8, (6,), generator=gen)
    opt.zero_grad()
    loss = torch.tanh(emb(idx) - target[idx]).pow(2).sum()
    (-loss if maximize else loss).backward()
    opt.step()


def train_embedding(make_opt, kwargs, steps=20, sparse=True, dtype=torch.float64):
    """Fit the embedding for ``steps`` steps; return the weight after each step, the start
    and the optimizer."""
    emb, target, gen = embedding_problem(sparse, dtype)
    start = emb.weight.detach().clone()
    opt = make_opt(emb.parameters(), **kwargs)
    snapshots = []
    for _ in range(steps):
        embedding_step(opt, emb, target, gen, kwargs.get("maximize", False))
        snapshots.append([emb.weight.detach().clone()])
    return Run([], snapshots, emb, opt), start


def assert_embedding_resume_is_exact(make_opt, kwargs, steps=15, split=7):
    """Checkpoint embedding and optimizer after ``split`` of ``steps`` steps, through
    torch.save and torch.load(weights_only=True), rebuild both and continue: the weights must
    equal the uninterrupted run's bit for bit (sparse state included)."""
    straight, _ = train_embedding(make_opt, kwargs, steps=steps)
    emb, target, gen = embedding_problem()
    opt = make_opt(emb.parameters(), **kwargs)
    for step in range(steps):
        if step == split:
            emb, opt = reload_through_checkpoint(
                emb, opt, lambda: torch.nn.Embedding(12, 3, sparse=True, dtype=torch.float64),
                lambda module: make_opt(module.parameters(), **kwargs))
        embedding_step(opt, emb, target, gen, kwargs.get("maximize", False))
    assert torch.equal(emb.weight.detach(), straight.snapshots[-1][0])


# --- low precision: each problem returns (what must fall below a bound, parameters, optimizer)


def shrink_from_3(make_opt, kwargs, dtype, steps, shapes=((8,),)):
    """Minimize Σ‖w‖² from w = 3 (tensors of ``shapes``), the loss in float32: max |w|."""
    params = [torch.full(shape, 3.0, dtype=dtype, requires_grad=True) for shape in shapes]
    opt = make_opt(params, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        sum((w.float() ** 2).sum() for w in params).backward()
        opt.step()
    return max(w.abs().max().item() for w in params), params, opt


def fit_matrix(make_opt, kwargs, dtype, steps, target):
    """Fit a matrix W, started at 0, to ``target`` by ‖W − T‖² in float32: ‖W − T‖/‖T‖."""
    W = torch.zeros(target.shape, dtype=dtype, requires_grad=True)
    opt = make_opt([W], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        ((W.float() - target) ** 2).sum().backward()
        opt.step()
    return ((W.float() - target).norm() / target.norm()).item(), [W], opt


def ill_conditioned_quadratic(make_opt, kwargs, dtype, steps):
    """Σ cᵢ wᵢ² with curvatures cᵢ from 1 to 100, from w = 3, by step(closure): the loss as a
    fraction of the starting loss."""
    scale = torch.logspace(0, 2, 8)
    w = torch.full((8,), 3.0, dtype=dtype, requires_grad=True)
    opt = make_opt([w], **kwargs)

    def closure():
        opt.zero_grad()
        loss = (scale * w.float() ** 2).sum()
        loss.backward()
        return loss

    start = closure().item()
    for _ in range(steps):
        opt.step(closure)
    return closure().item() / start, [w], opt


def embedding_from_2(make_opt, kwargs, dtype, steps):
    """Shrink a sparse nn.Embedding(6, 2) from 2.0 by Σ w²: the loss as a fraction of the
    starting loss."""
    emb = torch.nn.Embedding(6, 2, sparse=True).to(dtype)
    torch.nn.init.constant_(emb.weight, 2.0)
    opt = make_opt(emb.parameters(), **kwargs)
    rows = torch.arange(6)
    for _ in range(steps):
        opt.zero_grad()
        emb(rows).float().pow(2).sum().backward()
        opt.step()
    return emb.weight.float().pow(2).sum().item() / 24.0, [emb.weight], opt


def least_squares(make_opt, kwargs, steps):
    """min_W ½‖XW − Y‖²/n for a 64×6 design with condition number ~10 and a 6×3 solution:
    the factor by which the loss fell."""
    gen = torch.Generator().manual_seed(5)
    U, _ = torch.linalg.qr(torch.randn(64, 6, generator=gen, dtype=torch.float64))
    X = U * torch.logspace(0, 1, 6, dtype=torch.float64) * 8.0
    Y = X @ torch.randn(6, 3, generator=gen, dtype=torch.float64)
    W = torch.zeros(6, 3, dtype=torch.float64, requires_grad=True)
    opt = make_opt([W], **kwargs)

    def loss():
        return 0.5 * ((X @ W - Y) ** 2).sum() / 64

    start = loss().item()
    for _ in range(steps):
        opt.zero_grad()
        loss().backward()
        opt.step()
    return start / loss().item()


# --- one step from zero ------------------------------------------------------------------------

#: A gradient spanning nine orders of magnitude, for the one-step claims of the derivations.
GRADIENT_SCALES = torch.tensor([1e-6, -3e-2, 5.0, -700.0], dtype=torch.float64)


def one_step(cls, g, **kwargs):
    """θ₁ − θ₀ after one step from θ₀ = 0 with gradient g, and the optimizer."""
    theta = torch.zeros_like(g, requires_grad=True)
    opt = cls([theta], **kwargs)
    theta.grad = g.clone()
    opt.step()
    return theta.detach(), opt
