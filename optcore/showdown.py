"""The showdown: the book's optimizers, tuned the same way, on three small tasks (chapter 23).

The protocol follows the Deep Learning Tuning Playbook (Godbole et al., 2023), AlgoPerf (Dahl
et al., 2023) and Schmidt et al. (2021), at toy scale:

- every optimizer gets the same budget: ``trials`` random-search trials over a log-uniform
  learning rate (and a log-uniform decoupled weight decay where it has one), at the same points
  of the unit cube for every optimizer, on tuning seed 0;
- every optimizer gets the same schedule, a linear warm-up over the first 10 % of the steps
  and a cosine decay to zero (:func:`warmup_cosine`), except the two that choose their own
  step: schedule-free AdamW (warm-up only, by design) and L-BFGS (a line search);
- the best trial's configuration is re-run on ``seeds`` fresh seeds (1, 2, …), which change
  the initialization, the batch order and, on the quadratic, the starting point; reported are
  the final loss per seed and the steps to reach the task's target loss.

Three tasks: an ill-conditioned matrix quadratic (full batch, float64; L-BFGS runs here only),
a small MLP on a synthetic classification task, and a tiny character-level transformer on the
language reference that ships with Python (``pydoc_data``), both float32 and mini-batch. The
full study (:data:`FULL`) is ``python -m optcore.showdown``; its output is committed as
``optcore/data/showdown.json`` (:func:`load`), and the chapter runs :data:`REDUCED` live.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import resources

import torch

from . import schedules
from .optim import (SGD, SOAP, Adafactor, Adam, AdamW, AdamWScheduleFree, LBFGS, Lion,
                    MuonWithAdamW, NAdam, RAdam, Shampoo, muon_param_groups)
from .optim.base import check
from .tuning import Dimension, Space

WARMUP = 0.1  #: fraction of the steps spent warming up (every optimizer but L-BFGS)
DECAY = Dimension(1e-4, 1.0, log=True)  #: decoupled weight decay, where an optimizer has one


# --- the schedule -------------------------------------------------------------------------


def warmup_cosine(optimizer, steps: int):
    """Linear warm-up from 1 % of η over the first 10 % of ``steps``, then a cosine decay to
    0 over the rest: ``optcore.schedules.SequentialLR`` of ``LinearLR`` and
    ``CosineAnnealingLR``."""
    warm = max(1, round(WARMUP * steps))
    return schedules.SequentialLR(optimizer, [
        schedules.LinearLR(optimizer, start_factor=0.01, total_iters=warm),
        schedules.CosineAnnealingLR(optimizer, T_max=steps - warm)], milestones=[warm])


# --- the contenders ---------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """An optimizer as the showdown sees it: ``make(model, task, lr, weight_decay)`` builds
    it; ``lr`` is its log-uniform search range; ``decay`` says whether it tunes a decoupled
    weight decay; ``schedule`` whether it runs under :func:`warmup_cosine`; ``full_batch``
    that it only runs on deterministic full-batch tasks (L-BFGS)."""

    name: str
    make: object
    lr: tuple
    decay: bool = False
    schedule: bool = True
    full_batch: bool = False

    def space(self) -> Space:
        dims = {"lr": Dimension(*self.lr, log=True)}
        if self.decay:
            dims["weight_decay"] = DECAY
        return Space(dims)


def _plain(cls, **fixed):
    return lambda model, task, lr, weight_decay=0.0: cls(model.parameters(), lr=lr, **fixed)


def _decayed(cls, **fixed):
    return lambda model, task, lr, weight_decay: cls(model.parameters(), lr=lr,
                                                     weight_decay=weight_decay, **fixed)


def _muon(model, task, lr, weight_decay):
    return MuonWithAdamW(muon_param_groups(model, task.not_for_muon(model)), lr=lr,
                         weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")


def _schedule_free(model, task, lr, weight_decay):
    return AdamWScheduleFree(model.parameters(), lr=lr, weight_decay=weight_decay,
                             warmup_steps=max(1, round(WARMUP * task.steps)))


ADAM_LR = (1e-4, 1.0)
CONTENDERS = {c.name: c for c in [
    Contender("SGD", _plain(SGD, momentum=0.9), (1e-3, 10.0)),
    Contender("Nesterov", _plain(SGD, momentum=0.9, nesterov=True), (1e-3, 10.0)),
    Contender("Adam", _plain(Adam), ADAM_LR),
    Contender("AdamW", _decayed(AdamW), ADAM_LR, decay=True),
    Contender("NAdam", _plain(NAdam), ADAM_LR),
    Contender("RAdam", _plain(RAdam), ADAM_LR),
    Contender("Adafactor", _decayed(Adafactor), ADAM_LR, decay=True),
    Contender("Lion", _decayed(Lion), (1e-5, 1e-1), decay=True),
    Contender("Muon", _muon, ADAM_LR, decay=True),
    Contender("Shampoo", _plain(Shampoo, momentum=0.9, update_freq=10), (1e-3, 10.0)),
    Contender("SOAP", _decayed(SOAP), ADAM_LR, decay=True),
    Contender("ScheduleFreeAdamW", _schedule_free, ADAM_LR, decay=True, schedule=False),
    Contender("L-BFGS", _plain(LBFGS, max_iter=1, history_size=10,
                               line_search_fn="strong_wolfe"), (1e-2, 1.0),
              schedule=False, full_batch=True),
]}


# --- the tasks --------------------------------------------------------------------------


class MatrixQuadratic(torch.nn.Module):
    """f(W) = ½ ‖A^{1/2} (W − W*) B^{1/2}‖²_F = ½ tr((W − W*)ᵀ A (W − W*) B): a quadratic in a
    matrix W whose Hessian (W flattened row by row) is the Kronecker product A ⊗ B, with
    eigenvalues the products of theirs. The parameter is a matrix, so Muon, Shampoo and SOAP
    see what they were built for."""

    def __init__(self, A, B, W_star, W0):
        super().__init__()
        self.A, self.B, self.W_star = A, B, W_star
        self.W = torch.nn.Parameter(W0.clone())

    def forward(self):
        D = self.W - self.W_star
        return 0.5 * torch.einsum("ij,ik,kl,jl->", D, self.A, D, self.B)


class QuadraticTask:
    """An ill-conditioned matrix quadratic, n × n: A and B have eigenvalues spaced
    geometrically from 1 to 1/√κ in a random eigenbasis (fixed), so the Hessian A ⊗ B has
    L = 1 and μ = 1/κ. Seed s starts at W* + a standard normal matrix drawn from s. Full
    batch, float64; the loss reported is f itself (its minimum is 0)."""

    name = "quadratic"
    full_batch = True

    def __init__(self, n=16, kappa=1e4, steps=200, target=1e-2, eval_every=1):
        self.n, self.kappa, self.steps, self.target, self.eval_every = (
            n, kappa, steps, target, eval_every)
        gen = torch.Generator().manual_seed(1234)
        dt = torch.float64
        eig = torch.logspace(0, -0.5 * math.log10(kappa), n, dtype=dt)
        QA, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dt))
        QB, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dt))
        self.A = QA @ torch.diag(eig) @ QA.T
        self.B = QB @ torch.diag(eig) @ QB.T
        self.W_star = torch.randn(n, n, generator=gen, dtype=dt)

    def model(self, seed):
        gen = torch.Generator().manual_seed(seed)
        W0 = self.W_star + torch.randn(self.n, self.n, generator=gen, dtype=torch.float64)
        return MatrixQuadratic(self.A, self.B, self.W_star, W0)

    def batches(self, seed):
        while True:
            yield None

    def loss(self, model, batch):
        return model()

    def evaluate(self, model):
        with torch.no_grad():
            return model().item()

    def not_for_muon(self, model):
        return []


def teacher_data(n, features=20, classes=5, seed=0):
    """Inputs x ~ N(0, I) and labels from a fixed random teacher, a tanh network
    Linear(features, 32) → tanh → Linear(32, classes), as the argmax of its logits plus Gumbel
    noise (a sample of its softmax), so that no network classifies them perfectly."""
    gen = torch.Generator().manual_seed(seed)
    W1 = torch.randn(features, 32, generator=gen) / math.sqrt(features)
    W2 = torch.randn(32, classes, generator=gen) * 6 / math.sqrt(32)
    x = torch.randn(n, features, generator=gen)
    gumbel = -torch.log(-torch.log(torch.rand(n, classes, generator=gen).clamp_min(1e-12)))
    y = (torch.tanh(x @ W1) @ W2 + gumbel).argmax(1)
    return x, y


class MLPTask:
    """A ReLU MLP, 20 → 64 → 64 → 5, on :func:`teacher_data`: 4,096 training examples,
    1,024 validation examples (fixed), mini-batches of 64 reshuffled every epoch from the
    seed, which also draws the initialization. The loss reported is the validation
    cross-entropy. Muon gets the hidden 64 × 64 matrix; the input layer and the head go to
    AdamW."""

    name = "mlp"
    full_batch = False

    def __init__(self, steps=300, batch_size=64, target=0.7, eval_every=25, width=64):
        self.steps, self.batch_size, self.target, self.eval_every = (
            steps, batch_size, target, eval_every)
        self.width = width
        x, y = teacher_data(4096 + 1024)
        self.x, self.y = x[:4096], y[:4096]
        self.x_val, self.y_val = x[4096:], y[4096:]

    def model(self, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            w = self.width
            return torch.nn.Sequential(torch.nn.Linear(20, w), torch.nn.ReLU(),
                                       torch.nn.Linear(w, w), torch.nn.ReLU(),
                                       torch.nn.Linear(w, 5))

    def batches(self, seed):
        gen = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(self.y), generator=gen)
            for i in range(0, len(order) - self.batch_size + 1, self.batch_size):
                idx = order[i:i + self.batch_size]
                yield self.x[idx], self.y[idx]

    def loss(self, model, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    def evaluate(self, model):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(self.x_val), self.y_val).item()

    def not_for_muon(self, model):
        return [model[0], model[-1]]


def python_text() -> str:
    """The text of Python's language reference as it ships with the interpreter
    (``pydoc_data.topics``, what ``help("topic")`` prints), in sorted order: ≈ 465,000
    characters of English and code, no download."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


class Block(torch.nn.Module):
    """A pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)), with causal
    multi-head self-attention and a 4× GELU MLP."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(),
                                       torch.nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        a = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CharTransformer(torch.nn.Module):
    """A tiny decoder-only transformer over characters: token and position embeddings,
    ``layers`` :class:`Block`\\ s, a final LayerNorm and a linear head to the vocabulary."""

    def __init__(self, vocab, d=64, layers=2, heads=4, context=64):
        super().__init__()
        self.tok, self.pos = torch.nn.Embedding(vocab, d), torch.nn.Embedding(context, d)
        self.blocks = torch.nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln, self.head = torch.nn.LayerNorm(d), torch.nn.Linear(d, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


class TransformerTask:
    """:class:`CharTransformer` on :func:`python_text`: the first 90 % of the characters for
    training, the last 10 % for validation (a fixed split). Each step takes ``batch_size``
    windows of ``context`` characters at random offsets (drawn from the seed, which also draws
    the initialization) and predicts every next character; the loss reported is the mean
    next-character cross-entropy, in nats, on ``val_windows`` fixed validation windows.
    Muon gets every matrix in the blocks; the embeddings and the head go to AdamW."""

    name = "transformer"
    full_batch = False

    def __init__(self, steps=120, batch_size=16, d=32, layers=2, heads=2, context=32,
                 target=2.8, eval_every=20, val_windows=128, device="cpu"):
        self.steps, self.batch_size, self.target, self.eval_every = (
            steps, batch_size, target, eval_every)
        self.d, self.layers, self.heads, self.context = d, layers, heads, context
        self.device = torch.device(device)
        text = python_text()
        self.chars = sorted(set(text))
        lookup = {c: i for i, c in enumerate(self.chars)}
        data = torch.tensor([lookup[c] for c in text], dtype=torch.long)
        cut = int(0.9 * len(data))
        self.train_data, self.val_data = data[:cut], data[cut:]
        starts = torch.linspace(0, len(self.val_data) - context - 2, val_windows).long()
        self.x_val, self.y_val = self._windows(self.val_data, starts)

    def _windows(self, data, starts):
        idx = starts[:, None] + torch.arange(self.context + 1)
        chunk = data[idx].to(self.device)
        return chunk[:, :-1], chunk[:, 1:]

    def unigram_entropy(self) -> float:
        """The validation loss of the best model that ignores context: the entropy, in nats,
        of the training text's character frequencies, measured on the validation windows."""
        counts = torch.bincount(self.train_data, minlength=len(self.chars)).double() + 1
        logp = (counts / counts.sum()).log().to(self.device)
        return -logp[self.y_val].mean().item()

    def model(self, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = CharTransformer(len(self.chars), self.d, self.layers, self.heads,
                                  self.context)
        return net.to(self.device)

    def batches(self, seed):
        gen = torch.Generator().manual_seed(seed)
        top = len(self.train_data) - self.context - 1
        while True:
            yield self._windows(self.train_data,
                                torch.randint(0, top, (self.batch_size,), generator=gen))

    def loss(self, model, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate(self, model):
        with torch.no_grad():
            return self.loss(model, (self.x_val, self.y_val)).item()

    def not_for_muon(self, model):
        return [model.head]


TASKS = {"quadratic": QuadraticTask, "mlp": MLPTask, "transformer": TransformerTask}


# --- one run, one search, one study -------------------------------------------------------


@dataclass
class Result:
    """One training run: the loss every ``eval_every`` steps (``curve[0]`` before the first
    step), the final loss (``inf`` if the run diverged) and the first evaluated step at which
    the loss was at or below the task's target (None if never)."""

    curve: list
    final: float
    steps_to_target: int | None


def train(task, contender: Contender, seed: int, lr: float, weight_decay: float = 0.0):
    """Train ``task.model(seed)`` with ``contender`` at (lr, weight_decay) for ``task.steps``
    steps on ``task.batches(seed)``; a non-finite loss stops the run as diverged."""
    model = task.model(seed)
    opt = contender.make(model, task, lr, weight_decay)
    sched = warmup_cosine(opt, task.steps) if contender.schedule else None
    averaging = hasattr(opt, "eval")  # schedule-free: evaluate at x, step at y

    def evaluate():
        if averaging:
            opt.eval()
        value = task.evaluate(model)
        if averaging:
            opt.train()
        return value if math.isfinite(value) else math.inf

    curve, stream = [evaluate()], task.batches(seed)
    if averaging:
        opt.train()
    for step in range(1, task.steps + 1):
        batch = next(stream)

        def closure(batch=batch):
            opt.zero_grad()
            loss = task.loss(model, batch)
            loss.backward()
            return loss

        try:
            loss = opt.step(closure)
        except (FloatingPointError, torch.linalg.LinAlgError):  # refused a NaN, or eigh failed
            loss = torch.tensor(math.inf)
        if sched is not None:
            sched.step()
        if not math.isfinite(float(loss.detach())):
            curve.append(math.inf)
            break
        if step % task.eval_every == 0:
            curve.append(evaluate())
            if curve[-1] == math.inf:
                break
    reached = [i * task.eval_every for i, v in enumerate(curve) if v <= task.target]
    final = curve[-1] if len(curve) == task.steps // task.eval_every + 1 else math.inf
    return Result(curve, final, reached[0] if reached else None)


@dataclass(frozen=True)
class Study:
    """What a study runs: tasks, contenders, the trials per contender and the seeds for
    the error bars; ``task_options`` overrides a task's defaults (e.g. its size)."""

    tasks: tuple = tuple(TASKS)
    contenders: tuple = tuple(CONTENDERS)
    trials: int = 8
    seeds: int = 3
    task_options: dict = field(default_factory=dict)

    def __post_init__(self):
        check(self.trials >= 1, "trials", self.trials, "trials >= 1")
        check(self.seeds >= 1, "seeds", self.seeds, "seeds >= 1")
        for t in self.tasks:
            check(t in TASKS, "tasks", t, f"one of {tuple(TASKS)}")
        for c in self.contenders:
            check(c in CONTENDERS, "contenders", c, f"one of {tuple(CONTENDERS)}")

    def make_task(self, name):
        return TASKS[name](**self.task_options.get(name, {}))


#: The committed study: every contender on every task, 8 trials, 3 seeds.
FULL = Study()
#: The chapter's live study: SGD and Adam on the quadratic and the MLP, the first 3 of the
#: full study's 8 trials and its first 2 seeds (so every run it makes is one of the full
#: study's runs).
REDUCED = Study(tasks=("quadratic", "mlp"), contenders=("SGD", "Adam"), trials=3, seeds=2)


def trial_points(trials: int, dim: int) -> torch.Tensor:
    """The search's points in the unit cube, the same for every contender (common random
    numbers: no optimizer is luckier in its draws than another): the first ``trials`` rows of
    a Latin hypercube of max(trials, 8) points from seed 0, i.e. random search stratified so
    that each of 8 equal slices of every axis holds one point of the full study (8 plain
    uniform draws can leave half the learning-rate range empty). A study with fewer trials
    tries a subset of the full study's points. A contender with one hyperparameter uses the
    first column."""
    n = max(trials, FULL.trials)
    gen = torch.Generator().manual_seed(0)
    columns = [(torch.randperm(n, generator=gen).double()
                + torch.rand(n, generator=gen, dtype=torch.float64)) / n for _ in range(2)]
    return torch.stack(columns, 1)[:trials, :dim]


def tune(task, contender: Contender, trials: int, seeds: int) -> dict:
    """Random search over ``contender.space()`` with ``trials`` trials on tuning seed 0 (the
    final validation loss is the objective), then the best configuration on seeds 1 … seeds.
    Returns plain data (for JSON): the trials, the best configuration and the seeds' runs."""
    space = contender.space()
    tried = []
    for u in trial_points(trials, space.dim):
        params = space.values(u)
        tried.append({**params, "loss": train(task, contender, 0, **params).final})
    best = min(tried, key=lambda r: r["loss"])
    config = {k: v for k, v in best.items() if k != "loss"}
    runs = [{"seed": s, **asdict(train(task, contender, s, **config))}
            for s in range(1, seeds + 1)]
    return {"trials": tried, "best": config, "seeds": runs}


def run_study(study: Study, progress=None) -> dict:
    """Every contender of ``study`` tuned on every task; L-BFGS on full-batch tasks only."""
    results = {}
    for name in study.tasks:
        task = study.make_task(name)
        results[name] = {}
        for c in study.contenders:
            contender = CONTENDERS[c]
            if contender.full_batch and not task.full_batch:
                continue
            start = time.perf_counter()
            results[name][c] = tune(task, contender, study.trials, study.seeds)
            if progress:
                progress(f"{name:12s} {c:18s} {time.perf_counter() - start:6.1f} s")
    return results


# --- summaries ----------------------------------------------------------------------------


def summary(entry: dict) -> dict:
    """Mean and standard deviation (over seeds) of the final loss, and the median steps to
    target (None if any seed never reached it)."""
    finals = torch.tensor([r["final"] for r in entry["seeds"]], dtype=torch.float64)
    steps = [r["steps_to_target"] for r in entry["seeds"]]
    return {"mean": finals.mean().item(),
            "std": finals.std().item() if len(finals) > 1 else 0.0,
            "steps_to_target": (None if None in steps
                                else float(torch.tensor(steps, dtype=torch.float64).median())),
            "reached": sum(s is not None for s in steps)}


def ranking(results: dict, task: str) -> list:
    """The contenders on ``task`` sorted by mean final loss: [(name, summary), …]."""
    rows = [(c, summary(e)) for c, e in results[task].items()]
    return sorted(rows, key=lambda row: row[1]["mean"])


def running_best(entry: dict) -> list:
    """The lowest trial loss after each trial: the tuning curve."""
    out, low = [], math.inf
    for t in entry["trials"]:
        low = min(low, t["loss"])
        out.append(low)
    return out


def basin_width(entry: dict, tolerance: float = 0.1) -> float:
    """How forgiving the learning rate is: log₁₀ of the ratio between the largest and the
    smallest learning rate among the trials whose loss is within ``tolerance`` (relative) of
    the best trial's, in decades (0 when only the best trial qualifies)."""
    best = min(t["loss"] for t in entry["trials"])
    good = [t["lr"] for t in entry["trials"] if t["loss"] <= (1 + tolerance) * best]
    return math.log10(max(good) / min(good))


# --- the committed study --------------------------------------------------------------------


def path():
    """Where the committed full study lives inside the package."""
    return resources.files("optcore") / "data" / "showdown.json"


def load() -> dict:
    """The committed full study: ``{"meta": …, "study": …, "results": …}``."""
    return json.loads(path().read_text())


def machine() -> dict:
    """The machine a study ran on: platform, CPU (model name, and vendor, family, model and
    stepping, since a virtual machine may report only "AMD EPYC"), the instruction set
    torch's CPU kernels dispatch to, threads, Python and torch."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())  # the first processor's
    except OSError:
        pass
    cpu_id = " ".join(info.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping"))
    return {"platform": platform.platform(), "cpu": info.get("model name") or platform.processor(),
            "cpu_id": cpu_id, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}


#: What decides the bits of a CPU run, as :func:`machine` records it.
FINGERPRINT = ("platform", "cpu", "cpu_id", "cpu_capability", "torch_threads", "python", "torch")


def same_machine(recorded: dict) -> bool:
    """Whether this machine matches ``recorded`` (a :func:`machine` record) on every key of
    :data:`FINGERPRINT` that the record holds, so that a re-run must reproduce it bit for bit.

    A record written before ``cpu_id`` and ``cpu_capability`` were kept is matched on the
    other keys only. Its model name ("AMD EPYC") does not tell CPU generations apart; what
    makes that tolerable: the runs that the tests and chapter 23 repeat came out bitwise the
    same with torch's AVX2 kernels as with its AVX-512 ones, and with MKL limited to AVX2
    (``ATEN_CPU_CAPABILITY=avx2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``), while another torch,
    Python or architecture changes ``torch``, ``python`` or ``platform``."""
    here = machine()
    return all(here[k] == recorded[k] for k in FINGERPRINT if k in recorded)


#: Relative tolerance for a re-run on another machine, per task. Measured by re-running the
#: runs that the tests and chapter 23 repeat, and a few more, with torch's scalar kernels
#: (``ATEN_CPU_CAPABILITY=default``) instead of its AVX-512 ones: the float64 quadratic runs
#: moved by at most 4e-15 (a contracting iteration); the float32 MLP runs at the tuned
#: learning rates by 2e-7 to 2e-4, and a trial near the edge of stability (AdamW at
#: η ≈ 0.4, λ ≈ 0.4) by 1e-2: training amplifies last-bit differences, and averaging the
#: loss over 1,024 validation examples does not undo that.
RTOL_ELSEWHERE = {"quadratic": 1e-12, "mlp": 2e-2}


def describe(task) -> dict:
    """A task's protocol settings, as the results file records them."""
    return {"steps": task.steps, "eval_every": task.eval_every, "target": task.target}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="showdown.json", help="where to write the results")
    parser.add_argument("--tasks", nargs="+", default=list(FULL.tasks))
    parser.add_argument("--contenders", nargs="+", default=list(FULL.contenders))
    parser.add_argument("--trials", type=int, default=FULL.trials)
    parser.add_argument("--seeds", type=int, default=FULL.seeds)
    args = parser.parse_args(argv)
    study = Study(tuple(args.tasks), tuple(args.contenders), args.trials, args.seeds)
    start = time.perf_counter()
    results = run_study(study, progress=lambda line: print(line, flush=True))
    meta = {"command": "OMP_NUM_THREADS={} python -m optcore.showdown {}".format(
                os.environ.get("OMP_NUM_THREADS", "(unset)"), " ".join(sys.argv[1:]
                                                                         if argv is None
                                                                         else argv)).strip(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_seconds": round(time.perf_counter() - start, 1), "machine": machine()}
    tasks = {name: describe(study.make_task(name)) for name in study.tasks}
    out = {"meta": meta, "study": asdict(study), "tasks": tasks, "results": results}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out} in {meta['wall_seconds']} s")


if __name__ == "__main__":
    main()
