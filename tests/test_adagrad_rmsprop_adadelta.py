"""optcore's Adagrad, RMSprop and Adadelta against torch.optim over every argument that
changes their math, plus Adagrad's sparse gradients (nn.Embedding(sparse=True))."""

import itertools

import pytest
import torch

from optcore.optim.adadelta import Adadelta
from optcore.optim.adagrad import Adagrad
from optcore.optim.rmsprop import RMSprop
from parity import (RTOL, assert_embedding_resume_is_exact, assert_matches_torch,
                    assert_resume_is_exact, assert_same_state_layout, fit_complex, max_rel_error,
                    minimize_squared_norm, train, train_embedding)

# torch.optim.Adagrad's own sparse path builds tensors without saying whether to check them.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")

PAIRS = [(Adagrad, torch.optim.Adagrad), (RMSprop, torch.optim.RMSprop),
         (Adadelta, torch.optim.Adadelta)]
IDS = [ours.__name__ for ours, _ in PAIRS]


ADAGRAD_GRID = [
    dict(lr=0.05, lr_decay=d, weight_decay=wd, initial_accumulator_value=g0, eps=eps, maximize=mx)
    for d, wd, g0, eps, mx in itertools.product(
        [0.0, 0.1], [0.0, 0.01], [0.0, 0.5], [1e-10, 0.1], [False, True])
]
RMSPROP_GRID = [
    dict(lr=0.01, alpha=a, eps=eps, weight_decay=wd, momentum=m, centered=c, maximize=mx)
    for a, eps, wd, m, c, mx in itertools.product(
        [0.99, 0.5], [1e-8, 0.1], [0.0, 0.01], [0.0, 0.9], [False, True], [False, True])
]
ADADELTA_GRID = [
    dict(lr=lr, rho=rho, eps=eps, weight_decay=wd, maximize=mx)
    for lr, rho, eps, wd, mx in itertools.product(
        [1.0, 0.5], [0.9, 0.5], [1e-6, 1e-3], [0.0, 0.01], [False, True])
]


@pytest.mark.parametrize("kwargs", ADAGRAD_GRID, ids=str)
def test_adagrad_matches_torch(kwargs):
    """32 settings of lr_decay × weight_decay × initial_accumulator_value × eps × maximize:
    25 steps agree with torch.optim.Adagrad to 1e-9 relative error."""
    assert_matches_torch(Adagrad, torch.optim.Adagrad, kwargs, steps=25)


@pytest.mark.parametrize("kwargs", RMSPROP_GRID, ids=str)
def test_rmsprop_matches_torch(kwargs):
    """64 settings of alpha × eps × weight_decay × momentum × centered × maximize (centered
    with momentum and weight decay included): 25 steps agree with torch.optim.RMSprop to 1e-9."""
    assert_matches_torch(RMSprop, torch.optim.RMSprop, kwargs, steps=25)


@pytest.mark.parametrize("kwargs", ADADELTA_GRID, ids=str)
def test_adadelta_matches_torch(kwargs):
    """32 settings of lr × rho × eps × weight_decay × maximize: 25 steps agree with
    torch.optim.Adadelta to 1e-9."""
    assert_matches_torch(Adadelta, torch.optim.Adadelta, kwargs, steps=25)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Adagrad, torch.optim.Adagrad,
     dict(lr=torch.tensor(0.05), lr_decay=0.1, initial_accumulator_value=0.5, weight_decay=0.01)),
    (RMSprop, torch.optim.RMSprop,
     dict(lr=torch.tensor(0.01), momentum=0.9, centered=True, weight_decay=0.01)),
    (Adadelta, torch.optim.Adadelta, dict(lr=torch.tensor(0.5), rho=0.8, weight_decay=0.01)),
], ids=IDS)
def test_matches_torch_with_groups_closure_and_tensor_lr(ours, theirs, kwargs):
    """Two parameter groups (the second at half the learning rate), a closure and a 0-d
    tensor learning rate: 25 steps agree with torch.optim to 1e-9."""
    assert_matches_torch(ours, theirs, kwargs, groups=True, use_closure=True)


def test_rmsprop_and_adadelta_edge_decays_match_torch():
    """The edges torch.optim accepts: RMSprop with alpha = 1 (v stays 0, steps of η·g/ε)
    and Adadelta with rho = 1 (plain gradient descent, Δ = g) agree with torch to 1e-9."""
    assert_matches_torch(RMSprop, torch.optim.RMSprop, dict(lr=1e-9, alpha=1.0, eps=1e-8))
    assert_matches_torch(Adadelta, torch.optim.Adadelta, dict(lr=0.05, rho=1.0))
    sgd, _, _ = train(torch.optim.SGD, dict(lr=0.05))
    ours, _, _ = train(Adadelta, dict(lr=0.05, rho=1.0))
    assert max_rel_error(ours, sgd) <= 1e-12


@pytest.mark.parametrize("make_opt, kwargs", [
    (Adagrad, dict(lr=0.05, lr_decay=0.1, initial_accumulator_value=0.5)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    (Adadelta, dict(lr=1.0, rho=0.8, weight_decay=0.01)),
], ids=IDS)
def test_resume_from_checkpoint_is_exact(make_opt, kwargs):
    """A checkpoint after 9 of 20 steps, reloaded into fresh objects, reproduces the
    uninterrupted run bit for bit."""
    assert_resume_is_exact(make_opt, kwargs)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Adagrad, torch.optim.Adagrad, dict(lr=0.05)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    (Adadelta, torch.optim.Adadelta, dict(lr=1.0)),
], ids=IDS + ["RMSprop-plain"])
def test_state_dict_layout_and_values_match_torch(ours, theirs, kwargs):
    """After 3 steps in two groups: same param_groups, same state keys in the same order,
    same shapes and dtypes (step a 0-d float tensor), and state values equal to 1e-9."""
    _, _, a = train(ours, kwargs, steps=3, groups=True)
    _, _, b = train(theirs, kwargs, steps=3, groups=True)
    assert_same_state_layout(a, b)
    for i, state in b.state_dict()["state"].items():
        for key, value in state.items():
            assert max_rel_error([[a.state_dict()["state"][i][key]]], [[value]]) <= RTOL


# --- Adagrad's particular behaviours -------------------------------------------------------


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
        return [a.detach(), b.detach()], opt

    ours, opt = run(Adagrad)
    theirs, _ = run(torch.optim.Adagrad)
    assert max_rel_error([ours], [theirs]) <= RTOL
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


# --- Adagrad with sparse gradients ---------------------------------------------------------


SPARSE_GRID = [
    dict(lr=lr, lr_decay=d, initial_accumulator_value=g0, eps=eps, maximize=mx)
    for lr, d, g0, eps, mx in itertools.product(
        [0.1, torch.tensor(0.1)], [0.0, 0.1], [0.0, 0.5], [1e-10, 0.1], [False, True])
]


@pytest.mark.parametrize("kwargs", SPARSE_GRID, ids=str)
def test_adagrad_sparse_embedding_matches_torch(kwargs):
    """nn.Embedding(sparse=True), 20 steps, 32 settings of lr (float or tensor) × lr_decay ×
    initial_accumulator_value × eps × maximize: the weights agree with torch.optim.Adagrad
    to 1e-9, and the 4 rows that never appear in a batch do not move."""
    ours, start, _ = train_embedding(Adagrad, kwargs)
    theirs, _, _ = train_embedding(torch.optim.Adagrad, kwargs)
    assert max_rel_error(ours, theirs) <= RTOL
    assert torch.equal(ours[-1][0][8:], start[8:])
    assert (ours[-1][0][:8] - start[:8]).abs().min() > 1e-3


def test_adagrad_sparse_equals_dense():
    """The sparse path is the same math as the dense one: an Embedding with sparse=True and
    one with sparse=False end 20 steps of Adagrad (lr_decay 0.1, G_0 = 0.5) within 1e-12."""
    kwargs = dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5)
    sparse, _, _ = train_embedding(Adagrad, kwargs, sparse=True)
    dense, _, _ = train_embedding(Adagrad, kwargs, sparse=False)
    assert max_rel_error(sparse, dense) <= 1e-12


def test_adagrad_sparse_resume_is_exact():
    """A checkpoint of a sparse-gradient Adagrad after 7 of 15 steps, through torch.save and
    torch.load(weights_only=True), continues bit for bit."""
    kwargs = dict(lr=0.1, lr_decay=0.05)
    assert_embedding_resume_is_exact(Adagrad, kwargs)


def test_adagrad_refuses_sparse_gradients_with_weight_decay():
    """weight_decay = 0.01 with a sparse gradient raises RuntimeError, as in torch.optim."""
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(Adagrad, dict(lr=0.1, weight_decay=0.01), steps=1)
    with pytest.raises(RuntimeError, match="weight_decay"):
        train_embedding(torch.optim.Adagrad, dict(lr=0.1, weight_decay=0.01), steps=1)


@pytest.mark.parametrize("cls", [RMSprop, Adadelta], ids=["RMSprop", "Adadelta"])
def test_refuses_sparse_gradients(cls):
    """RMSprop and Adadelta raise RuntimeError on a sparse gradient, as torch.optim does."""
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        train_embedding(cls, dict(lr=0.1), steps=1)


# --- complex parameters, refusals, low precision -------------------------------------------


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5,
                                        weight_decay=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    (Adadelta, torch.optim.Adadelta, dict(lr=1.0, rho=0.8, eps=1e-3, weight_decay=0.01)),
], ids=IDS)
def test_complex_matches_torch(ours, theirs, kwargs):
    """A complex128 parameter fitted to a complex target: 20 steps agree with torch.optim
    to 1e-12 (real and imaginary parts get separate statistics, as torch's view_as_real)."""
    runs = []
    for cls in (ours, theirs):
        z, opt = fit_complex(cls, kwargs)
        runs.append((z, opt))
    (a, opt_a), (b, opt_b) = runs
    assert not torch.equal(a, torch.zeros_like(a))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    for key, value in opt_b.state[opt_b.param_groups[0]["params"][0]].items():
        mine = opt_a.state[opt_a.param_groups[0]["params"][0]][key]
        assert mine.dtype == value.dtype
        torch.testing.assert_close(mine, value, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cls, kwargs, name", [
    (Adagrad, dict(lr=-0.1), "lr"),
    (Adagrad, dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (Adagrad, dict(lr_decay=-0.1), "lr_decay"),
    (Adagrad, dict(weight_decay=-0.1), "weight_decay"),
    (Adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (Adagrad, dict(eps=-1e-10), "eps"),
    (RMSprop, dict(lr=-0.1), "lr"),
    (RMSprop, dict(eps=-1e-8), "eps"),
    (RMSprop, dict(momentum=-0.9), "momentum"),
    (RMSprop, dict(weight_decay=-0.1), "weight_decay"),
    (RMSprop, dict(alpha=-0.5), "alpha"),
    (Adadelta, dict(lr=-1.0), "lr"),
    (Adadelta, dict(rho=1.1), "rho"),
    (Adadelta, dict(rho=-0.1), "rho"),
    (Adadelta, dict(eps=-1e-6), "eps"),
    (Adadelta, dict(weight_decay=-0.1), "weight_decay"),
], ids=str)
def test_rejects_invalid_hyperparameters(cls, kwargs, name):
    """Each value torch.optim refuses raises ValueError naming the argument; torch refuses
    it too."""
    theirs = {Adagrad: torch.optim.Adagrad, RMSprop: torch.optim.RMSprop,
              Adadelta: torch.optim.Adadelta}[cls]
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        theirs([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cls, kwargs", [
    (Adagrad, dict(lr=0.5)),
    (RMSprop, dict(lr=0.1, momentum=0.5, centered=True)),
    (Adadelta, dict(lr=1.0, eps=1e-2)),
], ids=IDS)
def test_low_precision_smoke(cls, kwargs, dtype):
    """On ‖w‖² from w = 3 (8 coordinates), 40 steps in float32 or bfloat16 keep the dtype,
    stay finite, and bring every |w| below 0.5."""
    w, opt = minimize_squared_norm(cls, kwargs, dtype, steps=40)
    assert w.dtype == dtype and torch.isfinite(w).all()
    assert w.abs().max().item() < 0.5
