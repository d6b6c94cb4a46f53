"""How much memory an optimizer's state takes, measured from ``optimizer.state``
({ref}`ch-memory`).

The chapter derives, optimizer by optimizer, how many numbers the state keeps per parameter
element (Adam two, SGD with momentum one, Adafactor a row and a column per matrix); these
functions measure it, so that the table can be checked against the tensors an optimizer
actually holds rather than against its documentation.

What is counted: every tensor in the state, including 0-d ones (step counters, NAdam's Π_t,
ASGD's η_t and μ_t) and tensors inside lists, tuples and dicts (Shampoo's and SOAP's
``statistics``, ``preconditioners`` and ``eigenbases``; L-BFGS's histories ``old_dirs``,
``old_stps``, ``ro`` and ``al``, which torch.optim keeps under the first parameter). ``None``
and plain Python numbers (SparseAdam's integer step, L-BFGS's ``n_iter`` and ``prev_loss``)
hold no tensor memory and count 0. Neither do the numbers the schedule-free optimizers keep
in their parameter groups, which are not ``optimizer.state``.

Shared memory is counted once. Each tensor is charged the whole storage it keeps alive
(``untyped_storage().nbytes()``), and a storage, identified by its device and data pointer,
is charged only the first time it is met. So an entry that is the same tensor as another,
or a view into it, adds nothing; a view into a larger buffer costs the whole buffer, since
that is what it prevents from being freed. A sparse tensor is charged its indices and values,
a DTensor (FSDP2's sharded state, {ref}`ch-distributed`) the local shard this process holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["ParamState", "state_bytes", "state_breakdown"]


@dataclass
class ParamState:
    """The state one parameter holds: ``entries`` maps each state key to its bytes (0 for a
    key whose memory was already counted under another key or parameter), ``bytes`` is their
    sum and ``per_element`` that sum divided by the parameter's ``numel``."""

    index: int
    name: str | None
    shape: tuple
    numel: int
    dtype: torch.dtype
    entries: dict = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(self.entries.values())

    @property
    def per_element(self) -> float:
        return self.bytes / self.numel if self.numel else 0.0


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Total bytes of the tensors in ``optimizer.state``, each storage counted once (see the
    module's docstring); 0 before the first step."""
    return sum(row.bytes for row in state_breakdown(optimizer))


def state_breakdown(optimizer: torch.optim.Optimizer,
                    model: torch.nn.Module | None = None) -> list[ParamState]:
    """One :class:`ParamState` per parameter, in the order of the parameter groups (then any
    state kept under a tensor that is in no group), named after ``model.named_parameters()``
    when ``model`` is given. A parameter without state has an empty ``entries``.

    The rows share one record of storages already counted, so their ``bytes`` add up to
    :func:`state_bytes` and memory shared between two parameters' states is charged to the
    first.
    """
    names = {p: n for n, p in model.named_parameters()} if model is not None else {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    in_groups = set(params)
    params += [p for p in optimizer.state if p not in in_groups]
    seen: set = set()
    rows = []
    for index, param in enumerate(params):
        row = ParamState(index, names.get(param), tuple(param.shape), param.numel(), param.dtype)
        for key, value in optimizer.state.get(param, {}).items():
            row.entries[key] = _bytes(value, seen)
        rows.append(row)
    return rows


def _bytes(value, seen: set) -> int:
    """Bytes of the storages in ``value`` (a tensor, or a container of them) not in ``seen``;
    adds them to ``seen``."""
    if isinstance(value, (list, tuple)):
        return sum(_bytes(v, seen) for v in value)
    if isinstance(value, dict):
        return sum(_bytes(v, seen) for v in value.values())
    if not torch.is_tensor(value):
        return 0
    if hasattr(value, "to_local"):  # a DTensor (FSDP2): this process holds only its shard
        value = value.to_local()
    if value.is_sparse:
        return _bytes([value._indices(), value._values()], seen)
    storage = value.untyped_storage()
    key = (value.device, storage.data_ptr())
    if key in seen:
        return 0
    seen.add(key)
    return storage.nbytes()
