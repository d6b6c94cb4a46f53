"""Lion (chapter 13). Parity with the reference of optim_db.py (Chen et al. 2023, Algorithm 2,
in numpy) over every argument, resume, layout, complex parameters and refusals are in
test_contract.py."""

import torch

from optcore.optim.lion import Lion
from optim_db import ReferenceLion
from parity import least_squares, train


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
