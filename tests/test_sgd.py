"""optcore.SGD against torch.optim.SGD over every argument that changes its math."""

import itertools

import pytest
import torch

import optcore
from parity import (assert_embedding_resume_is_exact, assert_matches_torch,
                    assert_resume_is_exact, fit_complex, max_rel_error, minimize_squared_norm,
                    train_embedding)

GRID = [
    dict(lr=lr, momentum=m, dampening=d, weight_decay=wd, nesterov=n, maximize=mx)
    for lr, m, d, wd, n, mx in itertools.product(
        [0.05], [0.0, 0.9], [0.0, 0.3], [0.0, 0.01], [False, True], [False, True]
    )
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_sgd_matches_torch(kwargs):
    assert_matches_torch(optcore.SGD, torch.optim.SGD, kwargs, steps=25)


def test_sgd_matches_torch_with_groups_closure_and_tensor_lr():
    kwargs = dict(lr=torch.tensor(0.05), momentum=0.9, nesterov=True, weight_decay=0.01)
    assert_matches_torch(optcore.SGD, torch.optim.SGD, kwargs, groups=True, use_closure=True)


@pytest.mark.parametrize("kwargs", [dict(lr=0.05), dict(lr=0.05, momentum=0.9, dampening=0.1)])
def test_sgd_resume_from_checkpoint_is_exact(kwargs):
    assert_resume_is_exact(optcore.SGD, kwargs)


def test_sgd_state_dict_layout_matches_torch():
    from parity import train
    _, _, ours = train(optcore.SGD, dict(lr=0.1, momentum=0.9), steps=3)
    _, _, theirs = train(torch.optim.SGD, dict(lr=0.1, momentum=0.9), steps=3)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys()


def test_sgd_complex_matches_torch():
    runs = []
    for cls in (optcore.SGD, torch.optim.SGD):
        z, opt = fit_complex(cls, dict(lr=0.1, momentum=0.9, weight_decay=0.01))
        runs.append(z)
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (dict(lr=0.1, momentum=-0.5), "momentum"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (dict(lr=0.1, nesterov=True), "nesterov"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
])
def test_sgd_rejects_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        optcore.SGD([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sgd_low_precision_smoke(dtype):
    w, opt = minimize_squared_norm(optcore.SGD, dict(lr=0.1, momentum=0.5), dtype, steps=30)
    assert w.dtype == dtype and w.abs().max().item() < 0.1


# --- sparse gradients (nn.Embedding(sparse=True)) ------------------------------------------


SPARSE_GRID = [
    dict(lr=lr, momentum=m, dampening=d, nesterov=n, maximize=mx)
    for lr, m, d, n, mx in itertools.product(
        [0.1, torch.tensor(0.1)], [0.0, 0.9], [0.0, 0.3], [False, True], [False, True])
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("kwargs", SPARSE_GRID, ids=str)
def test_sgd_sparse_embedding_matches_torch(kwargs):
    """nn.Embedding(sparse=True), 20 steps, 20 settings of lr (float or tensor) × momentum ×
    dampening × nesterov × maximize: the weights agree with torch.optim.SGD to 1e-9; the
    momentum buffer is a sparse tensor, as torch's; rows never in a batch do not move."""
    ours, start, opt = train_embedding(optcore.SGD, kwargs)
    theirs, _, torch_opt = train_embedding(torch.optim.SGD, kwargs)
    assert max_rel_error(ours, theirs) <= 1e-9
    assert torch.equal(ours[-1][0][8:], start[8:])
    assert (ours[-1][0][:8] - start[:8]).abs().min() > 1e-3
    weight = opt.param_groups[0]["params"][0]
    torch_weight = torch_opt.param_groups[0]["params"][0]
    if kwargs["momentum"]:
        buf = opt.state[weight]["momentum_buffer"]
        torch_buf = torch_opt.state[torch_weight]["momentum_buffer"]
        assert buf.is_sparse and torch_buf.is_sparse
        torch.testing.assert_close(buf.to_dense(), torch_buf.to_dense(), rtol=1e-9, atol=0)


def test_sgd_sparse_equals_dense():
    """Every SGD operation is linear, so an Embedding with sparse=True and one with
    sparse=False end 20 steps of SGD (momentum 0.9, Nesterov) within 1e-12."""
    kwargs = dict(lr=0.1, momentum=0.9, nesterov=True)
    sparse, _, _ = train_embedding(optcore.SGD, kwargs, sparse=True)
    dense, _, _ = train_embedding(optcore.SGD, kwargs, sparse=False)
    assert max_rel_error(sparse, dense) <= 1e-12


def test_sgd_sparse_momentum_resume_is_exact():
    """A checkpoint holding a sparse momentum buffer, after 7 of 15 steps, through torch.save
    and torch.load(weights_only=True), continues bit for bit."""
    kwargs = dict(lr=0.1, momentum=0.9, dampening=0.1)
    assert_embedding_resume_is_exact(optcore.SGD, kwargs)


def test_sgd_refuses_sparse_gradients_with_weight_decay():
    """weight_decay = 0.01 with a sparse gradient raises RuntimeError, as in torch.optim."""
    for cls in (optcore.SGD, torch.optim.SGD):
        with pytest.raises(RuntimeError):
            train_embedding(cls, dict(lr=0.1, weight_decay=0.01), steps=1)
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(optcore.SGD, dict(lr=0.1, weight_decay=0.01), steps=1)
