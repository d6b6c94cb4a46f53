"""SparseAdam: lazy moments for the rows a sparse gradient touches (chapter 15).

Parity with torch.optim.SparseAdam on an nn.Embedding(sparse=True) over every argument,
resume, state layout and refusals are in test_contract.py (table: optim_db.py).
"""

import math

import pytest
import torch

from optcore.optim.sparse_adam import SparseAdam
from parity import train_embedding


def test_sparse_adam_adds_eps_to_the_raw_root_of_v_so_its_first_step_is_lr_over_32_62():
    """A constant gradient |g| = ε = 1e-3: SparseAdam adds ε to the raw √v_t = √(1−β₂^t)|g|,
    so its first step is η/(1 + 1/√(1−β₂)) = η/32.62, where Adam's (ε outside √v̂_t) is η/2."""
    theta = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    opt = SparseAdam([theta], lr=1.0, eps=1e-3)
    theta.grad = torch.sparse_coo_tensor([[0]], [[1e-3]], (1, 1), dtype=torch.float64,
                                         check_invariants=True)
    opt.step()
    assert 1 + 1 / math.sqrt(1 - 0.999) == pytest.approx(32.62, abs=0.01)
    assert theta.item() == pytest.approx(-1 / (1 + 1 / math.sqrt(1 - 0.999)), rel=1e-12)


def test_sparse_adam_step_is_a_python_int_counting_every_step():
    """As in torch, ``step`` is a Python int (25 after 25 steps), not a 0-d tensor."""
    run, _ = train_embedding(SparseAdam, dict(lr=0.05), steps=25)
    step = run.optimizer.state_dict()["state"][0]["step"]
    assert type(step) is int and step == 25


def test_sparse_adam_leaves_untouched_rows_and_their_moments_alone():
    """Rows 0 and 2 of 5 get gradients (row 2 twice: summed first); rows 1, 3, 4 keep θ, m and
    v exactly, even after a second step that touches only row 4."""
    emb = torch.nn.Embedding(5, 3, sparse=True).double()
    start = emb.weight.detach().clone()
    opt = SparseAdam(emb.parameters(), lr=0.1)
    emb(torch.tensor([0, 2, 2])).sum().backward()
    opt.step()
    state = opt.state[emb.weight]
    moved = (emb.weight.detach() != start).any(1)
    assert moved.tolist() == [True, False, True, False, False]
    torch.testing.assert_close(state["exp_avg"][2], torch.full((3,), (1 - 0.9) * 2,
                                                              dtype=torch.float64))
    m_before = state["exp_avg"].clone()
    opt.zero_grad()
    emb(torch.tensor([4])).sum().backward()
    opt.step()
    assert torch.equal(state["exp_avg"][:4], m_before[:4])  # no decay of unseen rows' m


def test_sparse_adam_row_first_seen_at_step_t_moves_by_lazy_bias_corrected_amount():
    """t counts the tensor's steps, so a row first touched at t = 50 (β = 0.9, 0.999, ε → 0)
    moves by η·√(1−β₂^50)/(1−β₁^50)·(1−β₁)/√(1−β₂) = 0.7021 η, not Adam's first step η."""
    emb = torch.nn.Embedding(2, 1, sparse=True).double()
    opt = SparseAdam(emb.parameters(), lr=1.0, eps=1e-300)
    for _ in range(49):
        opt.zero_grad()
        emb(torch.tensor([0])).sum().backward()
        opt.step()
    before = emb.weight[1].item()
    opt.zero_grad()
    emb(torch.tensor([1])).sum().backward()
    opt.step()
    expected = math.sqrt(1 - 0.999**50) / (1 - 0.9**50) * 0.1 / math.sqrt(0.001)
    assert before - emb.weight[1].item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.7021, abs=1e-4)


def test_sparse_adam_empty_gradient_advances_step_but_changes_nothing():
    """As torch: the step counter goes 1 → 2 on an empty sparse gradient; θ, m, v unchanged."""
    results = []
    for cls in (SparseAdam, torch.optim.SparseAdam):
        emb = torch.nn.Embedding(4, 2, sparse=True).double()
        opt = cls(emb.parameters(), lr=0.1)
        emb(torch.tensor([1])).sum().backward()
        opt.step()
        before = emb.weight.detach().clone()
        emb.weight.grad = torch.sparse_coo_tensor(torch.zeros(1, 0, dtype=torch.long),
                                                  torch.zeros(0, 2, dtype=torch.float64),
                                                  (4, 2), check_invariants=True)
        opt.step()
        assert torch.equal(emb.weight.detach(), before)
        results.append(opt.state[emb.weight]["step"])
    assert results == [2, 2]


def test_sparse_adam_refuses_dense_gradients_pointing_to_adam():
    w = torch.zeros(3, requires_grad=True)
    opt = SparseAdam([w])
    w.sum().backward()
    with pytest.raises(RuntimeError, match="dense gradients.*Adam"):
        opt.step()


def test_sparse_adam_refuses_sparse_parameters_like_torch():
    """(Complex parameters are refused too: test_contract.py.)"""
    param = torch.zeros(3, 3).to_sparse().requires_grad_()
    with pytest.raises(ValueError):
        torch.optim.SparseAdam([param])
    with pytest.raises(ValueError, match="Invalid params"):
        SparseAdam([param])
