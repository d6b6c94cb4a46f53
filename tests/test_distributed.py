"""optcore.distributed: launch always ends its processes, and ZeRO-1 computes what one process
computes on the averaged gradients, to the last bit, with each rank holding its share of the
state (chapter 18).

Every launch starts fresh Python processes that import torch, seconds each on a busy machine,
so each test launches as few times as it can. The workers below are top-level functions of
this module: the spawned processes import it by name (pytest puts tests/ on ``sys.path``, and
multiprocessing hands ``sys.path`` to the children)."""

import os
import pickle
import signal
import sys
import threading
import time
import types
import warnings

import psutil
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import optcore
from optcore.distributed import WorkerError, ZeRO1, launch, partition
from optcore.memory import state_breakdown
from optcore.training import fit, regression_batches, weights_and_biases

STEPS, LR = 12, 1e-2
NAMES = ("Adam", "Adafactor")


# --- workers (run in the spawned processes) -------------------------------------------------------


def report(rank, world_size):
    """Sum rank + 1 over the ranks, and say what this process was given."""
    total = torch.tensor([rank + 1.0])
    dist.all_reduce(total)
    return {"rank": rank, "world_size": world_size, "total": total.item(), "pid": os.getpid(),
            "backend": dist.get_backend(), "threads": os.environ["OMP_NUM_THREADS"],
            **{k: os.environ[k] for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                          "LOCAL_RANK")}}


def fail_on_rank_one(rank, world_size):
    """Both ranks meet (so both run the worker), then rank 1 raises and rank 0 hangs: it
    stands for a rank stuck where it cannot notice that rank 1 is gone."""
    dist.barrier()
    if rank == 1:
        raise ValueError("rank 1 gives up")
    time.sleep(3600)


def sleep_forever(rank, world_size):
    time.sleep(3600)


def zero_net():
    """4 → 16 → 16 → 16 → 1 tanh MLP: tensors of 256, 256, 64, 16 (×4) and 1 elements, which
    the greedy partition splits 321 : 320 over two ranks."""
    gen = torch.Generator().manual_seed(0)
    widths = [4, 16, 16, 16, 1]
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers[:-1]).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    return net


def rank_batches(rank):
    """Each rank's own mini-batches."""
    return regression_batches(STEPS, seed=10 + rank)


def train_zero(rank, world_size):
    """ZeRO-1 around Adam (two parameter groups) and around Adafactor; and Adam once more with
    the model wrapped in DistributedDataParallel, which averages the gradients itself."""
    runs = {}
    for name in (*NAMES, "Adam+DDP"):
        net = zero_net()
        model = DistributedDataParallel(net) if name.endswith("DDP") else net
        cls = getattr(optcore, name.removesuffix("+DDP"))
        params = weights_and_biases(net, LR) if cls is optcore.Adam else net.parameters()
        opt = ZeRO1(params, cls, lr=LR, average_gradients=not name.endswith("DDP"))
        fit(model, opt, rank_batches(rank), snapshots=False)
        runs[name] = {"params": [p.detach() for p in net.parameters()],
                      "bytes": opt.state_bytes(), "owners": opt.owners,
                      "shard": [any(p is q for q in opt.shard) for p in opt.params]}
    return runs


# --- helpers --------------------------------------------------------------------------------------


def children():
    """This process's descendants, zombies included, except multiprocessing's resource tracker
    (started once by the first spawn, and meant to live as long as this process)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(child.cmdline()):
                continue
        except psutil.Error:  # a zombie may hide its command line: it counts
            pass
        found.add(child.pid)
    return found


@pytest.fixture
def no_process_left():
    """Fails the test if a process it started is still there (running or a zombie)."""
    before = children()
    yield
    assert children() - before == set()


# --- launch ---------------------------------------------------------------------------------------


def test_two_launches_in_a_row_return_in_rank_order(monkeypatch, no_process_left):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    start = time.perf_counter()
    first = launch(report, 2)
    startup = time.perf_counter() - start
    print(f"launching 2 ranks that return at once: {startup:.1f} s")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    second = launch(report, 2)
    for results, threads in ((first, "1"), (second, "2")):
        assert [r["rank"] for r in results] == [0, 1]
        assert [r["RANK"] for r in results] == ["0", "1"] == [r["LOCAL_RANK"] for r in results]
        for r in results:
            assert r["world_size"] == 2 and r["WORLD_SIZE"] == "2"
            assert r["total"] == 1 + 2  # each rank's rank + 1, summed by all_reduce
            assert r["backend"] == "gloo" and r["MASTER_ADDR"] == "127.0.0.1"
            assert r["MASTER_PORT"] == results[0]["MASTER_PORT"]
            assert r["threads"] == threads  # 1 unless the caller set it
        assert results[0]["pid"] != results[1]["pid"] != os.getpid()


def test_a_failing_worker_ends_every_rank(no_process_left):
    """Rank 1 raises while rank 0 hangs: the error names rank 1 and carries its traceback, and
    rank 0 is killed (the fixture finds no process left, not even a zombie)."""
    with pytest.raises(WorkerError) as caught:
        launch(fail_on_rank_one, 2, timeout=120)
    assert caught.value.rank == 1
    assert "ValueError: rank 1 gives up" in caught.value.traceback
    assert "rank 1 failed" in str(caught.value) and "fail_on_rank_one" in str(caught.value)


def test_the_first_error_is_reported():
    """When rank 1 fails, rank 0's collective breaks too and rank 0 reports an error of its
    own; but rank 1 sent its error first (it fails before its exit can break anything), so
    launch reports the earliest one. A rank whose pipe closes without a word is reported with
    its exit code. (Checked on pipes in this process; a real launch cannot order the two.)"""
    from multiprocessing import Pipe

    from optcore.distributed import _collect

    pipes = [Pipe(duplex=False) for _ in range(3)]
    pipes[0][1].send(("error", "rank 0: connection closed by peer", 2.0))
    pipes[1][1].send(("error", "rank 1: ValueError", 1.0))
    pipes[2][1].send(("ok", pickle.dumps(2), 0.0))
    with pytest.raises(WorkerError) as caught:
        _collect([None] * 3, [receive for receive, _ in pipes], time.monotonic() + 5, 5)
    assert caught.value.rank == 1 and caught.value.traceback == "rank 1: ValueError"

    receive, send = Pipe(duplex=False)
    send.close()
    killed = types.SimpleNamespace(join=lambda timeout: None, exitcode=-9)
    with pytest.raises(WorkerError, match=r"rank 0 failed:\nthe process ended \(exit code -9\)"):
        _collect([killed], [receive], time.monotonic() + 5, 5)


def test_a_hung_worker_is_killed_at_the_timeout(no_process_left):
    timeout = 4.0
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"ranks 0, 1 still running after 4 s"):
        launch(sleep_forever, 2, timeout=timeout)
    elapsed = time.perf_counter() - start
    assert timeout <= elapsed < timeout + 5  # SIGTERM ends a sleeping process at once


def test_an_interrupt_ends_every_rank_and_goes_on(no_process_left):
    """Ctrl-C (SIGINT to this process only, as Jupyter's interrupt sends it) while the ranks
    run: they are killed and KeyboardInterrupt reaches the caller."""
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        launch(sleep_forever, 2, timeout=60)
    assert time.perf_counter() - start < 1.0 + 5


def test_a_worker_a_new_process_cannot_import_is_refused():
    """Spawned processes find the worker by module and name, so a lambda, a nested function or
    a function defined in a notebook (module ``__main__`` without a file) cannot be sent; the
    error, raised before any process starts, says to define the worker in a module."""
    def nested(rank, world_size):
        return rank

    notebook = types.FunctionType(report.__code__, {}, "cell_function")
    notebook.__module__ = "__main__"
    main = types.ModuleType("__main__")  # what Jupyter's __main__ looks like: no __file__
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "__main__", main)
        with pytest.raises(ValueError, match="in a notebook.*Define the worker as a top-level "
                                             "function in a module"):
            launch(notebook, 2)
    for worker in (nested, lambda rank, world_size: rank):
        with pytest.raises(ValueError, match="cannot import it. Define the worker"):
            launch(worker, 2)


def test_a_worker_only_this_process_has_gives_a_clear_error(no_process_left):
    """A module made at run time (as a notebook might) pickles by name here but does not exist
    in the new process: the rank reports that it could not import the worker."""
    module = types.ModuleType("made_at_run_time")
    exec("def worker(rank, world_size):\n    return rank", module.__dict__)
    module.worker.__module__ = module.__name__
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, module.__name__, module)
        with pytest.raises(WorkerError, match="could not import the worker"):
            launch(module.worker, 1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="world_size"):
        launch(report, 0)
    with pytest.raises(ValueError, match="timeout"):
        launch(report, 2, timeout=0)
    with pytest.raises(ValueError, match="arguments cannot be pickled"):
        launch(report, 2, lambda: None)
    with pytest.raises(ValueError, match="world_size"):
        partition([torch.zeros(1)], 0)


# --- partition ------------------------------------------------------------------------------------


def torch_partition(groups, world_size):
    """torch 2.13's ZeroRedundancyOptimizer._partition_parameters, run on a stand-in for the
    optimizer (the real one needs a process group), as indices through the groups. (Imported
    here: torch.distributed.optim imports sympy, a second the spawned workers need not spend;
    and it warns that torch.jit is deprecated, which is torch's business.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.distributed.optim import ZeroRedundancyOptimizer

    zero = types.SimpleNamespace(_partition_parameters_cache=[], world_size=world_size,
                                 param_groups=groups)
    zero._get_min_index = lambda values: ZeroRedundancyOptimizer._get_min_index(zero, values)
    zero._partition_param_group = lambda group, per_rank: (
        ZeroRedundancyOptimizer._partition_param_group(zero, group, per_rank))
    index = {id(p): i for i, p in enumerate(p for g in groups for p in g["params"])}
    per_rank = ZeroRedundancyOptimizer._partition_parameters(zero)
    return [sorted(index[id(p)] for g in rank_groups for p in g["params"])
            for rank_groups in per_rank]


def test_partition_is_torchs_greedy_rule():
    # Largest first: 10 (index 1) to rank 0, the equal 10 (index 2) to rank 1, the 7 to rank 0
    # (a tie at 10 : 10 goes to the lower rank), then 3 and 1 to rank 1 (10 < 17, 13 < 17).
    sizes = [3, 10, 10, 1, 7]
    assert partition([torch.zeros(n) for n in sizes], 2) == [[1, 4], [0, 2, 3]]
    gen = torch.Generator().manual_seed(0)
    for trial in range(30):
        world_size = 1 + trial % 4
        numels = torch.randint(1, 6, (int(torch.randint(1, 12, (1,), generator=gen)),),
                               generator=gen) ** 2  # squares: many ties
        tensors = [torch.zeros(int(n)) for n in numels]
        cut = len(tensors) // 2  # two groups: the loads carry over between them
        groups = [{"params": tensors[:cut]}, {"params": tensors[cut:]}]
        assert partition(tensors, world_size) == torch_partition([{"params": tensors}],
                                                                 world_size)
        assert partition(groups, world_size) == torch_partition(groups, world_size)
        # The greedy guarantee: no rank owns more than an even share plus the largest tensor.
        loads = [sum(int(numels[i]) for i in owned) for owned in partition(tensors, world_size)]
        assert sum(loads) == int(numels.sum())
        assert max(loads) <= numels.sum() / world_size + numels.max()


# --- ZeRO-1 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_runs():
    """Both ranks' results of :func:`train_zero` (one launch for all ZeRO tests)."""
    before = children()
    runs = launch(train_zero, 2, timeout=240)
    assert children() - before == set()
    return runs


def averaged_run(name):
    """One process, the same optimizer over all parameters, stepped on the average of the two
    ranks' gradients (g₀/2 + g₁/2: each halved, then summed, as DDP and ZeRO1 do)."""
    net = zero_net()
    cls = getattr(optcore, name)
    whole = [{"params": list(net.parameters())}]
    groups = weights_and_biases(net, LR) if cls is optcore.Adam else whole
    opt = cls(groups, lr=LR)
    batches = [rank_batches(rank) for rank in range(2)]
    for step in range(STEPS):
        grads = []
        for rank in range(2):
            net.zero_grad()
            optcore.training.mse(net, *batches[rank][step]).backward()
            grads.append([p.grad / 2 for p in net.parameters()])
        for p, g0, g1 in zip(net.parameters(), *grads):
            p.grad = g0 + g1
        opt.step()
    return net, opt, groups


@pytest.mark.parametrize("name", NAMES)
def test_zero1_matches_one_process_on_averaged_gradients_bitwise(zero_runs, name):
    ranks = [runs[name] for runs in zero_runs]
    net, _, _ = averaged_run(name)
    for p0, p1, p in zip(ranks[0]["params"], ranks[1]["params"], net.parameters()):
        assert torch.equal(p0, p1)  # every rank holds the same model after the broadcasts
        assert torch.equal(p0, p.detach())  # and it is the one-process model, bit for bit
    moved = sum((p.detach() - s.detach()).abs().sum() for p, s in
                zip(net.parameters(), zero_net().parameters()))
    assert moved > 1e-3  # not equal by standing still


def test_zero1_averages_gradients_as_ddp_does(zero_runs):
    """ZeRO1 averaging the gradients itself and ZeRO1 behind DistributedDataParallel (with
    average_gradients=False) give the same model, bit for bit."""
    for runs in zero_runs:
        for ours, ddp in zip(runs["Adam"]["params"], runs["Adam+DDP"]["params"]):
            assert torch.equal(ours, ddp)


@pytest.mark.parametrize("name", NAMES)
def test_each_rank_holds_exactly_the_state_of_its_shard(zero_runs, name):
    """A rank's state bytes are the one-process optimizer's bytes for the tensors the rank
    owns, derived from partition. For Adam, whose state is two numbers per element (and a
    step), that is half the total within 1%, since the elements split 321 : 320. Adafactor's
    are not halves: the partition balances elements, and a factored matrix keeps a row and a
    column, far less than its share."""
    _, opt, groups = averaged_run(name)
    per_param = [row.bytes for row in state_breakdown(opt)]  # in the groups' order
    owned = partition(groups, 2)
    for rank, runs in enumerate(zero_runs):
        run = runs[name]
        assert run["owners"] == [r for i in range(len(per_param)) for r in range(2)
                                 if i in owned[r]]
        assert [i for i, mine in enumerate(run["shard"]) if mine] == owned[rank]
        assert run["bytes"] == sum(per_param[i] for i in owned[rank])
    assert sum(runs[name]["bytes"] for runs in zero_runs) == sum(per_param)
    print(f"{name}: state bytes per rank {[runs[name]['bytes'] for runs in zero_runs]} of "
          f"{sum(per_param)}")
    if name == "Adam":  # two numbers per element, and the partition splits 321 : 320
        total = sum(per_param)
        for runs in zero_runs:
            assert abs(runs[name]["bytes"] / (total / 2) - 1) < 0.01


def test_zero1_on_one_rank_is_the_optimizer_itself():
    """In this process, as a group of one: ZeRO1 steps exactly as the optimizer it wraps (the
    average of one gradient is that gradient), and zero_grad clears every gradient."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ours, theirs = zero_net(), zero_net()
        zero = ZeRO1(ours.parameters(), optcore.Adam, lr=LR)
        plain = optcore.Adam(theirs.parameters(), lr=LR)
        fit(ours, zero, rank_batches(0), snapshots=False)
        fit(theirs, plain, rank_batches(0), snapshots=False)
        assert zero.shard == zero.params == list(ours.parameters())
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(p, q) and torch.equal(p.grad, q.grad)
        zero.zero_grad(set_to_none=False)
        assert all(p.grad is not None and not p.grad.any() for p in ours.parameters())
        zero.zero_grad()
        assert all(p.grad is None for p in ours.parameters())
    finally:
        dist.destroy_process_group()
