"""A tiny network, seeded mini-batches, and one training loop for any optimizer.

The chapters check each optimizer against ``torch.optim`` by training the same small network
twice, once with each, and comparing the parameters step by step; the tests do the same. This
module is that experiment, written once: :func:`tiny_net` and :func:`regression_batches` make
the same model and data from a seed, :func:`fit` steps any optimizer through them (with a
closure, as L-BFGS needs, or without), and :func:`train` does both and returns a :class:`Run`.

Besides the toy problems, Part II's adaptive methods meet one small real task, the same in
every chapter: :func:`digits` (scikit-learn's 8×8 handwritten digits, shipped inside the
package, so nothing is downloaded), :func:`digits_net` and :func:`train_digits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .trace import batches


def tiny_net(inputs: int = 4, hidden: int = 8, outputs: int = 1, *, seed: int = 0,
             dtype=torch.float64, device="cpu", scale: float = 0.5) -> torch.nn.Module:
    """A 2-layer tanh MLP, Linear(inputs, hidden) → tanh → Linear(hidden, outputs): small, but
    with matrices, vectors and curvature. Every weight is ``scale`` times a standard normal
    drawn from ``seed``, so two calls with one seed give identical networks."""
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, outputs))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return net.to(dtype=dtype, device=device)


def regression_batches(steps: int, *, inputs: int = 4, size: int = 16, seed: int = 1,
                       dtype=torch.float64, device="cpu") -> list[tuple]:
    """``steps`` mini-batches (x, y) of a noisy regression task, y = sin(Σᵢ xᵢ) + 0.1·noise,
    with x standard normal; drawn from ``seed`` on the CPU, so every device sees the same data."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(size, inputs, generator=gen)
        y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(size, 1, generator=gen)
        out.append((x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)))
    return out


def mse(net, x, y):
    """Mean squared error of ``net`` on one batch."""
    return torch.nn.functional.mse_loss(net(x), y)


@dataclass
class Run:
    """What :func:`fit` records: the batch loss before each step and, when asked for, every
    parameter tensor after each step; plus the network and optimizer, kept for their state."""

    losses: list[float]
    snapshots: list[list[torch.Tensor]] = field(default_factory=list)
    net: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None

    def path(self) -> torch.Tensor:
        """The parameters after each step, flattened into one row per step: shape (T, n)."""
        return torch.stack([torch.cat([p.flatten() for p in step]) for step in self.snapshots])


def fit(net, optimizer, data, *, loss_fn=mse, maximize: bool = False, closure: bool = False,
        snapshots: bool = True) -> Run:
    """Step ``optimizer`` once per (x, y) batch of ``data`` on ``loss_fn(net, x, y)``.

    With ``maximize`` the network is trained on the negated loss, so an optimizer built with
    ``maximize=True`` solves the same well-behaved problem as one that minimizes (maximizing
    +MSE would diverge and amplify rounding). With ``closure`` the loss is evaluated inside
    ``optimizer.step(closure)``, which closure-based optimizers such as L-BFGS require.
    """
    run = Run([], [], net, optimizer)
    sign = -1.0 if maximize else 1.0
    for x, y in data:
        def evaluate(x=x, y=y):
            optimizer.zero_grad()
            loss = sign * loss_fn(net, x, y)
            loss.backward()
            return loss

        if closure:
            loss = optimizer.step(evaluate)
        else:
            loss = evaluate()
            optimizer.step()
        run.losses.append(sign * float(loss.detach()))
        if snapshots:
            run.snapshots.append([p.detach().clone() for p in net.parameters()])
    return run


def weights_and_biases(net, lr: float):
    """Two parameter groups: the weights, and the biases at half of ``lr`` (to exercise
    per-group hyperparameters). :func:`train` passes the optimizer's ``lr``, or 1e-3 when none
    is given."""
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    return [{"params": weights}, {"params": biases, "lr": lr * 0.5}]


def train(make_optimizer, steps: int = 25, *, net=tiny_net, seed: int = 0, data_seed: int = 1,
          dtype=torch.float64, device="cpu", groups: bool = False,
          param_groups=weights_and_biases, closure: bool = False, maximize: bool = False,
          **hyperparameters) -> Run:
    """Train ``net(seed=seed, dtype=dtype, device=device)`` (default :func:`tiny_net`) on
    ``regression_batches(steps, seed=data_seed)`` with ``make_optimizer(params,
    **hyperparameters)``; ``maximize`` is passed to the optimizer and to :func:`fit`. With
    ``groups`` the parameters are given as ``param_groups(net, lr)`` (default
    :func:`weights_and_biases`). Two calls that differ only in the optimizer see the same
    network and the same batches."""
    model = net(seed=seed, dtype=dtype, device=device)
    lr = hyperparameters.get("lr", 1e-3)
    params = param_groups(model, lr) if groups else model.parameters()
    if maximize:
        hyperparameters["maximize"] = True
    optimizer = make_optimizer(params, **hyperparameters)
    data = regression_batches(steps, seed=data_seed, dtype=dtype, device=device)
    return fit(model, optimizer, data, maximize=maximize, closure=closure)


def max_rel_error(a: Run, b: Run) -> float:
    """The largest ‖a − b‖ / ‖b‖ over all steps and parameter tensors of two runs."""
    worst = 0.0
    for a_step, b_step in zip(a.snapshots, b.snapshots, strict=True):
        for x, y in zip(a_step, b_step, strict=True):
            denom = max(torch.linalg.vector_norm(y).item(), 1e-300)
            worst = max(worst, torch.linalg.vector_norm(x - y).item() / denom)
    return worst


# --- one small real task, shared by the chapters on adaptive methods -------------------------


@dataclass
class Digits:
    """A train/test split of a classification data set: inputs (n, 64), integer labels (n,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits(*, test_size: int = 497, seed: int = 0, dtype=torch.float32, device="cpu") -> Digits:
    """scikit-learn's handwritten digits: 1,797 images of 8×8 pixels (grey levels 0–16), ten
    classes, shipped inside the package (no download). A seeded permutation puts ``test_size``
    images aside (1,300 remain for training), and every pixel is standardized with the training
    images' mean and standard deviation (pixels that are constant there are only centred)."""
    from sklearn.datasets import load_digits  # imported here: only this task needs it

    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float64)
    y = torch.as_tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train_ = order[:test_size], order[test_size:]
    mean, std = x[train_].mean(0), x[train_].std(0)
    x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    put = dict(dtype=dtype, device=device)
    return Digits(x[train_].to(**put), y[train_].to(device), x[test].to(**put), y[test].to(device))


def digits_net(hidden: int = 32, *, seed: int = 0, dtype=torch.float32,
               device="cpu") -> torch.nn.Module:
    """An MLP for the digits, Linear(64, hidden) → ReLU → Linear(hidden, 10), with torch's
    default initialization drawn from ``seed`` (the global generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, 10))
    return net.to(dtype=dtype, device=device)


def cross_entropy(net, x, y):
    """Mean cross-entropy of ``net``'s logits on one batch."""
    return torch.nn.functional.cross_entropy(net(x), y)


@dataclass
class Classification:
    """What :func:`train_digits` records: the mini-batch loss before each step, the loss and
    accuracy on the held-out images after training, and the trained network and optimizer."""

    losses: list[float]
    test_loss: float
    test_accuracy: float
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer


def train_digits(make_optimizer, steps: int = 400, *, batch_size: int = 64, hidden: int = 32,
                 seed: int = 0, data: Digits | None = None, dtype=torch.float32, device="cpu",
                 **hyperparameters) -> Classification:
    """Train :func:`digits_net` on :func:`digits` with ``make_optimizer(params,
    **hyperparameters)`` for ``steps`` mini-batches of ``batch_size`` images (reshuffled every
    epoch, from ``seed``), then evaluate on the held-out images. Two calls that differ only in
    the optimizer see the same network and the same batches."""
    data = data or digits(dtype=dtype, device=device)
    net = digits_net(hidden, seed=seed, dtype=dtype, device=device)
    optimizer = make_optimizer(net.parameters(), **hyperparameters)
    order = batches(len(data.y_train), batch_size, True, torch.Generator().manual_seed(seed))
    pairs = [(data.x_train[i], data.y_train[i]) for i, _ in zip(order, range(steps))]
    run = fit(net, optimizer, pairs, loss_fn=cross_entropy, snapshots=False)
    with torch.no_grad():
        logits = net(data.x_test)
        test_loss = torch.nn.functional.cross_entropy(logits, data.y_test).item()
        accuracy = (logits.argmax(1) == data.y_test).double().mean().item()
    return Classification(run.losses, test_loss, accuracy, net, optimizer)
