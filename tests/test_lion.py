"""Lion (chapter 13). Parity with the reference of optim_db.py (Chen et al. 2023, Algorithm 2,
in numpy) over every argument, resume, layout, complex parameters and refusals are in
test_contract.py. A second, independent reference: the pytorch-optimizer package's Lion, below."""

import functools

import pytest
import pytorch_optimizer
import torch

from optcore.optim.lion import Lion
from optim_db import ReferenceLion
from parity import assert_matches, least_squares, train


def test_lion_moves_every_entry_by_exactly_lr_without_decay():
    """|θ_t − θ_{t−1}| = η = 2⁻⁷ entrywise (a power of two, so the difference is exact)."""
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    opt = Lion([w], lr=2.0**-7)
    for _ in range(20):
        before = w.detach().clone()
        opt.zero_grad()
        (w**3).sum().backward()
        opt.step()
        assert torch.equal((w.detach() - before).abs(), torch.full((3,), 2.0**-7,
                                                                   dtype=torch.float64))


def test_lion_stored_momentum_is_the_beta2_ema_started_at_zero_to_1e_12():
    """The sign hides the scale of m, so the state itself is compared with the reference's:
    after 25 steps exp_avg = Σ (1 − β₂) β₂^(t−s) g_s."""
    kwargs = dict(lr=0.01, betas=(0.9, 0.99))
    ours, ref = train(Lion, kwargs), train(ReferenceLion, kwargs)
    for p, q in zip(ours.net.parameters(), ref.net.parameters(), strict=True):
        expected = torch.from_numpy(ref.optimizer.state[q]["m"])
        assert torch.linalg.vector_norm(ours.optimizer.state[p]["exp_avg"] - expected) <= (
            1e-12 * torch.linalg.vector_norm(expected))


def test_lion_cuts_a_least_squares_loss_1000x_in_300_steps():
    """A sign step has length η in every entry, so with a constant η = 0.02 the loss stalls
    near η²: a factor 1000 below its start, not to zero."""
    assert least_squares(Lion, dict(lr=0.02), 300) >= 1e3


# --- a second, independent reference: pytorch-optimizer's Lion ---------------------------------
#
# pytorch_optimizer.Lion (pinned 4.1.0) follows Chen et al. (2023), Algorithm 2, with its default
# options, and so does optcore; where the conventions could differ they are aligned as follows.
# - Decay: the paper and optcore apply θ ← θ(1 − ηλ), λ multiplied by the group's learning rate.
#   The package does the same only with weight_decouple=True and fixed_decay=False (its defaults,
#   passed explicitly below); fixed_decay=True gives θ(1 − λ), and weight_decouple=False adds λθ
#   to g before the interpolation, so that the decay enters c and m: neither is in the paper.
# - maximize: the package reads it from the constructor for every group (a group's own
#   "maximize" entry is ignored) and negates p.grad in place, so after step() the caller's
#   gradient is negated; optcore, like torch.optim, leaves p.grad alone. training.fit zeroes the
#   gradients before every backward, so the values each optimizer sees are the same.
# - State: both keep one tensor, "exp_avg" = m; the package adds a step counter to each group.
# - foreach: None (the default) takes the package's batched path on the CPU; both paths are run.
# With these options the package is Algorithm 2 step for step. Beyond the paper it offers
# use_gc, adanorm and cautious (passed as extra keywords); they are left off.
PYTORCH_OPTIMIZER_CASES = [
    # kwargs, groups
    (dict(lr=0.01), False),                                          # the paper's betas, no decay
    (dict(lr=0.01, betas=(0.95, 0.5), weight_decay=0.5), False),    # β₂ < β₁: roles not swapped
    (dict(lr=0.003, betas=(0.0, 0.9), weight_decay=0.1, maximize=True), False),  # c = g
    (dict(lr=0.02, betas=(0.9, 0.99), weight_decay=0.3), True),    # the biases at η/2: λ·η_group
]


@pytest.mark.parametrize("foreach", [False, True], ids=["per_param", "foreach"])
@pytest.mark.parametrize("kwargs,groups", PYTORCH_OPTIMIZER_CASES)
def test_lion_matches_pytorch_optimizer_bitwise_over_60_steps(kwargs, groups, foreach):
    """optcore.Lion and pytorch_optimizer.Lion agree bit for bit on the tiny network in float64,
    in θ after every one of 60 steps and in the final state m.

    Why bitwise: decay (θ·(1 − ηλ)), the step (θ + (−η)·sign(c)) and m ← lerp(m, g, 1 − β₂) are
    the same floating-point operations in both. Only c is rounded differently (optcore forms
    β₁m + (1 − β₁)g, the package lerp(m, g, 1 − β₁); about a third of random entries differ in
    the last bit), and c is used only through its sign, which two roundings of one real number
    share unless it lies within a few ulps of zero. A tolerance would not help there anyway: a
    flipped sign moves that entry by 2η, not by a rounding error. (rtol=0: every ‖θ − θ_ref‖ is
    exactly 0; assert_matches also requires the parameters to have moved.)
    """
    theirs = functools.partial(pytorch_optimizer.Lion, weight_decouple=True, fixed_decay=False,
                               foreach=foreach)
    ours, ref = assert_matches(Lion, theirs, kwargs, steps=60, rtol=0.0, moved=1e-3, groups=groups)
    for p, q in zip(ours.net.parameters(), ref.net.parameters(), strict=True):
        assert torch.equal(ours.optimizer.state[p]["exp_avg"], ref.optimizer.state[q]["exp_avg"])
