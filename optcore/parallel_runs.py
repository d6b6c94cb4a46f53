"""The functions chapter 18 runs in each process ({ref}`ch-distributed`).

``optcore.distributed.launch`` starts one process per rank and calls ``worker(rank,
world_size, *args)`` in each, after ``init_process_group``. A spawned process imports the
worker by name, so a worker cannot be defined in a notebook cell: the chapter's workers live
here. :func:`all_schemes` trains one network with every scheme the chapter discusses (DDP,
``ZeroRedundancyOptimizer``, optcore's ``ZeRO1``, FSDP2) in a single launch, because starting
the processes costs more than all the training; :func:`fails` shows that a failing rank is
reported and cleaned up.

Every scheme trains :func:`deep_net` on ``training.regression_batches``, each rank on its
own half (in general its ``1/world_size``) of every batch, and returns what the chapter
checks: the parameters after each step, the optimizer state this rank holds
(``optcore.memory.state_bytes``) and the bytes handed to each kind of collective.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from . import training
from .distributed import ZeRO1
from .memory import state_bytes
from .optim import Adafactor, Adam

__all__ = ["deep_net", "my_share", "count_collectives", "all_schemes", "fails"]

#: The collectives :func:`count_collectives` counts, and which argument carries the full
#: tensor: all-reduce and broadcast send one tensor, all-gather fills the full ``output``
#: from every rank's shard, reduce-scatter reduces the full ``input`` into shards.
COLLECTIVES = {"all_reduce": "tensor", "broadcast": "tensor", "all_gather_single": "output",
               "reduce_scatter_single": "input"}


def deep_net(width: int = 32, depth: int = 4, *, seed: int = 0, dtype=torch.float64):
    """``depth`` tanh layers Linear(width, width), then Linear(width, 1): four equal matrices
    (so that sharding whole tensors can split them evenly) and small vectors."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / width**0.5)
    return net.to(dtype)


def my_share(batches, rank: int, world_size: int):
    """This rank's rows of every (x, y) batch: the ``rank``-th of ``world_size`` equal parts."""
    return [(x.chunk(world_size)[rank], y.chunk(world_size)[rank]) for x, y in batches]


@contextlib.contextmanager
def count_collectives(counts: Counter | None = None):
    """Add the bytes of the full tensor handed to each collective of ``COLLECTIVES`` while
    the block runs to ``counts`` (a Counter: name → bytes, a new one if None), and yield it.
    Works because DDP's ``allreduce_hook``, ``ZeroRedundancyOptimizer``, FSDP2 and ``ZeRO1``
    all call ``torch.distributed.<name>`` (looked up when they call it)."""
    counts = Counter() if counts is None else counts
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def counting(name):
        def collective(*args, **kwargs):
            tensor = kwargs.get(COLLECTIVES[name], args[0] if args else None)
            counts[name] += tensor.numel() * tensor.element_size()
            return originals[name](*args, **kwargs)
        return collective

    for name in COLLECTIVES:
        setattr(dist, name, counting(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


def all_schemes(rank: int, world_size: int, steps: int = 10, lr: float = 1e-2) -> dict:
    """Train :func:`deep_net` for ``steps`` batches of 32 rows with each scheme; returns, per
    scheme, the parameters after every step (``path``), this rank's ``state_bytes`` and the
    bytes counted per collective; and when the worker ``started`` and ``finished``."""
    from torch.distributed.fsdp import fully_shard  # imported only in the workers
    from torch.distributed.optim import ZeroRedundancyOptimizer

    batches = my_share(training.regression_batches(steps, inputs=32, size=32), rank, world_size)
    out = {"rank": rank, "started": time.time()}  # wall-clock: comparable across processes

    def record(name, net, optimizer, model=None, bytes_of=state_bytes):
        snapshots, counts = [], Counter()
        for x, y in batches:
            with count_collectives(counts):  # the training step only, not the snapshot
                optimizer.zero_grad()
                training.mse(model or net, x, y).backward()
                optimizer.step()
            snapshots.append(flat(net))
        out[name] = {"path": torch.stack(snapshots), "state_bytes": bytes_of(optimizer),
                     "sent": dict(counts)}

    def ddp(net):
        model = DistributedDataParallel(net)
        model.register_comm_hook(None, allreduce_hook)  # DDP's default, in Python: countable
        return model

    for name, cls in [("Adam", Adam), ("Adafactor", Adafactor)]:
        net = deep_net()
        record(f"DDP {name}", net, cls(net.parameters(), lr=lr), ddp(net))
        net = deep_net()
        zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=cls, lr=lr)
        record(f"ZeroRedundancyOptimizer {name}", net, zero, ddp(net),
               bytes_of=lambda z: state_bytes(z.optim))
    net = deep_net()
    record("ZeRO1 Adam", net, ZeRO1(net.parameters(), Adam, lr=lr), bytes_of=ZeRO1.state_bytes)

    for name, cls in [("Adam", Adam), ("Adafactor", Adafactor)]:
        net = deep_net()
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        fully_shard(net)
        try:
            record(f"FSDP2 {name}", net, cls(net.parameters(), lr=lr))
        except RuntimeError as error:
            out[f"FSDP2 {name}"] = {"error": f"{type(error).__name__}: {error}"}
    out["finished"] = time.time()
    return out


def flat(net) -> torch.Tensor:
    """All parameters of ``net`` in one vector; the full tensors when FSDP2 has sharded them."""
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in net.parameters()]
    return torch.cat([p.detach().flatten() for p in full])


def fails(rank: int, world_size: int, seconds: float = 30.0):
    """Rank 1 raises at once; the others would go on for ``seconds`` if the launcher did not
    end them."""
    if rank == 1:
        raise ValueError(f"rank {rank} of {world_size} fails on purpose")
    time.sleep(seconds)
