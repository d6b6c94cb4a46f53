"""optcore.trace.replay: an optimizer fed a given stream of gradients."""

import pytest
import torch

import optcore
from optcore import trace


def test_replay_of_a_gradient_sequence_is_gradient_descent_on_it():
    """SGD(lr = 0.1) on gradients g_1..g_4: θ_t = θ_0 − 0.1 Σ_{s≤t} g_s, one row per step."""
    g = torch.tensor([[1.0, -2.0], [0.5, 0.5], [-3.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    run = trace.replay(optcore.SGD, g, x0, lr=0.1)
    assert run.thetas.shape == (5, 2) and run.losses is None
    torch.testing.assert_close(run.thetas[1:], x0 - 0.1 * g.cumsum(0), rtol=1e-15, atol=0)


def test_replay_of_a_gradient_function_sees_the_current_theta_and_needs_steps():
    """grad(θ, t) = θ is gradient descent on ½‖θ‖²: θ_t = 0.9^t θ_0 after 5 steps."""
    x0 = torch.tensor([2.0, -1.0], dtype=torch.float64)
    run = trace.replay(optcore.SGD, lambda theta, t: theta, x0, steps=5, lr=0.1)
    torch.testing.assert_close(run.final, 0.9**5 * x0, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="steps"):
        trace.replay(optcore.SGD, lambda theta, t: theta, x0, lr=0.1)


def test_replay_with_a_schedule_function_uses_lr_t_at_step_t():
    """lr(t) = 0.1/t on a constant gradient 1: θ_4 = −0.1·(1 + 1/2 + 1/3 + 1/4)."""
    run = trace.replay(optcore.SGD, torch.ones(4, 1, dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64), schedule=lambda t: 0.1 / t, lr=1.0)
    assert run.final.item() == pytest.approx(-0.1 * (1 + 1 / 2 + 1 / 3 + 1 / 4), rel=1e-14)


def test_run_refuses_a_batch_larger_than_the_data_instead_of_looping_forever():
    with pytest.raises(ValueError, match="batch_size"):
        trace.run(optcore.problems.least_squares(n=10), optcore.SGD, steps=2, batch_size=11,
                  lr=0.1)


def test_replay_refuses_more_steps_than_gradients():
    with pytest.raises(ValueError, match="3 gradients for steps=5"):
        trace.replay(optcore.SGD, torch.ones(3, 2), torch.zeros(2), steps=5, lr=0.1)


def test_a_schedule_function_is_asked_only_for_the_steps_that_run():
    """lr(t) for t = 1..3 from a list of three rates: step t moves by lrs[t − 1] · g."""
    lrs = [0.1, 0.2, 0.05]
    run = trace.replay(optcore.SGD, torch.ones(3, 1, dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64), lr=1.0, schedule=lambda t: lrs[t - 1])
    assert torch.allclose(-run.thetas.diff(dim=0)[:, 0], torch.tensor(lrs, dtype=torch.float64),
                          rtol=0, atol=1e-15)
