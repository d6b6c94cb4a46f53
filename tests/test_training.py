"""optcore.training: the tiny network, the seeded batches and the loop that the chapters and
the optimizer tests (parity.py) share."""

import math

import pytest
import torch

import optcore
from optcore.training import (Run, digits, fit, max_rel_error, regression_batches, tiny_net,
                              train, train_digits)


def test_tiny_net_is_a_4_8_1_mlp_drawn_from_its_seed():
    """Weights (8, 4), (8,), (1, 8), (1,), float64 by default; one seed gives one network."""
    a, b, c = tiny_net(seed=0), tiny_net(seed=0), tiny_net(seed=1)
    assert [tuple(p.shape) for p in a.parameters()] == [(8, 4), (8,), (1, 8), (1,)]
    assert all(p.dtype == torch.float64 for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_regression_batches_are_seeded_and_have_noise_of_std_0_1():
    """y = sin(Σx) + 0.1·noise: over 50 batches of 16 the residual's std is 0.1 within 10 %."""
    data = regression_batches(50, seed=1)
    again = regression_batches(50, seed=1)
    assert all(torch.equal(x, u) and torch.equal(y, v)
               for (x, y), (u, v) in zip(data, again, strict=True))
    residual = torch.cat([y - torch.sin(x.sum(1, keepdim=True)) for x, y in data])
    assert residual.shape == (800, 1)
    assert residual.std().item() == pytest.approx(0.1, rel=0.1)


def test_fit_with_a_closure_takes_the_same_steps_and_records_the_loss_before_each():
    """step(closure) and backward-then-step() give the same parameters bit for bit; the
    recorded loss of step t is the batch loss at θ_{t−1}."""
    data = regression_batches(5)
    runs = []
    for closure in (False, True):
        net = tiny_net()
        runs.append(fit(net, optcore.SGD(net.parameters(), lr=0.1), data, closure=closure))
    assert runs[0].losses == runs[1].losses
    assert max_rel_error(*runs) == 0.0
    first = torch.nn.functional.mse_loss(tiny_net()(data[0][0]), data[0][1]).item()
    assert runs[0].losses[0] == first and runs[0].path().shape == (5, 8 * 4 + 8 + 8 + 1)


def test_train_with_groups_gives_the_biases_half_the_learning_rate():
    """With groups=True the weights keep lr and the biases get lr/2: one SGD step moves each
    bias by exactly half of what a one-group step moves it."""
    one = train(torch.optim.SGD, steps=1, lr=0.1)
    two = train(torch.optim.SGD, steps=1, lr=0.1, groups=True)
    start = list(tiny_net().parameters())
    assert [g["lr"] for g in two.optimizer.param_groups] == [0.1, 0.05]
    for i, (a, b, s) in enumerate(zip(one.snapshots[0], two.snapshots[0], start, strict=True)):
        ratio = 1.0 if i % 2 == 0 else 0.5  # weights, biases alternate in tiny_net
        torch.testing.assert_close(b - s, ratio * (a - s), rtol=1e-12, atol=0)


def test_max_rel_error_is_the_worst_relative_distance_over_steps_and_tensors():
    base = Run([], [[torch.ones(3)], [torch.full((2,), 2.0)]])
    off = Run([], [[torch.ones(3)], [torch.tensor([2.0, 2.2])]])
    assert max_rel_error(base, base) == 0.0
    assert max_rel_error(off, base) == pytest.approx(0.2 / 8**0.5, rel=1e-6)


def test_digits_split_is_seeded_standardized_and_holds_every_class():
    """1,300 training and 497 test images of 64 pixels; the training pixels have mean 0 and
    standard deviation 1 (or are constant 0); every class appears in the test split; one seed
    gives one split and another seed a different one."""
    data, again, other = digits(), digits(), digits(seed=1)
    assert data.x_train.shape == (1300, 64) and data.x_test.shape == (497, 64)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.long
    mean, std = data.x_train.mean(0), data.x_train.std(0)
    torch.testing.assert_close(mean, torch.zeros(64), atol=1e-5, rtol=0)
    constant = std == 0
    assert 0 < constant.sum() < 64  # a few border pixels are always blank in the training split
    torch.testing.assert_close(std[~constant], torch.ones(int((~constant).sum())),
                               atol=1e-5, rtol=0)
    assert set(data.y_test.tolist()) == set(range(10))
    assert torch.equal(data.x_test, again.x_test) and torch.equal(data.y_train, again.y_train)
    assert not torch.equal(data.y_test, other.y_test)


def test_train_digits_is_reproducible_learns_and_leaves_the_global_generator_alone():
    """Two optimizers see the same network and batches (optcore.Adam equals torch's Adam bit
    for bit in float32, so their losses must be equal); SGD with momentum gets from chance
    (loss ln 10 ≈ 2.30 at the start) to over 90 % test accuracy in 400 steps; the global
    random state is unchanged."""
    data = digits()
    state = torch.random.get_rng_state()
    ours = train_digits(optcore.Adam, steps=50, data=data, lr=1e-3)
    theirs = train_digits(torch.optim.Adam, steps=50, data=data, lr=1e-3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert ours.losses == theirs.losses and ours.test_accuracy == theirs.test_accuracy
    assert ours.losses[0] == pytest.approx(math.log(10), rel=0.1)
    sgd = train_digits(optcore.SGD, data=data, lr=0.1, momentum=0.9)
    assert sgd.test_accuracy > 0.9 and len(sgd.losses) == 400
