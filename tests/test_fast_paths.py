"""optcore's fast paths: ``foreach=True`` (optcore/optim/multi_tensor.py) and ``fused=True``
(optcore/optim/fused.py) against the per-tensor loop.

Every run replays one fixed stream of gradients, so the paths see the same inputs at every
step and any difference is the paths' own. The multi-tensor path performs the loop's
operations in the loop's order: equal bit for bit. The compiled path is not (the compiler
contracts multiplies and adds into FMAs and reorders a division, the bias corrections come
from float64 tensors), so it is held to a derived bound (``FUSED_BOUND``). Compiling costs
seconds per layout, so the compiled cases are few and share one layout, which
optcore.optim.fused compiles once per process.
"""

import copy
import inspect

import pytest
import torch

import optcore
from optcore.optim import fused

STEPS = 6
#: Two float32 tensors and a float64 one in one group: the paths split it by dtype.
SHAPES = [((6, 5), torch.float32), ((7,), torch.float32), ((4, 3), torch.float64)]
MATRICES = [((6, 5), torch.float32), ((4, 7), torch.float32), ((3, 3), torch.float64)]

#: (class, arguments, shapes): every argument that changes an optimizer's math, on or off.
CASES = [
    (optcore.SGD, dict(lr=0.05), SHAPES),
    (optcore.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.1), SHAPES),
    (optcore.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True), SHAPES),
    (optcore.Adam, dict(lr=0.01), SHAPES),
    (optcore.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True), SHAPES),
    (optcore.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True), SHAPES),
    (optcore.Adam, dict(lr=torch.tensor(0.01), betas=(torch.tensor(0.8), torch.tensor(0.99)),
                        weight_decay=0.1, decoupled_weight_decay=True), SHAPES),
    (optcore.RMSprop, dict(lr=0.01), SHAPES),
    (optcore.RMSprop, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1), SHAPES),
    (optcore.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1,
                           initial_accumulator_value=0.3), SHAPES),
    (optcore.Lion, dict(lr=0.01, weight_decay=0.5, maximize=True), SHAPES),
    (optcore.Lion, dict(lr=0.01, betas=(0.5, 0.9)), SHAPES),
    (optcore.Muon, dict(lr=0.02), MATRICES),
    (optcore.Muon, dict(lr=0.02, nesterov=False, weight_decay=0.3,
                        adjust_lr_fn="match_rms_adamw"), MATRICES),
]


def case_id(case):
    cls, kwargs, _ = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items() if k != "lr")


def stream(shapes, steps=STEPS, seed=0):
    """Starting parameters and ``steps`` lists of gradients, seeded."""
    gen = torch.Generator().manual_seed(seed)
    def draw(shape, dtype):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    start = [draw(shape, dtype) for shape, dtype in shapes]
    grads = [[draw(shape, dtype) for shape, dtype in shapes] for _ in range(steps)]
    return start, grads


def make(cls, kwargs, params, path):
    """The optimizer on one group, its path chosen by the group's switch (RMSprop and Muon
    have no constructor argument for every path: the group key selects it either way)."""
    group = {"params": params}
    if path:
        group[path] = True
    return cls([group], **kwargs)


def replay(cls, kwargs, shapes, path=None, steps=STEPS, opt_from=None):
    """The parameters after each step of the fixed stream, and the optimizer."""
    start, grads = stream(shapes, steps)
    params = [p.clone().requires_grad_() for p in start]
    opt = make(cls, kwargs, params, path)
    if opt_from is not None:
        opt.load_state_dict(opt_from)
    trajectory = [[p.detach().clone() for p in params]]
    for g in grads:
        for p, g_i in zip(params, g):
            p.grad = g_i.clone()
        opt.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory, opt


# --- foreach: bit for bit ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=map(case_id, CASES))
def test_foreach_equals_the_loop_bit_for_bit_after_each_of_6_steps(case):
    """Two dtypes in one group, several shapes: every parameter after every step, and the
    final state, are the loop's to the last bit; and the run moved the parameters."""
    cls, kwargs, shapes = case
    loop, opt_loop = replay(cls, kwargs, shapes)
    multi, opt_multi = replay(cls, kwargs, shapes, "foreach")
    for a_step, b_step in zip(loop, multi, strict=True):
        for a, b in zip(a_step, b_step, strict=True):
            assert torch.equal(a, b)
    assert all(not torch.equal(a, b) for a, b in zip(loop[0], loop[-1]))
    assert_same_state(opt_loop, opt_multi, exact=True)


def assert_same_state(a, b, exact):
    """Same keys in the same order, same shapes, dtypes and devices; equal values if
    ``exact``."""
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert list(sa[i]) == list(sb[i])
        for key in sa[i]:
            x, y = sa[i][key], sb[i][key]
            assert (x.shape, x.dtype, x.device) == (y.shape, y.dtype, y.device), key
            if exact:
                assert torch.equal(x, y), key


# --- fused: within a derived bound -------------------------------------------------------

#: Compiled cases: one per optimizer, with the arguments that add the most operations.
FUSED_CASES = [CASES[2], CASES[4], CASES[8], CASES[9], CASES[10], CASES[12]]
FUSED_SHAPES = [((6, 5), torch.float32), ((7,), torch.float32)]
FUSED_MATRICES = [((6, 5), torch.float32), ((4, 7), torch.float32)]

#: The bound, in units of float32's eps. One step of the compiled path computes the
#: update Δ from the same inputs with at most a few roundings done differently: an FMA in
#: place of a multiply and an add (one rounding fewer) in the moments, the denominator and
#: the step, and a step size s = −η/(1 − β₁ᵗ) rounded once more on its way from float64.
#: Counting at most C = 8 such roundings, Δ differs by at most C·eps·|Δ|, and the sum
#: θ + Δ, rounded, by at most that plus one rounding of θ (eps·|θ|). Differences in θ from
#: earlier steps carry over unchanged (the gradients are replayed, not recomputed), those
#: in the moments decay, so after T steps
#:     |θ_fused − θ_loop| ≤ eps · (T · max_t |θ_t| + C · Σ_t |Δ_t|),
#: element by element, with θ_t and Δ_t from the loop.
FUSED_ROUNDINGS = 8


def fused_excess(loop, fast):
    """max over elements of |θ_fused − θ_loop| / (the bound above): ≤ 1 where it holds."""
    worst = 0.0
    for i in range(len(loop[0])):
        path = torch.stack([step[i] for step in loop])
        eps = torch.finfo(path.dtype).eps
        bound = eps * (len(loop) * path.abs().amax(0) +
                       FUSED_ROUNDINGS * path.diff(dim=0).abs().sum(0))
        worst = max(worst, ((fast[-1][i] - loop[-1][i]).abs() / bound).max().item())
    return worst


@pytest.mark.parametrize("case", FUSED_CASES, ids=map(case_id, FUSED_CASES))
def test_fused_agrees_with_the_loop_within_the_derived_bound(case):
    """After 6 steps the compiled path is within the bound of ``FUSED_ROUNDINGS``; Adam's
    (the most operations, bias corrections from float64 tensors) really differs from the
    loop, so the bound is not met trivially by equal results."""
    cls, kwargs, shapes = case
    shapes = FUSED_MATRICES if shapes is MATRICES else FUSED_SHAPES
    loop, opt_loop = replay(cls, kwargs, shapes)
    fast, opt_fast = replay(cls, kwargs, shapes, "fused")
    assert fused_excess(loop, fast) <= 1.0
    assert all(not torch.equal(a, b) for a, b in zip(loop[0], loop[-1]))
    assert_same_state(opt_loop, opt_fast, exact=False)
    if cls is optcore.Adam:
        assert any(not torch.equal(a, b) for a, b in zip(loop[-1], fast[-1]))


def test_fused_checkpoint_loads_into_the_loop_and_continues_exactly():
    """Save after 3 compiled steps, load into a fresh for-loop Adam, continue 3 steps: the
    same parameters, bit for bit, as switching the same optimizer to the loop after 3
    steps. The checkpoint has the loop's layout, and torch.optim.Adam(fused=True)'s."""
    kwargs = CASES[4][1]
    start, grads = stream(FUSED_SHAPES)
    runs = []
    for reload in (False, True):
        params = [p.clone().requires_grad_() for p in start]
        opt = make(optcore.Adam, kwargs, params, "fused")
        for t, g in enumerate(grads):
            if t == 3:
                saved = copy.deepcopy(opt.state_dict())
                opt.param_groups[0]["fused"] = False
                if reload:
                    opt = make(optcore.Adam, kwargs, params, None)
                    opt.load_state_dict(saved)
                    opt.param_groups[0]["fused"] = False
            for p, g_i in zip(params, g):
                p.grad = g_i.clone()
            opt.step()
        runs.append([p.detach().clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    theirs = torch.optim.Adam([p.clone().requires_grad_() for p in start], fused=True,
                              **kwargs)
    _, ours = replay(optcore.Adam, kwargs, FUSED_SHAPES, "fused", steps=1)
    for p, g in zip(theirs.param_groups[0]["params"], grads[0]):
        p.grad = g.clone()
    theirs.step()
    mine, other = ours.state_dict()["state"], theirs.state_dict()["state"]
    for i in mine:
        assert list(mine[i]) == list(other[i])
        for key in mine[i]:
            x, y = mine[i][key], other[i][key]
            assert (x.shape, x.dtype, x.device) == (y.shape, y.dtype, y.device), key


def test_a_scheduler_changing_lr_does_not_recompile():
    """The learning rate enters the compiled graph as a tensor: 8 steps under a StepLR that
    halves it every 2 steps compile at most once (the first step, unless an earlier test
    compiled this layout), and no step after the first compiles anything."""
    from torch._dynamo.utils import counters
    params = [torch.randn(shape, dtype=dtype).requires_grad_() for shape, dtype in FUSED_SHAPES]
    opt = make(optcore.Adam, CASES[4][1], params, "fused")
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    graphs = []
    lrs = []
    for _ in range(8):
        for p in params:
            p.grad = torch.ones_like(p)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        graphs.append(counters["stats"]["unique_graphs"])
    assert lrs[-1] == lrs[0] / 8  # the steps ran at four learning rates
    assert len(set(graphs[1:])) == 1  # no compilation after the first step
    assert graphs[-1] - graphs[0] == 0


FUSED_FUNCTIONS = {  # (tensors, step counters, one number per tensor, lr) -> arguments
    "adam_fused": lambda ts, steps, vec, lr: (ts, ts, ts, ts, ts, vec, vec, lr, dict(
        beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, amsgrad=True, decoupled=False)),
    "sgd_fused": lambda ts, steps, vec, lr: (ts, ts, ts, lr, dict(
        momentum=0.9, dampening=0.0, weight_decay=0.1, nesterov=True)),
    "rmsprop_fused": lambda ts, steps, vec, lr: (ts, ts, ts, ts, ts, steps, lr, dict(
        alpha=0.99, eps=1e-8, weight_decay=0.1, momentum=0.9, centered=True)),
    "adagrad_fused": lambda ts, steps, vec, lr: (ts, ts, ts, vec, dict(
        weight_decay=0.1, eps=1e-10)),
    "lion_fused": lambda ts, steps, vec, lr: (ts, ts, ts, lr, dict(
        beta1=0.9, beta2=0.99, weight_decay=0.1)),
    "muon_momentum_fused": lambda ts, steps, vec, lr: (ts, ts, dict(
        momentum=0.95, nesterov=True)),
}


@pytest.mark.parametrize("name", FUSED_FUNCTIONS)
def test_each_fused_function_is_one_graph_without_breaks(name):
    """torch._dynamo.explain traces each compiled function, with every flag that adds
    operations on, into exactly one graph: no .item(), no Python branch on a tensor."""
    def tensors():
        return [torch.randn(3, 2), torch.randn(4, 2)]
    *args, kwargs = FUSED_FUNCTIONS[name](
        tensors(), [torch.tensor(1.0), torch.tensor(1.0)], torch.tensor([0.5, 0.5]),
        torch.tensor(0.01, dtype=torch.float64))
    args = [[t.clone() for t in a] if isinstance(a, list) else a for a in args]
    explanation = torch._dynamo.explain(getattr(fused, name))(*args, **kwargs)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)


# --- refusals ----------------------------------------------------------------------------


REFUSED = [(cls, flag) for cls in (optcore.Adam, optcore.SGD, optcore.RMSprop, optcore.Adagrad)
           for flag in ("capturable", "differentiable")
           if flag in inspect.signature(cls.__init__).parameters]


@pytest.mark.parametrize("cls, flag", REFUSED, ids=[f"{c.__name__}-{f}" for c, f in REFUSED])
def test_capturable_and_differentiable_are_refused_saying_why(cls, flag):
    """Neither is implemented: True raises at construction, naming the flag and the reason
    (the host-side step count; no gradient through an in-place no_grad step)."""
    reason = {"capturable": "CUDA graph", "differentiable": "no gradient flows"}[flag]
    with pytest.raises(NotImplementedError, match=f"{flag}=True.*{reason}"):
        cls([torch.ones(2, requires_grad=True)], **{flag: True})


@pytest.mark.parametrize("path", ["foreach", "fused"])
def test_fast_paths_refuse_complex_parameters_and_the_loop_still_takes_them(path):
    z = torch.ones(2, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(NotImplementedError, match=f"{path}=True.*complex"):
        optcore.Adam([z], **{path: True})
    optcore.Adam([z], **{path: False})


@pytest.mark.parametrize("path", ["foreach", "fused"])
def test_optimizers_without_the_path_still_refuse_it(path):
    with pytest.raises(NotImplementedError, match=f"{path}=True"):
        optcore.NAdam([{"params": [torch.ones(2, requires_grad=True)], path: True}])


def test_foreach_sgd_takes_a_sparse_gradient_through_the_loop():
    """A sparse gradient in a foreach group goes through the per-tensor update (as in
    torch.optim.SGD), the dense ones through the list: the same as the loop, bit for bit."""
    results = []
    for path in (None, "foreach"):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(5, 3, sparse=True)
        w = torch.randn(3, requires_grad=True)
        opt = make(optcore.SGD, dict(lr=0.1, momentum=0.9), [emb.weight, w], path)
        for _ in range(3):
            opt.zero_grad()
            (emb(torch.tensor([0, 2, 2])).sum(0) * w).sum().backward()
            opt.step()
        results.append((emb.weight.detach().clone(), w.detach().clone()))
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_a_long_list_runs_in_chunks_that_share_one_compiled_graph(monkeypatch):
    """With CHUNK = 2, four tensors run as two chunks of two through one compiled graph
    (sizes are symbols: the chunks' shapes need not match, nor need equal sizes stay
    equal) and give, bit for bit, what two separate 2-tensor optimizers give."""
    monkeypatch.setattr(fused, "CHUNK", 2)
    kwargs = CASES[4][1]
    shapes = [((6, 5), torch.float32), ((7,), torch.float32),
              ((5, 5), torch.float32), ((11,), torch.float32)]
    from torch._dynamo.utils import counters
    together, _ = replay(optcore.Adam, kwargs, shapes, "fused")
    compiles = (len(fused.COMPILES), counters["stats"]["unique_graphs"])
    start, grads = stream(shapes)
    apart = [p.clone().requires_grad_() for p in start]
    opts = [make(optcore.Adam, kwargs, apart[:2], "fused"),
            make(optcore.Adam, kwargs, apart[2:], "fused")]
    for g in grads:
        for p, g_i in zip(apart, g):
            p.grad = g_i.clone()
        for opt in opts:
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(together[-1], apart))
    assert (len(fused.COMPILES), counters["stats"]["unique_graphs"]) == compiles


def test_foreach_on_a_cpu_in_cache_sized_runs_is_still_the_loop_bit_for_bit(monkeypatch):
    """On a CPU the multi-tensor update runs on runs of tensors that fit in the cache
    together; with a budget of 35 elements the group (30, 7 and 30 float32 elements, and a
    float64 tensor) is cut into three runs, and the result is the loop's, bit for bit."""
    from optcore.optim import base
    monkeypatch.setattr(base, "CPU_FOREACH_ELEMENTS", 35)
    shapes = [((6, 5), torch.float32), ((7,), torch.float32), ((5, 6), torch.float32),
              ((4, 3), torch.float64)]
    assert base.cache_sized([0, 1, 2], [torch.empty(s) for s, _ in shapes]) == [[0], [1], [2]]
    loop, _ = replay(optcore.Adam, CASES[4][1], shapes)
    multi, _ = replay(optcore.Adam, CASES[4][1], shapes, "foreach")
    assert all(torch.equal(a, b) for a, b in zip(loop[-1], multi[-1], strict=True))
