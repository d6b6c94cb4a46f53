"""Adadelta's edge ρ = 1 (chapter 06). The contract is in test_contract.py."""

import torch

from optcore.optim.adadelta import Adadelta
from optcore.training import max_rel_error
from parity import train


def test_adadelta_with_rho_1_is_plain_gradient_descent_to_1e_12():
    """ρ = 1 keeps both accumulators at 0, so Δ = √ε/√ε · g = g: 25 steps of Adadelta
    (lr = 0.05) equal torch.optim.SGD(lr = 0.05) to 1e-12 (and torch's Adadelta to 1e-9: the
    contract's grid holds this edge)."""
    sgd = train(torch.optim.SGD, dict(lr=0.05))
    ours = train(Adadelta, dict(lr=0.05, rho=1.0))
    assert max_rel_error(ours, sgd) <= 1e-12
