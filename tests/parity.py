"""Helpers for checking an optcore optimizer against its torch.optim counterpart.

Both optimizers drive identical copies of a small network in float64 through the same
sequence of mini-batches; after every step the parameters must agree to a relative error of
``rtol`` (1e-9 unless a test says why it needs otherwise).
"""

from __future__ import annotations

import copy
import io

import torch

RTOL = 1e-9


def tiny_net(seed: int = 0, dtype=torch.float64, device="cpu") -> torch.nn.Module:
    """A 2-layer tanh MLP with 4 inputs: small, but with matrices, vectors and curvature."""
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.to(dtype=dtype, device=device)


def batches(steps: int, seed: int = 1, dtype=torch.float64, device="cpu", size: int = 16):
    """A fixed list of (x, y) mini-batches of a noisy regression task."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(size, 4, generator=gen)
        y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(size, 1, generator=gen)
        out.append((x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)))
    return out


def param_groups(net, kwargs, groups: bool):
    """Either all parameters in one group, or weights and biases in two groups, the second
    with half the learning rate (to exercise per-group hyperparameters)."""
    if not groups:
        return net.parameters()
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    lr = kwargs.get("lr", 1e-3)
    return [{"params": weights}, {"params": biases, "lr": lr * 0.5}]


def objective(net, x, y, kwargs):
    """The mean squared error, negated when the optimizer maximizes, so that both settings
    solve the same well-behaved problem (maximizing +MSE would diverge and amplify rounding)."""
    loss = torch.nn.functional.mse_loss(net(x), y)
    return -loss if kwargs.get("maximize", False) else loss


def fit(net, opt, data, kwargs, use_closure=False):
    """Step ``opt`` once per (x, y) batch of ``data``; return the parameters after each step.
    With ``use_closure`` the loss is evaluated inside ``opt.step(closure)``."""
    snapshots = []
    for x, y in data:
        def closure(x=x, y=y):
            opt.zero_grad()
            loss = objective(net, x, y, kwargs)
            loss.backward()
            return loss

        if use_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        snapshots.append([p.detach().clone() for p in net.parameters()])
    return snapshots


def train(make_opt, kwargs, steps=25, *, groups=False, use_closure=False, seed=0,
          dtype=torch.float64, device="cpu", trajectory=True):
    """Run ``make_opt(params, **kwargs)`` for ``steps`` steps; return the list of parameter
    snapshots after each step (or only the last when ``trajectory`` is False), the model and
    the optimizer."""
    net = tiny_net(seed, dtype, device)
    opt = make_opt(param_groups(net, kwargs, groups), **kwargs)
    snapshots = fit(net, opt, batches(steps, dtype=dtype, device=device), kwargs, use_closure)
    return (snapshots if trajectory else snapshots[-1:]), net, opt


def max_rel_error(a_snapshots, b_snapshots) -> float:
    """Largest ‖a − b‖ / max(‖b‖, tiny) over all steps and tensors."""
    worst = 0.0
    for a_step, b_step in zip(a_snapshots, b_snapshots, strict=True):
        for a, b in zip(a_step, b_step, strict=True):
            denom = max(torch.linalg.vector_norm(b).item(), 1e-300)
            worst = max(worst, torch.linalg.vector_norm(a - b).item() / denom)
    return worst


def assert_matches_torch(ours, theirs, kwargs, steps=25, rtol=RTOL, **train_kwargs):
    """Assert that ``ours(params, **kwargs)`` follows ``theirs(params, **kwargs)`` step by step."""
    a, _, _ = train(ours, kwargs, steps, **train_kwargs)
    b, _, _ = train(theirs, kwargs, steps, **train_kwargs)
    err = max_rel_error(a, b)
    assert err <= rtol, f"{ours.__name__}{kwargs}: relative error {err:.3e} > {rtol:.0e}"
    # A parity test is worthless if neither optimizer moved the parameters.
    start = [p.detach() for p in tiny_net(train_kwargs.get("seed", 0)).parameters()]
    moved = max_rel_error([a[-1]], [start])
    assert moved > 1e-6, f"{ours.__name__}{kwargs}: parameters did not move ({moved:.1e})"
    return err


def assert_resume_is_exact(make_opt, kwargs, steps=20, split=9, **train_kwargs):
    """Interrupt a run after ``split`` steps, checkpoint model and optimizer through
    ``torch.save``, rebuild both from scratch, load, and continue: the result must be
    bit-identical to the uninterrupted run."""
    straight, _, _ = train(make_opt, kwargs, steps, trajectory=False, **train_kwargs)

    _, net, opt = train(make_opt, kwargs, split, trajectory=False, **train_kwargs)
    groups = train_kwargs.get("groups", False)
    net2, opt2 = reload_through_checkpoint(
        net, opt, lambda: tiny_net(train_kwargs.get("seed", 0)),
        lambda module: make_opt(param_groups(module, kwargs, groups), **kwargs))
    fit(net2, opt2, batches(steps)[split:], kwargs, train_kwargs.get("use_closure", False))
    resumed = [p.detach() for p in net2.parameters()]
    for a, b in zip(resumed, straight[-1], strict=True):
        assert torch.equal(a, b), f"{make_opt.__name__}{kwargs}: resumed run differs"


# --- complex parameters -----------------------------------------------------------------------


def complex_target():
    """Five fixed complex128 numbers to fit."""
    return torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))


def fit_complex(make_opt, kwargs, steps=20):
    """Fit a complex128 vector z, started at 0, to ``complex_target()`` by ‖z − target‖²;
    return z and the optimizer."""
    target = complex_target()
    z = torch.zeros(5, dtype=torch.complex128, requires_grad=True)
    opt = make_opt([z], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (z - target).abs().pow(2).sum().backward()
        opt.step()
    return z.detach(), opt


# --- sparse gradients: an embedding ----------------------------------------------------------


def assert_same_state_layout(ours, theirs):
    """Equal param_groups, and per parameter the same state keys in the same order, with the
    same types; tensors with the same shape, dtype and device, lists of the same length."""
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert list(a["state"][i]) == list(b["state"][i])  # same keys, same order
        for key, value in a["state"][i].items():
            other = b["state"][i][key]
            assert type(value) is type(other), key
            if isinstance(value, torch.Tensor):
                assert (value.shape, value.dtype, value.device) == (
                    other.shape, other.dtype, other.device), key
            if isinstance(value, list):
                assert len(value) == len(other), key


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


def embedding_problem(sparse=True):
    """An nn.Embedding(12, 3) in float64, random targets, and the generator of the batches."""
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.Embedding(12, 3, sparse=sparse, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(12, 3, generator=gen, dtype=torch.float64))
    target = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    return emb, target, gen


def embedding_step(opt, emb, target, gen, maximize=False):
    """One step on a batch of 6 random rows out of the first 8 (repeats likely; rows 8–11
    never appear)."""
    idx = torch.randint(0, 8, (6,), generator=gen)
    opt.zero_grad()
    loss = torch.tanh(emb(idx) - target[idx]).pow(2).sum()
    (-loss if maximize else loss).backward()
    opt.step()


def train_embedding(make_opt, kwargs, steps=20, sparse=True):
    """Fit the embedding for ``steps`` steps; return the weight after each step, the start
    and the optimizer."""
    emb, target, gen = embedding_problem(sparse)
    start = emb.weight.detach().clone()
    opt = make_opt(emb.parameters(), **kwargs)
    snapshots = []
    for _ in range(steps):
        embedding_step(opt, emb, target, gen, kwargs.get("maximize", False))
        snapshots.append([emb.weight.detach().clone()])
    return snapshots, start, opt


def assert_embedding_resume_is_exact(make_opt, kwargs, steps=15, split=7):
    """Checkpoint embedding and optimizer after ``split`` of ``steps`` steps, through
    torch.save and torch.load(weights_only=True), rebuild both and continue: the weights must
    equal the uninterrupted run's bit for bit (sparse state included)."""
    straight, _, _ = train_embedding(make_opt, kwargs, steps=steps)
    emb, target, gen = embedding_problem()
    opt = make_opt(emb.parameters(), **kwargs)
    for step in range(steps):
        if step == split:
            emb, opt = reload_through_checkpoint(
                emb, opt, lambda: torch.nn.Embedding(12, 3, sparse=True, dtype=torch.float64),
                lambda module: make_opt(module.parameters(), **kwargs))
        embedding_step(opt, emb, target, gen, kwargs.get("maximize", False))
    assert torch.equal(emb.weight.detach(), straight[-1][0])


# --- low precision ---------------------------------------------------------------------------


def minimize_squared_norm(make_opt, kwargs, dtype, steps=40):
    """Minimize ‖w‖² from w = 3 (8 coordinates) in ``dtype``, the loss computed in float32;
    return w and the optimizer for the caller's assertions."""
    w = torch.full((8,), 3.0, dtype=dtype, requires_grad=True)
    opt = make_opt([w], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (w.float() ** 2).sum().backward()
        opt.step()
    return w, opt
