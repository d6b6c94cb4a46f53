"""The contract every optcore optimizer keeps, checked over the table in optim_db.py.

Each check runs for every optimizer it applies to: float64 parity over the argument grid;
two groups, a closure and a tensor learning rate; bit-exact resume and torch's state_dict
layout; complex parameters (parity, or a clear refusal); refusals of invalid arguments and of
speed flags optcore does not implement; float32 runs bitwise equal to torch's single-tensor
path; a step that fails midway or meets a non-finite gradient; low-precision runs.
"""

import copy
import inspect
import math
import re
from functools import partial

import pytest
import torch

from optcore.training import max_rel_error, regression_batches
from optim_db import COUNTERPARTS, INFOS, cases, each
from parity import (RTOL, assert_embedding_resume_is_exact, assert_matches,
                    assert_resume_is_exact, assert_same_state_layout, assert_same_state_values,
                    complex_target, fit_complex, train_embedding)

# torch.optim.Adagrad's own sparse path builds tensors without saying whether to check them.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")

SPEED_FLAGS = ("foreach", "fused", "capturable", "differentiable")


def torch_arguments(cls):
    return set(inspect.signature(cls.__init__).parameters)


# --- 1. float64 parity over the grid ----------------------------------------------------------


@pytest.mark.parametrize("info, kwargs", cases("grid"))
def test_float64_matches_reference_after_each_of_25_steps_to_1e_9_or_tighter(info, kwargs):
    """Every argument value and combination in the grid: after every step (25; LBFGS 20
    closure steps, each of several inner iterations) the parameters agree with the torch
    counterpart or the reference to ``info.rtol`` (1e-9; 1e-12 for the sign methods), and
    they moved; with a torch counterpart, the final state (moments, averages, histories)
    agrees too."""
    ours, theirs = assert_matches(info.cls, info.reference, kwargs, info.steps, info.rtol,
                                  info.moved, **info.train_kwargs)
    if info.is_counterpart:
        assert_same_state_values(ours.optimizer, theirs.optimizer, info.rtol)


@pytest.mark.parametrize("info, kwargs", cases("sparse_grid"))
def test_sparse_embedding_matches_torch_to_1e_9_over_20_steps_and_leaves_unseen_rows(info,
                                                                                     kwargs):
    """nn.Embedding(12, 3, sparse=True), batches of 6 of the first 8 rows: the weights agree
    with torch to 1e-9 after every step, the 4 rows never seen do not move, every seen row
    moved by more than 1e-3, and the state has torch's layout (a sparse momentum buffer where
    torch's is sparse) and values."""
    ours, start = train_embedding(info.cls, kwargs)
    theirs, _ = train_embedding(info.reference, kwargs)
    assert max_rel_error(ours, theirs) <= RTOL
    final = ours.snapshots[-1][0]
    assert torch.equal(final[8:], start[8:])
    assert (final[:8] - start[:8]).abs().min() > 1e-3
    assert_same_state_layout(ours.optimizer, theirs.optimizer)
    assert_same_state_values(ours.optimizer, theirs.optimizer)


# --- 2. two groups, a closure, a one-element tensor lr ----------------------------------------


@pytest.mark.parametrize("info, kwargs", cases("groups"))
def test_two_groups_closure_and_tensor_lr_match_reference_over_25_steps(info, kwargs):
    """Weights and biases in two groups (the second at half the learning rate), the loss
    evaluated in step(closure), a 0-d or 1-element tensor lr: agreement to ``info.rtol``."""
    assert_matches(info.cls, info.reference, kwargs, info.steps, info.rtol, info.moved,
                   **dict(info.train_kwargs, closure=True), groups=True)


# --- 3. resume and state layout ---------------------------------------------------------------


@pytest.mark.parametrize("info, kwargs", cases("resume"))
def test_resume_from_checkpoint_after_8_of_20_steps_is_bit_exact(info, kwargs):
    """Model and optimizer through torch.save and torch.load(weights_only=True) into fresh
    objects after step 8: the next 12 steps end bit for bit where the uninterrupted run does."""
    previous = torch.get_default_dtype()
    if info.resume_default_dtype is not None:  # see the table's resume_reason
        torch.set_default_dtype(info.resume_default_dtype)
    try:
        assert_resume_is_exact(info.cls, kwargs, steps=20, split=8, **info.train_kwargs)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("info, kwargs", cases("sparse_resume"))
def test_sparse_state_resumes_bit_exactly_after_7_of_15_steps(info, kwargs):
    assert_embedding_resume_is_exact(info.cls, kwargs)


@pytest.mark.parametrize("info, kwargs", cases("layout", COUNTERPARTS))
def test_state_dict_after_3_steps_has_torchs_layout_and_values_to_1e_9(info, kwargs):
    """In one group and in two (where the optimizer takes groups): the same param_groups, the
    same state keys in the same order, the same types, shapes, dtypes and layouts, and values
    within 1e-9."""
    for groups in [False, True] if info.groups else [False]:
        ours = info.train(info.cls, kwargs, 3, groups=groups).optimizer
        theirs = info.train(info.reference, kwargs, 3, groups=groups).optimizer
        assert_same_state_layout(ours, theirs)
        assert_same_state_values(ours, theirs)


REFERENCE_LAYOUTS = [pytest.param(info, kwargs, keys, id=f"{info.name}-{kwargs}")
                     for info in INFOS if not info.is_counterpart
                     for kwargs, keys in zip(info.layout, info.state_keys, strict=True)]


@pytest.mark.parametrize("info, kwargs, keys", REFERENCE_LAYOUTS)
def test_state_dict_after_3_steps_holds_the_arguments_and_the_stated_state(info, kwargs, keys):
    """Without a torch counterpart to copy, in one group and in two: each group holds exactly
    the constructor's arguments, each parameter's state exactly the stated keys (no entry when
    there are none), and every state tensor but the 0-d step is shaped like its parameter."""
    for groups in (False, True):
        opt = info.train(info.cls, kwargs, 3, groups=groups).optimizer
        sd = opt.state_dict()
        assert all(group.keys() == set(info.arguments) | {"params"}
                   for group in sd["param_groups"])
        params = [p for group in opt.param_groups for p in group["params"]]  # state_dict's order
        # A stateless setting (SignSGD without momentum) keeps no entry, as torch's plain SGD.
        assert list(sd["state"]) == (list(range(len(params))) if keys else [])
        for p, state in zip(params if keys else [], sd["state"].values(), strict=True):
            assert state.keys() == keys
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    assert value.shape == (() if key == "step" else p.shape), key


# --- 4. complex parameters --------------------------------------------------------------------


@pytest.mark.parametrize("info", each())
def test_supports_complex_attribute_says_what_the_table_says(info):
    """The class attribute decides which of the two tests below applies; the table holds the
    expected value, so that a class cannot drop complex support by claiming False."""
    assert getattr(info.cls, "supports_complex", None) is info.supports_complex
    assert bool(info.complex) == info.supports_complex  # the table tests what it claims


@pytest.mark.parametrize("info, kwargs", cases("complex"))
def test_complex128_parameters_match_reference_to_1e_12(info, kwargs):
    """A complex128 vector fitted to a complex target (20 steps; the sign methods 30; LBFGS
    5 closure steps on a quartic): z agrees with the reference to 1e-12 elementwise, it got
    closer to the target, and the state is stored complex, as torch stores it."""
    kw = dict(steps=info.complex_steps, quartic=info.complex_quartic,
              closure=info.closure_required)
    ours, opt = fit_complex(info.cls, kwargs, **kw)
    theirs, ref = fit_complex(info.reference, kwargs, **kw)
    torch.testing.assert_close(ours, theirs, rtol=info.complex_rtol, atol=0)
    target = complex_target()
    assert (ours - target).abs().max() < info.complex_progress * target.abs().max()
    if info.is_counterpart:
        assert_same_state_layout(opt, ref)
        assert_same_state_values(opt, ref, info.complex_rtol)
    else:
        state = next(iter(opt.state.values()), {})
        assert all(v.dtype == torch.complex128 and v.shape == (5,) for v in state.values()
                   if isinstance(v, torch.Tensor) and v.dim() > 0)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("info", each(where=lambda info: not info.supports_complex))
def test_complex_parameters_are_refused_naming_the_optimizer(info, dtype):
    """A clear error that names the optimizer and says "complex", at construction or at the
    first step, never a silent run on real pairs."""
    z = torch.zeros(3, 2, dtype=dtype, requires_grad=True)
    grad = torch.ones_like(z)
    with pytest.raises(ValueError, match="complex") as caught:
        opt = info.cls([z])
        z.grad = grad.to_sparse() if info.sparse_only else grad
        opt.step()
    assert info.name in str(caught.value)


# --- 5. refusals ------------------------------------------------------------------------------


REFUSALS = [pytest.param(info, refusal, id=f"{info.name}-{refusal.kwargs}")
            for info in INFOS for refusal in info.refusals]


@pytest.mark.parametrize("info, refusal", REFUSALS)
def test_invalid_hyperparameter_raises_value_error_naming_argument_and_value(info, refusal):
    """"Invalid lr: -0.1 (expected ...)"; the torch counterpart refuses the value too (in its
    own words; a 2-element beta makes torch raise RuntimeError from bool())."""
    message = f"Invalid {refusal.name}: {refusal.value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        info.cls([torch.zeros(2, 2, requires_grad=True)], **refusal.kwargs)
    if info.is_counterpart and refusal.torch_refuses:
        with pytest.raises((ValueError, RuntimeError)):
            info.reference([torch.zeros(2, 2, requires_grad=True)], **refusal.kwargs)


@pytest.mark.parametrize("info", each(where=lambda info: "betas" in info.arguments))
@pytest.mark.parametrize("betas", [(0.9,), (0.9, 0.99, 0.999)], ids=["1 beta", "3 betas"])
def test_betas_of_length_1_or_3_are_refused_as_not_a_pair(info, betas):
    with pytest.raises(ValueError, match="betas must be a pair"):
        info.cls([torch.zeros(2, 2, requires_grad=True)], betas=betas)


@pytest.mark.parametrize("info", each(where=lambda info: info.refuses_sparse_grad))
def test_sparse_gradient_is_refused_with_runtime_error(info):
    """An nn.Embedding(sparse=True) gradient: RuntimeError saying so, as torch.optim raises."""
    emb = torch.nn.Embedding(5, 2, sparse=True, dtype=torch.float64)
    opt = info.cls(emb.parameters(), lr=0.1)

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1, 3])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        if info.closure_required:
            opt.step(closure)
        else:
            closure()
            opt.step()


# --- 6. speed flags: refused when True (unless implemented), harmless when None or False ------


FLAG_CASES = [pytest.param(info, flag, id=f"{info.name}-{flag}")
              for info in INFOS for flag in SPEED_FLAGS
              if flag in info.arguments and flag not in info.cls.fast_paths]


@pytest.mark.parametrize("info, flag", FLAG_CASES)
def test_speed_flag_true_is_refused_naming_it_never_ignored(info, flag):
    """A flag asking for a path the optimizer does not have (foreach, fused, capturable,
    differentiable; tests/test_fast_paths.py checks the paths it has) raises ValueError or
    NotImplementedError naming it, at construction or at the first step."""
    net = info.net()
    with pytest.raises((ValueError, NotImplementedError), match=flag):
        opt = info.cls(net.parameters(), **{flag: True})
        sum(p.sum() for p in net.parameters()).backward()
        opt.step()


@pytest.mark.parametrize("info", each(COUNTERPARTS, where=lambda info: {"foreach", "fused"}
                                      <= torch_arguments(info.reference)))
def test_foreach_and_fused_together_raise_runtime_error_as_torch(info):
    message = re.escape("`fused` and `foreach` cannot be `True` together.")
    for cls in (info.reference, info.cls):
        with pytest.raises(RuntimeError, match=message):
            cls(info.net().parameters(), foreach=True, fused=True)


@pytest.mark.parametrize("off", [None, False], ids=["None", "False"])
@pytest.mark.parametrize("info", each(where=lambda info: set(SPEED_FLAGS) & set(info.arguments)))
def test_speed_flags_none_or_false_change_nothing_over_5_steps(info, off):
    """foreach and fused None or False, capturable and differentiable False: bit for bit the
    run with the defaults."""
    flags = {flag: off if flag in ("foreach", "fused") else False
             for flag in SPEED_FLAGS if flag in info.arguments}
    plain = info.train(info.cls, info.representative, 5)
    flagged = info.train(info.cls, dict(info.representative, **flags), 5)
    assert all(torch.equal(a, b) for sa, sb in zip(plain.snapshots, flagged.snapshots, strict=True)
               for a, b in zip(sa, sb, strict=True))


# --- 7. float32: bitwise equal to torch's single-tensor path ----------------------------------


def ulps(a, b):
    """max |a − b| in units in the last place of b, an ulp taken as eps·|b| (float32's eps;
    within a factor 2 of the true spacing, and never zero: |b| is floored at the smallest
    normal number)."""
    a, b = a.double(), b.double()
    unit = torch.finfo(torch.float32).eps * b.abs().clamp_min(torch.finfo(torch.float32).tiny)
    return ((a - b).abs() / unit).max().item()


def single_tensor(info):
    """The torch counterpart forced onto its single-tensor path (foreach=False; fused stays
    at its default None, which is not fused)."""
    if "foreach" in torch_arguments(info.reference):
        return partial(info.reference, foreach=False)
    return info.reference


@pytest.mark.parametrize("info, kwargs", cases("float32", COUNTERPARTS))
def test_float32_run_of_20_steps_equals_torchs_single_tensor_path_bitwise(info, kwargs):
    """float32 network and batches, 20 steps: every parameter equals torch's after every step
    (torch.equal), unless the table states an ulp bound and why."""
    ours = info.train(info.cls, kwargs, 20, dtype=torch.float32)
    theirs = info.train(single_tensor(info), kwargs, 20, dtype=torch.float32)
    for t, (sa, sb) in enumerate(zip(ours.snapshots, theirs.snapshots, strict=True), start=1):
        for i, (a, b) in enumerate(zip(sa, sb, strict=True)):
            assert a.dtype == torch.float32
            if info.ulps == 0:
                assert torch.equal(a, b), f"step {t}, parameter {i}: {ulps(a, b):.1f} ulps apart"
            else:
                assert ulps(a, b) <= info.ulps, f"step {t}, parameter {i} ({info.ulps_reason})"
    assert not torch.equal(ours.snapshots[-1][0], ours.snapshots[0][0])


# --- 8 and 9: a step that fails, a gradient that is not finite --------------------------------


class ThreeEmbeddings(torch.nn.Module):
    """Three nn.Embedding(12, 3, sparse=True): three parameter tensors with sparse gradients."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.tables = torch.nn.ModuleList(
            torch.nn.Embedding(12, 3, sparse=True, dtype=torch.float64) for _ in range(3))
        with torch.no_grad():
            for table in self.tables:
                table.weight.copy_(torch.randn(12, 3, generator=gen, dtype=torch.float64))

    def loss(self, idx, target):
        return sum(torch.tanh(t(idx) - target[idx]).pow(2).sum() for t in self.tables)


class Session:
    """One optimizer on its contract problem (the tiny network, Muon's matrix network, or
    three sparse embeddings), stepped one batch at a time. ``hook(params)`` runs after
    backward, inside the closure where the optimizer evaluates one."""

    def __init__(self, info, make_opt, kwargs, steps=8):
        self.info = info
        gen = torch.Generator().manual_seed(1)
        if info.sparse_only:
            self.model = ThreeEmbeddings()
            target = torch.randn(12, 3, generator=gen, dtype=torch.float64)
            self.data = [(torch.randint(0, 8, (6,), generator=gen), target) for _ in range(steps)]
            self.loss = self.model.loss
        else:
            self.model = info.net()
            self.data = regression_batches(steps)
            self.loss = lambda x, y: torch.nn.functional.mse_loss(self.model(x), y)
        self.opt = make_opt(self.model.parameters(), **kwargs)

    @property
    def params(self):
        return list(self.model.parameters())

    def step(self, i, hook=None):
        def closure():
            self.opt.zero_grad()
            loss = self.loss(*self.data[i])
            loss.backward()
            if hook is not None:
                hook(self.params)
            return loss

        if self.info.closure_required:
            self.opt.step(closure)
        else:
            closure()
            self.opt.step()

    def snapshot(self):
        """Deep copies of the parameters and of the whole state_dict."""
        return copy.deepcopy(([p.detach() for p in self.params], self.opt.state_dict()))


def assert_bitwise_equal(a, b, where="state"):
    """Equal bit for bit (NaN included): tensors by their bytes, containers element by
    element, other values by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        a, b = (t.detach().to_dense() if t.is_sparse else t.detach() for t in (a, b))
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        bits = [t.reshape(-1).contiguous().view(torch.uint8) for t in (a, b)]
        assert torch.equal(*bits), f"{where} changed"
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, where


class InjectedFailure(Exception):
    """Raised on purpose in the middle of a step."""


GOOD = 3  # good steps before the failing or non-finite one


def fail_midway(session):
    """Make step() raise InjectedFailure: the second call of ``update`` (the second
    parameter's update) raises, or, for a closure optimizer, the closure's second evaluation.
    Returns a function that undoes the patch and returns how many calls it saw."""
    calls = []
    if session.info.closure_required:
        def hook(params):
            calls.append(1)
            if len(calls) == 2:
                raise InjectedFailure

        return hook, lambda: len(calls)
    opt, original = session.opt, session.opt.update

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise InjectedFailure
        return original(*args, **kwargs)

    opt.update = failing

    def undo():
        del opt.update
        return len(calls)

    return None, undo


def straight_and_stopped(info):
    """Two sessions of the representative setting: one run straight through GOOD + 2 steps,
    one stopped after GOOD good steps, for the caller to disturb and then finish."""
    straight = Session(info, info.cls, info.representative)
    for i in range(GOOD + 2):
        straight.step(i)
    session = Session(info, info.cls, info.representative)
    for i in range(GOOD):
        session.step(i)
    return straight, session


@pytest.mark.parametrize("info", each())
def test_step_that_fails_midway_leaves_every_tensor_as_it_was_and_can_be_retried(info):
    """With undo_failed_steps = True, after 3 good steps, step 4 raises while updating the
    second parameter (LBFGS: in its closure's second evaluation): every parameter and state
    tensor is bit for bit as before step 4, and retrying steps 4 and 5 ends exactly where an
    uninterrupted run does."""
    straight, session = straight_and_stopped(info)
    session.opt.undo_failed_steps = True  # opt-in: off by default (LBFGS always undoes)
    before = session.snapshot()
    hook, undo = fail_midway(session)
    try:
        with pytest.raises(InjectedFailure):
            session.step(GOOD, hook)
    finally:
        calls = undo()
    assert calls == 2, f"the injected failure should fire on call 2; there were {calls} calls"
    assert_bitwise_equal(session.snapshot(), before, "after the failed step")
    session.step(GOOD)
    session.step(GOOD + 1)
    assert_bitwise_equal(session.snapshot(), straight.snapshot(), "after the retry")


def poison(value):
    """A hook that sets one entry of the first parameter's gradient to ``value``."""
    def hook(params):
        grad = params[0].grad
        (grad._values() if grad.is_sparse else grad).view(-1)[0] = value
    return hook


NON_FINITE = [pytest.param(math.nan, id="nan"), pytest.param(math.inf, id="inf")]


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("info", each(where=lambda info: info.non_finite == "as torch"))
def test_non_finite_gradient_entry_leaves_torchs_pattern_of_non_finite_parameters(info, bad):
    """One NaN (or +inf) entry in the first parameter's gradient at step 4: after that step
    and after the next, torch.isfinite of every parameter equals the torch counterpart's."""
    def patterns(make_opt):
        session = Session(info, make_opt, info.representative)
        for i in range(GOOD):
            session.step(i)
        session.step(GOOD, poison(bad))
        after = [torch.isfinite(p.detach()) for p in session.params]
        session.step(GOOD + 1)
        return after + [torch.isfinite(p.detach()) for p in session.params]

    ours, theirs = patterns(info.cls), patterns(info.reference)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert torch.equal(a, b), (
            f"tensor {i}: {int((~a).sum())} non-finite entries, torch {int((~b).sum())}")


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("info", each(where=lambda info: info.non_finite == "spreads"))
def test_non_finite_gradient_entry_makes_the_parameter_entry_non_finite(info, bad):
    """A sign would turn +inf into a finite step and hide it: the entry must become
    non-finite instead (NaN for a NaN gradient)."""
    session = Session(info, info.cls, info.representative)
    for i in range(GOOD):
        session.step(i)
    session.step(GOOD, poison(bad))
    entry = session.params[0].detach().reshape(-1)[0]
    assert not torch.isfinite(entry)
    if math.isnan(bad):
        assert torch.isnan(entry)


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("info", each(where=lambda info: info.non_finite == "refused"))
def test_non_finite_gradient_is_refused_leaving_every_tensor_as_it_was(info, bad):
    """One bad entry would poison the whole preconditioner: step raises, naming the problem,
    changes nothing, and the next finite steps end where a run that never saw it does."""
    straight, session = straight_and_stopped(info)
    before = session.snapshot()
    with pytest.raises((RuntimeError, ValueError, ArithmeticError), match="non-finite"):
        session.step(GOOD, poison(bad))
    assert_bitwise_equal(session.snapshot(), before, "after the refused step")
    session.step(GOOD)
    session.step(GOOD + 1)
    assert_bitwise_equal(session.snapshot(), straight.snapshot(), "after the next steps")


# --- maximize, and 10. low precision ----------------------------------------------------------


@pytest.mark.parametrize("info", each(where=lambda info: "maximize" in info.arguments))
def test_maximize_on_minus_loss_is_bitwise_minimize_on_loss_over_10_steps(info):
    """The gradient of −L is exactly −∇L, so maximize=True on −L must take the very steps
    that maximize=False takes on L."""
    kwargs = dict(info.representative, maximize=False)
    a = info.train(info.cls, kwargs, 10)
    b = info.train(info.cls, dict(kwargs, maximize=True), 10)  # the loop negates the loss
    assert all(torch.equal(x, y) for sa, sb in zip(a.snapshots, b.snapshots, strict=True)
               for x, y in zip(sa, sb, strict=True))


LOW_PRECISION = [pytest.param(info, dtype, id=f"{info.name}-{str(dtype)[6:]}")
                 for info in INFOS for dtype in info.dtypes]


@pytest.mark.parametrize("info, dtype", LOW_PRECISION)
def test_low_precision_run_keeps_its_dtype_and_gets_below_the_stated_bound(info, dtype):
    """float32 and bfloat16 (the loss in float32): the parameters and their state keep the
    dtype (Shampoo's statistics stay float32), stay finite, and the problem's measure of
    distance ends below the table's bound (e.g. max|w| < 0.3 after 60 Adam steps from 3)."""
    measure, params, opt = info.smoke.run(info.cls, dtype)
    assert measure < info.smoke.below, f"{measure:.3g} >= {info.smoke.below}"
    for p in params:
        assert p.dtype == dtype and torch.isfinite(p).all()
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                expected = torch.float32 if key in info.float32_state else dtype
                assert value.dtype == expected, key
