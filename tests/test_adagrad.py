"""Adagrad: state created at construction, the lr_decay schedule, sparse gradients
(chapter 05). The contract (parity, dense and sparse, resume, layout, complex, refusals) is in
test_contract.py (table: optim_db.py)."""

import pytest
import torch

from optcore.optim.adagrad import Adagrad
from optcore.training import Run, max_rel_error
from parity import RTOL, assert_same_state_layout, train_embedding

# torch.optim.Adagrad's own sparse path builds tensors without saying whether to check them.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")


def test_adagrad_creates_state_at_construction_like_torch():
    """A fresh Adagrad (no step yet) already holds step = 0 and sum = G_0 for each of the 4
    parameters, as torch.optim.Adagrad does; a complex parameter starts at G_0 + i·G_0."""
    net = torch.nn.Linear(3, 2)
    z = torch.zeros(2, dtype=torch.complex64, requires_grad=True)
    ours = Adagrad(list(net.parameters()) + [z], initial_accumulator_value=0.3)
    theirs = torch.optim.Adagrad(list(net.parameters()) + [z], initial_accumulator_value=0.3)
    assert_same_state_layout(ours, theirs)
    for p in ours.state:
        assert torch.equal(ours.state[p]["sum"], theirs.state[p]["sum"])
        assert ours.state[p]["step"].item() == 0.0
    assert ours.state[z]["sum"][0].item() == pytest.approx(0.3 + 0.3j)


def test_adagrad_ignores_a_groups_initial_accumulator_value_like_torch():
    """torch.optim.Adagrad starts every accumulator at the constructor's value (0.1 here),
    even in a group that says 2.0, and even for a group added later; optcore does the same,
    so 25 steps still agree to 1e-9."""
    def run(cls):
        torch.manual_seed(0)
        a = torch.randn(5, dtype=torch.float64, requires_grad=True)
        b = torch.randn(5, dtype=torch.float64, requires_grad=True)
        opt = cls([{"params": [a], "initial_accumulator_value": 2.0}], lr=0.1,
                  initial_accumulator_value=0.1)
        opt.add_param_group({"params": [b], "initial_accumulator_value": 3.0})
        for _ in range(25):
            opt.zero_grad()
            (a.sin().sum() + (b**2).sum()).backward()
            opt.step()
        return Run([], [[a.detach(), b.detach()]]), opt

    ours, opt = run(Adagrad)
    theirs, _ = run(torch.optim.Adagrad)
    assert max_rel_error(ours, theirs) <= RTOL
    assert opt.param_groups[0]["initial_accumulator_value"] == 2.0  # stored, not used
    fresh = Adagrad([{"params": [torch.zeros(3), ], "initial_accumulator_value": 2.0}],
                    initial_accumulator_value=0.1)
    assert torch.equal(next(iter(fresh.state.values()))["sum"], torch.full((3,), 0.1))


def test_adagrad_lr_decay_shrinks_the_step_as_eta_over_1_plus_t_minus_1_delta():
    """With a constant gradient g = 1, G_0 = 0, eps = 0 and lr_decay δ = 0.5, step t moves
    θ by η / (1 + (t − 1)δ) / √t exactly (t = 1..5)."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Adagrad([w], lr=1.0, lr_decay=0.5, eps=0.0)
    previous = 0.0
    for t in range(1, 6):
        opt.zero_grad()
        w.sum().backward()
        opt.step()
        assert previous - w.item() == pytest.approx(1.0 / (1 + (t - 1) * 0.5) / t**0.5, rel=1e-14)
        previous = w.item()


def test_adagrad_sparse_equals_dense_to_1e_12():
    """The sparse path is the same math as the dense one: an Embedding with sparse=True and
    one with sparse=False end 20 steps of Adagrad (lr_decay 0.1, G_0 = 0.5) within 1e-12."""
    kwargs = dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5)
    sparse, _ = train_embedding(Adagrad, kwargs, sparse=True)
    dense, _ = train_embedding(Adagrad, kwargs, sparse=False)
    assert max_rel_error(sparse, dense) <= 1e-12


def test_adagrad_refuses_sparse_gradients_with_weight_decay():
    """weight_decay = 0.01 with a sparse gradient raises RuntimeError, as in torch.optim."""
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(Adagrad, dict(lr=0.1, weight_decay=0.01), steps=1)
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(torch.optim.Adagrad, dict(lr=0.1, weight_decay=0.01), steps=1)


def test_sparse_gradient_on_a_vector_is_bitwise_torchs_in_float32_over_10_steps():
    """A 1-D parameter with sparse gradients (repeated indices included): every step equal to
    torch.optim.Adagrad's bit for bit. (A sparse update marked coalesced took another add_
    kernel and differed in the last bit for about 9% of the entries.)"""
    gen = torch.Generator().manual_seed(0)
    ours = torch.randn(2000, generator=gen).requires_grad_()
    theirs = ours.detach().clone().requires_grad_()
    opt_ours, opt_theirs = Adagrad([ours], lr=0.1), torch.optim.Adagrad([theirs], lr=0.1)
    for _ in range(10):
        idx = torch.randint(0, 2000, (1500,), generator=gen)
        values = torch.randn(1500, generator=gen)
        for p, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            p.grad = torch.sparse_coo_tensor(idx[None], values, (2000,))
            opt.step()
        assert torch.equal(ours, theirs)
