"""optcore's Rprop and ASGD against torch.optim over every argument that changes their math."""

import itertools

import pytest
import torch

from optcore.optim.asgd import ASGD
from optcore.optim.rprop import Rprop
from parity import (RTOL, assert_matches_torch, assert_resume_is_exact, assert_same_state_layout,
                    fit_complex, max_rel_error, minimize_squared_norm, train)

PAIRS = [(Rprop, torch.optim.Rprop), (ASGD, torch.optim.ASGD)]
IDS = ["Rprop", "ASGD"]


RPROP_GRID = [
    dict(lr=lr, etas=etas, step_sizes=sizes, maximize=mx)
    for lr, etas, sizes, mx in itertools.product(
        [0.01, 0.001], [(0.5, 1.2), (0.3, 1.5)], [(1e-6, 50), (1e-3, 0.02)], [False, True])
]
ASGD_GRID = [
    dict(lr=0.05, lambd=lambd, alpha=alpha, t0=t0, weight_decay=wd, maximize=mx)
    for lambd, alpha, t0, wd, mx in itertools.product(
        [1e-4, 0.5], [0.75, 0.5], [1e6, 5], [0.0, 0.01], [False, True])
]


@pytest.mark.parametrize("kwargs", RPROP_GRID, ids=str)
def test_rprop_matches_torch(kwargs):
    """16 settings of lr × etas × step_sizes × maximize: 25 steps agree with
    torch.optim.Rprop to 1e-9."""
    assert_matches_torch(Rprop, torch.optim.Rprop, kwargs, steps=25)


@pytest.mark.parametrize("kwargs", ASGD_GRID, ids=str)
def test_asgd_matches_torch(kwargs):
    """32 settings of lambd × alpha × t0 × weight_decay × maximize: 25 steps agree with
    torch.optim.ASGD to 1e-9."""
    assert_matches_torch(ASGD, torch.optim.ASGD, kwargs, steps=25)


@pytest.mark.parametrize("kwargs", [k for k in ASGD_GRID if k["weight_decay"] == 0.01], ids=str)
def test_asgd_state_matches_torch(kwargs):
    """The average ax, η_t and μ_t (which the parameters do not show) agree with
    torch.optim.ASGD after 25 steps: ax to 1e-9, the 0-d tensors η_t, μ_t and step exactly,
    in the same dtype."""
    _, _, ours = train(ASGD, kwargs, groups=True)
    _, _, theirs = train(torch.optim.ASGD, kwargs, groups=True)
    a, b = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert a.keys() == b.keys()
    for i in b:
        assert max_rel_error([[a[i]["ax"]]], [[b[i]["ax"]]]) <= RTOL
        for key in ("step", "eta", "mu"):
            assert a[i][key].dtype == b[i][key].dtype and a[i][key].shape == ()
            assert torch.equal(a[i][key], b[i][key]), key


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Rprop, torch.optim.Rprop, dict(lr=torch.tensor(0.01), etas=(0.3, 1.5))),
    (ASGD, torch.optim.ASGD, dict(lr=torch.tensor(0.05), lambd=0.5, t0=5, weight_decay=0.01)),
], ids=IDS)
def test_matches_torch_with_groups_closure_and_tensor_lr(ours, theirs, kwargs):
    """Two parameter groups (the second at half the learning rate), a closure and a 0-d
    tensor learning rate: 25 steps agree with torch.optim to 1e-9."""
    assert_matches_torch(ours, theirs, kwargs, groups=True, use_closure=True)


@pytest.mark.parametrize("make_opt, kwargs", [
    (Rprop, dict(lr=0.01, etas=(0.3, 1.5), step_sizes=(1e-4, 0.05))),
    (ASGD, dict(lr=0.05, lambd=0.5, t0=5, weight_decay=0.01)),
], ids=IDS)
def test_resume_from_checkpoint_is_exact(make_opt, kwargs):
    """A checkpoint after 9 of 20 steps (ASGD already averaging: t0 = 5), reloaded into
    fresh objects, reproduces the uninterrupted run bit for bit."""
    assert_resume_is_exact(make_opt, kwargs)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Rprop, torch.optim.Rprop, dict(lr=0.01)),
    (ASGD, torch.optim.ASGD, dict(lr=0.05)),
], ids=IDS)
def test_state_dict_layout_matches_torch(ours, theirs, kwargs):
    """After 3 steps in two groups: same param_groups and, per parameter, the same state
    keys in the same order with the same shapes, dtypes and devices."""
    _, _, a = train(ours, kwargs, steps=3, groups=True)
    _, _, b = train(theirs, kwargs, steps=3, groups=True)
    assert_same_state_layout(a, b)


# --- Rprop's particular behaviours ---------------------------------------------------------


def _rprop_on_square(steps, **kwargs):
    """Minimise w² from w = 1; return w after each step."""
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = Rprop([w], **kwargs)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
        out.append(w.item())
    return out


def test_rprop_skips_the_step_after_a_sign_change():
    """iRprop⁻ on w² from w = 1 with lr = 0.6, etas = (0.5, 1.2): w goes 0.4 (s = 0.6),
    −0.32 (s = 0.72, same sign), stays at −0.32 (sign flipped: s halves to 0.36 and the step
    is skipped), then 0.04 (no history: s stays 0.36). torch.optim.Rprop does the same."""
    ours = _rprop_on_square(4, lr=0.6, etas=(0.5, 1.2))
    assert ours == pytest.approx([0.4, -0.32, -0.32, 0.04], rel=1e-12, abs=1e-15)
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Rprop([w], lr=0.6, etas=(0.5, 1.2))
    theirs = []
    for _ in range(4):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
        theirs.append(w.item())
    assert ours == theirs


def test_rprop_first_step_is_clamped_to_the_step_size_range():
    """lr = 0.1 above step_sizes[1] = 0.05: the first step moves every coordinate by exactly
    0.05, as in torch.optim, and 25 steps still agree with torch to 1e-9."""
    assert _rprop_on_square(1, lr=0.1, step_sizes=(1e-6, 0.05)) == [0.95]
    assert_matches_torch(Rprop, torch.optim.Rprop, dict(lr=0.1, step_sizes=(1e-6, 0.05)))


def test_rprop_ignores_a_learning_rate_changed_after_the_first_step():
    """The learning rate only seeds the step sizes: setting lr to 10 after step 3 leaves the
    next 7 steps unchanged, in optcore as in torch.optim."""
    def run(cls, change):
        w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=0.01)
        for step in range(10):
            if change and step == 3:
                opt.param_groups[0]["lr"] = 10.0
            opt.zero_grad()
            (w**2 * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum().backward()
            opt.step()
        return w.detach()

    for cls in (Rprop, torch.optim.Rprop):
        assert torch.equal(run(cls, change=True), run(cls, change=False))


# --- ASGD's particular behaviours ----------------------------------------------------------


@pytest.mark.parametrize("default_dtype, rtol", [(torch.float32, 1e-7), (torch.float64, 1e-14)])
def test_asgd_averages_the_iterates_from_step_t0_plus_2(default_dtype, rtol):
    """With t0 = 5, μ_t first drops below 1 at t = 8 (it is computed one step late), so after
    12 steps ax is the mean of θ_7 … θ_12, in optcore and in torch.optim alike. μ_t is
    stored in the default dtype: with float32 the float64 average is only good to 1e-7,
    with float64 to 1e-14."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        for cls in (ASGD, torch.optim.ASGD):
            w = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
            opt = cls([w], lr=0.1, t0=5)
            iterates = []
            for _ in range(12):
                opt.zero_grad()
                (w**2).sum().backward()
                opt.step()
                iterates.append(w.detach().clone())
            ax = opt.state[w]["ax"]
            assert opt.state[w]["mu"].dtype == default_dtype
            torch.testing.assert_close(ax, torch.stack(iterates[6:]).mean(0), rtol=rtol, atol=0)
            assert not torch.allclose(ax, torch.stack(iterates[5:]).mean(0), rtol=1e-3, atol=0)
    finally:
        torch.set_default_dtype(previous)


def test_asgd_eta_is_rounded_to_the_default_dtype():
    """η_t lives in a 0-d tensor of the default dtype (float32 here), even for float64
    parameters: after 10 steps with lr = 0.05, lambd = 0.5, alpha = 0.75 it equals
    float32(0.05 / (1 + 0.5·0.05·10)^0.75), bit for bit, in optcore and torch.optim."""
    assert torch.get_default_dtype() == torch.float32
    expected = torch.tensor(0.05 / (1 + 0.5 * 0.05 * 10) ** 0.75, dtype=torch.float32)
    for cls in (ASGD, torch.optim.ASGD):
        w = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=0.05, lambd=0.5)
        for _ in range(10):
            opt.zero_grad()
            (w**2).sum().backward()
            opt.step()
        eta = opt.state[w]["eta"]
        assert eta.dtype == torch.float32 and torch.equal(eta, expected)
        assert opt.state[w]["mu"].item() == 1.0


# --- sparse, complex, refusals, low precision ----------------------------------------------


@pytest.mark.parametrize("cls", [Rprop, ASGD], ids=IDS)
def test_refuses_sparse_gradients(cls):
    """A sparse gradient (nn.Embedding(sparse=True)) raises RuntimeError, as in torch.optim."""
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = cls(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 3])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (Rprop, torch.optim.Rprop, dict(lr=0.05, etas=(0.3, 1.5), maximize=False)),
    (ASGD, torch.optim.ASGD, dict(lr=0.1, lambd=0.5, t0=5, weight_decay=0.01)),
], ids=IDS)
def test_complex_matches_torch(ours, theirs, kwargs):
    """A complex128 parameter fitted to a complex target: 20 steps agree with torch.optim
    to 1e-12, and so do the complex state tensors (Rprop's step sizes start at lr + i·lr)."""
    runs = []
    for cls in (ours, theirs):
        z, opt = fit_complex(cls, kwargs)
        runs.append((z, opt.state[opt.param_groups[0]['params'][0]]))
    (a, state_a), (b, state_b) = runs
    assert not torch.equal(a, torch.zeros_like(a))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert list(state_a) == list(state_b)
    for key, value in state_b.items():
        assert state_a[key].dtype == value.dtype
        torch.testing.assert_close(state_a[key], value, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cls, kwargs, name", [
    (Rprop, dict(lr=-0.1), "lr"),
    (Rprop, dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (Rprop, dict(etas=(0.5, 1.0)), "etas"),
    (Rprop, dict(etas=(0.0, 1.2)), "etas"),
    (Rprop, dict(etas=(1.0, 1.2)), "etas"),
    (ASGD, dict(lr=-0.1), "lr"),
    (ASGD, dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (ASGD, dict(weight_decay=-0.1), "weight_decay"),
], ids=str)
def test_rejects_invalid_hyperparameters(cls, kwargs, name):
    """Each value torch.optim refuses raises ValueError naming the argument; torch refuses
    it too."""
    theirs = {Rprop: torch.optim.Rprop, ASGD: torch.optim.ASGD}[cls]
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        theirs([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cls, kwargs", [
    (Rprop, dict(lr=0.1)),
    (ASGD, dict(lr=0.1, t0=10)),
], ids=IDS)
def test_low_precision_smoke(cls, kwargs, dtype):
    """On ‖w‖² from w = 3 (8 coordinates), 40 steps in float32 or bfloat16 keep the dtype,
    stay finite, and bring every |w| below 0.5."""
    w, opt = minimize_squared_norm(cls, kwargs, dtype, steps=40)
    assert w.dtype == dtype and torch.isfinite(w).all()
    assert w.abs().max().item() < 0.5
    if cls is ASGD:
        assert opt.state[w]["ax"].dtype == dtype and opt.state[w]["ax"].abs().max() < 0.5
