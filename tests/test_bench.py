"""optcore.bench on tiny sizes ({ref}`ch-fast-optimizers`): every contender runs or says why
not, the bytes table follows from the state each optimizer really keeps, and the command line
prints a table and JSON. Nothing here asserts a timing."""

import json
import os
import subprocess
import sys

import pytest
import torch

import optcore
from optcore import bench
from optcore.memory import state_breakdown

TINY = dict(params=3000, tensors=3, rounds=2, steps=1, warmup=1)
COMPILED = ("torch-compiled", "optcore-fused")  # compiling takes seconds: one test
FAST = [c for c in bench.CONTENDERS if c not in COMPILED]


@pytest.mark.parametrize("name", list(bench.OPTIMIZERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bytes_per_param_follow_from_the_state(name, dtype):
    """A step reads θ, g and each of the k parameter-shaped state tensors and writes θ and
    them: (3 + 2k) × itemsize bytes, with k counted in the state optcore keeps after a step
    (28 for float32 Adam, 12 for plain SGD, 14 for bfloat16 Adam)."""
    optcore_name, _, kwargs, k_declared = bench.OPTIMIZERS[name]
    p = torch.nn.Parameter(torch.randn(64, 32, dtype=dtype))
    p.grad = torch.randn_like(p)
    opt = getattr(optcore, optcore_name)([p], **kwargs)
    opt.step()
    (row,) = state_breakdown(opt)
    full = p.numel() * dtype.itemsize
    k = sum(nbytes == full for nbytes in row.entries.values())
    assert all(nbytes in (0, 4, full) for nbytes in row.entries.values())  # 0-d or like θ
    assert k == k_declared
    assert bench.STREAMS[name] == (2 + k, 1 + k)
    assert bench.bytes_per_param(name, dtype) == (3 + 2 * k) * dtype.itemsize
    expected = {"adam": 28, "sgd": 12, "sgd-momentum": 20}.get(name)
    if expected and dtype == torch.float32:
        assert bench.bytes_per_param(name, dtype) == expected


def test_every_contender_runs_or_says_why():
    report = bench.run("adam", contenders=FAST, **TINY)
    assert [r.name for r in report.rows] == FAST
    for row in report.rows:
        assert (row.ms is None) == (row.reason is not None), row
        if row.ms is not None:
            assert row.ms > 0 and row.gbps > 0 and row.first_ms > 0
            assert len(row.samples) == TINY["rounds"]
    for name in ("torch-forloop", "torch-foreach", "torch-fused", "optcore"):
        assert report.row(name).ms is not None, report.row(name).reason
    assert report.reference.startswith("torch-")
    assert min(r.ratio for r in report.rows if r.ms is not None) == 1.0
    assert report.bytes_per_param == 28 and report.copy_gbps > 0


def test_missing_paths_are_reported_not_raised():
    report = bench.run("rmsprop", contenders=["torch-fused", "optcore"], **TINY)
    assert "no fused path" in report.row("torch-fused").reason
    report = bench.run("lion", contenders=["torch-forloop", "optcore"], **TINY)
    assert "torch.optim has no Lion" in report.row("torch-forloop").reason
    assert report.reference == "optcore" and report.row("optcore").ratio == 1.0


def test_compiled_contenders_report_their_compile_time():
    report = bench.run("sgd", params=100, tensors=1, rounds=2, steps=1, warmup=1,
                       contenders=["torch-forloop", *COMPILED])
    assert report.row("torch-compiled").ms is not None, report.row("torch-compiled").reason
    for name in COMPILED:
        row = report.row(name)
        assert (row.ms is None) == (row.reason is not None), row
        if row.ms is not None:
            assert row.first_ms > 10 * row.ms  # the first call compiled


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="optimizer: 'adamm'"):
        bench.run("adamm", **TINY)
    with pytest.raises(ValueError, match="contender: 'torch-fast'"):
        bench.run("adam", contenders=["torch-fast"], **TINY)
    with pytest.raises(ValueError, match="tensors: 4000"):
        bench.make_params(3000, 4000, torch.float32, "cpu")
    assert bench.parse_count("10M") == 10**7 and bench.parse_count("250k") == 250_000
    assert bench.parse_count("1e6") == 10**6
    for bad in ("ten", "0", "1.5"):
        with pytest.raises(ValueError, match="count"):
            bench.parse_count(bad)


def cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "optcore.bench", "--params", "2k",
                           "--tensors", "2", "--rounds", "2", "--steps", "1", "--device", "cpu",
                           "--contenders", ",".join(FAST), *args],
                          capture_output=True, text=True, env=env, check=True)


def test_command_line_table_and_json():
    result = cli("--optimizer", "sgd-momentum")
    for name in FAST:
        assert name in result.stdout
    assert "bytes moved per parameter: 20" in result.stdout
    assert "round 2/2" in result.stderr  # progress goes to stderr
    data = json.loads(cli("--optimizer", "adam", "--json", "--quiet").stdout)
    assert data["optimizer"] == "adam" and data["params"] == 2000
    assert data["bytes_per_param"] == 28 and data["copy_gbps"] > 0
    rows = {row["name"]: row for row in data["rows"]}
    assert list(rows) == FAST
    assert all((row["ms"] is None) == (row["reason"] is not None) for row in rows.values())


def test_memory_traffic_counts_fetches_and_write_backs():
    """Two tensors of 100 bytes, A read, B read, A read and written: a cache that holds
    only one fetches A twice (400 bytes with A's write-back), one that holds both once."""
    A, B = (1, 100), (2, 100)
    log = [([A], []), ([B], []), ([A], [A])]
    assert bench.memory_traffic(log, cache_bytes=150) == 100 + 100 + 100 + 100
    assert bench.memory_traffic(log, cache_bytes=300) == 100 + 100 + 100
    assert bench.memory_traffic([([], [A])], cache_bytes=300) == 100  # written, never read


def test_access_log_sees_foreach_ops_tensor_by_tensor():
    xs = [torch.ones(10), torch.ones(20)]
    ys = [torch.ones(10), torch.ones(20)]
    log = bench.access_log(lambda: torch._foreach_add_(xs, ys))
    nbytes = [[n for _, n in reads] for reads, _ in log]
    assert nbytes == [[40, 40], [80, 80]]  # tensor 0 of both lists, then tensor 1
    assert [w for _, w in log] == [bench._spans([xs[0]]), bench._spans([xs[1]])]
    log = bench.access_log(lambda: xs[0].sqrt())
    assert len(log) == 1 and log[0][0] == bench._spans([xs[0]]) and len(log[0][1]) == 1


def test_interleaved_rotates_and_times_every_function():
    calls = []
    samples = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                rounds=2, number=1)
    assert calls == ["a", "b", "b", "a"] and all(len(s) == 2 for s in samples.values())
