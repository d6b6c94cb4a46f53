"""What every optcore optimizer shares: the step loop, its seam, and the argument checks.

An optimizer here is a `torch.optim.Optimizer` whose `step` does, once for all optimizers,
what is not the algorithm: evaluating the closure, reading the learning rate, skipping
parameters without gradients, negating the gradient for `maximize`, refusing sparse and
complex tensors where the algorithm has no meaning for them, checking what it can before the
first write, and, when asked, undoing a step that fails half-way. The algorithm itself is one
short function per tensor, `update(param, grad, state, group)`, that mirrors the book's
equations. Between the two sits one seam, `update_group`, which by default loops over the
group's tensors; a multi-tensor (foreach) implementation can replace it for one optimizer
without touching the math. What an optimizer keeps per group rather than per tensor (a step
count, a schedule) it advances in `prepare_group`.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

#: The speed switches of torch.optim. ``foreach=True`` and ``fused=True`` select the
#: multi-tensor and the compiled path of an optimizer that has them (its ``fast_paths``);
#: every other switch set to True is refused, never silently ignored. ``None`` (the default)
#: means the per-tensor loop on every device: unlike torch.optim, which picks foreach on
#: CUDA, optcore runs its readable path unless asked, so a run is the same on CPU and GPU.
FAST_PATHS = ("foreach", "fused", "capturable", "differentiable")

_WHY_NOT = {
    "capturable": "its steps read the step count on the host between kernels, so a CUDA "
                  "graph cannot capture them",
    "differentiable": "its steps run under torch.no_grad and update tensors in place, so no "
                      "gradient flows through step() to lr or to the initial parameters",
}


def check(ok, name: str, value, rule: str) -> None:
    """Raise ``ValueError`` naming the argument and its value unless ``ok``."""
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r} (expected {rule})")


def check_lr(lr) -> None:
    """A learning rate is a non-negative float or a one-element tensor, as in torch.optim."""
    if isinstance(lr, torch.Tensor):
        check(lr.numel() == 1, "lr", lr, "a float or a one-element tensor")
    check(lr >= 0.0, "lr", lr, "lr >= 0")


def check_betas(betas) -> None:
    """A pair of decay rates, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for name, beta in zip(("betas[0]", "betas[1]"), betas):
        if isinstance(beta, torch.Tensor):
            check(beta.numel() == 1, name, beta, "a float or a one-element tensor")
        check(0.0 <= beta < 1.0, name, beta, f"0 <= {name} < 1")


def as_scalar(x):
    """A one-element tensor hyperparameter as a 0-d tensor (so that it broadcasts like a
    number, even against a 0-d parameter); anything else unchanged, as torch.optim does."""
    return x.squeeze() if isinstance(x, torch.Tensor) and x.dim() != 0 else x


def refuse_fast_paths(name: str, group: dict, supported=()) -> None:
    """Refuse a parameter group that asks for a speed switch the optimizer does not have
    (``supported`` names those it has), or a fast path for complex parameters."""
    if group.get("foreach") and group.get("fused"):
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    for switch in FAST_PATHS:
        if group.get(switch) and switch not in supported:
            instead = f", or use torch.optim.{name} for the {switch} path" if hasattr(
                torch.optim, name) else ""
            why = _WHY_NOT.get(switch, "it runs one readable per-tensor loop, which computes "
                                       "the same update")
            raise NotImplementedError(
                f"{name}({switch}=True): optcore has no {switch} implementation; {why}. "
                f"Leave {switch} at its default (None or False){instead}.")
    path = "fused" if group.get("fused") else "foreach" if group.get("foreach") else None
    if path and any(torch.is_complex(p) for p in group["params"]):
        raise NotImplementedError(
            f"{name}({path}=True) with complex parameters: optcore's fast paths take real "
            f"tensors only. Use {path}=False for complex parameters (the per-tensor loop "
            f"treats them as real pairs, as torch.optim does).")


def by_device_and_dtype(tensors: list) -> list:
    """The indices of ``tensors`` grouped by (device, dtype), in order of first appearance:
    a foreach or compiled kernel takes tensors of one device and one dtype."""
    groups: dict = {}
    for i, tensor in enumerate(tensors):
        groups.setdefault((tensor.device, tensor.dtype), []).append(i)
    return list(groups.values())


#: Elements per call of a multi-tensor update on a CPU (see :func:`cache_sized`).
CPU_FOREACH_ELEMENTS = 2**18


def cache_sized(indices: list, tensors: list) -> list:
    """``indices`` cut into runs of at most :data:`CPU_FOREACH_ELEMENTS` elements in all
    (at least one tensor each). On a CPU a ``torch._foreach_*`` op is a C++ loop over its tensors, one
    pass over all of them per op: over 10M parameters every pass misses the cache, and
    foreach Adam took 1.8x the per-tensor loop's time (measured, 40 × 250k float32).
    Called on runs that fit in the cache together, it does the loop's work in the loop's
    memory pattern, with the same results bit for bit (each op is per tensor anyway)."""
    runs, run, size = [], [], 0
    for i in indices:
        if run and size + tensors[i].numel() > CPU_FOREACH_ELEMENTS:
            runs.append(run)
            run, size = [], 0
        run.append(i)
        size += tensors[i].numel()
    return runs + [run] if run else runs


class Optimizer(torch.optim.Optimizer):
    """Base class: subclasses implement ``update(param, grad, state, group)``.

    ``update`` receives real tensors: a complex parameter, its gradient and its complex state
    are viewed as real tensors with a trailing dimension of two (``torch.view_as_real``), which
    is how torch.optim treats complex numbers, so each real and imaginary part gets its own
    adaptive statistics. ``grad`` is already negated when the group has ``maximize=True``, and
    ``group["lr"]`` is a number or a 0-d tensor. ``update`` creates the entries of ``state``
    on the first step and changes ``param`` and them in place.
    """

    #: The speed switches this optimizer implements ("foreach", "fused"): see
    #: :meth:`update_group`. The others are refused.
    fast_paths: tuple = ()
    #: Optimizers that accept sparse gradients set this to True.
    supports_sparse_grad = False
    #: Optimizers whose math has no meaning for a complex matrix seen as real pairs (a
    #: Kronecker factor, an orthogonalization, a factored second moment) set this to False.
    supports_complex = True
    #: Optimizers whose update is written for complex tensors as they are (SGD: linear, as
    #: torch's) set this to False; the others see complex numbers as real pairs.
    complex_as_real = True
    #: Opt-in: ``opt.undo_failed_steps = True`` makes a step that raises half-way (a closure,
    #: an interrupt, a bug in a custom ``update``) put every parameter and state tensor back
    #: as it was (see :class:`undo_on_error`). The price is a copy of the parameters and their
    #: state on every step, full-size allocations that torch.optim's in-place loop does not
    #: make, and which a fresh process page-faults in again for every tensor. On 10M float32
    #: parameters (40 tensors of 250k, CPU) Adam took 4.4x the time of
    #: torch.optim.Adam(foreach=False) with the copy; without it, each optimizer that has a
    #: torch counterpart takes 0.6x to 1.05x its time (tests/test_step_allocations.py checks
    #: that it allocates no more). Off by default, the step still checks what it can before
    #: it writes anything (sparse gradients, speed switches, state shapes after a
    #: ``load_state_dict``), so the common mistakes leave nothing half-done. Optimizers whose
    #: own refusal comes after a first write (Shampoo, SOAP, Adam8bit refuse a non-finite
    #: gradient tensor by tensor) turn it on.
    undo_failed_steps = False
    #: State entries shaped like their parameter (same dtype and device too), which ``step``
    #: checks before it changes anything.
    param_like_state: tuple = ()
    #: Group keys that checkpoints of older torch versions lack, with the defaults torch
    #: fills in when it loads them (Adam's, NAdam's, RAdam's ``decoupled_weight_decay``).
    legacy_group_defaults: dict = {}

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.legacy_group_defaults.items():
                group.setdefault(key, value)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        name = type(self).__name__
        try:
            refuse_fast_paths(name, group, self.fast_paths)
            complex_params = [p for p in group["params"] if torch.is_complex(p)]
            if complex_params and not self.supports_complex:
                raise ValueError(
                    f"{name} does not support complex parameters (got "
                    f"{complex_params[0].dtype}); optimize torch.view_as_real(p) as a real "
                    f"parameter if treating real and imaginary parts separately is what you mean.")
        except Exception:
            self.param_groups.pop()
            raise

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    def prepare_group(self, group: dict) -> dict:
        """The parameter group as ``update_group`` and ``update`` see it at this step: by
        default a copy with ``lr`` as a number or a 0-d tensor.

        ``step`` calls it once per group and step, on the optimizer's own ``param_groups``
        entry (not a copy), inside the undo of a failed step, and also for a group none of
        whose parameters has a gradient. An optimizer that keeps state per group rather than
        per tensor advances it here: the schedule-free optimizers' step count, warm-up and
        weight sum, which their authors' package keeps in the group.
        """
        return {**group, "lr": as_scalar(group["lr"])}

    def update_group(self, params: list, grads: list, states: list, group: dict) -> None:
        """Update one parameter group: by default one tensor at a time. With
        ``foreach=True`` or ``fused=True`` (for an optimizer that has the path), the
        multi-tensor ``update_foreach`` or the compiled ``update_fused`` instead, once per
        device and dtype (on a CPU the multi-tensor update once per run of tensors that
        fit in the cache together, :func:`cache_sized`); a sparse gradient still takes the
        per-tensor update, as in torch.optim's SGD."""
        path = self.update_fused if group.get("fused") else (
            self.update_foreach if group.get("foreach") else None)
        dense = [i for i, grad in enumerate(grads) if not grad.is_sparse] if path else []
        for param, grad, state in zip(params, grads, states, strict=True):
            if path is None or grad.is_sparse:
                self._update_real(param, grad, state, group)
        for indices in by_device_and_dtype([params[i] for i in dense]):
            runs = [[dense[i] for i in indices]]
            if path == self.update_foreach and params[runs[0][0]].device.type == "cpu":
                runs = cache_sized(runs[0], params)
            for chosen in runs:
                path([params[i] for i in chosen], [grads[i] for i in chosen],
                     [states[i] for i in chosen], group)

    def update_foreach(self, params: list, grads: list, states: list, group: dict) -> None:
        """The multi-tensor update of one device's and dtype's tensors
        (:mod:`optcore.optim.multi_tensor`); optimizers listing "foreach" in
        ``fast_paths`` define it."""
        raise NotImplementedError

    def update_fused(self, params: list, grads: list, states: list, group: dict) -> None:
        """The compiled update of one device's and dtype's tensors
        (:mod:`optcore.optim.fused`); optimizers listing "fused" in ``fast_paths`` define
        it."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the loss and returns it.

        Everything that can be checked without computing the update is checked before the
        first tensor changes. With ``undo_failed_steps = True``, a step that still raises
        half-way puts every parameter and every state entry back as it was, so it can be
        retried or skipped; without it, the tensors updated before the failure stay updated.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # every check before any change
            # also after a load_state_dict
            refuse_fast_paths(type(self).__name__, group, self.fast_paths)
            for param in group["params"]:
                if param.grad is not None:
                    self._check_sparse(param.grad)
                    self._check_state(param, self.state.get(param))
        work = [self._gather(group) for group in self.param_groups]
        touched = [p for params, _, _ in work for p in params]
        undo = (undo_on_error(self.state, touched, groups=self.param_groups)
                if self.undo_failed_steps else nullcontext())
        with undo:
            for (params, grads, states), group in zip(work, self.param_groups):
                group = self.prepare_group(group)
                if params:
                    self.update_group(params, grads, states, group)
        for param in touched:  # plain SGD keeps no state; torch then has no entry for it
            if not self.state[param]:
                del self.state[param]
        return loss

    def _gather(self, group):
        """The group's parameters that have a gradient, their gradients (negated when
        maximizing) and their states."""
        params, grads, states = [], [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            params.append(param)
            grads.append(-param.grad if group.get("maximize", False) else param.grad)
            states.append(self.state[param])
        return params, grads, states

    def _check_state(self, param: torch.Tensor, state: dict | None) -> None:
        """Refuse, before anything changes, a state entry that the update would meet shaped
        unlike its parameter (typically a checkpoint of another model loaded with
        ``load_state_dict``, which matches parameters by position only): the in-place update
        would fail at that tensor, after the tensors before it had been updated."""
        for key in self.param_like_state:
            value = state.get(key) if state else None
            if isinstance(value, torch.Tensor) and (value.shape, value.dtype, value.device) != (
                    param.shape, param.dtype, param.device):
                raise ValueError(
                    f"{type(self).__name__}: state[{key!r}] is {value.dtype} of shape "
                    f"{tuple(value.shape)} on {value.device}, its parameter {param.dtype} of "
                    f"shape {tuple(param.shape)} on {param.device}; was the state_dict saved "
                    f"for another model? The step was not taken.")

    def _check_sparse(self, grad: torch.Tensor) -> None:
        if grad.is_sparse and not self.supports_sparse_grad:
            name = type(self).__name__
            raise RuntimeError(
                f"{name} does not support sparse gradients. Use optcore.SparseAdam (or "
                f"optcore.SGD / optcore.Adagrad), or create the embedding with sparse=False."
            )

    def _update_real(self, param, grad, state, group) -> None:
        if not (torch.is_complex(param) and self.complex_as_real):
            self.update(param, grad, state, group)
            return
        real_shape = torch.view_as_real(param).shape
        views = {k: _as_real(v) for k, v in state.items()}
        real_state = dict(views)
        self.update(torch.view_as_real(param), torch.view_as_real(grad), real_state, group)
        for key, value in real_state.items():
            if views.get(key) is value:
                continue  # updated in place through the view: the complex tensor has it
            # A new entry shaped like the parameter is stored complex, as torch.optim stores it.
            is_param_like = (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and value.shape == real_shape
            )
            state[key] = torch.view_as_complex(value) if is_param_like else value


def _as_real(value):
    if isinstance(value, torch.Tensor) and torch.is_complex(value):
        return torch.view_as_real(value)
    return value


def copy_tensors(state: dict) -> dict:
    """A copy of one parameter's state: tensors cloned, lists of them too, the rest shared.
    (``copy.deepcopy`` does the same with several times the Python overhead per tensor.)"""
    def clone(value):
        if isinstance(value, torch.Tensor):
            return value.clone()
        if isinstance(value, list):
            return [clone(v) for v in value]
        return value
    return {key: clone(value) for key, value in state.items()}


class undo_on_error:
    """``with undo_on_error(optimizer.state, params):`` — if the block fails, nothing changed.

    On entry it copies ``params`` and their state entries; if the block raises (an exception,
    or Ctrl-C), each parameter and state tensor gets its old values back, in place (the same
    tensor objects, so views and shared memory stay valid), entries the block created are
    removed, and the exception goes on. The price is one copy of the parameters and their
    state per step; a fast path that validates before it writes could do without it.
    ``copy_state`` copies one parameter's state dict (by default :func:`copy_tensors`; an
    optimizer that never changes its state tensors in place can pass a cheaper copy).
    ``groups`` (the optimizer's ``param_groups``) get back every entry they had, by a
    shallow copy: enough for the numbers an optimizer keeps there (its ``prepare_group``
    replaces them, never changes a tensor in place).
    """

    def __init__(self, state, params, copy_state=None, groups=()):
        self.state, self.params = state, list(params)
        self.copy_state = copy_state or copy_tensors
        self.groups = list(groups)

    def __enter__(self):
        self.saved_groups = [(group, dict(group)) for group in self.groups]
        self.saved = []
        for p in self.params:
            s = self.state.get(p)
            entries = (dict(s), self.copy_state(dict(s))) if s else None  # None: no state yet
            self.saved.append((p, p.detach().clone(), entries))
        return self

    @torch.no_grad()
    def __exit__(self, kind, error, traceback):
        if kind is None:
            return False
        for group, entries in self.saved_groups:
            group.clear()
            group.update(entries)
        for p, value, entries in self.saved:
            p.copy_(value)
            if entries is None:
                self.state.pop(p, None)  # the failed step created this state
                continue
            originals, values = entries
            state = self.state[p]
            state.clear()
            for key, value in values.items():
                original = originals[key]
                if isinstance(original, torch.Tensor) and original.shape == value.shape:
                    original.copy_(value)
                    value = original
                state[key] = value
        return False


__all__ = ["Optimizer", "as_scalar", "check", "check_lr", "check_betas", "undo_on_error"]
