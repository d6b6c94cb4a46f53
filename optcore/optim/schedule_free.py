r"""Schedule-free SGD and AdamW (Defazio et al., 2024, "The Road Less Scheduled"): averaging
instead of a learning-rate schedule ({ref}`ch-schedules`).

A decaying schedule needs the horizon T in advance; averaging the iterates does not. The
schedule-free method runs a base sequence z (plain SGD, or AdamW's normalized step), keeps the
weighted average x of its iterates, and evaluates the gradient at a point y between the two.
Step t = 1, 2, … with a constant learning rate η, starting from x₀ = y₀ = z₀ = θ₀:

.. math::
    d_t &= \nabla f(y_{t-1}) + \lambda\, y_{t-1}
        \quad\text{(SGD; AdamW: see } \texttt{adamw\_schedule\_free\_update}),
        \qquad \gamma_t = \eta \min(1,\ t / T_{\text{warmup}})\\
    z_t &= z_{t-1} - \gamma_t\, d_t\\
    x_t &= (1 - c_t)\, x_{t-1} + c_t\, z_t, \qquad
        c_t = \frac{w_t}{\sum_{i=1}^t w_i}, \qquad
        w_t = t^r \big(\max_{i \le t} \gamma_i\big)^{p}\\
    y_t &= (1 - \beta)\, z_t + \beta\, x_t

(β is ``momentum`` or ``betas[0]``, r is ``r``, p is ``weight_lr_power``, T_warmup is
``warmup_steps``). Since c₁ = 1, x_t is the w-weighted average of z₁, …, z_t; with r = 0 and
constant weights (p = 0, or no warm-up), c_t = 1/t and x_t is their plain running mean,
Polyak–Ruppert averaging. β interpolates between gradients at the average (β → 1, primal
averaging) and at the base sequence (β → 0, SGD with an average on the side); both ends
are excluded, since x is recovered from y and z by dividing by β. The training loss is
measured at y; the model to evaluate or to ship is x.

Only y (in the parameter itself) and z are stored; x = (y − (1 − β) z)/β is implicit.
Eliminating x from the recursion gives the update that is actually run,

.. math::
    y_t = (1 - c_t)\, y_{t-1} + c_t\, z_{t-1} + \gamma_t\big(\beta(1 - c_t) - 1\big)\, d_t,
    \qquad z_t = z_{t-1} - \gamma_t\, d_t,

so schedule-free SGD keeps one buffer, as SGD with momentum does, and schedule-free AdamW
two (z and v), as AdamW does. ``eval()`` puts x into the parameters and ``train()`` puts y
back; a training step in eval mode is refused. A switch rounds: after eval() and train() the
parameters are y to within rounding, not bit for bit (the package's too).

The reference is the authors' package ``schedulefree`` 1.4.1 (``SGDScheduleFree``,
``AdamWScheduleFree``): the same arguments, the same ``param_groups`` entries (the step count
``k``, ``weight_sum``, ``lr_max``, ``scheduled_lr``, ``train_mode``) and state, and in float64
and float32 the same numbers bit for bit (its single-tensor path). Where the package departs
from the paper, optcore follows the package:

- Bias correction (AdamW): the paper's Algorithm 1 (the package's ``AdamWScheduleFreePaper``)
  folds √(1 − β₂ᵗ) into the learning rate, γ_t = η √(1 − β₂ᵗ) min(1, t/T_warmup), which then
  also scales the weights w_t and the decay γ_tλ. Since version 1.3 the package corrects v
  as torch's Adam does, √(v_t / (1 − β₂ᵗ)) + ε, and γ_t is the warm-up alone.
- The weights use the largest learning rate so far, max_{i≤t} γ_i (``lr_max``): during a
  linear warm-up that is γ_t itself; after it, lowering ``lr`` by hand or by a scheduler does
  not lower the weight of later iterates.
- The starting point θ₀ gets no weight (c₁ = 1, so x₁ = z₁). The paper's uniform
  average, c_{t+1} = 1/(t+1) in its notation where the start is x₁ = z₁, includes it.
- Weight decay is taken at y (the package's reference implementation can take it at z).

Where optcore departs from the package, on purpose: arguments are validated (``ValueError``
naming the argument); a step is refused unless *every* group is in train mode (the package
looks at the first group only, so a group added later would be stepped while marked as being
in eval mode); ``p.grad`` is left as it was (the package overwrites it with the normalized
gradient); a failed step can be undone (``undo_failed_steps = True``), the group's counters
included; complex parameters are refused by AdamWScheduleFree (the package's g·g is not
|g|²) and accepted by SGDScheduleFree, whose update is linear. ``foreach`` defaults to None
instead of True, and True is refused, as for every optcore optimizer: there is one per-tensor
loop, which computes what the package's foreach path computes. A checkpoint written by the
package says ``foreach=True`` (its default); loading it sets None, so that the package's
checkpoints load and resume here.
"""

from __future__ import annotations

import numbers

import torch

from .base import Optimizer, as_scalar, check, check_betas, check_lr
from .pieces import bias_correction, ema_sq_, init_state, l2_penalty


def copy_of(param):
    """z₀ = θ₀: the base sequence starts at the parameters."""
    return param.clone(memory_format=torch.preserve_format)


def advance_schedule_(group):
    r"""Advance the group's counters by one step, in place, and return (t, γ_t, c_t).

    .. math::
        \gamma_t = \eta \min(1,\ t / T_{\text{warmup}}), \qquad
        w_t = t^r \big(\max_{i \le t} \gamma_i\big)^{p}, \qquad
        c_t = w_t \Big/ \sum_{i=1}^t w_i

    The group keeps k = t − 1 steps taken, the running maximum ``lr_max`` (−1 before the
    first step) and the running ``weight_sum``, as the schedulefree package keeps them, and
    ``scheduled_lr`` = γ_t for logging. With η = 0 and p > 0 every weight is 0; c_t is then 0.
    """
    k, warmup = group["k"], group["warmup_steps"]
    schedule = (k + 1) / warmup if k < warmup else 1.0
    lr = as_scalar(group["lr"]) * schedule
    lr_max = group["lr_max"] = max(lr, group["lr_max"])
    weight = (k + 1) ** group["r"] * lr_max ** group["weight_lr_power"]
    weight_sum = group["weight_sum"] = group["weight_sum"] + weight
    group["scheduled_lr"] = lr
    group["k"] = k + 1
    return k + 1, lr, weight / weight_sum if weight_sum != 0 else 0.0


def schedule_free_step_(y, z, d, *, lr, beta, c):
    r"""y_t and z_t from y_{t−1}, z_{t−1} and the step direction d_t, in place, without x:

    .. math::
        y_t = (1 - c_t)\, y_{t-1} + c_t\, z_{t-1} + \gamma_t(\beta(1 - c_t) - 1)\, d_t, \qquad
        z_t = z_{t-1} - \gamma_t\, d_t

    which is y_t = (1 − β) z_t + β x_t for x_t = (1 − c_t) x_{t−1} + c_t z_t."""
    y.lerp_(z, c)
    y.add_(d, alpha=lr * (beta * (1 - c) - 1))
    z.sub_(d, alpha=lr)


def sgd_schedule_free_update(y, grad, state, *, lr, momentum, weight_decay, c):
    r"""One schedule-free SGD step on one tensor, in place (``y`` is the parameter in train mode):

    .. math::
        d_t = \nabla f(y_{t-1}) + \lambda\, y_{t-1}, \qquad
        y_t = (1 - c_t)\, y_{t-1} + c_t\, z_{t-1} + \gamma_t(\beta(1 - c_t) - 1)\, d_t, \qquad
        z_t = z_{t-1} - \gamma_t\, d_t

    with z₀ = y₀ the parameters at the first step and γ_t, c_t from :func:`advance_schedule_`.
    Defazio et al. (2024); the decay is an L2 penalty at y, as in the package.
    """
    init_state(state, y, ("z", copy_of))
    d = l2_penalty(grad, y, weight_decay)
    schedule_free_step_(y, state["z"], d, lr=lr, beta=momentum, c=c)


def adamw_schedule_free_update(y, grad, state, *, lr, beta1, beta2, eps, weight_decay, c, t):
    r"""One schedule-free AdamW step on one tensor, in place:

    .. math::
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
        d_t = \frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} + \lambda\, y_{t-1}\\
        y_t &= (1 - c_t)\, y_{t-1} + c_t\, z_{t-1} + \gamma_t(\beta_1(1 - c_t) - 1)\, d_t,
        \qquad z_t = z_{t-1} - \gamma_t\, d_t

    There is no first moment: β₁ is the interpolation weight of y. The decay λy is added after
    the normalization, so it is decoupled from v (AdamW's decay, {ref}`ch-adamw`), and taken at
    y. The bias correction divides v with ε outside the root, as in torch's Adam, but before
    the root (torch divides √v by √(1 − β₂ᵗ): the same number up to rounding); the paper's
    Algorithm 1 puts √(1 − β₂ᵗ) into γ_t instead. Defazio et al. (2024), Algorithm 1, as the
    schedulefree package 1.4.1 implements it.
    """
    init_state(state, y, ("z", copy_of), "exp_avg_sq")
    v = ema_sq_(state["exp_avg_sq"], grad, beta2)
    d = grad.div(v.div(bias_correction(beta2, t)).sqrt_().add_(eps))
    if weight_decay != 0:
        d.add_(y, alpha=weight_decay)
    schedule_free_step_(y, state["z"], d, lr=lr, beta=beta1, c=c)


class _ScheduleFree(Optimizer):
    """What both schedule-free optimizers share: the counters kept in each group, the
    train()/eval() switch between y and x, and the refusal to step in eval mode."""

    def interpolation(self, group):
        """β, the weight of x in y = (1 − β) z + β x."""
        raise NotImplementedError

    def prepare_group(self, group):
        t, lr, c = advance_schedule_(group)  # on the real group: the counters persist
        return {**group, "lr": lr, "c": c, "t": t}

    @torch.no_grad()
    def step(self, closure=None):
        """One step at y. Refused, before the closure runs, unless every group is in train
        mode: the parameters would hold x, and a step taken there corrupts y, z and x."""
        for i, group in enumerate(self.param_groups):
            if not group["train_mode"]:
                raise RuntimeError(
                    f"{type(self).__name__}.step() with parameter group {i} in eval mode: the "
                    f"parameters hold the average x, not the point y where gradients are taken. "
                    f"Call optimizer.train() before training (and after adding a parameter "
                    f"group), and optimizer.eval() before evaluating or saving the model.")
        return super().step(closure)

    @torch.no_grad()
    def eval(self):
        """Put x into the parameters: x = (y − (1 − β) z)/β, computed as y + (1 − 1/β)(z − y).
        Groups already in eval mode, and parameters that have not been stepped (x = y = z),
        are left alone."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta = self.interpolation(group)
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"].to(p.device), weight=1 - 1 / beta)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self):
        """Put y back into the parameters: y = (1 − β) z + β x = x + (1 − β)(z − x). A new
        optimizer starts in eval mode, as the package's does: call train() before the first
        step."""
        for group in self.param_groups:
            if not group["train_mode"]:
                beta = self.interpolation(group)
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"].to(p.device), weight=1 - beta)
                group["train_mode"] = True

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # a checkpoint of the package: foreach=True, its default
            if group.get("foreach"):
                group["foreach"] = None


def _check_schedule(lr, weight_decay, warmup_steps, r, weight_lr_power):
    check_lr(lr)
    check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
    check(isinstance(warmup_steps, numbers.Integral) and not isinstance(warmup_steps, bool)
          and warmup_steps >= 0, "warmup_steps", warmup_steps, "an integer >= 0")
    check(r >= 0.0, "r", r, "r >= 0: the weights t^r must not decrease")
    check(weight_lr_power >= 0.0, "weight_lr_power", weight_lr_power, "weight_lr_power >= 0")


class SGDScheduleFree(_ScheduleFree):
    """Drop-in replacement for ``schedulefree.SGDScheduleFree`` (same arguments, defaults but
    ``foreach``, ``param_groups`` and state; see the module docstring). Call ``train()``
    before training and ``eval()`` before evaluating or saving.

    ``momentum`` is β, in (0, 1): β = 0 would make y = z, from which x cannot be recovered.
    """

    complex_as_real = False  # the update is linear: complex tensors as they are

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2, foreach=None):
        _check_schedule(lr, weight_decay, warmup_steps, r, weight_lr_power)
        check(0.0 < momentum < 1.0, "momentum", momentum,
              "0 < momentum < 1: x = (y - (1 - momentum) z) / momentum")
        defaults = dict(lr=lr, momentum=momentum, r=r, k=0, warmup_steps=warmup_steps,
                        train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        foreach=foreach)
        super().__init__(params, defaults)

    def interpolation(self, group):
        return group["momentum"]

    def update(self, param, grad, state, group):
        sgd_schedule_free_update(param, grad, state, lr=group["lr"], momentum=group["momentum"],
                                 weight_decay=group["weight_decay"], c=group["c"])


class AdamWScheduleFree(_ScheduleFree):
    """Drop-in replacement for ``schedulefree.AdamWScheduleFree`` (same arguments, defaults but
    ``foreach``, ``param_groups`` and state; see the module docstring). Call ``train()``
    before training and ``eval()`` before evaluating or saving.

    ``betas[0]`` is the interpolation weight β, in (0, 1) (β = 0 would make y = z, from which
    x cannot be recovered); ``betas[1]`` the decay of the second moment.
    """

    #: The package squares a complex gradient as g·g, not |g|²: no reference to follow.
    supports_complex = False

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0, foreach=None):
        _check_schedule(lr, weight_decay, warmup_steps, r, weight_lr_power)
        check_betas(betas)
        check(betas[0] > 0.0, "betas[0]", betas[0],
              "0 < betas[0] < 1: x = (y - (1 - betas[0]) z) / betas[0]")
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        defaults = dict(lr=lr, betas=betas, eps=eps, r=r, k=0, warmup_steps=warmup_steps,
                        train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        foreach=foreach)
        super().__init__(params, defaults)

    def interpolation(self, group):
        return group["betas"][0]

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        adamw_schedule_free_update(param, grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                                   eps=group["eps"], weight_decay=group["weight_decay"],
                                   c=group["c"], t=group["t"])
