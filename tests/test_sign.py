"""signSGD and Signum (chapter 13). Parity with the reference of optim_db.py (Bernstein et
al. 2018, Algorithms 1 and 2, in numpy) over every argument, resume, layout, complex
parameters and refusals are in test_contract.py."""

import pytest
import torch

from optcore.optim.sign import SignSGD
from optim_db import ReferenceSignSGD
from parity import least_squares, train


def test_signum_stored_momentum_is_the_ema_started_at_zero_to_1e_12():
    """The sign hides the scale of m (Signum without the 1 − μ factor takes the same steps),
    so the state itself is compared: after 25 steps m = Σ (1 − μ) μ^(t−s) g_s."""
    kwargs = dict(lr=0.01, momentum=0.9)
    ours, ref = train(SignSGD, kwargs), train(ReferenceSignSGD, kwargs)
    for p, q in zip(ours.net.parameters(), ref.net.parameters(), strict=True):
        expected = torch.from_numpy(ref.optimizer.state[q]["m"])
        assert torch.linalg.vector_norm(ours.optimizer.state[p]["momentum_buffer"] - expected) <= (
            1e-12 * torch.linalg.vector_norm(expected))


@pytest.mark.parametrize("kwargs", [dict(lr=0.02), dict(lr=0.01, momentum=0.9)], ids=str)
def test_signsgd_cuts_a_least_squares_loss_1000x_in_300_steps(kwargs):
    """A sign step has length η in every entry, so with a constant η the loss stalls near η²:
    a factor 1000 below its start, not to zero."""
    assert least_squares(SignSGD, kwargs, 300) >= 1e3
