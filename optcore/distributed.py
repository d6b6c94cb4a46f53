"""Several processes on one machine, and ZeRO-1: optimizer state split across them.

:func:`launch` runs ``worker(rank, world_size, *args)`` in ``world_size`` fresh processes that
form one ``torch.distributed`` process group, as ``torchrun`` would, and returns their results
in rank order. Unlike a hand-rolled ``mp.spawn`` it always ends its processes: when a worker
raises (the others, perhaps blocked in a collective, would wait for ever), when the time is up,
and when the user interrupts. The processes are *spawned*, not forked: a fork of a process
whose torch already runs threads (or CUDA) can deadlock, in Jupyter and Colab too. So the
worker must be importable by name from a module; a function defined in a notebook is refused
with a message saying so.

:class:`ZeRO1` wraps any optimizer the way stage 1 of ZeRO (Rajbhandari et al. 2020, "ZeRO:
Memory Optimizations Toward Training Trillion Parameter Models") does: every rank keeps the
whole model and computes gradients on its own data, but each parameter tensor is *owned* by one
rank (:func:`partition`), and only its owner keeps its optimizer state and updates it. After
the step each owner broadcasts its tensors, so all ranks hold the same model again. The
partition balances elements, so a state proportional to them (Adam's) falls to about
1/``world_size`` per rank. Whole tensors are owned, never slices, so optimizers that need a
whole matrix (Shampoo, SOAP, Adafactor, Muon) work unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import socket
import sys
import threading
import time
import traceback as tb
from multiprocessing.connection import wait

import torch
import torch.distributed as dist

from . import memory
from .optim.base import check

__all__ = ["launch", "WorkerError", "partition", "ZeRO1"]

#: Seconds a process gets to exit after SIGTERM before it is killed with SIGKILL.
GRACE = 2.0


class WorkerError(RuntimeError):
    """A worker of :func:`launch` failed: ``rank`` is the failing rank and ``traceback`` the
    text of its traceback, as the worker's process formatted it."""

    def __init__(self, rank: int, traceback: str):
        super().__init__(f"rank {rank} failed:\n{traceback}")
        self.rank, self.traceback = rank, traceback

    def __reduce__(self):
        return type(self), (self.rank, self.traceback)


def launch(worker, world_size: int = 2, *args, timeout: float = 60.0, backend=None) -> list:
    """Run ``worker(rank, world_size, *args)`` in ``world_size`` new processes and return what
    each returned, in rank order.

    Each process sets the variables ``torchrun`` sets (``MASTER_ADDR=127.0.0.1``,
    ``MASTER_PORT`` a port that was free, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), joins the
    process group with ``init_process_group(backend)``, runs the worker, sends its return value
    back (it must be picklable), and leaves the group. ``backend=None`` picks ``"nccl"`` when
    there are at least ``world_size`` CUDA devices (rank r then uses ``cuda:r``), else
    ``"gloo"``. ``OMP_NUM_THREADS`` is 1 in the workers unless it is set already.

    Every process is ended before this function returns or raises: if a worker raises, the
    others are terminated, then killed, and :class:`WorkerError` names the rank and carries its
    traceback; after ``timeout`` seconds all are killed and ``TimeoutError`` names the ranks
    that had not returned; on ``KeyboardInterrupt`` all are killed and the interrupt goes on.
    The workers' prints go to this process's standard output at the level of the operating
    system, which a notebook may or may not show: return what you want to see.
    """
    check(isinstance(world_size, int) and world_size >= 1, "world_size", world_size,
          "an int >= 1")
    check(timeout > 0, "timeout", timeout, "timeout > 0")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and (
            torch.cuda.device_count() >= world_size) else "gloo"
    payload = _pickle_worker(worker, args)
    port = free_port()
    context = mp.get_context("spawn")
    processes, pipes = [], []
    try:
        for rank in range(world_size):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_run_rank, name=f"optcore-rank-{rank}",
                args=(rank, world_size, port, backend, payload, send, os.getpid()))
            process.start()
            send.close()  # the child holds the only write end: its exit reads as end of file
            processes.append(process)
            pipes.append(receive)
        results = _collect(processes, pipes, time.monotonic() + timeout, timeout)
        deadline = time.monotonic() + GRACE  # they are leaving the process group
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        return results
    finally:
        _end(processes)
        for pipe in pipes:
            pipe.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free just now: the operating system's choice for
    port 0. Never a fixed number, so that two launches, or two notebooks, do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pickle_worker(worker, args) -> bytes:
    """``(worker, args)`` as bytes, or a ``ValueError`` saying why a spawned process could not
    rebuild them. A spawned process starts a fresh interpreter and finds the worker by its
    module and name; a function defined in a notebook (module ``__main__`` without a file), a
    lambda or a function defined inside another function cannot be found that way."""
    check(callable(worker), "worker", worker, "a function")
    name = getattr(worker, "__qualname__", repr(worker))
    module = getattr(worker, "__module__", None)
    interactive = module == "__main__" and not hasattr(sys.modules.get("__main__"), "__file__")
    if interactive or "<locals>" in name or "<lambda>" in name:
        where = "in a notebook or an interactive session" if interactive else f"as {name!r}"
        raise ValueError(
            f"launch: worker {worker!r} is defined {where}, where a new process cannot import "
            f"it. Define the worker as a top-level function in a module (a .py file on "
            f"sys.path, e.g. written next to the notebook) and import it from there.")
    try:
        pickle.dumps(worker)
    except Exception as error:
        raise ValueError(f"launch: worker {worker!r} cannot be pickled ({error}); define it as "
                         f"a top-level function in a module and import it from there.") from error
    try:
        return pickle.dumps((worker, args))
    except Exception as error:
        raise ValueError(f"launch: the worker's arguments cannot be pickled: {error}") from error


def _collect(processes, pipes, deadline: float, timeout: float) -> list:
    """Each rank's result, read from its pipe; raises as :func:`launch` describes."""
    results, waiting = {}, dict(zip(pipes, range(len(pipes))))
    while waiting:
        ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            ranks = sorted(waiting.values())
            raise TimeoutError(
                f"launch: rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} "
                f"still running after {timeout:g} s; all processes were killed.")
        errors = []
        # A failing rank sends its error before its exit can break anyone's collective, so
        # the first failure is already in its pipe when the ranks it disturbed report theirs.
        for pipe in [p for p in waiting if p in ready or p.poll()]:
            rank = waiting.pop(pipe)
            try:
                status, value, when = pipe.recv()
            except EOFError:
                processes[rank].join(GRACE)
                status, value, when = "error", _silent_exit(processes[rank].exitcode), time.time()
            if status == "ok":
                results[rank] = pickle.loads(value)
            else:
                errors.append((when, rank, value))
        if errors:
            _, rank, text = min(errors)
            raise WorkerError(rank, text)
    return [results[rank] for rank in range(len(pipes))]


def _silent_exit(code) -> str:
    """What to say about a process that ended without sending a result or an error."""
    return (f"the process ended (exit code {code}) without a result: it was killed, crashed, "
            f"or failed before it could run the worker (its standard error says why). A script "
            f"that calls launch must do so under `if __name__ == \"__main__\":`, since each new "
            f"process imports the script again.")


def _end(processes) -> None:
    """Terminate what still runs, kill what survives ``GRACE`` seconds, and reap them all, so
    that no zombie or orphan is left."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + GRACE
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()
        process.close()


def _run_rank(rank, world_size, port, backend, payload, pipe, parent) -> None:
    """The body of one spawned process (see :func:`launch`)."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    try:
        try:
            worker, args = pickle.loads(payload)
        except Exception as error:
            raise RuntimeError(
                "this new process could not import the worker. Define it as a top-level "
                "function in a module on sys.path and import it from there.") from error
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend)
        message = ("ok", pickle.dumps(worker(rank, world_size, *args)), time.time())
    except BaseException:  # also KeyboardInterrupt and SystemExit: the parent must hear
        message = ("error", tb.format_exc(), time.time())
    pipe.send(message)
    if message[0] == "ok":  # after an error, leaving the group could wait for the others
        dist.destroy_process_group()
    # Exit at once: the result is sent, and the interpreter's teardown of torch takes seconds
    # (measured: 2-3 s on a busy 2-core machine). Atexit handlers do not run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if message[0] == "ok" else 1)


def _exit_with_parent(parent: int) -> None:
    """Exit when the launching process is gone (killed, say, by a kernel restart), so that
    no rank lives on as an orphan."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def partition(params, world_size: int) -> list[list[int]]:
    """The indices of the parameters each rank owns: ``world_size`` lists, each ascending.

    Greedy, as torch's ``ZeroRedundancyOptimizer`` partitions: within each parameter group,
    largest tensor (by ``numel``) first (equal sizes keep their order), each to the rank with
    the fewest elements so far, ties to the lower rank; the counts carry over from group to
    group. ``params`` is a list of tensors or of parameter groups (dicts with ``"params"``);
    indices count the tensors in order, through the groups. The greedy rule's guarantee: no
    rank owns more than ``total / world_size`` plus the largest tensor.
    """
    check(isinstance(world_size, int) and world_size >= 1, "world_size", world_size,
          "an int >= 1")
    groups = _as_groups(params)
    owned = [[] for _ in range(world_size)]
    load = [0] * world_size
    start = 0
    for group in groups:
        sizes = [p.numel() for p in group["params"]]
        for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
            rank = load.index(min(load))
            owned[rank].append(start + i)
            load[rank] += sizes[i]
        start += len(sizes)
    return [sorted(indices) for indices in owned]


def _as_groups(params) -> list[dict]:
    """Parameter groups (new dicts with ``params`` as a list) from tensors or groups."""
    params = list(params)
    if not params or not isinstance(params[0], dict):
        params = [{"params": params}]
    return [{**group, "params": list(group["params"])} for group in params]


class ZeRO1:
    """ZeRO stage 1 around any optimizer: each rank keeps the state of its own parameters only.

    ``ZeRO1(params, optimizer_class, **hyperparameters)``, called on every rank of an
    initialized process group with the same parameters (tensors or groups), builds
    ``optimizer_class(groups, **hyperparameters)`` over the tensors this rank owns
    (:func:`partition`): ``.shard`` lists them, ``.local_optimizer`` is that optimizer and
    ``.owners[i]`` is the rank owning the i-th parameter. :meth:`step`:

    1. averages the gradients over the ranks, as ``DistributedDataParallel`` does (each
       divided by ``world_size``, then summed by ``all_reduce``);
    2. steps the local optimizer, which updates the owned tensors and their state;
    3. broadcasts each tensor from its owner, so every rank holds the whole updated model.

    Why all-reduce, when only the owner needs a tensor's averaged gradient? Reducing each
    gradient to its owner alone (``dist.reduce``, or a reduce-scatter of a flat buffer cut at
    the owners' boundaries) would halve the gradient traffic. All-reduce is what DDP does, so
    every rank ends with exactly DDP's gradients, and whatever reads ``p.grad`` after the step
    (clipping by the global norm, logging) sees the same numbers on every rank; the saving
    belongs to ZeRO's stage 2, which also frees the gradients a rank does not own.
    ``average_gradients=False`` skips step 1 when the gradients are averaged already (the
    model is wrapped in ``DistributedDataParallel``).

    All ranks must have gradients for the same parameters. ``closure`` is evaluated once,
    before the averaging; an optimizer that re-evaluates it inside its step (L-BFGS) does
    not fit. Tensors must be on the process group's device (CPU for gloo, CUDA for nccl).
    """

    def __init__(self, params, optimizer_class, *, average_gradients: bool = True,
                 **hyperparameters):
        groups = _as_groups(params)
        self.params = [p for group in groups for p in group["params"]]
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.average_gradients = average_gradients
        self.owners = [0] * len(self.params)
        for rank, indices in enumerate(partition(groups, self.world_size)):
            for i in indices:
                self.owners[i] = rank
        mine = {id(p) for p, owner in zip(self.params, self.owners) if owner == self.rank}
        self.shard = [p for p in self.params if id(p) in mine]
        self.local_optimizer = optimizer_class(
            [{**group, "params": [p for p in group["params"] if id(p) in mine]}
             for group in groups], **hyperparameters)

    @property
    def param_groups(self) -> list[dict]:
        """The local optimizer's groups (this rank's tensors), e.g. to change ``lr``."""
        return self.local_optimizer.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        """Average the gradients, update this rank's shard, broadcast every tensor from its
        owner. Returns the closure's loss, if a closure was given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.average_gradients:
            for p in self.params:
                if p.grad is not None:
                    p.grad.div_(self.world_size)
                    dist.all_reduce(p.grad)
        self.local_optimizer.step()
        for p, owner in zip(self.params, self.owners):
            dist.broadcast(p, src=owner)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (not only the shard): every rank computes
        them all."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def state_bytes(self) -> int:
        """Bytes of this rank's optimizer state (:func:`optcore.memory.state_bytes`)."""
        return memory.state_bytes(self.local_optimizer)
