"""What every optcore optimizer shares: the step loop and the argument checks.

An optimizer here is a `torch.optim.Optimizer` whose `step` visits each parameter with a
gradient and calls one short function, `update(param, grad, state, group)`, that mirrors the
book's equations. Everything that is the same for all optimizers lives in this module, once:
evaluating the closure, skipping parameters without gradients, negating the gradient for
`maximize`, refusing sparse gradients, and seeing complex numbers as pairs of reals.
"""

from __future__ import annotations

import torch


def check(ok, name: str, value, rule: str) -> None:
    """Raise ``ValueError`` naming the argument and its value unless ``ok``."""
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r} (expected {rule})")


def check_lr(lr) -> None:
    """A learning rate is a non-negative float or a one-element tensor, as in torch.optim."""
    if isinstance(lr, torch.Tensor):
        check(lr.numel() == 1, "lr", lr, "a float or a one-element tensor")
    check(lr >= 0.0, "lr", lr, "lr >= 0")


def check_betas(betas, names=("betas[0]", "betas[1]")) -> None:
    """Both decay rates in [0, 1)."""
    for name, beta in zip(names, betas, strict=True):
        if isinstance(beta, torch.Tensor):
            check(beta.numel() == 1, name, beta, "a float or a one-element tensor")
        check(0.0 <= beta < 1.0, name, beta, f"0 <= {name} < 1")


def as_scalar(x):
    """A one-element tensor hyperparameter as a 0-d tensor (so that it broadcasts like a
    number, even against a 0-d parameter); anything else unchanged, as torch.optim does."""
    return x.squeeze() if isinstance(x, torch.Tensor) and x.dim() != 0 else x


def scalar_step_tensor() -> torch.Tensor:
    """The step counter as torch.optim stores it: a 0-d float tensor (float64 under a float64
    default dtype), so that optcore and torch.optim checkpoints have the same layout."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)


class Optimizer(torch.optim.Optimizer):
    """Base class: subclasses implement ``update(param, grad, state, group)``.

    ``update`` receives real tensors: a complex parameter, its gradient and its complex state
    are viewed as real tensors with a trailing dimension of two (``torch.view_as_real``), which
    is how torch.optim treats complex numbers, so each real and imaginary part gets its own
    adaptive statistics. ``grad`` is already negated when the group has ``maximize=True``.
    ``update`` changes ``param`` and the tensors in ``state`` in place; it may add new entries
    to ``state``.
    """

    #: Optimizers that accept sparse gradients set this to True.
    supports_sparse_grad = False

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._check_sparse(param.grad)
                grad = -param.grad if group.get("maximize", False) else param.grad
                self._update_real(param, grad, self.state[param], group)
        return loss

    def _check_sparse(self, grad: torch.Tensor) -> None:
        if grad.is_sparse and not self.supports_sparse_grad:
            name = type(self).__name__
            raise RuntimeError(
                f"{name} does not support sparse gradients. Use optcore.SparseAdam (or "
                f"optcore.SGD / optcore.Adagrad), or create the embedding with sparse=False."
            )

    def _update_real(self, param, grad, state, group) -> None:
        if not torch.is_complex(param):
            self.update(param, grad, state, group)
            return
        real_shape = torch.view_as_real(param).shape
        real_state = {k: _as_real(v) for k, v in state.items()}
        self.update(torch.view_as_real(param), torch.view_as_real(grad), real_state, group)
        # Entries shaped like the parameter are stored complex again, as torch.optim stores them.
        for key, value in real_state.items():
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


__all__ = ["Optimizer", "as_scalar", "check", "check_lr", "check_betas", "scalar_step_tensor"]
