"""optcore.Adafactor, optcore.Muon and optcore.LBFGS against their torch.optim counterparts."""

import copy
import io
import itertools

import pytest
import torch

from optcore.optim.adafactor import Adafactor
from optcore.optim.lbfgs import LBFGS, cubic_interpolate, strong_wolfe
from optcore.optim.muon import Muon, newton_schulz
from parity import (RTOL, assert_matches_torch, assert_resume_is_exact, assert_same_state_layout,
                    batches, fit, max_rel_error, train)


# --------------------------------------------------------------------------------------------
# Adafactor
# --------------------------------------------------------------------------------------------

ADAFACTOR_GRID = [
    dict(lr=lr, beta2_decay=b, eps=eps, d=d, weight_decay=wd, maximize=mx)
    for lr, b, eps, d, wd, mx in itertools.product(
        [0.05], [-0.8, -0.5], [(None, 1e-3), (0.05, 1.0)], [1.0, 1.5], [0.0, 0.1],
        [False, True])
]


@pytest.mark.parametrize("kwargs", ADAFACTOR_GRID, ids=str)
def test_adafactor_matches_torch_over_25_steps(kwargs):
    """Every combination of beta2_decay, eps (ε₁ = None → dtype eps, ε₂ large enough to set
    the step), clipping d, weight decay and maximize agrees to 1e-9."""
    assert_matches_torch(Adafactor, torch.optim.Adafactor, kwargs, steps=25)


def test_adafactor_matches_torch_with_groups_closure_and_tensor_lr():
    kwargs = dict(lr=torch.tensor(0.05), weight_decay=0.1)
    assert_matches_torch(Adafactor, torch.optim.Adafactor, kwargs, groups=True,
                         use_closure=True)


def test_adafactor_factors_the_last_two_dims_of_a_3d_tensor_and_keeps_scalars_whole():
    """A (2, 3, 4) stack keeps row_var (2, 3, 1) and col_var (2, 1, 4), 2·(3+4) = 14 numbers
    instead of 24; a vector and a 0-d scalar keep a full `variance`; 25 steps agree with torch
    to 1e-9, also with a shape-(1,) tensor lr."""
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64),
            torch.randn(5, generator=gen, dtype=torch.float64),
            torch.tensor(0.7, dtype=torch.float64)]
    targets = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in init]
    runs = []
    for cls in (Adafactor, torch.optim.Adafactor):
        params = [p.clone().requires_grad_() for p in init]
        opt = cls(params, lr=torch.tensor([0.05]), weight_decay=0.01)
        snapshots = []
        for _ in range(25):
            opt.zero_grad()
            sum(((p - q) ** 2 * (1 + p.tanh() ** 2)).sum()
                for p, q in zip(params, targets)).backward()
            opt.step()
            snapshots.append([p.detach().clone() for p in params])
        runs.append((snapshots, opt))
    assert max_rel_error(runs[0][0], runs[1][0]) <= RTOL
    assert_same_state_layout(runs[0][1], runs[1][1])
    state = [runs[0][1].state[p] for p in runs[0][1].param_groups[0]["params"]]
    assert state[0]["row_var"].shape == (2, 3, 1) and state[0]["col_var"].shape == (2, 1, 4)
    assert state[1]["variance"].shape == (5,) and state[2]["variance"].shape == ()


@pytest.mark.parametrize("kwargs", [dict(lr=0.05), dict(lr=0.05, weight_decay=0.1, d=1.5)])
def test_adafactor_resume_from_checkpoint_is_exact(kwargs):
    assert_resume_is_exact(Adafactor, kwargs)


def test_adafactor_state_dict_layout_matches_torch():
    """step (0-d float tensor), row_var/col_var for the 8×4 and 1×8 weights, variance for
    the biases; param_groups equal."""
    _, _, ours = train(Adafactor, dict(lr=0.05), steps=3)
    _, _, theirs = train(torch.optim.Adafactor, dict(lr=0.05), steps=3)
    assert_same_state_layout(ours, theirs)


def test_adafactor_refuses_complex_parameters_like_torch():
    z = torch.zeros(3, 2, dtype=torch.complex128, requires_grad=True)
    z.grad = torch.ones_like(z)
    with pytest.raises(RuntimeError, match="complex"):
        Adafactor([z]).step()


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (dict(beta2_decay=0.5), "beta2_decay"),
    (dict(eps=(-1e-30, 1e-3)), r"eps\[0\]"),
    (dict(eps=(None, -1e-3)), r"eps\[1\]"),
    (dict(d=0.5), "d"),
    (dict(weight_decay=-1e-4), "weight_decay"),
])
def test_adafactor_rejects_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        Adafactor([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_adafactor_low_precision_smoke(dtype):
    """Weights at 3.0 shrink below 0.5 within 30 steps of lr=0.1 (≈10% relative steps)."""
    W = torch.full((8, 4), 3.0, dtype=dtype, requires_grad=True)
    b = torch.full((4,), 3.0, dtype=dtype, requires_grad=True)
    opt = Adafactor([W, b], lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        ((W.float() ** 2).sum() + (b.float() ** 2).sum()).backward()
        opt.step()
    assert W.dtype == dtype and W.abs().max().item() < 0.5 and b.abs().max().item() < 0.5


# --------------------------------------------------------------------------------------------
# Muon: its own bias-free MLP, since every parameter must be a matrix
# --------------------------------------------------------------------------------------------

def matrix_net(seed=0, dtype=torch.float64):
    """4 → 8 → 6 → 1 tanh MLP without biases: a tall (8×4), a wide (6×8) and a row (1×6)
    weight, so both orientations of Newton–Schulz run."""
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(8, 6, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(6, 1, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.to(dtype)


def muon_groups(net, kwargs, groups):
    if not groups:
        return net.parameters()
    first, second, last = net.parameters()
    return [{"params": [first, second]}, {"params": [last], "lr": kwargs["lr"] * 0.5}]


def train_muon(make_opt, kwargs, steps=25, *, groups=False, use_closure=False, start=0,
               net=None, opt=None):
    """Train ``matrix_net`` on parity.batches; return snapshots after each step, net, opt.
    ``net``/``opt``/``start`` continue an interrupted run from batch ``start``."""
    net = net or matrix_net()
    opt = opt or make_opt(muon_groups(net, kwargs, groups), **kwargs)
    snapshots = fit(net, opt, batches(steps)[start:], kwargs, use_closure)
    return snapshots, net, opt


def assert_muon_matches_torch(kwargs, **train_kwargs):
    a, _, _ = train_muon(Muon, kwargs, **train_kwargs)
    b, _, _ = train_muon(torch.optim.Muon, kwargs, **train_kwargs)
    err = max_rel_error(a, b)
    assert err <= RTOL, f"Muon{kwargs}: relative error {err:.3e}"
    moved = max_rel_error([a[-1]], [list(matrix_net().parameters())])
    assert moved > 1e-3, f"Muon{kwargs}: parameters did not move"


MUON_GRID = [
    dict(lr=0.02, weight_decay=wd, momentum=mu, nesterov=nesterov, adjust_lr_fn=adjust)
    for wd, mu, nesterov, adjust in itertools.product(
        [0.0, 0.1], [0.0, 0.95], [True, False], [None, "match_rms_adamw"])
    if not (mu == 0.0 and not nesterov)  # with μ = 0 both forms are D_t = g_t
] + [
    dict(lr=0.02, adjust_lr_fn="original"),
    dict(lr=0.02, ns_coefficients=(1.5, -0.5, 0.0), ns_steps=8),  # the classic cubic iteration
    dict(lr=0.02, ns_steps=2),
    dict(lr=0.02, eps=10.0),  # ε above ‖D‖_F: divides by ε instead of the norm
]


@pytest.mark.parametrize("kwargs", MUON_GRID, ids=str)
def test_muon_matches_torch_over_25_steps(kwargs):
    """Weight decay × momentum × nesterov × lr adjustment, plus other Newton–Schulz
    coefficients, step counts and ε: agreement to 1e-9 on tall, wide and row matrices (the
    bfloat16 iteration is reproduced bit for bit)."""
    assert_muon_matches_torch(kwargs)


def test_muon_matches_torch_with_groups_closure_and_tensor_lr():
    assert_muon_matches_torch(dict(lr=torch.tensor(0.02), weight_decay=0.1), groups=True,
                              use_closure=True)


def test_newton_schulz_is_torchs_bfloat16_iteration_bit_for_bit():
    from torch.optim._muon import _zeropower_via_newtonschulz
    gen = torch.Generator().manual_seed(0)
    for shape in [(8, 4), (6, 8), (1, 6)]:
        G = torch.randn(shape, generator=gen, dtype=torch.float64)
        ours = newton_schulz(G)
        theirs = _zeropower_via_newtonschulz(G, (3.4445, -4.7750, 2.0315), 5, 1e-7)
        assert ours.dtype == torch.bfloat16 and torch.equal(ours, theirs)


def test_newton_schulz_cubic_in_float64_converges_to_the_polar_factor():
    """With (a, b, c) = (1.5, −0.5, 0), 40 float64 steps give U Vᵀ of the SVD to 1e-12, for a
    tall and a wide matrix; Jordan's quintic in 5 steps leaves singular values in [0.6, 1.2]."""
    gen = torch.Generator().manual_seed(1)
    for shape in [(8, 4), (4, 8)]:
        G = torch.randn(shape, generator=gen, dtype=torch.float64)
        U, _, Vh = torch.linalg.svd(G, full_matrices=False)
        O = newton_schulz(G, (1.5, -0.5, 0.0), steps=40, dtype=torch.float64)
        assert torch.allclose(O, U @ Vh, rtol=0, atol=1e-12)
        sigma = torch.linalg.svdvals(newton_schulz(G, dtype=torch.float64))
        assert 0.6 <= sigma.min() and sigma.max() <= 1.2


def test_muon_resume_from_checkpoint_is_exact():
    """Stop after 9 of 20 steps, torch.save both state_dicts, rebuild, load, continue: the
    final weights are bit-identical to the uninterrupted run."""
    kwargs = dict(lr=0.02, weight_decay=0.1)
    straight, _, _ = train_muon(Muon, kwargs, steps=20)
    _, net, opt = train_muon(Muon, kwargs, steps=9)
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    net2 = matrix_net(seed=5)
    net2.load_state_dict(checkpoint["model"])
    opt2 = Muon(net2.parameters(), **kwargs)
    opt2.load_state_dict(copy.deepcopy(checkpoint["opt"]))
    resumed, _, _ = train_muon(Muon, kwargs, steps=20, start=9, net=net2, opt=opt2)
    for a, b in zip(resumed[-1], straight[-1], strict=True):
        assert torch.equal(a, b)


def test_muon_state_dict_layout_matches_torch():
    _, _, ours = train_muon(Muon, dict(lr=0.02), steps=3)
    _, _, theirs = train_muon(torch.optim.Muon, dict(lr=0.02), steps=3)
    assert_same_state_layout(ours, theirs)


def test_muon_refuses_a_bias_and_says_what_to_do_instead():
    net = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"shape \(3,\).*AdamW.*reshape"):
        Muon(net.parameters())
    opt = Muon([net.weight])
    with pytest.raises(ValueError, match="2-D"):
        opt.add_param_group({"params": [net.bias]})
    assert len(opt.param_groups) == 1


def test_muon_refuses_complex_parameters_like_torch():
    Z = torch.zeros(3, 2, dtype=torch.complex128, requires_grad=True)
    Z.grad = torch.ones_like(Z)
    with pytest.raises(RuntimeError, match="complex"):
        Muon([Z]).step()


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (dict(momentum=-0.5), "momentum"),
    (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(adjust_lr_fn="spectral"), "adjust_lr_fn"),
    (dict(ns_steps=100), "ns_steps"),
    (dict(ns_coefficients=(1.5, -0.5)), "ns_coefficients"),
])
def test_muon_rejects_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        Muon([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_muon_bfloat16_momentum_buffer_is_the_gradient_ema():
    """After one step with gradient g (nesterov=False, μ = 0.9) the buffer is 0.1·g.
    (torch 2.13 instead divides a bfloat16 buffer by its norm in place: `.bfloat16()` of a
    bfloat16 tensor is the tensor itself, and Newton–Schulz normalizes it with `div_`.)"""
    W = torch.zeros(4, 6, dtype=torch.bfloat16, requires_grad=True)
    g = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)).bfloat16() * 10
    W.grad = g.clone()
    opt = Muon([W], lr=0.01, momentum=0.9, nesterov=False)
    opt.step()
    buf = opt.state[W]["momentum_buffer"]
    assert torch.allclose(buf.float(), 0.1 * g.float(), rtol=1e-2, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_muon_low_precision_smoke(dtype):
    """Fitting a 6×4 matrix from zero: ‖W − T‖/‖T‖ falls from 1 to below 0.2 in 60
    steps."""
    T = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    W = torch.zeros(6, 4, dtype=dtype, requires_grad=True)
    opt = Muon([W], lr=0.05, weight_decay=0.0)
    for _ in range(60):
        opt.zero_grad()
        ((W.float() - T.float()) ** 2).sum().backward()
        opt.step()
    assert W.dtype == dtype
    assert ((W.float() - T.float()).norm() / T.float().norm()).item() < 0.2


# --------------------------------------------------------------------------------------------
# LBFGS
# --------------------------------------------------------------------------------------------

LBFGS_GRID = [
    dict(lr=1 if ls else 0.1, max_iter=max_iter, history_size=history, line_search_fn=ls)
    for ls, (max_iter, history) in itertools.product(
        [None, "strong_wolfe"], [(1, 100), (4, 2), (8, 3)])
] + [
    dict(lr=0.1, max_iter=6, max_eval=4),  # the evaluation budget ends each step early
    dict(lr=1, max_iter=6, max_eval=9, line_search_fn="strong_wolfe"),
    dict(lr=0.1, max_iter=6, tolerance_grad=0.2),  # some steps stop early at max|g| ≤ 0.2
    # some steps stop early on a small change of loss, step or bracket
    dict(lr=1, max_iter=6, tolerance_change=1e-2, line_search_fn="strong_wolfe"),
]


@pytest.mark.parametrize("kwargs", LBFGS_GRID, ids=str)
def test_lbfgs_matches_torch_over_20_closure_steps(kwargs):
    """20 outer steps, each on a new mini-batch and each up to max_iter inner iterations,
    with and without the strong-Wolfe search, full and overflowing histories, and each
    stopping rule: optcore's iterates equal torch's (checked to 1e-9; in fact bit for bit)."""
    assert_matches_torch(LBFGS, torch.optim.LBFGS, kwargs, steps=20, use_closure=True)


def test_lbfgs_matches_torch_with_tensor_lr():
    assert_matches_torch(LBFGS, torch.optim.LBFGS, dict(lr=torch.tensor(0.5), max_iter=3),
                         steps=20, use_closure=True)


def test_lbfgs_with_strong_wolfe_solves_rosenbrock_bit_for_bit_like_torch():
    """One step(closure) of at most 100 iterations takes Rosenbrock from (−1.5, 2) to (1, 1)
    within 1e-6, with the same iterates and evaluation count as torch.optim.LBFGS."""
    results = []
    for cls in (LBFGS, torch.optim.LBFGS):
        xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([xy], max_iter=100, line_search_fn="strong_wolfe",
                  tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure():
            opt.zero_grad()
            loss = (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2
            loss.backward()
            return loss

        opt.step(closure)
        results.append((xy.detach(), opt.state[xy]["func_evals"]))
    assert torch.equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert torch.allclose(results[0][0], torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_lbfgs_max_iter_1_gives_the_line_search_a_single_trial():
    """max_iter=1 makes the default max_eval 1·5//4 = 1, so strong Wolfe may not evaluate
    beyond its first trial step: every step() costs exactly 2 evaluations, as in torch."""
    kwargs = dict(lr=1, max_iter=1, line_search_fn="strong_wolfe")
    _, _, ours = train(LBFGS, kwargs, steps=10, use_closure=True)
    _, _, theirs = train(torch.optim.LBFGS, kwargs, steps=10, use_closure=True)
    assert ours.param_groups[0]["max_eval"] == 1
    assert ours.state_dict()["state"][0]["func_evals"] == 20
    assert theirs.state_dict()["state"][0]["func_evals"] == 20


def test_cubic_interpolate_finds_the_minimizer_of_a_cubic():
    """f(x) = x³ − 3x through x = 0 and 2 has its minimum at 1; a cubic without a minimizer
    (d₁² < g₁g₂) falls back to the middle of the bounds."""
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    x = cubic_interpolate(0.0, t(0.0), t(-3.0), 2.0, t(2.0), t(9.0))
    assert abs(x - 1.0) < 1e-15
    assert cubic_interpolate(0.0, t(0.0), t(1.0), 1.0, t(0.9), t(1.0)) == 0.5


def test_strong_wolfe_returns_a_step_that_satisfies_both_conditions():
    """From (−1.2, 1) on Rosenbrock along −∇f with t = 1 (far too long): the returned step
    satisfies f(x+td) ≤ f + 1e-4·t·gᵀd and |∇f(x+td)ᵀd| ≤ 0.9·|gᵀd|."""
    def f_and_g(v):
        v = v.detach().requires_grad_()
        loss = (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2
        loss.backward()
        return loss.item(), v.grad

    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    f, g = f_and_g(x)
    d = -g
    f_new, g_new, t, evals = strong_wolfe(lambda x, t, d: f_and_g(x + t * d), x, 1.0, d, f,
                                          g, g.dot(d))
    assert 0 < t < 1 and evals >= 2
    assert f_new <= f + 1e-4 * t * g.dot(d)
    assert abs(g_new.dot(d)) <= 0.9 * abs(g.dot(d))
    assert (f_new, g_new.tolist()) == (f_and_g(x + t * d)[0], f_and_g(x + t * d)[1].tolist())


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1, max_iter=4, history_size=3),
    dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe"),
])
def test_lbfgs_resume_from_checkpoint_is_exact(kwargs):
    """The full history (old_dirs, old_stps, ro, H_diag, d, t, prev_flat_grad ...) survives
    torch.save and load_state_dict: 20 steps with a checkpoint after 9 are bit-identical."""
    assert_resume_is_exact(LBFGS, kwargs, use_closure=True)


def test_lbfgs_state_dict_layout_matches_torch():
    """All state under parameter 0: func_evals, n_iter, al, d, t, old_dirs, old_stps, ro,
    H_diag, prev_flat_grad, prev_loss, with the same types and lengths as torch's."""
    kwargs = dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe")
    _, _, ours = train(LBFGS, kwargs, steps=3, use_closure=True)
    _, _, theirs = train(torch.optim.LBFGS, kwargs, steps=3, use_closure=True)
    assert_same_state_layout(ours, theirs)
    assert list(ours.state_dict()["state"]) == [0]
    assert list(ours.state_dict()["state"][0]) == [
        "func_evals", "n_iter", "al", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
        "prev_flat_grad", "prev_loss"]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_complex_matches_torch(line_search_fn):
    """A complex least-squares problem with a quartic term, 5 steps of max_iter=5: equal to
    torch (both see z as pairs of reals)."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, dtype=torch.complex128, generator=gen)
    b = torch.randn(6, dtype=torch.complex128, generator=gen)
    runs = []
    for cls in (LBFGS, torch.optim.LBFGS):
        z = torch.zeros(4, dtype=torch.complex128, requires_grad=True)
        opt = cls([z], lr=0.5 if line_search_fn is None else 1, max_iter=5,
                  line_search_fn=line_search_fn)

        def closure():
            opt.zero_grad()
            loss = (A @ z - b).abs().pow(2).sum() + 0.1 * z.abs().pow(4).sum()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        runs.append(z.detach())
    assert runs[0].abs().max() > 0.1
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-12, atol=0)


def test_lbfgs_without_a_closure_explains_how_to_write_one():
    opt = LBFGS([torch.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match=r"closure(.|\n)*loss.backward\(\)(.|\n)*step\(closure\)"):
        opt.step()


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=torch.tensor([0.1, 0.2])), "lr"),
    (dict(line_search_fn="backtracking"), "line_search_fn"),
    (dict(history_size=0), "history_size"),
])
def test_lbfgs_rejects_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        LBFGS([torch.zeros(2, requires_grad=True)], **kwargs)


def test_lbfgs_refuses_parameter_groups_like_torch():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([a]).add_param_group({"params": [b]})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lbfgs_low_precision_smoke(dtype):
    """An ill-conditioned quadratic (curvatures 1 … 100) starting at 3.0 everywhere: three
    strong-Wolfe steps cut the loss by more than 100×."""
    scale = torch.logspace(0, 2, 8)
    w = torch.full((8,), 3.0, dtype=dtype, requires_grad=True)
    opt = LBFGS([w], line_search_fn="strong_wolfe", max_iter=10)

    def closure():
        opt.zero_grad()
        loss = (scale * w.float() ** 2).sum()
        loss.backward()
        return loss

    start = closure().item()
    for _ in range(3):
        opt.step(closure)
    assert w.dtype == dtype and closure().item() < start / 100
