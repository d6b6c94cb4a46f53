r"""Learning-rate schedules: torch.optim.lr_scheduler's, written out, and warmup–stable–decay.

A schedule sets the learning rate of each parameter group as a function of t = ``last_epoch``,
the number of ``scheduler.step()`` calls so far: η_t = η·f(t), where η is the group's rate when
the scheduler was built (``initial_lr``; the list ``base_lrs``). In a loop that calls
``optimizer.step()`` and then ``scheduler.step()``, η_t is the rate of the book's step t + 1
(the rate at t = 0 moves θ₀ to θ₁). The conventions are torch's (2.13), so that a training
script can swap ``torch.optim.lr_scheduler.X`` for ``optcore.schedules.X``, with torch's
optimizers or optcore's, and a checkpoint of either resumes in the other:

- building a scheduler records ``initial_lr`` in each group, sets t = 0 and writes η·f(0)
  into the groups;
- ``scheduler.step()`` after ``optimizer.step()``: t ← t + 1 and the groups get η_t (torch
  warns when the order is reversed, and that warning works here too: the classes below
  subclass torch's ``LRScheduler`` base, the infrastructure, never its schedules);
- ``get_last_lr()`` is the list of the η_t just set; ``state_dict()`` is every attribute but the
  optimizer, with the same names and values as torch's class at the same step.

**Two ways to write a schedule.** Most schedules are a closed form η_t = η·f(t) (or an
interpolation between two rates). torch computes many of them *recursively* instead, from the
rate the group has now: η_t = η_{t−1}·f(t)/f(t−1). The two agree in exact arithmetic, but not
in floating point (γ·γ·γ·η is not always γ³·η to the last bit), and not in meaning: the
recursive ("chainable") form multiplies whatever rate the group has, so that two schedulers
stepped together (``ChainedScheduler``), or a rate changed by hand between steps, compose
multiplicatively, while a closed form overwrites them. A drop-in replacement must keep torch's
form, so each class below states its closed form in its docstring (and as
``_get_closed_form_lr``, which torch uses for ``step(epoch)`` and at ``SequentialLR``'s
milestones) and keeps the recursive ``get_lr`` where torch has one, in torch's order of
floating-point operations: the rates equal torch's exactly (``==``), step after step. Where
torch's ``get_lr`` is a closed form (``LambdaLR``, ``CosineAnnealingWarmRestarts``,
``OneCycleLR``), so is this one, as is warmup–stable–decay, which torch lacks.
"""

from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from contextlib import contextmanager

import torch
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler

from .optim.base import check
from .optim.sgd import SGD

__all__ = ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "LinearLR", "OneCycleLR", "SequentialLR",
           "ReduceLROnPlateau", "LambdaLR", "WarmupStableDecayLR", "learning_rates"]


# --- the rates in the groups --------------------------------------------------------------


def current_lrs(optimizer) -> list:
    """The groups' learning rates now, copied (a tensor lr is cloned, never aliased)."""
    return [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in optimizer.param_groups]


def set_lr(group: dict, lr) -> None:
    """Write ``lr`` into a group, in place when the group keeps its lr as a tensor."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr.squeeze() if isinstance(lr, torch.Tensor) else lr)
    else:
        group["lr"] = lr


def per_group(name: str, optimizer, value) -> list:
    """One value per parameter group: a list or tuple of that length, or one value for all."""
    if isinstance(value, (list, tuple)):
        check(len(value) == len(optimizer.param_groups), name, value,
              f"one value per parameter group ({len(optimizer.param_groups)})")
        return [v.clone() if isinstance(v, torch.Tensor) else v for v in value]
    return [value] * len(optimizer.param_groups)


@contextmanager
def computing_lr(scheduler):
    """Mark that ``get_lr`` is called by the scheduler itself (as torch's step does), so that
    only a user's direct call gets torch's "use get_last_lr()" warning."""
    scheduler._get_lr_called_within_step = True
    try:
        yield
    finally:
        scheduler._get_lr_called_within_step = False


def warn_if_called_directly(scheduler) -> None:
    if not scheduler._get_lr_called_within_step:
        warnings.warn("To get the last learning rate computed by the scheduler, please use "
                      "`get_last_lr()`.", UserWarning, stacklevel=3)


def learning_rates(schedule, steps: int, lr: float = 1.0, metrics=None) -> list[float]:
    """The rates η_0, η_1, …, η_steps that ``schedule`` sets: ``schedule(optimizer)`` (a
    scheduler class or a ``functools.partial`` of one, optcore's or torch's) is built on a
    one-parameter ``optcore.SGD`` with momentum 0.9 (so that OneCycleLR can cycle it) at rate
    ``lr``, then stepped ``steps`` times, after an optimizer step each time, as in training.
    A ReduceLROnPlateau gets ``metrics[t]`` at its t-th step. For plotting a schedule."""
    optimizer = SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)
    scheduler = schedule(optimizer)
    out = [scheduler.get_last_lr()[0]]
    for t in range(steps):
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[t])
        out.append(scheduler.get_last_lr()[0])
    return out


# --- closed forms -------------------------------------------------------------------------


class LambdaLR(LRScheduler):
    r"""η_t = η · λ(t), with λ a function of the step count t (one per group, or one for all).

    The most general closed form: every schedule below but ReduceLROnPlateau could be written
    as a ``LambdaLR`` (not chainable, and slightly different in rounding), but a function is
    not saved in a checkpoint (``state_dict`` stores ``None`` for a plain function or lambda,
    and the attributes of a callable object), as in torch.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        self.lr_lambdas = per_group("lr_lambda", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        return [base_lr * lmbda(self.last_epoch)
                for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)  # leaves the caller's dict as it was
        lr_lambdas = state.pop("lr_lambdas")
        self.__dict__.update(state)
        for fn, saved in zip(self.lr_lambdas, lr_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


# --- chainable schedules: closed form documented, torch's recursive form computed ----------


class StepLR(LRScheduler):
    r"""Step decay: η_t = η · γ^⌊t / step_size⌋ — the rate drops by the factor γ every
    ``step_size`` steps (the staircase of many ImageNet recipes: γ = 0.1 every 30 epochs).

    Computed recursively, as torch does: η_t = γ·η_{t−1} when t is a positive multiple of
    ``step_size``, else η_t = η_{t−1}. After k drops that is ((ηγ)γ)…γ, which can differ from
    η·γ^k in the last bit; and it multiplies whatever rate the group has (see the module's
    docstring). The closed form is :meth:`_get_closed_form_lr`.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Decay at milestones: η_t = η · γ^{#{m ∈ milestones : m ≤ t}} (e.g. He et al., 2016,
    on CIFAR-10: η = 0.1, divided by 10 at 32k and 48k iterations).

    Recursively (torch's form): at a step t listed k times among the milestones,
    η_t = γ^k·η_{t−1}; elsewhere η_t = η_{t−1}. The milestones are kept as a
    ``collections.Counter``, as torch keeps them, so checkpoints interchange.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        if self.last_epoch not in self.milestones:
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Exponential decay: η_t = η · γ^t.

    Recursively (torch's form): η_t = γ·η_{t−1}, a product of t rounded multiplications, which
    drifts from η·γ^t by a few ulp over hundreds of steps; kept for exact parity and chaining.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        if self._is_initial:  # constructing (or resuming): keep the rate the group has
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Linear ramp of the factor: η_t = η · f(t), f(t) = s + (e − s)·min(t, T)/T with
    s = ``start_factor``, e = ``end_factor``, T = ``total_iters``; constant after T.

    With s < e = 1 this is the linear warm-up of Goyal et al. (2017); s > 0 is required, so
    the first step never runs at η = 0. Recursively (torch's form), for 0 < t ≤ T:

        f(t)/f(t−1) = (sT + (e − s)t) / (sT + (e − s)(t − 1)) = 1 + (e − s) / (sT + (e − s)(t − 1)),

    so η_t = η_{t−1}·(1 + (e − s)/(sT + (e − s)(t − 1))), and η_0 = s·η.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        check(0 < start_factor <= 1.0, "start_factor", start_factor, "0 < start_factor <= 1")
        check(0 <= end_factor <= 1.0, "end_factor", end_factor, "0 <= end_factor <= 1")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        s, e, T, t = self.start_factor, self.end_factor, self.total_iters, self.last_epoch
        if t == 0:
            return [group["lr"] * s for group in self.optimizer.param_groups]
        if self._is_initial or t > T:
            return current_lrs(self.optimizer)
        return [group["lr"] * (1.0 + (e - s) / (T * s + (t - 1) * (e - s)))
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        s, e, T = self.start_factor, self.end_factor, self.total_iters
        return [base_lr * (s + (e - s) * min(T, self.last_epoch) / T) for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from η to η_min over T = ``T_max`` steps (Loshchilov & Hutter, 2017,
    SGDR, without its restarts):

        η_t = η_min + (η − η_min)·(1 + cos(πt/T))/2,

    so η_0 = η, η_T = η_min, and past T the cosine goes on: the rate climbs back to η at t = 2T
    (a period of 2T; torch does not stop at η_min either).

    Recursively (torch's form): η_t − η_min = (η_{t−1} − η_min)·(1 + cos(πt/T))/(1 + cos(π(t−1)/T)),
    the ratio of consecutive closed forms. At the trough, t − 1 ≡ T (mod 2T), that ratio is
    0/0, so the step out of it adds the closed form's increment (η − η_min)(1 − cos(π/T))/2
    instead. The recursion is kept because torch's rates come from it: in floating point it
    drifts from the closed form by a few ulp, and chained with another scheduler it scales
    the distance to η_min of whatever rate the group has, where the closed form would
    overwrite it. (torch also has a branch for a first step that lands past t = 0, which
    restarts from the closed form; since 2.x every scheduler's first step is its initial
    one, so that branch is never reached, and it is left out here.)
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return current_lrs(self.optimizer)
        if (t - 1 - T) % (2 * T) == 0:  # leaving the trough
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups,
                                              strict=True)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta_min) + eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


# --- closed-form schedules with their own step ---------------------------------------------


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""SGDR, cosine annealing with warm restarts (Loshchilov & Hutter, 2017):

        η_t = η_min + (η − η_min)·(1 + cos(π T_cur/T_i))/2,

    where T_cur counts the steps since the last restart and the i-th cycle lasts
    T_i = T_0·T_mult^i steps; when T_cur reaches T_i, T_cur ← 0 and T_i ← T_mult·T_i.
    "Warm" means that a restart resumes from the current parameters at the high rate η:
    this is a restart, not a warm-up.

    A closed form in T_cur, as torch computes it. ``step(epoch)`` may also be given a
    fractional epoch (e.g. ``epoch + i/iters`` after batch i), from which T_cur and T_i are
    recovered: with T_mult > 1 cycle n starts at T_0(1 + T_mult + … + T_mult^{n−1}) =
    T_0(T_mult^n − 1)/(T_mult − 1), so the current cycle is
    n = ⌊log_{T_mult}(1 + epoch·(T_mult − 1)/T_0)⌋.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        check(isinstance(T_0, int) and T_0 > 0, "T_0", T_0, "a positive integer")
        check(isinstance(T_mult, int) and T_mult >= 1, "T_mult", T_mult, "an integer >= 1")
        check(isinstance(eta_min, (float, int)), "eta_min", eta_min, "a float or an int")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warn_if_called_directly(self)
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:  # one more step in the cycle; restart at its end
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            check(epoch >= 0, "epoch", epoch, "epoch >= 0")
            if epoch < self.T_0:
                self.T_i = self.T_0
                self.T_cur = epoch
            elif self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult**n
        self.last_epoch = math.floor(epoch)
        with computing_lr(self):
            for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
                set_lr(group, lr)
        self._last_lr = current_lrs(self.optimizer)


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2019, "Super-convergence"): one cycle over
    ``total_steps`` steps, up from η_init = max_lr/div_factor to max_lr during the first
    ``pct_start`` of the steps, then down to η_min = η_init/final_div_factor. Momentum (SGD's
    β, or Adam's β₁) moves the opposite way, between ``max_momentum`` and ``base_momentum``.

    Two phases (the default, after fastai): η_init → max_lr until step p·N − 1, then
    max_lr → η_min at step N − 1, with N = ``total_steps`` and p = ``pct_start``. Three
    phases (the paper's): η_init → max_lr until p·N − 1, back to η_init at 2p·N − 2, then
    η_init → η_min at N − 1. Within a phase from step a to step b, with x = (t − a)/(b − a),

        cos:    η_t = end + (start − end)·(1 + cos πx)/2,
        linear: η_t = start + (end − start)·x.

    A closed form (not chainable), as in torch; stepping past t = N is an error. The phase
    boundaries and end points are kept in the groups (``initial_lr``, ``max_lr``, ``min_lr``,
    ``max_momentum``, ``base_momentum``) and in ``_schedule_phases``, as torch keeps them.
    The optimizer's own ``lr`` is not used: the cycle is set by ``max_lr`` and the factors.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if total_steps is not None:
            check(isinstance(total_steps, int) and total_steps > 0, "total_steps", total_steps,
                  "a positive integer")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            check(isinstance(epochs, int) and epochs > 0, "epochs", epochs, "a positive integer")
            check(isinstance(steps_per_epoch, int) and steps_per_epoch > 0, "steps_per_epoch",
                  steps_per_epoch, "a positive integer")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR needs total_steps, or both epochs and steps_per_epoch "
                             f"(got total_steps={total_steps!r}, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r})")
        check(isinstance(pct_start, float) and 0 <= pct_start <= 1, "pct_start", pct_start,
              "a float between 0 and 1")
        check(anneal_strategy in ("cos", "linear"), "anneal_strategy", anneal_strategy,
              "'cos' or 'linear'")
        self._anneal_func_type = anneal_strategy

        N = self.total_steps
        up = {"end_step": float(pct_start * N) - 1, "start_lr": "initial_lr",
              "end_lr": "max_lr", "start_momentum": "max_momentum",
              "end_momentum": "base_momentum"}
        if three_phase:
            self._schedule_phases = [
                up,
                {"end_step": float(2 * pct_start * N) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_step": N - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
        else:
            self._schedule_phases = [
                up,
                {"end_step": N - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]

        max_lrs = per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            check("momentum" in optimizer.defaults or "betas" in optimizer.defaults,
                  "cycle_momentum", cycle_momentum,
                  "an optimizer with momentum or betas; pass cycle_momentum=False otherwise")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = per_group("max_momentum", optimizer, max_momentum)
            base_momentums = per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, high, low in zip(optimizer.param_groups, max_momentums,
                                            base_momentums, strict=True):
                    self._set_momentum(group, high)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start, end, x):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * x) + 1)
        return (end - start) * x + start

    def get_lr(self):
        warn_if_called_directly(self)
        t = self.last_epoch
        check(t <= self.total_steps, "step", t,
              f"at most total_steps={self.total_steps} scheduler steps")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0  # the phase this step falls in: the first that ends at or after t
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if t <= end or i == len(self._schedule_phases) - 1:
                    x = (t - start) / (end - start)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], x))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(
                            group[phase["start_momentum"]], group[phase["end_momentum"]], x))
                    break
                start = end
        return lrs


# --- warmup–stable–decay: what torch lacks --------------------------------------------------


class WarmupStableDecayLR(LRScheduler):
    r"""Warmup–stable–decay (WSD; Hu et al., 2024, MiniCPM; Hägele et al., 2024):
    η_t = η·f(t), with T = ``total_steps``, W = ``warmup_steps``, m = ``min_lr_factor``,
    D = ⌊``decay_fraction``·T + ½⌋ decay steps (the nearest integer, halves rounded up, so
    that 0.29·100 = 28.999999999999996 in floating point gives 29), starting at S = T − D:

        f(t) = (t + 1)/(W + 1)              for 0 ≤ t < W     (linear warm-up)
        f(t) = 1                            for W ≤ t < S     (stable)
        f(t) = m + (1 − m)·shape((t − S)/D) for S ≤ t < T     (decay)
        f(t) = m                            for t ≥ T         (stay at the final rate),

    with shape(x) = 1 − x (``"linear"``), (1 + cos πx)/2 (``"cosine"``) or 1 − √x
    (``"1-sqrt"``, which Hägele et al. found better than linear), each falling from 1 at
    x = 0 to 0 at x = 1.

    So, at the points that matter:

    - t = 0: η/(W + 1), or η when W = 0. The warm-up line starts from 0 one step *before*
      the first, so that no step runs at rate 0, and each of the W warm-up steps adds
      η/(W + 1);
    - t = W, the end of warm-up: η, the first step at the full rate;
    - t = S: still η, where the decay starts;
    - t = T = ``total_steps``: m·η. This is the rate after the last of ``total_steps``
      optimizer steps, so the last step that runs is still above m·η (by (1 − m)·η/D for the
      linear shape), as in Hägele et al.'s code; training on past ``total_steps`` continues
      at m·η. With ``decay_fraction=0`` the rate stays η until t = T and then drops to m·η.

    Unlike cosine, the stable phase does not depend on T: a long run at η can be branched
    into decays at several budgets (Hägele et al.). A closed form, like ``LambdaLR``, so not
    chainable.
    """

    SHAPES = ("linear", "cosine", "1-sqrt")

    def __init__(self, optimizer, total_steps, warmup_steps=0, decay_fraction=0.2,
                 decay="linear", min_lr_factor=0.0, last_epoch=-1):
        check(isinstance(total_steps, int) and total_steps > 0, "total_steps", total_steps,
              "a positive integer")
        check(isinstance(warmup_steps, int) and 0 <= warmup_steps <= total_steps,
              "warmup_steps", warmup_steps, f"an integer in [0, total_steps={total_steps}]")
        check(0.0 <= decay_fraction <= 1.0, "decay_fraction", decay_fraction,
              "0 <= decay_fraction <= 1")
        check(decay in self.SHAPES, "decay", decay, " or ".join(map(repr, self.SHAPES)))
        check(0.0 <= min_lr_factor <= 1.0, "min_lr_factor", min_lr_factor,
              "0 <= min_lr_factor <= 1")
        decay_steps = math.floor(decay_fraction * total_steps + 0.5)
        check(warmup_steps + decay_steps <= total_steps, "decay_fraction", decay_fraction,
              f"warm-up ({warmup_steps} steps) and decay ({decay_steps} steps) to fit in "
              f"total_steps={total_steps}")
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay_fraction = decay_fraction
        self.decay = decay
        self.min_lr_factor = min_lr_factor
        self.decay_steps = decay_steps
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        """f(t), the multiplier of η at step t (see the class docstring)."""
        T, W, D, m = self.total_steps, self.warmup_steps, self.decay_steps, self.min_lr_factor
        if t >= T:
            return m
        if t < W:
            return (t + 1) / (W + 1)
        if t < T - D:
            return 1.0
        x = (t - (T - D)) / D
        if self.decay == "linear":
            shape = 1 - x
        elif self.decay == "cosine":
            shape = (1 + math.cos(math.pi * x)) / 2
        else:
            shape = 1 - math.sqrt(x)
        return m + (1 - m) * shape

    def get_lr(self):
        warn_if_called_directly(self)
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]


# --- schedules of schedules -----------------------------------------------------------------


class SequentialLR(LRScheduler):
    r"""Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]``, and so on: at step
    t, the scheduler in charge is schedulers[i] with i = #{m ∈ milestones : m ≤ t}, and at its
    milestone it starts afresh from its own t = 0 (its closed form at 0, from ``base_lrs``).

    E.g. ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 95)],
    milestones=[5])``: warm-up for 5 steps, then a cosine from η over the remaining 95.
    Construction resets the groups to η and undoes the initial step the schedulers took when
    they were built, then takes the first one's initial step, as torch does. torch's
    schedulers may be mixed in, and this class's ``state_dict`` holds theirs.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        check(len(schedulers) >= 1, "schedulers", schedulers, "at least one scheduler")
        for i, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"SequentialLR: schedulers[{i}] ({scheduler!r}) has no "
                                "`optimizer` attribute")
            check(not isinstance(scheduler, (ReduceLROnPlateau,
                                             torch.optim.lr_scheduler.ReduceLROnPlateau)),
                  f"schedulers[{i}]", scheduler,
                  "no ReduceLROnPlateau, whose step needs a metric")
            check(scheduler.optimizer is optimizer, f"schedulers[{i}]", scheduler,
                  "a scheduler of the same optimizer")
        check(len(milestones) == len(schedulers) - 1, "milestones", milestones,
              f"one fewer milestone than schedulers ({len(schedulers)})")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            set_lr(group, group["initial_lr"])
        self.recursive_undo()
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def recursive_undo(self, sched=None):
        """Take back one step (the initial one) of every scheduler inside, however nested."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._update_lr(0)  # its t = 0, from the closed form where it has one
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, s in zip(self._schedulers, saved, strict=True):
            scheduler.load_state_dict(s)


# --- a schedule driven by a metric ----------------------------------------------------------


class ReduceLROnPlateau(LRScheduler):
    r"""Divide the rate when a metric stops improving: η ← max(``factor``·η, ``min_lr``)
    after more than ``patience`` consecutive steps without improvement, then wait
    ``cooldown`` steps (counting no bad steps) before watching again.

    A step improves on the best value b so far when the metric a satisfies, in mode ``"min"``,
    a < b(1 − threshold) (``threshold_mode="rel"``) or a < b − threshold (``"abs"``); in mode
    ``"max"``, a > b(1 + threshold) or a > b + threshold. A reduction smaller than ``eps`` is
    skipped. The rate depends on the metrics seen, not on t, so there is no closed form; call
    ``step(metric)``. Like torch's, this class does not take an initial step at construction
    and does not record ``initial_lr``.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        check(factor < 1.0, "factor", factor, "factor < 1")
        self.factor = factor
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = per_group("min_lr", optimizer, min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = current_lrs(optimizer)
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _init_is_better(self, mode, threshold, threshold_mode):
        check(mode in ("min", "max"), "mode", mode, "'min' or 'max'")
        check(threshold_mode in ("rel", "abs"), "threshold_mode", threshold_mode,
              "'rel' or 'abs'")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics, epoch=None):
        current = float(metrics)  # a 0-d tensor too
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = current_lrs(self.optimizer)

    def _reduce_lr(self, epoch):
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The optimizer has {len(self.optimizer.param_groups)} param groups but "
                    f"ReduceLROnPlateau was given {len(self.min_lrs)} min_lrs (a group was "
                    "added since); set `min_lrs` to one value per group.")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                set_lr(group, new_lr)

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold,
                             threshold_mode=self.threshold_mode)
