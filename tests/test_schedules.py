"""optcore.schedules: torch.optim.lr_scheduler's schedules written out, and warmup–stable–decay.

Every schedule with a torch counterpart is run side by side with it for 300 scheduler steps,
on two parameter groups with different learning rates, and the rates (``get_last_lr()``, the
groups' ``lr``, and the momentum or betas that OneCycleLR cycles) must be *equal* (==), not
close: optcore computes torch's recursive forms in torch's order of operations. Checkpoints
are checked three ways: optcore → optcore, torch → optcore and optcore → torch, each resumed
mid-run (through torch.save and torch.load) into a fresh optimizer and scheduler, must
continue the uninterrupted run exactly.
"""

from __future__ import annotations

import functools
import io
import math
import random
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as torch_schedules

import optcore
from optcore import schedules, trace

STEPS = 300
LRS = (0.1, 0.03)  # the two groups' learning rates
CLASSES = [name for name in schedules.__all__ if name[0].isupper()]

OPTIMIZERS = {  # name: (optcore's class, torch's class, their keyword arguments)
    "SGD": (optcore.SGD, torch.optim.SGD, {"momentum": 0.9}),
    "Adam": (optcore.Adam, torch.optim.Adam, {}),
    "Adagrad": (optcore.Adagrad, torch.optim.Adagrad, {}),
}


def two_groups(make_optimizer, **kwargs):
    """An optimizer over two one-element parameters in two groups, at lr 0.1 and 0.03. No
    gradients flow, so ``optimizer.step()`` changes nothing but lets the scheduler see that
    it was called: these tests are about the rates."""
    params = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in LRS]
    return make_optimizer([{"params": [p], "lr": lr} for p, lr in zip(params, LRS)], **kwargs)


@dataclass(eq=False)  # hashed by identity, for torch_path's cache
class Case:
    """A schedule: ``build(module, optimizer)`` makes it from ``module`` (optcore.schedules
    or torch.optim.lr_scheduler); ``metrics`` feed ReduceLROnPlateau."""

    id: str
    build: callable
    optimizer: str = "SGD"
    metrics: list | None = None

    def optimizer_and_scheduler(self, module, optimizer_from):
        ours, theirs, kwargs = OPTIMIZERS[self.optimizer]
        opt = two_groups(ours if optimizer_from is optcore else theirs, **kwargs)
        return opt, self.build(module, opt)

    def step(self, opt, sched, t):
        opt.step()
        if self.metrics is None:
            sched.step()
        else:
            sched.step(self.metrics[t])


def record(opt, sched):
    """What a step leaves behind: the rates reported and set, and the momentum terms."""
    return (tuple(sched.get_last_lr()), tuple(g["lr"] for g in opt.param_groups),
            tuple((g.get("momentum"), g.get("betas")) for g in opt.param_groups))


def path(case, module, optimizer_from=torch.optim, steps=STEPS):
    """The records after construction and after each of ``steps`` steps."""
    opt, sched = case.optimizer_and_scheduler(module, optimizer_from)
    rows = [record(opt, sched)]
    for t in range(steps):
        case.step(opt, sched, t)
        rows.append(record(opt, sched))
    return rows


@functools.cache
def torch_path(case):
    """torch's records for ``case``, computed once: every test compares with them."""
    return path(case, torch_schedules)


def resumed(case, saved_by, loaded_by, at, optimizer_from=torch.optim):
    """Run ``at`` steps with ``saved_by``'s scheduler, checkpoint optimizer and scheduler,
    build fresh ones with ``loaded_by``'s scheduler, load the checkpoint (scheduler built
    first, as torch's docs ask), and run on to STEPS; the records from step ``at`` on."""
    opt, sched = case.optimizer_and_scheduler(saved_by, optimizer_from)
    for t in range(at):
        case.step(opt, sched, t)
    buffer = io.BytesIO()  # a checkpoint file, as torch.save writes it
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer)  # weights_only=True, torch's safe default, suffices
    opt, sched = case.optimizer_and_scheduler(loaded_by, optimizer_from)
    opt.load_state_dict(checkpoint["opt"])
    sched.load_state_dict(checkpoint["sched"])
    rows = [record(opt, sched)]
    for t in range(at, STEPS):
        case.step(opt, sched, t)
        rows.append(record(opt, sched))
    return rows


def plateau_metrics(seed=0, steps=STEPS):
    """A validation loss that falls, then flattens, with noise: 1/(1 + t/20) + N(0, 0.01²)."""
    rng = random.Random(seed)
    return [1 / (1 + t / 20) + rng.gauss(0.0, 0.01) for t in range(steps)]


def sequential(*stages, milestones):
    """SequentialLR of ``stages`` (pairs of a class name and its keyword arguments)."""
    def build(m, opt):
        return m.SequentialLR(opt, [getattr(m, name)(opt, **kw) for name, kw in stages],
                              milestones=milestones)
    return build


def chained(*stages):
    """torch's ChainedScheduler (optcore has none) stepping the module's ``stages`` together:
    what the recursive forms are for, since each multiplies the rate the others left."""
    def build(m, opt):
        return torch_schedules.ChainedScheduler([getattr(m, name)(opt, **kw)
                                                 for name, kw in stages], optimizer=opt)
    return build


def named(name, **kwargs):
    return lambda m, opt: getattr(m, name)(opt, **kwargs)


def warm_up_then_decay(t):
    return min(1.0, (t + 1) / 10) * 0.99**t


class Halving:
    """A callable object with state, which LambdaLR's state_dict saves (a lambda it cannot)."""

    def __init__(self, every):
        self.every = every

    def __call__(self, t):
        return 0.5 ** (t // self.every)


falling = plateau_metrics()
rising = [-m for m in falling]

CASES = [
    Case("StepLR-7-0.3", named("StepLR", step_size=7, gamma=0.3)),
    Case("StepLR-50-default-gamma", named("StepLR", step_size=50)),
    Case("MultiStepLR-repeated-milestone", named("MultiStepLR", milestones=[30, 80, 80, 250],
                                                 gamma=0.5)),
    Case("MultiStepLR-unsorted", named("MultiStepLR", milestones=[200, 10], gamma=0.7)),
    Case("ExponentialLR-0.97", named("ExponentialLR", gamma=0.97)),
    Case("ExponentialLR-1.01", named("ExponentialLR", gamma=1.01)),
    Case("CosineAnnealingLR-40-past-T_max", named("CosineAnnealingLR", T_max=40,
                                                  eta_min=0.001)),
    Case("CosineAnnealingLR-300", named("CosineAnnealingLR", T_max=STEPS)),
    Case("CosineAnnealingLR-1", named("CosineAnnealingLR", T_max=1, eta_min=0.01)),
    Case("CosineAnnealingWarmRestarts-T_mult-1", named("CosineAnnealingWarmRestarts", T_0=25)),
    Case("CosineAnnealingWarmRestarts-T_mult-2-eta_min",
         named("CosineAnnealingWarmRestarts", T_0=10, T_mult=2, eta_min=0.005)),
    Case("LinearLR-warm-up", named("LinearLR", start_factor=0.1, total_iters=37)),
    Case("LinearLR-decay", named("LinearLR", start_factor=1.0, end_factor=0.05,
                                 total_iters=200)),
    Case("LinearLR-defaults", named("LinearLR")),
    Case("OneCycleLR-cos-SGD", named("OneCycleLR", max_lr=[1.0, 0.3], total_steps=STEPS)),
    Case("OneCycleLR-cos-three-phase-SGD", named("OneCycleLR", max_lr=1.0, total_steps=STEPS,
                                                 three_phase=True, pct_start=0.25)),
    Case("OneCycleLR-linear-Adam", named("OneCycleLR", max_lr=0.01, epochs=10,
                                         steps_per_epoch=30, anneal_strategy="linear",
                                         base_momentum=[0.8, 0.85], max_momentum=0.9),
         optimizer="Adam"),
    Case("OneCycleLR-linear-three-phase-Adam",
         named("OneCycleLR", max_lr=0.01, total_steps=STEPS, anneal_strategy="linear",
               three_phase=True, div_factor=10.0, final_div_factor=100.0), optimizer="Adam"),
    Case("OneCycleLR-cos-three-phase-Adam", named("OneCycleLR", max_lr=0.01, total_steps=STEPS,
                                                  three_phase=True), optimizer="Adam"),
    Case("OneCycleLR-no-momentum-Adagrad", named("OneCycleLR", max_lr=0.5, total_steps=STEPS,
                                                 cycle_momentum=False), optimizer="Adagrad"),
    Case("ReduceLROnPlateau-defaults", named("ReduceLROnPlateau"), metrics=falling),
    Case("ReduceLROnPlateau-patience-0", named("ReduceLROnPlateau", patience=0, factor=0.9),
         metrics=falling),
    Case("ReduceLROnPlateau-max-abs-cooldown",
         named("ReduceLROnPlateau", mode="max", threshold_mode="abs", threshold=0.005,
               patience=3, cooldown=5, factor=0.5), metrics=rising),
    Case("ReduceLROnPlateau-max-rel-min_lr", named("ReduceLROnPlateau", mode="max", patience=2,
                                                   factor=0.5, min_lr=[0.01, 0.001]),
         metrics=rising),
    Case("ReduceLROnPlateau-abs-eps-min_lr", named("ReduceLROnPlateau", threshold_mode="abs",
                                                   threshold=0.02, patience=4, factor=0.7,
                                                   min_lr=0.02, eps=5e-3), metrics=falling),
    Case("ReduceLROnPlateau-tensor-metric", named("ReduceLROnPlateau", patience=5, factor=0.5),
         metrics=[torch.tensor(m) for m in falling]),
    Case("LambdaLR-one-function", named("LambdaLR", lr_lambda=warm_up_then_decay)),
    Case("LambdaLR-one-per-group", named("LambdaLR", lr_lambda=[warm_up_then_decay,
                                                                Halving(40)])),
    Case("SequentialLR-warm-up-then-cosine",
         sequential(("LinearLR", {"start_factor": 0.1, "total_iters": 10}),
                    ("CosineAnnealingLR", {"T_max": 290, "eta_min": 1e-3}), milestones=[10])),
    Case("SequentialLR-three-stages",
         sequential(("LinearLR", {"start_factor": 0.2, "total_iters": 20}),
                    ("MultiStepLR", {"milestones": [40, 60], "gamma": 0.5}),
                    ("CosineAnnealingLR", {"T_max": 100}), milestones=[20, 120])),
    Case("ChainedScheduler-warm-up-times-exponential", chained(
        ("LinearLR", {"start_factor": 0.1, "total_iters": 20}),
        ("ExponentialLR", {"gamma": 0.99}))),
    Case("ChainedScheduler-cosine-times-step", chained(
        ("CosineAnnealingLR", {"T_max": 50, "eta_min": 0.001}),
        ("StepLR", {"step_size": 30, "gamma": 0.5}))),
    Case("SequentialLR-exponential-then-restarts",
         sequential(("ExponentialLR", {"gamma": 0.98}),
                    ("CosineAnnealingWarmRestarts", {"T_0": 30}), milestones=[50])),
]
CHECKPOINTED = {c.id: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rates_equal_torch_for_300_steps_with_torch_and_optcore_optimizers(case):
    """Each schedule sets, step after step, exactly torch's rates (and OneCycleLR exactly
    torch's momentum or β₁) in both groups, whether it drives torch's optimizer or optcore's."""
    theirs = torch_path(case)
    assert path(case, schedules) == theirs
    assert path(case, schedules, optimizer_from=optcore) == theirs
    assert len({row[0] for row in theirs}) >= 2, "the schedule must change the rate"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_state_dict_has_torch_keys_and_values_at_step_137(case):
    """optcore's and torch's state_dicts of the same schedule at the same step are equal
    (same keys, same values; nested ones for SequentialLR), so checkpoints interchange."""
    def state_at(module, at=137):
        opt, sched = case.optimizer_and_scheduler(module, torch.optim)
        for t in range(at):
            case.step(opt, sched, t)
        return sched.state_dict()
    ours, theirs = state_at(schedules), state_at(torch_schedules)
    assert ours.keys() == theirs.keys()
    assert ours == theirs


@pytest.mark.parametrize("saved_by, loaded_by", [(schedules, schedules),
                                                 (torch_schedules, schedules),
                                                 (schedules, torch_schedules)],
                         ids=["optcore-to-optcore", "torch-to-optcore", "optcore-to-torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_checkpoint_at_step_123_resumes_the_uninterrupted_run_exactly(case, saved_by, loaded_by):
    at = 123
    assert resumed(case, saved_by, loaded_by, at) == torch_path(case)[at:]


def test_resuming_without_the_scheduler_state_restarts_the_schedule():
    """The pitfall the round trip avoids: a fresh StepLR(step_size=7, γ=0.3) over a loaded
    optimizer counts from t = 0 again, so its next drop comes 7 steps after resuming at 123
    instead of at 126, and it decays the loaded rate once more."""
    case = CHECKPOINTED["StepLR-7-0.3"]
    opt, sched = case.optimizer_and_scheduler(schedules, torch.optim)
    for t in range(123):
        case.step(opt, sched, t)
    opt2, sched2 = case.optimizer_and_scheduler(schedules, torch.optim)
    opt2.load_state_dict(opt.state_dict())
    for t in range(7):
        case.step(opt, sched, t)
        case.step(opt2, sched2, t)
        rate, forgot = opt.param_groups[0]["lr"], opt2.param_groups[0]["lr"]
        drops_so_far = (123 + t + 1) // 7
        assert rate == pytest.approx(LRS[0] * 0.3**drops_so_far, rel=1e-12)
        assert forgot == pytest.approx(LRS[0] * 0.3 ** (123 // 7 + (t + 1) // 7), rel=1e-12)


def test_closed_forms_equal_torchs_closed_forms_via_step_epoch():
    """``step(epoch)`` (deprecated in torch, still supported) uses each class's closed form:
    optcore's equal torch's at epochs 0, 5, 37, 80 and 299, in both groups."""
    builds = [named("StepLR", step_size=7, gamma=0.3), named("ExponentialLR", gamma=0.97),
              named("MultiStepLR", milestones=[30, 80, 80]),
              named("LinearLR", start_factor=0.1, total_iters=37),
              named("CosineAnnealingLR", T_max=40, eta_min=0.001),
              named("CosineAnnealingWarmRestarts", T_0=10, T_mult=2, eta_min=0.005),
              named("CosineAnnealingWarmRestarts", T_0=25)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for build in builds:
            rates = []
            for module in (schedules, torch_schedules):
                opt = two_groups(torch.optim.SGD)
                sched = build(module, opt)
                rates.append([])
                for epoch in (0, 5, 37, 80, 299, 12.5):
                    opt.step()
                    sched.step(epoch)
                    rates[-1].append(sched.get_last_lr())
            assert rates[0] == rates[1], type(sched).__name__


def test_the_recursive_form_is_needed_for_equality_with_torch():
    """Why ExponentialLR keeps torch's recursion η_t = γ·η_{t−1}: over 300 steps with γ = 0.97
    it agrees with the closed form η·γ^t only to about t ulp (here < 300 · 2⁻⁵² relative),
    and not bit for bit, so a closed-form get_lr would fail the parity tests above."""
    opt = two_groups(torch.optim.SGD)
    sched = schedules.ExponentialLR(opt, gamma=0.97)
    recursive = [sched.get_last_lr()[0]]
    for _ in range(STEPS):
        opt.step()
        sched.step()
        recursive.append(sched.get_last_lr()[0])
    closed = [LRS[0] * 0.97**t for t in range(STEPS + 1)]
    rel = [abs(a - b) / b for a, b in zip(recursive, closed)]
    assert max(rel) < STEPS * 2.0**-52
    assert sum(a != b for a, b in zip(recursive, closed)) > 10


def test_torchs_sequential_lr_runs_optcore_schedulers_and_optcores_runs_torchs():
    """Mixing is allowed both ways: SequentialLR of one library over the other's LinearLR and
    CosineAnnealingLR gives exactly the all-torch rates."""
    case = CHECKPOINTED["SequentialLR-warm-up-then-cosine"]
    expected = torch_path(case)

    def mixed(outer, inner):
        def build(_, opt):
            stages = [inner.LinearLR(opt, start_factor=0.1, total_iters=10),
                      inner.CosineAnnealingLR(opt, T_max=290, eta_min=1e-3)]
            return outer.SequentialLR(opt, stages, milestones=[10])
        return Case(case.id, build)
    assert path(mixed(torch_schedules, schedules), None) == expected
    assert path(mixed(schedules, torch_schedules), None) == expected


def test_schedulers_are_torch_lr_schedulers_and_warn_when_stepped_before_the_optimizer():
    """Each class is a torch LRScheduler (so isinstance checks in training loops hold), and
    calling scheduler.step() before optimizer.step() gives torch's warning, also with an
    optcore optimizer."""
    for name in CLASSES:
        assert issubclass(getattr(schedules, name), torch_schedules.LRScheduler), name
    opt = two_groups(optcore.SGD)
    sched = schedules.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match=re.escape("lr_scheduler.step()` before `optimizer")):
        sched.step()
    with pytest.warns(UserWarning, match=re.escape("please use `get_last_lr()`")):
        sched.get_lr()


def test_constructors_have_torchs_arguments_and_defaults():
    import inspect

    def shape(cls):
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(cls.__init__).parameters.values()]
    for name in CLASSES:
        if name != "WarmupStableDecayLR":
            assert shape(getattr(schedules, name)) == shape(getattr(torch_schedules, name)), name


def test_one_cycle_lr_refuses_to_step_past_total_steps_as_torch_does():
    for module in (schedules, torch_schedules):
        opt = two_groups(torch.optim.SGD, momentum=0.9)
        sched = module.OneCycleLR(opt, max_lr=1.0, total_steps=10)
        for _ in range(10):
            opt.step()
            sched.step()  # t = 10 = total_steps is still allowed
        with pytest.raises(ValueError, match="total_steps" if module is schedules else "10"):
            sched.step()


# --- bad arguments ------------------------------------------------------------------------


def other_optimizer(m, opt):
    return m.SequentialLR(opt, [m.StepLR(two_groups(torch.optim.SGD), 5)], milestones=[])


BAD = [  # (id, build(module, opt), the name the error gives, and whether torch refuses too)
    ("LambdaLR-one-function-for-two-groups",
     lambda m, o: m.LambdaLR(o, [warm_up_then_decay]), "lr_lambda", True),
    ("LinearLR-start_factor-0", named("LinearLR", start_factor=0.0), "start_factor: 0.0", True),
    ("LinearLR-start_factor-1.5", named("LinearLR", start_factor=1.5), "start_factor: 1.5", True),
    ("LinearLR-end_factor-negative", named("LinearLR", end_factor=-0.1), "end_factor: -0.1", True),
    ("LinearLR-end_factor-1.5", named("LinearLR", end_factor=1.5), "end_factor: 1.5", True),
    ("CAWR-T_0-0", named("CosineAnnealingWarmRestarts", T_0=0), "T_0: 0", True),
    ("CAWR-T_0-float", named("CosineAnnealingWarmRestarts", T_0=2.5), "T_0: 2.5", True),
    ("CAWR-T_mult-0", named("CosineAnnealingWarmRestarts", T_0=5, T_mult=0), "T_mult: 0", True),
    ("CAWR-T_mult-float", named("CosineAnnealingWarmRestarts", T_0=5, T_mult=1.5),
     "T_mult: 1.5", True),
    ("CAWR-eta_min-str", named("CosineAnnealingWarmRestarts", T_0=5, eta_min="0"),
     "eta_min: '0'", True),
    ("CAWR-negative-epoch", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5).step(-1),
     "epoch: -1", True),
    ("OneCycleLR-total_steps-0", named("OneCycleLR", max_lr=1.0, total_steps=0),
     "total_steps: 0", True),
    ("OneCycleLR-total_steps-float", named("OneCycleLR", max_lr=1.0, total_steps=10.0),
     "total_steps: 10.0", True),
    ("OneCycleLR-epochs-0", named("OneCycleLR", max_lr=1.0, epochs=0, steps_per_epoch=5),
     "epochs: 0", True),
    ("OneCycleLR-steps_per_epoch-0", named("OneCycleLR", max_lr=1.0, epochs=3,
                                           steps_per_epoch=0), "steps_per_epoch: 0", True),
    ("OneCycleLR-no-length", named("OneCycleLR", max_lr=1.0, epochs=3), "total_steps", True),
    ("OneCycleLR-pct_start-1.5", named("OneCycleLR", max_lr=1.0, total_steps=10, pct_start=1.5),
     "pct_start: 1.5", True),
    ("OneCycleLR-pct_start-int", named("OneCycleLR", max_lr=1.0, total_steps=10, pct_start=1),
     "pct_start: 1", True),
    ("OneCycleLR-anneal_strategy", named("OneCycleLR", max_lr=1.0, total_steps=10,
                                         anneal_strategy="exp"), "anneal_strategy: 'exp'", True),
    ("OneCycleLR-max_lr-one-for-two-groups", named("OneCycleLR", max_lr=[1.0], total_steps=10),
     "max_lr: [1.0]", True),
    ("OneCycleLR-base_momentum-three-for-two-groups",
     named("OneCycleLR", max_lr=1.0, total_steps=10, base_momentum=[0.8, 0.8, 0.8]),
     "base_momentum", True),
    ("OneCycleLR-cycle_momentum-without-momentum",
     lambda m, o: m.OneCycleLR(two_groups(torch.optim.Adagrad), max_lr=1.0, total_steps=10),
     "cycle_momentum", True),
    ("SequentialLR-no-schedulers", lambda m, o: m.SequentialLR(o, [], milestones=[]),
     "schedulers", True),
    ("SequentialLR-torch-plateau", lambda m, o: m.SequentialLR(
        o, [torch_schedules.ReduceLROnPlateau(o)], milestones=[]), "schedulers[0]", True),
    ("SequentialLR-optcore-plateau", lambda m, o: m.SequentialLR(
        o, [schedules.ReduceLROnPlateau(o)], milestones=[]), "schedulers[0]", False),
    ("SequentialLR-other-optimizer", other_optimizer, "schedulers[0]", True),
    ("SequentialLR-milestones", lambda m, o: m.SequentialLR(o, [m.StepLR(o, 5), m.StepLR(o, 7)],
                                                           milestones=[3, 6]),
     "milestones: [3, 6]", True),
    ("ReduceLROnPlateau-factor-1", named("ReduceLROnPlateau", factor=1.0), "factor: 1.0", True),
    ("ReduceLROnPlateau-mode", named("ReduceLROnPlateau", mode="avg"), "mode: 'avg'", True),
    ("ReduceLROnPlateau-threshold_mode", named("ReduceLROnPlateau", threshold_mode="pct"),
     "threshold_mode: 'pct'", True),
    ("ReduceLROnPlateau-min_lr-three-for-two-groups",
     named("ReduceLROnPlateau", min_lr=[0.0, 0.0, 0.0]), "min_lr: [0.0, 0.0, 0.0]", True),
    ("WSD-total_steps-0", named("WarmupStableDecayLR", total_steps=0), "total_steps: 0", False),
    ("WSD-total_steps-float", named("WarmupStableDecayLR", total_steps=100.0),
     "total_steps: 100.0", False),
    ("WSD-warmup_steps-negative", named("WarmupStableDecayLR", total_steps=100,
                                        warmup_steps=-1), "warmup_steps: -1", False),
    ("WSD-warmup_steps-float", named("WarmupStableDecayLR", total_steps=100, warmup_steps=5.0),
     "warmup_steps: 5.0", False),
    ("WSD-warmup_steps-too-many", named("WarmupStableDecayLR", total_steps=100,
                                        warmup_steps=101), "warmup_steps: 101", False),
    ("WSD-decay_fraction-negative", named("WarmupStableDecayLR", total_steps=100,
                                          decay_fraction=-0.1), "decay_fraction: -0.1", False),
    ("WSD-decay_fraction-1.5", named("WarmupStableDecayLR", total_steps=100,
                                     decay_fraction=1.5), "decay_fraction: 1.5", False),
    ("WSD-warm-up-and-decay-overlap", named("WarmupStableDecayLR", total_steps=100,
                                            warmup_steps=30, decay_fraction=0.8),
     "decay_fraction: 0.8", False),
    ("WSD-decay-shape", named("WarmupStableDecayLR", total_steps=100, decay="exp"),
     "decay: 'exp'", False),
    ("WSD-min_lr_factor-negative", named("WarmupStableDecayLR", total_steps=100,
                                         min_lr_factor=-0.5), "min_lr_factor: -0.5", False),
    ("WSD-min_lr_factor-2", named("WarmupStableDecayLR", total_steps=100, min_lr_factor=2.0),
     "min_lr_factor: 2.0", False),
]


@pytest.mark.parametrize("build, names, torch_too", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_are_refused_with_a_value_error_naming_them(build, names, torch_too):
    """optcore refuses with ``ValueError`` that names the argument and its value, where torch
    refuses with ``ValueError`` too (its messages do not always name them)."""
    with pytest.raises(ValueError, match=re.escape(names)):
        build(schedules, two_groups(torch.optim.SGD, momentum=0.9))
    if torch_too:
        with pytest.raises(ValueError):
            build(torch_schedules, two_groups(torch.optim.SGD, momentum=0.9))


# --- warmup–stable–decay ------------------------------------------------------------------


def wsd_rates(steps, optimizer=torch.optim.SGD, **kwargs):
    """η_t of both groups for t = 0 … steps."""
    opt = two_groups(optimizer)
    sched = schedules.WarmupStableDecayLR(opt, **kwargs)
    rates = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        rates.append(sched.get_last_lr())
    return np.array(rates)  # shape (steps + 1, 2)


def knots_interpolation(t, T, W, D, m):
    """The linear WSD as the piecewise-linear curve through its knots, independently of the
    class: (−1, 0) → (W, 1) → (T − D, 1) → (T, m), and m after T (np.interp holds the last
    value)."""
    return np.interp(t, [-1, W, T - D, T], [0.0, 1.0, 1.0, m])


def test_wsd_linear_is_the_broken_line_through_its_knots_for_250_steps():
    """T = 200, W = 10, decay_fraction 0.2 (D = 40), m = 0.1: η_t/η equals the line through
    (−1, 0), (10, 1), (160, 1), (200, 0.1), then 0.1 up to t = 250, in both groups, to 1e-15."""
    rates = wsd_rates(250, total_steps=200, warmup_steps=10, min_lr_factor=0.1)
    expected = knots_interpolation(np.arange(251), 200, 10, 40, 0.1)
    np.testing.assert_allclose(rates / np.array(LRS), np.stack([expected] * 2, 1),
                               rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("decay", ["linear", "cosine", "1-sqrt"])
def test_wsd_values_at_the_documented_points(decay):
    """T = 100, W = 9, decay_fraction 0.2, so D = 20 decay steps from S = 80; base lr 0.1:
    η/10 at t = 0 (the first of 9 warm-up steps, which climb by η/10), 0.9·η at t = 8,
    η from t = 9 (end of warm-up) to t = 80; at a quarter of the decay (t = 85, x = 1/4) the
    three shapes give 1 − 1/4, (1 + cos(π/4))/2 = (2 + √2)/4 and 1 − √(1/4) = 1/2; at the
    middle (t = 90) 1/2, 1/2 and 1 − √2/2; at t = 100 and after, 0."""
    rates = wsd_rates(120, total_steps=100, warmup_steps=9, decay=decay)[:, 0] / LRS[0]
    assert rates[0] == pytest.approx(0.1, rel=1e-15)
    assert rates[8] == pytest.approx(0.9, rel=1e-15)
    assert np.all(rates[9:81] == 1.0)
    quarter = {"linear": 0.75, "cosine": (2 + math.sqrt(2)) / 4, "1-sqrt": 0.5}[decay]
    middle = {"linear": 0.5, "cosine": 0.5, "1-sqrt": 1 - math.sqrt(2) / 2}[decay]
    assert rates[85] == pytest.approx(quarter, rel=1e-14)
    assert rates[90] == pytest.approx(middle, rel=1e-14)
    assert np.all(rates[100:] == 0.0)


@pytest.mark.parametrize("decay", ["linear", "cosine", "1-sqrt"])
def test_wsd_rises_in_warm_up_stays_then_falls_to_min_lr_factor(decay):
    """T = 300, W = 30, decay_fraction 0.3, m = 0.05: strictly rising for t ≤ 30, flat at η
    from 30 to 210, strictly falling from 210 to 300, where it reaches 0.05·η in each group
    (0.005 and 0.0015) and stays there."""
    rates = wsd_rates(350, total_steps=300, warmup_steps=30, decay_fraction=0.3,
                      decay=decay, min_lr_factor=0.05)
    assert np.all(np.diff(rates[:31], axis=0) > 0)
    assert np.all(rates[30:211] == np.array(LRS))
    assert np.all(np.diff(rates[210:301], axis=0) < 0)
    np.testing.assert_allclose(rates[300:], np.broadcast_to([0.005, 0.0015], (51, 2)),
                               rtol=1e-15)


def test_wsd_rounds_the_decay_steps_to_the_nearest_integer_halves_up():
    """decay_fraction 0.29 of 100 steps is 28.999999999999996 in floating point: D = 29 decay
    steps (η still full at t = 71, lower at 72), not the 28 of int(); and 0.25 of 10 is
    2.5: D = 3 (from t = 7), not round()'s 2."""
    rates = wsd_rates(100, total_steps=100, decay_fraction=0.29)[:, 0]
    assert rates[71] == LRS[0] and rates[72] < LRS[0]
    rates = wsd_rates(10, total_steps=10, decay_fraction=0.25)[:, 0]
    assert rates[7] == LRS[0] and rates[8] < LRS[0]


def test_wsd_without_warm_up_or_decay():
    """W = 0 starts at η; decay_fraction = 0 keeps η through t = T − 1 = 49 and drops to
    m·η = 0.2·η at t = T = 50."""
    rates = wsd_rates(60, total_steps=50, decay_fraction=0.0, min_lr_factor=0.2)[:, 0]
    assert np.all(rates[:50] == LRS[0]) and np.all(rates[50:] == pytest.approx(0.2 * LRS[0]))


@pytest.mark.parametrize("make_optimizer", [optcore.SGD, torch.optim.SGD])
def test_wsd_drives_sgd_through_trace_replay(make_optimizer):
    """On a constant gradient 1, SGD under WSD (T = 40, W = 4, decay_fraction 0.25, cosine,
    m = 0.1) moves θ_40 = −Σ_{t<40} η_t, the sum of the rates at t = 0 … 39, computed here
    from the definition: warm-up (t+1)/5, flat, then 0.1 + 0.9·(1 + cos(π(t − 30)/10))/2."""
    def f(t):
        if t < 4:
            return (t + 1) / 5
        if t < 30:
            return 1.0
        return 0.1 + 0.9 * (1 + math.cos(math.pi * (t - 30) / 10)) / 2
    wsd = functools.partial(schedules.WarmupStableDecayLR, total_steps=40, warmup_steps=4,
                            decay_fraction=0.25, decay="cosine", min_lr_factor=0.1)
    run = trace.replay(make_optimizer, torch.ones(40, 1, dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64), schedule=wsd, lr=0.5)
    expected = -0.5 * math.fsum(f(t) for t in range(40))
    assert run.final.item() == pytest.approx(expected, rel=1e-14)


WSD_CASES = [Case(f"WSD-{decay}-{opt}", named("WarmupStableDecayLR", total_steps=250,
                                               warmup_steps=20, decay_fraction=0.3, decay=decay,
                                               min_lr_factor=0.01), optimizer=opt)
             for decay in ("linear", "cosine", "1-sqrt") for opt in ("SGD", "Adam")]


@pytest.mark.parametrize("case", WSD_CASES, ids=lambda c: c.id)
def test_wsd_checkpoint_at_step_123_resumes_exactly_with_torch_and_optcore_optimizers(case):
    """A WSD run past its total_steps (250 of 300) resumed at step 123 from a checkpoint is the
    uninterrupted run, with torch's and with optcore's optimizers."""
    for optimizer_from in (torch.optim, optcore):
        expected = path(case, schedules, optimizer_from)[123:]
        assert resumed(case, schedules, schedules, 123, optimizer_from) == expected


def test_learning_rates_lists_what_a_schedule_sets_for_plotting():
    """schedules.learning_rates: η_0 … η_6 of StepLR(step_size=2, γ=0.5) at lr 0.4 are 0.4,
    0.4, 0.2, 0.2, 0.1, 0.1, 0.05; OneCycleLR (max_lr 1, 20 steps) starts at 1/25 and peaks
    at t = 0.3·20 − 1 = 5, cycling the momentum of its SGD; ReduceLROnPlateau with patience
    0 halves the rate after each of the two non-improving metrics 3 and 4."""
    step = functools.partial(schedules.StepLR, step_size=2, gamma=0.5)
    assert schedules.learning_rates(step, 6, lr=0.4) == [0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05]
    one_cycle = functools.partial(torch_schedules.OneCycleLR, max_lr=1.0, total_steps=20)
    rates = schedules.learning_rates(one_cycle, 20)
    assert rates[0] == pytest.approx(1.0 / 25) and max(rates) == rates[5] == 1.0
    plateau = functools.partial(schedules.ReduceLROnPlateau, patience=0, factor=0.5)
    assert schedules.learning_rates(plateau, 4, lr=1.0, metrics=[2.0, 1.0, 3.0, 4.0]) == [
        1.0, 1.0, 1.0, 0.5, 0.25]


# --- optcore.trace --------------------------------------------------------------------------


def test_trace_replay_takes_an_optcore_scheduler_class_or_partial():
    """partial(StepLR, step_size=2, γ=0.5) on a constant gradient 1 with lr 1: the five steps
    run at 1, 1, 0.5, 0.5, 0.25, so θ_5 = −3.25, as with torch's StepLR."""
    grads, x0 = torch.ones(5, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    finals = [trace.replay(optcore.SGD, grads, x0, lr=1.0,
                           schedule=functools.partial(m.StepLR, step_size=2, gamma=0.5)).final
              for m in (schedules, torch_schedules)]
    assert finals[0].item() == -3.25 and finals[1].item() == -3.25


def test_trace_run_with_one_cycle_cycles_adams_beta1_as_torch_does():
    """optcore.Adam under optcore's OneCycleLR (cos, 60 steps, β₁ cycled 0.95 → 0.85 → 0.95)
    on least squares follows torch.optim.Adam under torch's OneCycleLR bit for bit."""
    problem = optcore.problems.least_squares(n=64)
    runs = [trace.run(problem, opt, steps=60, batch_size=16, lr=0.1,
                      schedule=functools.partial(m.OneCycleLR, max_lr=0.1, total_steps=60))
            for opt, m in ((optcore.Adam, schedules), (torch.optim.Adam, torch_schedules))]
    assert torch.equal(runs[0].thetas, runs[1].thetas)
    assert not torch.equal(runs[0].thetas[-1], runs[0].thetas[0])
