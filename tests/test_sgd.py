"""SGD with sparse gradients (nn.Embedding(sparse=True)).

Parity with torch.optim.SGD over every argument, dense and sparse, with groups, closure and
tensor lr, resume, state layout, complex parameters and refusals are in test_contract.py
(table: optim_db.py).
"""

import pytest
import torch

import optcore
from optcore.training import max_rel_error
from parity import train_embedding


def test_sgd_sparse_equals_dense_to_1e_12():
    """Every SGD operation is linear, so an Embedding with sparse=True and one with
    sparse=False end 20 steps of SGD (momentum 0.9, Nesterov) within 1e-12."""
    kwargs = dict(lr=0.1, momentum=0.9, nesterov=True)
    sparse, _ = train_embedding(optcore.SGD, kwargs, sparse=True)
    dense, _ = train_embedding(optcore.SGD, kwargs, sparse=False)
    assert max_rel_error(sparse, dense) <= 1e-12


def test_sgd_refuses_sparse_gradients_with_weight_decay():
    """weight_decay = 0.01 with a sparse gradient raises RuntimeError, as in torch.optim."""
    for cls in (optcore.SGD, torch.optim.SGD):
        with pytest.raises(RuntimeError):
            train_embedding(cls, dict(lr=0.1, weight_decay=0.01), steps=1)
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(optcore.SGD, dict(lr=0.1, weight_decay=0.01), steps=1)


def test_complex_parameters_go_through_as_complex_bitwise_like_torch():
    """SGD is linear, so torch steps complex tensors as they are; optcore too (not as real
    pairs, whose L2 and momentum products round differently): 10 steps, bitwise equal."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(500, dtype=torch.complex64, generator=gen)
    kwargs = dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    params = [start.clone().requires_grad_() for _ in range(2)]
    opts = [optcore.SGD([params[0]], **kwargs), torch.optim.SGD([params[1]], **kwargs)]
    for _ in range(10):
        g = torch.randn(500, dtype=torch.complex64, generator=gen)
        for p, opt in zip(params, opts):
            p.grad = g.clone()
            opt.step()
        assert torch.equal(params[0], params[1])
