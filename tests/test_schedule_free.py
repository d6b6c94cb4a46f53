"""Schedule-free SGD and AdamW: what the contract table (optim_db.py) cannot check, since its
runs never leave train mode.

Against the authors' package ``schedulefree`` 1.4.1 (its default, foreach path): bit for bit
through train()/eval() switches, with a checkpoint taken in eval mode, and checkpoints
loading across the two. Against the math, independently of both: the recursion that stores
only y and z follows the three sequences x, y, z, and x is the weighted average of the z's.
"""

import copy
import inspect
import io

import numpy as np
import pytest
import schedulefree
import torch

import optcore
from optcore.training import mse, regression_batches, tiny_net, weights_and_biases

PAIRS = {"SGD": (optcore.SGDScheduleFree, schedulefree.SGDScheduleFree),
         "AdamW": (optcore.AdamWScheduleFree, schedulefree.AdamWScheduleFree)}

# warm-up on and off, decay on and off, r and weight_lr_power on and off, β varied; two
# groups at different learning rates throughout.
SETTINGS = [
    ("SGD", dict(lr=0.5)),
    ("SGD", dict(lr=0.5, momentum=0.5, weight_decay=0.1, warmup_steps=10, r=1.0)),
    ("SGD", dict(lr=0.3, momentum=0.95, warmup_steps=20, weight_lr_power=0, r=2.0)),
    ("AdamW", dict(lr=0.02)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.1, warmup_steps=10, r=1.0)),
    ("AdamW", dict(lr=0.05, betas=(0.95, 0.99), eps=1e-3, warmup_steps=20,
                   weight_lr_power=0.0, r=2.0)),
]
IDS = [f"{name}-{kwargs}" for name, kwargs in SETTINGS]
STEPS, EVERY = 60, 7


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def run(cls, kwargs, steps=STEPS, every=EVERY, also=None, checkpoint_at=None, rebuild=None):
    """Train tiny_net in two groups (biases at half the lr) for ``steps`` steps; after every
    ``every``-th step and after step ``also`` switch to eval mode, record x, and switch back.
    Returns the parameters (y) after each step, the x's recorded, and the network and
    optimizer. With ``checkpoint_at`` (one of the switches), the model and optimizer are
    saved in eval mode there and loaded into ``rebuild()`` = (net, optimizer) built from
    scratch."""
    net = tiny_net()
    opt = cls(weights_and_biases(net, kwargs["lr"]), **kwargs)
    opt.train()
    ys, xs = [], []
    for t, (x, y) in enumerate(regression_batches(steps), start=1):
        opt.zero_grad()
        mse(net, x, y).backward()
        opt.step()
        ys.append(snapshot(net))
        if t % every == 0 or t == also:
            opt.eval()
            xs.append(snapshot(net))
            if t == checkpoint_at:
                net, opt = through_checkpoint(net, opt, rebuild)
            opt.train()
    return ys, xs, net, opt


def through_checkpoint(net, opt, rebuild):
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    net, opt = rebuild()
    net.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    return net, opt


def rebuild_with(cls, kwargs):
    def rebuild():
        net = tiny_net(seed=5)  # another seed: only the checkpoint can make the weights right
        return net, cls(weights_and_biases(net, kwargs["lr"]), **kwargs)
    return rebuild


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for t, (sa, sb) in enumerate(zip(a, b, strict=True)):
        for i, (p, q) in enumerate(zip(sa, sb, strict=True)):
            assert torch.equal(p, q), f"entry {t}, tensor {i}: {(p - q).abs().max():.2e}"


@pytest.mark.parametrize("name, kwargs", SETTINGS, ids=IDS)
def test_matches_package_bitwise_over_60_steps_through_train_eval_switches(name, kwargs):
    """float64, two groups: y after every step and x at each of 8 switches to eval mode equal
    the package's bit for bit, x differs from y (the switch does something), the parameters
    moved, and the state (group counters included) ends equal."""
    ours, theirs = PAIRS[name]
    ys, xs, _, opt = run(ours, kwargs)
    ys_ref, xs_ref, _, ref = run(theirs, kwargs)
    assert_bitwise(ys, ys_ref)
    assert_bitwise(xs, xs_ref)
    assert len(xs) == STEPS // EVERY
    assert not torch.allclose(xs[-1][0], ys[EVERY * len(xs) - 1][0], rtol=1e-3)
    assert (ys[-1][0] - tiny_net().state_dict()["0.weight"]).abs().max() > 1e-2
    a, b = opt.state_dict(), ref.state_dict()
    for ga, gb in zip(a["param_groups"], b["param_groups"], strict=True):
        assert {**ga, "foreach": True} == gb  # foreach: optcore None, the package True
    for i in b["state"]:
        assert list(a["state"][i]) == list(b["state"][i])
        assert all(torch.equal(a["state"][i][k], v) for k, v in b["state"][i].items())


@pytest.mark.parametrize("name, kwargs", SETTINGS[1::3], ids=IDS[1::3])
def test_checkpoint_in_eval_mode_mid_run_resumes_exactly_and_loads_across(name, kwargs):
    """Saved in eval mode after 25 steps (in the warm-up of the second setting), loaded into
    a fresh model and optimizer, trained on: bit for bit the uninterrupted run, whether the
    checkpoint goes optcore → optcore, package → optcore or optcore → package."""
    ours, theirs = PAIRS[name]
    kwargs = dict(kwargs, warmup_steps=30)
    # The straight run switches at step 25 too: eval() then train() rounds (y comes back
    # within about an ulp of |z − y|/β, not bit for bit), in the package as here.
    ys, xs, _, _ = run(ours, kwargs, also=25)
    for saver, loader in [(ours, ours), (theirs, ours), (ours, theirs)]:
        ys2, xs2, _, opt = run(saver, kwargs, also=25, checkpoint_at=25,
                               rebuild=rebuild_with(loader, kwargs))
        assert type(opt) is loader
        assert_bitwise(ys2, ys)
        assert_bitwise(xs2, xs)
        if saver is theirs:  # its checkpoint says foreach=True, its default: read as None
            assert opt.state_dict()["param_groups"][0]["foreach"] is None


def test_signatures_are_the_packages_but_foreach_defaults_to_none():
    for ours, theirs in PAIRS.values():
        a = inspect.signature(ours.__init__).parameters
        b = inspect.signature(theirs.__init__).parameters
        assert list(a) == list(b)
        for name in b:
            expected = None if name == "foreach" else b[name].default
            assert a[name].default == expected and a[name].kind == b[name].kind, name


# --- the math, independently of the package ------------------------------------------------


def quadratic(seed=0, n=6):
    """f(w) = ½ Σ aᵢ (wᵢ − bᵢ)² with curvatures a from 0.5 to 4, and its gradient (numpy)."""
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0.5, 4.0, n), rng.normal(size=n)
    return a, b, lambda w: a * (w - b)


def three_sequences(w0, grad, steps, *, lr, beta, warmup, r, power, weight_decay=0.0,
                    adam=None):
    """The method as three sequences, x, y and z, stored and updated as written (see
    optcore.optim.schedule_free), in numpy float64; ``adam`` = (β₂, ε) normalizes the step.
    Returns x, y, z and the weights w after each step."""
    x = y = z = w0.copy()
    v, lr_max, weights, out = np.zeros_like(w0), -1.0, [], []
    for t in range(1, steps + 1):
        g = grad(y)
        gamma = lr * min(1.0, t / warmup) if warmup else lr
        if adam:
            beta2, eps = adam
            v = beta2 * v + (1 - beta2) * g * g
            g = g / (np.sqrt(v / (1 - beta2**t)) + eps)
        z = z - gamma * (g + weight_decay * y)
        lr_max = max(lr_max, gamma)
        weights.append(t**r * lr_max**power)
        c = weights[-1] / sum(weights)
        x = (1 - c) * x + c * z
        y = (1 - beta) * z + beta * x
        out.append((x, y, z))
    return out, weights


MATH = [
    ("SGD", dict(lr=0.2, momentum=0.7, warmup_steps=0, r=0.0, weight_lr_power=0)),
    ("SGD", dict(lr=0.2, momentum=0.9, warmup_steps=8, r=1.0, weight_lr_power=2,
                 weight_decay=0.05)),
    ("AdamW", dict(lr=0.1, betas=(0.8, 0.99), warmup_steps=0, r=0.0, weight_lr_power=0.0)),
    ("AdamW", dict(lr=0.1, betas=(0.9, 0.999), eps=1e-3, warmup_steps=8, r=1.0,
                   weight_lr_power=2.0, weight_decay=0.05)),
]


@pytest.mark.parametrize("name, kwargs", MATH, ids=[f"{n}-{k}" for n, k in MATH])
def test_y_z_recursion_follows_the_three_sequences_and_x_is_the_weighted_average(name, kwargs):
    """On a quadratic over 40 steps: the parameter (y) after every step, z in the state and x
    after eval() agree to 1e-12 with the three sequences run as written, where the gradient
    is taken at y; and x_T equals the average of z₁ … z_T weighted by w_t = t^r γ_t^p with
    γ_t = lr·min(1, t/warmup), computed directly (the plain mean when r = p = 0)."""
    a, b, grad = quadratic()
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = PAIRS[name][0]([w], **kwargs)
    beta = kwargs["momentum"] if name == "SGD" else kwargs["betas"][0]
    adam = (kwargs["betas"][1], kwargs.get("eps", 1e-8)) if name == "AdamW" else None
    warmup, r, power = kwargs["warmup_steps"], kwargs["r"], kwargs["weight_lr_power"]
    expected, _ = three_sequences(np.zeros(6), grad, 40, lr=kwargs["lr"], beta=beta,
                                  warmup=warmup, r=r, power=power,
                                  weight_decay=kwargs.get("weight_decay", 0.0), adam=adam)
    opt.train()
    for x_t, y_t, z_t in expected:
        w.grad = torch.from_numpy(a * (w.detach().numpy() - b))
        opt.step()
        np.testing.assert_allclose(w.detach().numpy(), y_t, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.state[w]["z"].numpy(), z_t, rtol=1e-12, atol=1e-15)
        opt.eval()
        np.testing.assert_allclose(w.detach().numpy(), x_t, rtol=1e-12, atol=1e-15)
        opt.train()
    t = np.arange(1, 41)
    gamma = kwargs["lr"] * np.minimum(1.0, t / warmup) if warmup else np.full(40, kwargs["lr"])
    weights = t**r * gamma**power
    zs = np.stack([z_t for _, _, z_t in expected])
    average = weights @ zs / weights.sum()
    np.testing.assert_allclose(expected[-1][0], average, rtol=1e-12)
    assert np.abs(expected[-1][0] - expected[-1][2]).max() > 1e-3  # x is not simply z


def test_uniform_average_is_polyak_ruppert_and_beats_the_base_sequence_in_noise():
    """r = 0, weight_lr_power = 0, no warm-up: x_t is the running mean of z₁ … z_t. With noisy
    gradients on the quadratic, averaging is what removes the noise: over the last 100 of 400
    steps, x's mean squared distance to the minimum is below a tenth of z's."""
    a, b, grad = quadratic()
    rng = np.random.default_rng(1)
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = optcore.SGDScheduleFree([w], lr=0.1, momentum=0.9, weight_lr_power=0)
    opt.train()
    zs, xs = [], []
    for _ in range(400):
        w.grad = torch.from_numpy(grad(w.detach().numpy()) + rng.normal(size=6))
        opt.step()
        zs.append(opt.state[w]["z"].numpy().copy())
        opt.eval()
        xs.append(w.detach().numpy().copy())
        opt.train()
    zs, xs = np.array(zs), np.array(xs)
    np.testing.assert_allclose(xs, np.cumsum(zs, 0) / np.arange(1, 401)[:, None], rtol=1e-10)
    z_error = ((zs[-100:] - b) ** 2).sum(1).mean()
    x_error = ((xs[-100:] - b) ** 2).sum(1).mean()
    assert x_error < 0.1 * z_error, (x_error, z_error)


# --- refusals and edge cases ----------------------------------------------------------------


def stepped(cls, steps=3, **kwargs):
    net = tiny_net()
    opt = cls(net.parameters(), **kwargs)
    opt.train()
    for x, y in regression_batches(steps):
        opt.zero_grad()
        mse(net, x, y).backward()
        opt.step()
    return net, opt


@pytest.mark.parametrize("cls", [optcore.SGDScheduleFree, optcore.AdamWScheduleFree])
def test_step_in_eval_mode_is_refused_before_the_closure_runs(cls):
    """A new optimizer is in eval mode, as the package's; after eval() too. The error names
    the cure, the closure is not called and nothing changes."""
    net = tiny_net()
    opt = cls(net.parameters(), lr=0.01)
    calls = []

    def closure():
        calls.append(1)
        return mse(net, *regression_batches(1)[0])

    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer\.train\(\)"):
        opt.step(closure)
    net, opt = stepped(cls, lr=0.01)
    opt.eval()
    before = copy.deepcopy((snapshot(net), opt.state_dict()))
    with pytest.raises(RuntimeError, match="parameter group 0 in eval mode"):
        opt.step(closure)
    assert calls == []
    after = (snapshot(net), opt.state_dict())
    assert_bitwise([before[0]], [after[0]])
    assert before[1]["param_groups"] == after[1]["param_groups"]


def test_a_group_added_later_must_be_switched_to_train_mode_too():
    """The package checks only the first group, and would step a new group that is marked
    as in eval mode, which a later eval() would then skip. optcore refuses until train()."""
    net, opt = stepped(optcore.SGDScheduleFree, lr=0.1)
    extra = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="parameter group 1 in eval mode"):
        opt.step()
    opt.train()
    opt.step()
    assert opt.param_groups[1]["k"] == 1 and opt.param_groups[0]["k"] == 4


def test_a_group_without_gradients_still_counts_its_steps_as_the_package_does():
    """The package advances k, lr_max and weight_sum of every group at every step, also one
    none of whose parameters has a gradient (a frozen group); so does optcore."""
    groups = {}
    for name, cls in [("ours", optcore.SGDScheduleFree), ("theirs", schedulefree.SGDScheduleFree)]:
        net = tiny_net()
        opt = cls(weights_and_biases(net, 0.1), lr=0.1, warmup_steps=4)
        opt.train()
        for t, (x, y) in enumerate(regression_batches(6)):
            opt.zero_grad(set_to_none=True)
            mse(net, x, y).backward()
            if t < 3:  # the biases are frozen for three steps
                for p in opt.param_groups[1]["params"]:
                    p.grad = None
            opt.step()
        groups[name] = opt.state_dict()["param_groups"][1], snapshot(net)
    (ours, a), (theirs, b) = groups["ours"], groups["theirs"]
    assert ours["k"] == theirs["k"] == 6 and ours["weight_sum"] == theirs["weight_sum"]
    assert_bitwise([a], [b])


@pytest.mark.parametrize("cls", [optcore.SGDScheduleFree, optcore.AdamWScheduleFree])
def test_the_gradient_is_left_as_it_was(cls):
    """The package overwrites p.grad with the normalized (AdamW) or decayed (SGD) gradient;
    optcore leaves it for whatever reads it after the step (logging, clipping statistics)."""
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    opt = cls([w], lr=0.1, weight_decay=0.5)
    opt.train()
    w.grad = torch.full((4,), 3.0, dtype=torch.float64)
    opt.step()
    assert torch.equal(w.grad, torch.full((4,), 3.0, dtype=torch.float64))
    assert not torch.equal(w.detach(), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("cls", [optcore.SGDScheduleFree, optcore.AdamWScheduleFree])
def test_a_failed_step_restores_the_group_counters(cls):
    """With undo_failed_steps = True, the update of the second tensor raises: k,
    weight_sum, lr_max and scheduled_lr are back as they were (not one step ahead of the
    tensors), and the retried step ends where an uninterrupted run does."""
    net, opt = stepped(cls, lr=0.01, warmup_steps=10)
    opt.undo_failed_steps = True
    straight_net, straight = stepped(cls, 4, lr=0.01, warmup_steps=10)
    groups = copy.deepcopy(opt.param_groups)
    x, y = regression_batches(4)[3]
    opt.zero_grad()
    mse(net, x, y).backward()
    original, calls = opt.update, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise Injected
        original(*args)

    opt.update = failing
    with pytest.raises(Injected):
        opt.step()
    del opt.update
    assert counters(opt) == counters(groups) and counters(groups)[0]["k"] == 3
    opt.step()
    assert counters(opt) == counters(straight)
    assert_bitwise([snapshot(net)], [snapshot(straight_net)])


class Injected(Exception):
    """Raised on purpose in the middle of a step."""


def counters(opt_or_groups):
    """Each group's entries but its parameters."""
    groups = getattr(opt_or_groups, "param_groups", opt_or_groups)
    return [{k: v for k, v in group.items() if k != "params"} for group in groups]


def test_foreach_true_is_refused_as_by_every_optcore_optimizer():
    with pytest.raises(NotImplementedError, match="foreach"):
        optcore.AdamWScheduleFree(tiny_net().parameters(), foreach=True)


def test_complex_parameters_sgd_as_the_package_adamw_refused_saying_what_to_do():
    z = torch.zeros(3, dtype=torch.complex128, requires_grad=True)
    with pytest.raises(ValueError, match=r"view_as_real"):
        optcore.AdamWScheduleFree([z])
    ends = []
    for cls in PAIRS["SGD"]:
        z = torch.zeros(3, dtype=torch.complex128, requires_grad=True)
        opt = cls([z], lr=0.1)
        opt.train()
        for _ in range(10):
            z.grad = (z.detach() - torch.tensor([1 + 2j, -1j, 3.0], dtype=torch.complex128))
            opt.step()
        opt.eval()
        ends.append(z.detach().clone())
    assert torch.equal(*ends) and ends[0].abs().max() > 0.5


@pytest.mark.parametrize("cls", [optcore.SGDScheduleFree, optcore.AdamWScheduleFree])
def test_one_element_tensor_lr_keeps_a_scalar_parameter_scalar(cls):
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    opt = cls([w], lr=torch.tensor([0.1], dtype=torch.float64))
    opt.train()
    for _ in range(3):
        opt.zero_grad()
        (w**2).backward()
        opt.step()
    opt.eval()
    assert w.shape == () and w.item() < 1.0
