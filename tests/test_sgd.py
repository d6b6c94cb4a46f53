"""optcore.SGD against torch.optim.SGD over every argument that changes its math."""

import itertools

import pytest
import torch

import optcore
from parity import assert_matches_torch, assert_resume_is_exact

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
    torch.manual_seed(0)
    target = torch.randn(5, dtype=torch.complex128)
    runs = []
    for cls in (optcore.SGD, torch.optim.SGD):
        z = torch.zeros(5, dtype=torch.complex128, requires_grad=True)
        opt = cls([z], lr=0.1, momentum=0.9, weight_decay=0.01)
        for _ in range(20):
            opt.zero_grad()
            (z - target).abs().pow(2).sum().backward()
            opt.step()
        runs.append(z.detach())
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
    w = torch.full((8,), 3.0, dtype=dtype, requires_grad=True)
    opt = optcore.SGD([w], lr=0.1, momentum=0.5)
    for _ in range(30):
        opt.zero_grad()
        (w.float() ** 2).sum().backward()
        opt.step()
    assert w.dtype == dtype and w.abs().max().item() < 0.1
