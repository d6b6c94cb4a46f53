"""What every optcore optimizer shares: the step loop, its seam, and the argument checks.

An optimizer here is a `torch.optim.Optimizer` whose `step` does, once for all optimizers,
what is not the algorithm: evaluating the closure, reading the learning rate, skipping
parameters without gradients, negating the gradient for `maximize`, refusing sparse and
complex tensors where the algorithm has no meaning for them, and undoing a step that fails
half-way. The algorithm itself is one short function per tensor, `update(param, grad, state,
group)`, that mirrors the book's equations. Between the two sits one seam, `update_group`,
which by default loops over the group's tensors; a multi-tensor (foreach) implementation can
replace it for one optimizer without touching the math. What an optimizer keeps per group
rather than per tensor (a step count, a schedule) it advances in `prepare_group`.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

#: The speed switches of torch.optim. optcore accepts them so that it stays a drop-in
#: replacement, but has no such path yet: True is refused, never silently ignored.
FAST_PATHS = ("foreach", "fused", "capturable", "differentiable")


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


def refuse_fast_paths(name: str, group: dict) -> None:
    """Refuse a parameter group that asks for a speed switch optcore does not have."""
    if group.get("foreach") and group.get("fused"):
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    for switch in FAST_PATHS:
        if group.get(switch):
            instead = f", or use torch.optim.{name} for the {switch} path" if hasattr(
                torch.optim, name) else ""
            raise NotImplementedError(
                f"{name}({switch}=True): optcore has no {switch} implementation; it runs "
                f"one readable per-tensor loop, which computes the same update. Leave "
                f"{switch} at its default (None or False){instead}.")


class Optimizer(torch.optim.Optimizer):
    """Base class: subclasses implement ``update(param, grad, state, group)``.

    ``update`` receives real tensors: a complex parameter, its gradient and its complex state
    are viewed as real tensors with a trailing dimension of two (``torch.view_as_real``), which
    is how torch.optim treats complex numbers, so each real and imaginary part gets its own
    adaptive statistics. ``grad`` is already negated when the group has ``maximize=True``, and
    ``group["lr"]`` is a number or a 0-d tensor. ``update`` creates the entries of ``state``
    on the first step and changes ``param`` and them in place.
    """

    #: Optimizers that accept sparse gradients set this to True.
    supports_sparse_grad = False
    #: Optimizers whose math has no meaning for a complex matrix seen as real pairs (a
    #: Kronecker factor, an orthogonalization, a factored second moment) set this to False.
    supports_complex = True
    #: Optimizers whose update is written for complex tensors as they are (SGD: linear, as
    #: torch's) set this to False; the others see complex numbers as real pairs.
    complex_as_real = True
    #: A failed step restores every parameter and state tensor (see :class:`undo_on_error`).
    #: The copy costs memory (a second copy of the parameters and state during the step) and
    #: time. Measured on a CPU against torch.optim.Adam(foreach=False): 1.5x with the copy and
    #: 1.3x without for 20 tensors of 100 elements; 2.9x with and 1.2x without for 4 tensors
    #: of 10⁶, where the copies' allocations dominate. ``opt.undo_failed_steps = False``
    #: trades the guarantee for that speed.
    undo_failed_steps = True
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
            refuse_fast_paths(name, group)
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
        """Update one parameter group: by default one tensor at a time. The seam for a
        multi-tensor implementation, which receives the same lists."""
        for param, grad, state in zip(params, grads, states, strict=True):
            self._update_real(param, grad, state, group)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the loss and returns it.

        If anything raises during the step, every parameter and every state entry is put back
        as it was before the step, so a failed step can be retried or skipped.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # every check before any change
            refuse_fast_paths(type(self).__name__, group)  # also after a load_state_dict
            for param in group["params"]:
                if param.grad is not None:
                    self._check_sparse(param.grad)
        work = [self._gather(group) for group in self.param_groups]
        touched = [p for params, _, _ in work for p in params]
        undo = undo_on_error(self.state, touched, groups=self.param_groups)
        with undo if self.undo_failed_steps else nullcontext():
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
