"""optcore.memory measures the state bytes that each optimizer's algorithm says it keeps
(chapter 15, ch-memory): the expected bytes below are derived from each update rule's state, entry by
entry, for a two-layer network of 15 + 3 + 6 + 2 = 26 parameters."""

import pytest
import schedulefree
import torch

import optcore
from optcore.memory import state_breakdown, state_bytes
from optcore.optim.shampoo import statistics_dtype

SCALAR = 4  # a 0-d step counter (or Π_t, η_t, μ_t): float32 whatever the parameter's dtype


def numel(shape):
    return torch.Size(shape).numel()


def per_element(k, scalars=0):
    """k tensors shaped and typed like the parameter, plus ``scalars`` 0-d float32 tensors."""
    return lambda shape, dtype: k * dtype.itemsize * numel(shape) + scalars * SCALAR


def adafactor(shape, dtype):
    """A matrix keeps a row and a column of second moments (r + c numbers, not r·c); a vector
    keeps all of them. Plus the step counter."""
    size = sum(shape) if len(shape) == 2 else numel(shape)
    return size * dtype.itemsize + SCALAR


def shampoo(momentum):
    """A statistic H_i and its inverse root P_i, n_i × n_i, per mode, in statistics_dtype
    (float32 for bfloat16); the momentum buffer, if any, in the parameter's dtype."""
    def expected(shape, dtype):
        stats = 2 * sum(n * n for n in shape) * statistics_dtype(dtype).itemsize
        return SCALAR + stats + (dtype.itemsize * numel(shape) if momentum else 0)
    return expected


def soap(shape, dtype):
    """M and V like the parameter, and for a matrix a statistic and an eigenbasis n × n per
    mode (a vector keeps none: precondition_1d=False), all in statistics_dtype."""
    size = statistics_dtype(dtype).itemsize
    stats = 2 * sum(n * n for n in shape) if len(shape) > 1 else 0
    return SCALAR + (2 * numel(shape) + stats) * size


def adam8bit(block_size):
    """m and v as one uint8 code per element (2 bytes), one float32 absmax per block of each
    (2 · 4 · ⌈numel/block_size⌉ bytes, float32 for a bfloat16 parameter too: the scales are
    computed in float32), and the step counter: 2 + 8/block_size bytes per element for whole
    blocks."""
    def expected(shape, dtype):
        blocks = -(-numel(shape) // block_size)
        return 2 * numel(shape) + 2 * 4 * blocks + SCALAR
    return expected


# (id, optcore class, kwargs, expected bytes of one parameter's state, counterpart or None)
CASES = [
    ("SGD", optcore.SGD, dict(lr=0.01), per_element(0), torch.optim.SGD),
    ("SGD-momentum", optcore.SGD, dict(lr=0.01, momentum=0.9), per_element(1), torch.optim.SGD),
    ("Adagrad", optcore.Adagrad, dict(lr=0.01), per_element(1, 1), torch.optim.Adagrad),
    ("RMSprop", optcore.RMSprop, dict(lr=0.01), per_element(1, 1), torch.optim.RMSprop),
    ("RMSprop-centered", optcore.RMSprop, dict(lr=0.01, centered=True), per_element(2, 1),
     torch.optim.RMSprop),
    ("RMSprop-momentum", optcore.RMSprop, dict(lr=0.01, momentum=0.9), per_element(2, 1),
     torch.optim.RMSprop),
    ("RMSprop-centered-momentum", optcore.RMSprop, dict(lr=0.01, centered=True, momentum=0.9),
     per_element(3, 1), torch.optim.RMSprop),
    ("Adadelta", optcore.Adadelta, dict(), per_element(2, 1), torch.optim.Adadelta),
    ("Adam", optcore.Adam, dict(lr=0.01), per_element(2, 1), torch.optim.Adam),
    ("Adam-amsgrad", optcore.Adam, dict(lr=0.01, amsgrad=True), per_element(3, 1),
     torch.optim.Adam),
    ("AdamW", optcore.AdamW, dict(lr=0.01), per_element(2, 1), torch.optim.AdamW),
    ("Adamax", optcore.Adamax, dict(lr=0.01), per_element(2, 1), torch.optim.Adamax),
    ("NAdam", optcore.NAdam, dict(lr=0.01), per_element(2, 2), torch.optim.NAdam),
    ("RAdam", optcore.RAdam, dict(lr=0.01), per_element(2, 1), torch.optim.RAdam),
    ("Rprop", optcore.Rprop, dict(lr=0.01), per_element(2, 1), torch.optim.Rprop),
    ("ASGD", optcore.ASGD, dict(lr=0.01), per_element(1, 3), torch.optim.ASGD),
    ("Adafactor", optcore.Adafactor, dict(lr=0.01), adafactor, torch.optim.Adafactor),
    ("Lion", optcore.Lion, dict(lr=0.001), per_element(1), None),
    ("SignSGD", optcore.SignSGD, dict(lr=0.001), per_element(0), None),
    ("SignSGD-momentum", optcore.SignSGD, dict(lr=0.001, momentum=0.9), per_element(1), None),
    ("Shampoo", optcore.Shampoo, dict(lr=0.01), shampoo(momentum=False), None),
    ("Shampoo-momentum", optcore.Shampoo, dict(lr=0.01, momentum=0.9), shampoo(momentum=True),
     None),
    ("SOAP", optcore.SOAP, dict(lr=0.01, precondition_frequency=2), soap, None),
    ("SGDScheduleFree", optcore.SGDScheduleFree, dict(lr=0.1), per_element(1),
     schedulefree.SGDScheduleFree),
    ("AdamWScheduleFree", optcore.AdamWScheduleFree, dict(lr=0.01), per_element(2),
     schedulefree.AdamWScheduleFree),
    ("Muon", optcore.Muon, dict(lr=0.01), per_element(1), torch.optim.Muon),
    # Every tensor of the 5-3-2 network (15, 3, 6, 2 elements) quantized, in blocks of 64: one
    # block each. Tensors below the default min_8bit_size (4096) keep Adam's state.
    ("Adam8bit", optcore.Adam8bit, dict(lr=0.01, min_8bit_size=0, block_size=64),
     adam8bit(64), None),
    ("Adam8bit-small", optcore.Adam8bit, dict(lr=0.01), per_element(2, 1), None),
]
IDS = [case[0] for case in CASES]


def trained(cls, kwargs, dtype=torch.float32, steps=3):
    """cls on a seeded 5-3-2 tanh network (Muon: its two weight matrices only) after
    ``steps`` steps on one batch; returns the optimizer."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh(),
                              torch.nn.Linear(3, 2)).to(dtype)
    x, y = torch.randn(8, 5, dtype=dtype), torch.randn(8, 2, dtype=dtype)
    matrices_only = cls in (optcore.Muon, torch.optim.Muon)  # Muon refuses vectors
    params = [p for p in net.parameters() if p.ndim == 2 or not matrices_only]
    opt = cls(params, **kwargs)
    if hasattr(opt, "train"):  # schedule-free: steps are taken in train mode
        opt.train()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name, cls, kwargs, expected, counterpart", CASES, ids=IDS)
def test_state_bytes_equal_the_table_derived_from_the_algorithm(name, cls, kwargs, expected,
                                                                counterpart, dtype):
    opt = trained(cls, kwargs, dtype)
    rows = state_breakdown(opt)
    assert [row.bytes for row in rows] == [expected(row.shape, dtype) for row in rows]
    assert state_bytes(opt) == sum(expected(row.shape, dtype) for row in rows)


@pytest.mark.parametrize("name, cls, kwargs, expected, counterpart",
                         [case for case in CASES if case[-1] is not None],
                         ids=[case[0] for case in CASES if case[-1] is not None])
def test_counterpart_keeps_the_same_bytes_under_the_same_keys(name, cls, kwargs, expected,
                                                              counterpart):
    ours, theirs = trained(cls, kwargs), trained(counterpart, kwargs)
    assert ([row.entries for row in state_breakdown(ours)]
            == [row.entries for row in state_breakdown(theirs)])
    assert state_bytes(ours) == state_bytes(theirs)


def test_breakdown_names_each_parameter_and_charges_adam_two_floats_per_element():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(3, 2))
    opt = optcore.Adam(net.parameters())
    net(torch.randn(4, 5)).sum().backward()
    opt.step()
    rows = state_breakdown(opt, net)
    assert [(r.name, r.shape, r.numel, r.dtype) for r in rows] == [
        ("0.weight", (3, 5), 15, torch.float32), ("0.bias", (3,), 3, torch.float32),
        ("1.weight", (2, 3), 6, torch.float32), ("1.bias", (2,), 2, torch.float32)]
    for row in rows:
        assert row.entries == {"step": 4, "exp_avg": 4 * row.numel, "exp_avg_sq": 4 * row.numel}
        assert row.per_element == 8 + 4 / row.numel


def test_lbfgs_keeps_2mn_history_numbers_under_the_first_parameter():
    """L-BFGS on a strictly convex least-squares problem (n = 6 parameters, history m = 3):
    every pair has yᵀs = sᵀHs > 0 and is kept, so after 8 iterations the history is full.
    The state then holds d and the previous gradient (n each), m steps s and m gradient
    changes y (n each), m ρ's, m a's of the two-loop recursion and H_diag (0-d each); t is
    the float lr, n_iter, func_evals and prev_loss are Python numbers."""
    n, m = 6, 3
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 1)
    x, y = torch.randn(20, 5), torch.randn(20, 1)
    results = {}
    for cls in (optcore.LBFGS, torch.optim.LBFGS):
        net_copy = torch.nn.Linear(5, 1)
        net_copy.load_state_dict(net.state_dict())
        opt = cls(net_copy.parameters(), lr=1, max_iter=4, history_size=m)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net_copy(x), y)
            loss.backward()
            return loss

        assert state_bytes(opt) == 0
        for _ in range(2):
            opt.step(closure)
        state = opt.state[net_copy.weight]
        assert len(state["old_dirs"]) == m and None not in state["al"]
        rows = state_breakdown(opt)
        assert rows[0].bytes == 4 * (n * (2 + 2 * m) + 2 * m + 1)
        assert rows[1].entries == {}
        results[cls] = [row.entries for row in rows]
    assert results[optcore.LBFGS] == results[torch.optim.LBFGS]


def test_sparse_adam_keeps_two_dense_tensors_and_an_integer_step():
    for cls in (optcore.SparseAdam, torch.optim.SparseAdam):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(10, 4, sparse=True)
        opt = cls(emb.parameters())
        emb(torch.tensor([1, 3])).sum().backward()
        opt.step()
        assert state_bytes(opt) == 2 * 4 * 40


def test_bfloat16_halves_state_kept_in_the_parameters_dtype_only():
    """Lion keeps only m, in the parameter's dtype: half the bytes. SOAP and Shampoo (without
    momentum) keep everything in float32 for a bfloat16 parameter: the same bytes."""
    lion = [state_bytes(trained(optcore.Lion, dict(lr=1e-3), dtype))
            for dtype in (torch.float32, torch.bfloat16)]
    assert lion[1] * 2 == lion[0] == 4 * 26
    for cls in (optcore.SOAP, optcore.Shampoo):
        assert (state_bytes(trained(cls, dict(lr=0.01), torch.bfloat16))
                == state_bytes(trained(cls, dict(lr=0.01), torch.float32)))


def test_shared_storage_is_counted_once_and_a_view_costs_its_whole_buffer():
    opt = trained(optcore.Adam, dict(lr=0.01))
    before = state_bytes(opt)
    w, b = opt.param_groups[0]["params"][:2]
    m = opt.state[w]["exp_avg"]
    opt.state[w]["alias"] = m  # the same tensor
    opt.state[w]["row"] = m[0]  # a view into it
    opt.state[b]["borrowed"] = [None, m.view(-1)]  # another parameter's, inside a list
    assert state_bytes(opt) == before
    assert state_breakdown(opt)[1].entries["borrowed"] == 0
    opt.state[w]["copy"] = m.clone()
    opt.state[b]["slice"] = torch.zeros(100)[:2]  # keeps all 100 floats alive
    assert state_bytes(opt) == before + 4 * 15 + 4 * 100


@pytest.mark.parametrize("name, cls, kwargs, expected, counterpart", CASES, ids=IDS)
def test_an_optimizer_that_has_not_stepped_holds_no_bytes_except_adagrad(name, cls, kwargs,
                                                                          expected, counterpart):
    """State is created on the first step, except Adagrad's, which, as torch.optim's, is
    created with the optimizer (G₀ = initial_accumulator_value): all of it, before any step."""
    opt = trained(cls, kwargs, steps=0)
    rows = state_breakdown(opt)
    assert [row.numel for row in rows] == ([15, 6] if cls is optcore.Muon else [15, 3, 6, 2])
    if cls is optcore.Adagrad:
        assert [row.bytes for row in rows] == [expected(row.shape, row.dtype) for row in rows]
        assert state_bytes(opt) == state_bytes(trained(torch.optim.Adagrad, kwargs, steps=0))
    else:
        assert state_bytes(opt) == 0 and all(row.entries == {} for row in rows)
