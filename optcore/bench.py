"""How fast is an optimizer step, against the machine's memory bandwidth
(chapter 19, "Fast optimizers").

An optimizer step does a handful of flops per parameter and moves every parameter, its
gradient and its state through memory, so its speed limit is the memory bandwidth: the
*roofline* (Williams, Waterman & Patterson 2009). This module times one optimizer's
contenders — torch.optim's for-loop, foreach, fused and compiled paths and optcore's default,
foreach and fused paths — in one process, in interleaved rounds whose order rotates, and
reports for each the median milliseconds per step, the effective bandwidth, its ratio to
torch's fastest, and the time of its first two steps, which hold a compiled path's
compilation (a step that creates state, such as SGD momentum's first, may not call the
compiled kernel yet; the second does).
The roofline is measured the same way: ``dst.copy_(src)`` into memory already written once.

Bytes moved per parameter element, what :data:`STREAMS` counts: each tensor shaped like the
parameter that a step must read (θ, g and the k state tensors) or write (θ and the state),
once, times the dtype's size. That is the least traffic any implementation needs; a path
that reads a tensor twice (because it left the cache in between) moves more and shows a lower
effective bandwidth. Temporaries are not counted, nor the 0-d step counters.

Command line::

    python -m optcore.bench --optimizer adam --params 10M --tensors 40
    python -m optcore.bench --optimizer sgd-momentum --device cuda --params 100M --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import optim as optcore_optim

#: Per optimizer: optcore's class, torch.optim's (None: no counterpart), constructor
#: arguments, and the number k of state tensors shaped like the parameter.
OPTIMIZERS = {
    "sgd": ("SGD", "SGD", dict(lr=1e-3), 0),
    "sgd-momentum": ("SGD", "SGD", dict(lr=1e-3, momentum=0.9), 1),
    "adam": ("Adam", "Adam", dict(lr=1e-3), 2),
    "adamw": ("AdamW", "AdamW", dict(lr=1e-3), 2),
    "rmsprop": ("RMSprop", "RMSprop", dict(lr=1e-3), 1),
    "adagrad": ("Adagrad", "Adagrad", dict(lr=1e-3), 1),
    "adamax": ("Adamax", "Adamax", dict(lr=1e-3), 2),
    "nadam": ("NAdam", "NAdam", dict(lr=1e-3), 2),
    "radam": ("RAdam", "RAdam", dict(lr=1e-3), 2),
    "lion": ("Lion", None, dict(lr=1e-4), 1),
}

#: Parameter-shaped tensors a step reads and writes, per optimizer: (reads, writes).
#: SGD reads θ and g and writes θ; momentum adds its buffer M, read and written; Adam reads
#: θ, g, m, v and writes θ, m, v (4 + 3 tensors: 28 bytes per float32 parameter).
STREAMS = {
    "sgd": (2, 1),           # θ, g → θ
    "sgd-momentum": (3, 2),  # θ, g, M → θ, M
    "adam": (4, 3),          # θ, g, m, v → θ, m, v
    "adamw": (4, 3),         # as Adam; the decay reads θ, which is read anyway
    "rmsprop": (3, 2),       # θ, g, v → θ, v
    "adagrad": (3, 2),       # θ, g, G → θ, G
    "adamax": (4, 3),        # θ, g, m, u → θ, m, u
    "nadam": (4, 3),         # θ, g, m, v → θ, m, v
    "radam": (4, 3),         # θ, g, m, v → θ, m, v
    "lion": (3, 2),          # θ, g, m → θ, m
}

#: Every contender, in the order the report lists them.
CONTENDERS = ("torch-forloop", "torch-foreach", "torch-fused", "torch-compiled",
              "optcore", "optcore-foreach", "optcore-fused")


def bytes_per_param(optimizer: str, dtype: torch.dtype = torch.float32) -> int:
    """Bytes a step must move per parameter element: (reads + writes) × the dtype's size."""
    reads, writes = STREAMS[optimizer]
    return (reads + writes) * dtype.itemsize


def parse_count(text: str) -> int:
    """'10M' → 10_000_000, '250k' → 250_000, '1e6' → 1_000_000."""
    text = str(text).strip()
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"Invalid count: {text!r} (expected e.g. 10M, 250k, 1e6)") from None
    if value < 1 or value != int(value):
        raise ValueError(f"Invalid count: {text!r} (expected a positive whole number)")
    return int(value)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Row:
    """One contender's result; ``ms`` is None when it did not run, and ``reason`` says why."""

    name: str
    ms: float | None = None
    gbps: float | None = None
    ratio: float | None = None
    first_ms: float | None = None
    reason: str | None = None
    samples: list = field(default_factory=list, repr=False)


@dataclass
class Report:
    """What :func:`run` measured: the configuration, the bytes a step must move per
    parameter (:func:`bytes_per_param`), the copy's bandwidth and the time a step would take
    at it (``roofline_ms``), the contender the ratios refer to (torch's fastest, or the
    fastest of all when torch has none) and one :class:`Row` per contender."""

    optimizer: str
    params: int
    tensors: int
    dtype: str
    device: str
    rounds: int
    steps: int
    bytes_per_param: int
    copy_gbps: float
    roofline_ms: float
    reference: str | None
    rows: list

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def to_json(self) -> str:
        data = asdict(self)
        for row in data["rows"]:
            row.pop("samples")
        return json.dumps(data, indent=2)

    def table(self) -> str:
        reads, writes = STREAMS[self.optimizer]
        size = self.bytes_per_param // (reads + writes)
        lines = [
            f"{self.optimizer}: {self.params:,} {self.dtype} parameters in {self.tensors} "
            f"tensors, {self.device}; medians of {self.rounds} rounds of {self.steps} steps",
            f"bytes moved per parameter: {self.bytes_per_param} ({reads} tensors read, "
            f"{writes} written, {size} B each)",
            f"roofline: copy at {self.copy_gbps:.1f} GB/s, i.e. {self.roofline_ms:.3f} ms "
            f"per step",
            f"{'contender':<16}{'ms/step':>10}{'GB/s':>8}{'× ' + (self.reference or '-'):>20}"
            f"{'1st 2 steps ms':>15}",
        ]
        for r in self.rows:
            if r.ms is None:
                lines.append(f"{r.name:<16}  n/a ({r.reason})")
                continue
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
            lines.append(f"{r.name:<16}{r.ms:>10.3f}{r.gbps:>8.1f}{ratio:>20}"
                         f"{r.first_ms:>15.1f}")
        return "\n".join(lines)


def make_params(params: int, tensors: int, dtype, device, seed: int = 0) -> list:
    """``tensors`` leaf tensors of (nearly) equal size adding up to ``params`` elements, each
    with a gradient; the same values for the same seed and device."""
    if not 1 <= tensors <= params:
        raise ValueError(f"Invalid tensors: {tensors!r} (expected 1 <= tensors <= params)")
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)  # drawn where they live
    sizes = [params // tensors + (i < params % tensors) for i in range(tensors)]
    out = []
    for n in sizes:
        p = torch.randn(n, generator=generator, device=device).to(dtype)
        p.grad = (1e-3 * torch.randn(n, generator=generator, device=device)).to(dtype)
        out.append(p)
    return out


def make_step(contender: str, optimizer: str, params: list):
    """The step function of one contender on ``params``, or raise an error saying why it
    cannot run. torch's compiled contender compiles its for-loop optimizer's step
    (``torch.compile`` around ``opt.step()``) on its first call."""
    optcore_name, torch_name, kwargs, _ = OPTIMIZERS[optimizer]
    family, _, path = contender.partition("-")
    if family == "torch":
        if torch_name is None:
            raise LookupError(f"torch.optim has no {optcore_name}")
        cls = getattr(torch.optim, torch_name)
        flag = {"forloop": "foreach", "compiled": "foreach"}.get(path, path)
        if flag not in inspect.signature(cls).parameters:
            raise LookupError(f"torch.optim.{torch_name} has no {path} path")
        value = path in ("foreach", "fused")
        opt = cls(params, **kwargs, **{flag: value})
        if path == "compiled":
            return torch.compile(opt.step)
        return opt.step
    cls = getattr(optcore_optim, optcore_name)
    group = {"params": params, path: True} if path else {"params": params}
    return cls([group], **kwargs).step  # a group key: also where __init__ lacks the flag


def copy_step(params: int, dtype, device):
    """The roofline's step: copy ``params`` elements into memory written once before. It is
    credited read + write (2 × the bytes copied); on a CPU whose stores first read the line
    they write (write-allocate), it really moves 3 ×, so a step that writes only lines it has
    read can show more than the copy's GB/s."""
    src = torch.randn(params, device=device).to(dtype)
    dst = torch.empty_like(src)
    dst.copy_(src)  # fault the pages in now, not in the first timed copy
    return lambda: dst.copy_(src)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:100]


def interleaved(functions: dict, device="cpu", *, rounds: int = 5, number: int = 1,
                progress: bool = False) -> dict:
    """Seconds per call of each of ``functions`` (name → function of no arguments): in each
    of ``rounds`` rounds every function runs ``number`` times, the order rotated by one
    from round to round, the device synchronized around each. Returns name → the list of
    the rounds' times; their median is robust to a machine that is busy now and then."""
    device = torch.device(device)
    samples = {name: [] for name in functions}
    order = list(functions)
    for r in range(rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            fn = functions[name]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(number):
                fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) / number)
        if progress:
            print(f"\rround {r + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return samples


def run(optimizer: str = "adam", params: int = 10**6, tensors: int = 10, *,
        dtype=torch.float32, device="cpu", rounds: int = 10, steps: int = 5,
        warmup: int = 3, contenders=CONTENDERS, progress: bool = False) -> Report:
    """Time ``contenders`` of ``optimizer`` on ``params`` elements in ``tensors`` tensors.

    Each contender gets its own copy of the same parameters and gradients. After its first
    two steps (timed alone: compilation happens there) and ``warmup`` more, all contenders and the
    copy run ``rounds`` rounds of ``steps`` steps each, the order rotated by one every round,
    so that a slow phase of the machine touches all of them alike; each reports its median.
    A contender that cannot run (no such path, refused) is reported with the reason.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Invalid optimizer: {optimizer!r} (expected one of "
                         f"{', '.join(OPTIMIZERS)})")
    for name in contenders:
        if name not in CONTENDERS:
            raise ValueError(f"Invalid contender: {name!r} (expected one of "
                             f"{', '.join(CONTENDERS)})")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    device = torch.device(device)
    rows = {name: Row(name) for name in contenders}
    steps_of = {}
    for name in contenders:
        if progress:
            print(f"\rfirst step of {name:<20}", end="", file=sys.stderr, flush=True)
        try:
            step = make_step(name, optimizer, make_params(params, tensors, dtype, device))
            synchronize(device)
            start = time.perf_counter()
            step()
            step()  # SGD momentum's first step creates its buffers without the kernel
            synchronize(device)
            rows[name].first_ms = 1e3 * (time.perf_counter() - start)
            for _ in range(warmup):
                step()
            steps_of[name] = step
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            rows[name].reason = _first_line(error)
    steps_of["copy"] = copy_step(params, dtype, device)
    samples = interleaved(steps_of, device, rounds=rounds, number=steps, progress=progress)
    copy_s = statistics.median(samples.pop("copy"))
    nbytes = bytes_per_param(optimizer, dtype)
    for name, times in samples.items():
        seconds = statistics.median(times)
        rows[name].ms, rows[name].samples = 1e3 * seconds, times
        rows[name].gbps = nbytes * params / seconds / 1e9
    ran = [r for r in rows.values() if r.ms is not None]
    torch_ran = [r for r in ran if r.name.startswith("torch")]
    reference = min(torch_ran or ran, key=lambda r: r.ms, default=None)
    for r in ran:
        r.ratio = r.ms / reference.ms
    copy_gbps = 2 * params * dtype.itemsize / copy_s / 1e9
    return Report(optimizer, params, tensors, str(dtype).removeprefix("torch."), str(device),
                  rounds, steps, nbytes, copy_gbps, nbytes * params / copy_gbps / 1e6,
                  reference.name if reference else None, list(rows.values()))


class _AccessLog(TorchDispatchMode):
    """Records, for every operation a step dispatches, which memory it reads and writes."""

    def __init__(self):
        super().__init__()
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        writes_self = func.overloadpacket.__name__.endswith("_")  # in place: writes arg 0
        lists = [a for a in args if isinstance(a, (list, tuple)) and a and torch.is_tensor(a[0])]
        if lists:  # a foreach op: tensor i of every list, for i = 0, 1, ... (the CPU path)
            outs = list(out) if isinstance(out, (list, tuple)) else []
            for i in range(len(lists[0])):
                reads = [t[i] for t in lists if len(t) == len(lists[0])]
                written = [lists[0][i]] if writes_self else outs[i:i + 1]
                self.log.append((_spans(reads), _spans(written)))
            return out
        reads = [a for a in args if torch.is_tensor(a)]
        written = reads[:1] if writes_self else [o for o in [out] if torch.is_tensor(o)]
        if reads or written:  # not the profiler's markers, which touch no tensor
            self.log.append((_spans(reads), _spans(written)))
        return out


def _spans(tensors):
    return [(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in tensors]


def access_log(step) -> list:
    """Run ``step()`` once and return its memory accesses: one ``(reads, writes)`` per
    operation on one tensor (a foreach op counts once per tensor of its lists, in the order
    torch's CPU loop visits them), each a list of ``(address, bytes)`` of whole storages."""
    with _AccessLog() as mode:
        step()
    return mode.log


def memory_traffic(log: list, cache_bytes: int) -> int:
    """Bytes moved between memory and a cache of ``cache_bytes`` while replaying ``log``.

    The cache keeps whole tensors, least recently used out first. A tensor read while not
    in the cache is fetched (its bytes count once); a written tensor is marked dirty and
    costs its bytes when it leaves the cache, or at the end. A fresh result is written
    without being read (no write-allocate fetch: on a CPU that has one, each fresh result
    not in the cache costs its bytes once more). Crude (real caches keep 64-byte lines, share the cache with other
    programs and prefetch), but it counts what matters: how often each tensor is streamed.
    """
    cache: OrderedDict = OrderedDict()  # address -> [bytes, dirty]
    moved = held = 0
    for reads, writes in log:
        for address, nbytes in reads:
            if address in cache:
                cache.move_to_end(address)
            else:
                moved, held = moved + nbytes, held + nbytes
                cache[address] = [nbytes, False]
        for address, nbytes in writes:
            if address not in cache:
                held += nbytes
            cache.setdefault(address, [nbytes, False])[1] = True
            cache.move_to_end(address)
        while held > cache_bytes and len(cache) > 1:
            _, (nbytes, dirty) = cache.popitem(last=False)
            moved, held = moved + (nbytes if dirty else 0), held - nbytes
    return moved + sum(n for n, dirty in cache.values() if dirty)


def main(argv=None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m optcore.bench", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    parser.add_argument("--params", default="10M", help="total elements, e.g. 10M, 250k")
    parser.add_argument("--tensors", type=int, default=40)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16",
                                                                "float16", "float64"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated subset of " + ", ".join(CONTENDERS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    report = run(args.optimizer, parse_count(args.params), args.tensors, dtype=args.dtype,
                 device=args.device, rounds=args.rounds, steps=args.steps, warmup=args.warmup,
                 contenders=[c.strip() for c in args.contenders.split(",") if c.strip()],
                 progress=not args.quiet)
    print(report.to_json() if args.json else report.table())
    return report


if __name__ == "__main__":
    main()
