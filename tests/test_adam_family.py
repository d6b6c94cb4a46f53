"""optcore's Adam family (Adam, AdamW, Adamax, NAdam, RAdam, SparseAdam) against torch.optim.

Parity runs are float64, 25 steps on parity.py's small network, relative error <= 1e-9 after
every step. Behaviour tests check the derivations' claims with numbers (bias correction from
t = 1, where ε sits, AMSGrad's max of the raw v, Adamax's ε inside the max, NAdam's μ_t
schedule, RAdam's switch at ρ_t > 5, SparseAdam's lazy rows).
"""

import copy
import itertools
import math

import pytest
import torch

from optcore.optim.adam import Adam, AdamW
from optcore.optim.adamax import Adamax
from optcore.optim.nadam import NAdam, nadam_mu
from optcore.optim.radam import RAdam
from optcore.optim.sparse_adam import SparseAdam
from parity import (RTOL, assert_matches_torch, assert_resume_is_exact, assert_same_state_layout,
                    batches, complex_target, fit_complex, max_rel_error, minimize_squared_norm,
                    objective, reload_through_checkpoint, tiny_net, train)

TORCH = {Adam: torch.optim.Adam, AdamW: torch.optim.AdamW, Adamax: torch.optim.Adamax,
         NAdam: torch.optim.NAdam, RAdam: torch.optim.RAdam,
         SparseAdam: torch.optim.SparseAdam}
DENSE = [Adam, AdamW, Adamax, NAdam, RAdam]


def grid(**axes):
    """All combinations of the given axes, as kwargs dicts."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def decay_is_meaningful(kw):
    """decoupled_weight_decay=True with weight_decay=0 repeats the coupled run: skip it."""
    return kw["weight_decay"] != 0 or not kw.get("decoupled_weight_decay", False)


BETAS = [(0.9, 0.999), (0.5, 0.9)]
ON_OFF = [False, True]
GRIDS = {
    Adam: grid(lr=[1e-2], betas=BETAS, eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
               amsgrad=ON_OFF, maximize=ON_OFF, decoupled_weight_decay=ON_OFF),
    AdamW: grid(lr=[1e-2], betas=BETAS, weight_decay=[0.0, 0.1], amsgrad=ON_OFF,
                maximize=ON_OFF),
    Adamax: grid(lr=[1e-2], betas=BETAS, eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                 maximize=ON_OFF),
    NAdam: grid(lr=[1e-2], betas=BETAS, weight_decay=[0.0, 0.1], momentum_decay=[4e-3, 0.0, 0.5],
                decoupled_weight_decay=ON_OFF, maximize=ON_OFF),
    # β₂ = 0.999 switches from momentum SGD to rectified steps at t = 6; β₂ = 0.5 never does
    # (ρ∞ = 3 < 5); β₂ = 0.9 switches at t = 6 too but with a much smaller ρ∞ = 19.
    RAdam: grid(lr=[1e-2], betas=[(0.9, 0.999), (0.5, 0.5), (0.9, 0.9)], eps=[1e-8, 1e-3],
                weight_decay=[0.0, 0.1], decoupled_weight_decay=ON_OFF, maximize=ON_OFF),
}
PARITY_CASES = [pytest.param(cls, kw, id=f"{cls.__name__}-{kw}")
                for cls, kws in GRIDS.items() for kw in kws if decay_is_meaningful(kw)]


@pytest.mark.parametrize("cls, kwargs", PARITY_CASES)
def test_matches_torch_for_25_steps_to_1e_9(cls, kwargs):
    """Every combination of the math-changing arguments, incl. amsgrad + maximize + decay."""
    assert_matches_torch(cls, TORCH[cls], kwargs, steps=25)


@pytest.mark.parametrize("cls", DENSE)
def test_matches_torch_with_two_groups_closure_and_tensor_lr(cls):
    """lr = tensor([0.02]) (halved for the biases' group), coupled and decoupled decay 0.05."""
    extra = {Adam: dict(amsgrad=True), AdamW: dict(amsgrad=True), Adamax: {},
             NAdam: dict(decoupled_weight_decay=True), RAdam: dict(decoupled_weight_decay=True)}
    kwargs = dict(lr=torch.tensor([0.02]), weight_decay=0.05, **extra[cls])
    assert_matches_torch(cls, TORCH[cls], kwargs, groups=True, use_closure=True)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("betas", [(torch.tensor(0.9), torch.tensor(0.999)),
                                   (torch.tensor([0.8]), torch.tensor([0.99]))], ids=["0d", "1el"])
def test_adam_tensor_betas_match_torch_incl_float32_bias_correction(cls, betas):
    """Tensor betas (float32 0-d or 1-element) follow torch to 1e-9: 1 − β^t is then computed
    in float32, as torch does, so a float64 rewrite would be off by ~1e-7."""
    kwargs = dict(lr=1e-2, betas=betas, weight_decay=0.1, amsgrad=True)
    assert_matches_torch(cls, TORCH[cls], kwargs)


def test_adamw_defaults_weight_decay_1e_2_and_matches_torch():
    """AdamW's only default that differs from Adam's is weight_decay: 1e-2 instead of 0."""
    w = [torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.AdamW(w).defaults["weight_decay"]
    assert AdamW(w).defaults["weight_decay"] == theirs == 1e-2
    assert Adam(w).defaults["weight_decay"] == 0
    assert_matches_torch(AdamW, torch.optim.AdamW, dict(lr=1e-2))


@pytest.mark.parametrize("cls, kwargs", [
    (Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    (AdamW, dict(lr=1e-2, amsgrad=True)),
    (Adamax, dict(lr=1e-2, weight_decay=0.1)),
    (RAdam, dict(lr=1e-2, weight_decay=0.1)),
], ids=lambda x: getattr(x, "__name__", str(x)))
def test_resume_from_checkpoint_after_9_of_20_steps_is_bit_exact(cls, kwargs):
    """(NAdam has its own resume tests below: torch's load_state_dict changes its state.)"""
    assert_resume_is_exact(cls, kwargs, steps=20, split=9)


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


NADAM_RESUME = dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)


def test_nadam_resume_is_bit_exact_under_the_float64_default_dtype(float64_default):
    """mu_product is then float64 already, so load_state_dict's cast changes nothing."""
    assert_resume_is_exact(NAdam, NADAM_RESUME, steps=20, split=9)


def resumed_run(make_opt, kwargs, steps=20, split=9):
    """parity.assert_resume_is_exact's interrupted run; returns the final parameters and the
    optimizer after loading."""
    _, net, opt = train(make_opt, kwargs, split, trajectory=False)
    net, opt = reload_through_checkpoint(net, opt, tiny_net,
                                         lambda module: make_opt(module.parameters(), **kwargs))
    loaded = copy.deepcopy(opt.state_dict()["state"])
    for x, y in batches(steps)[split:]:
        opt.zero_grad()
        objective(net, x, y, kwargs).backward()
        opt.step()
    return [[p.detach() for p in net.parameters()]], loaded


def test_nadam_resume_follows_torch_which_casts_mu_product_to_the_parameter_dtype():
    """torch's load_state_dict casts every state tensor but ``step`` to the parameter's dtype:
    NAdam's float32 mu_product comes back float64, so in torch a resumed run is not bit-exact
    (here ~1e-8 off). optcore inherits that load_state_dict: its resumed run follows torch's
    resumed run to 1e-9."""
    ours, ours_loaded = resumed_run(NAdam, NADAM_RESUME)
    theirs, theirs_loaded = resumed_run(torch.optim.NAdam, NADAM_RESUME)
    assert max_rel_error(ours, theirs) <= RTOL
    for loaded in (ours_loaded, theirs_loaded):
        assert loaded[0]["mu_product"].dtype == torch.float64  # was float32 when saved
    straight, _, _ = train(torch.optim.NAdam, NADAM_RESUME, steps=20, trajectory=False)
    assert 1e-12 < max_rel_error(theirs, straight) < 1e-6


@pytest.mark.parametrize("cls, kwargs", [
    (Adam, dict(lr=1e-2)), (Adam, dict(lr=1e-2, amsgrad=True)), (AdamW, dict(lr=1e-2)),
    (Adamax, dict(lr=1e-2)), (NAdam, dict(lr=1e-2)), (RAdam, dict(lr=1e-2)),
], ids=lambda x: getattr(x, "__name__", str(x)))
def test_state_dict_layout_matches_torch(cls, kwargs):
    """Same param_groups dicts; same state keys in the same order; a 0-d float step (NAdam's
    mu_product too, float32 under the float32 default dtype); moments shaped like θ."""
    _, _, ours = train(cls, kwargs, steps=3)
    _, _, theirs = train(TORCH[cls], kwargs, steps=3)
    assert_same_state_layout(ours, theirs)


@pytest.mark.parametrize("cls, kwargs", [
    (Adam, dict(lr=0.1, weight_decay=0.01, amsgrad=True)),
    (AdamW, dict(lr=0.1, weight_decay=0.01, amsgrad=True)),
    (Adamax, dict(lr=0.1, weight_decay=0.01)),
    (NAdam, dict(lr=0.1, weight_decay=0.01)),
    (NAdam, dict(lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)),
    (RAdam, dict(lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)),
], ids=lambda x: getattr(x, "__name__", str(x)))
def test_complex_parameters_match_torch_over_20_steps(cls, kwargs):
    """Real and imaginary parts get their own moments (torch's view_as_real), and the state
    is stored complex, as in torch."""
    runs = []
    for make in (cls, TORCH[cls]):
        z, opt = fit_complex(make, kwargs)
        runs.append((z, opt))
    (ours, opt_a), (theirs, opt_b) = runs
    assert (ours - theirs).abs().max() <= RTOL * theirs.abs().max()
    target = complex_target()
    assert (ours - target).abs().max() < target.abs().max()  # it moved towards the target
    assert_same_state_layout(opt_a, opt_b)


REFUSALS = [
    *[(cls, dict(lr=-0.1), "lr") for cls in DENSE],
    *[(cls, dict(lr=torch.tensor([0.1, 0.2])), "lr") for cls in DENSE],
    *[(cls, dict(eps=-1e-8), "eps") for cls in DENSE],
    *[(cls, dict(betas=(1.0, 0.999)), r"betas\[0\]") for cls in DENSE],
    *[(cls, dict(betas=(0.9, -0.1)), r"betas\[1\]") for cls in DENSE],
    *[(cls, dict(weight_decay=-1e-4), "weight_decay") for cls in DENSE],
    (NAdam, dict(momentum_decay=-1e-3), "momentum_decay"),
    # Adam and AdamW want both betas floats or both tensors: the int 0 is refused.
    (Adam, dict(betas=(0, 0.999)), "betas"),
    (AdamW, dict(betas=(0.9, torch.tensor(0.999))), "betas"),
    (Adam, dict(betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.999))), r"betas\[0\]"),
    (SparseAdam, dict(lr=0.0), "lr"),  # SparseAdam alone wants lr > 0 and eps > 0
    (SparseAdam, dict(eps=0.0), "eps"),
    (SparseAdam, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
]


@pytest.mark.parametrize("cls, kwargs, name", REFUSALS,
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_refuses_what_torch_refuses_naming_the_argument(cls, kwargs, name):
    # torch refuses it too, in its own words (a 2-element beta: RuntimeError from bool()).
    with pytest.raises((ValueError, RuntimeError)):
        TORCH[cls]([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("cls", DENSE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_low_precision_smoke_reaches_minimum_from_3_to_below_0_3(cls, dtype):
    w, opt = minimize_squared_norm(cls, dict(lr=0.1), dtype, steps=60)
    assert w.dtype == dtype and all(v.dtype == dtype for v in opt.state[w].values()
                                    if isinstance(v, torch.Tensor) and v.dim() > 0)
    assert w.abs().max().item() < 0.3


# --- The derivations' claims, with numbers ---------------------------------------------------

def one_step(cls, g, **kwargs):
    """θ₁ − θ₀ after one step from θ₀ = 0 with gradient g."""
    theta = torch.zeros_like(g, requires_grad=True)
    opt = cls([theta], **kwargs)
    theta.grad = g.clone()
    opt.step()
    return theta.detach(), opt


G = torch.tensor([1e-6, -3e-2, 5.0, -700.0], dtype=torch.float64)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_first_step_with_eps_0_is_exactly_lr_times_sign_whatever_the_gradient_scale(cls):
    """Bias correction with t = 1 makes m̂₁ = g₁ and v̂₁ = g₁²: |Δθ| = η for |g| from 1e-6
    to 700 (a correction with t − 1 would divide by zero; none would give 0.1/√0.001 η)."""
    step, _ = one_step(cls, G, lr=0.01, eps=0.0, weight_decay=0.0)
    torch.testing.assert_close(step, -0.01 * G.sign(), rtol=1e-15, atol=0)


def test_nadam_first_step_is_1_0565_lr_times_sign():
    """NAdam's m̂₁ = μ₂(1−β₁)g/(1 − μ₁μ₂) + (1−μ₁)g/(1−μ₁) = 1.0565 g with the default
    ψ = 4e-3 (μ₁ = 0.45007, μ₂ = 0.45015): the look-ahead adds 5.65 % to Adam's first step."""
    mu1, mu2 = nadam_mu(0.9, 4e-3, 1), nadam_mu(0.9, 4e-3, 2)
    factor = mu2 * 0.1 / (1 - mu1 * mu2) + 1
    assert factor == pytest.approx(1.0565, abs=1e-4)
    step, _ = one_step(NAdam, G, lr=0.01, eps=0.0)
    # Π₁ = μ₁ is stored in float32, hence 1e-7 rather than 1e-15.
    torch.testing.assert_close(step, -0.01 * factor * G.sign(), rtol=1e-7, atol=0)


def test_adam_eps_is_outside_the_root_of_v_hat_but_sparse_adam_and_radam_add_it_to_raw_root_v():
    """A constant gradient |g| = ε = 1e-3 gives v̂_t = g². Adam's first step is
    η·g/(|g| + ε) = η/2. SparseAdam and RAdam add ε to the raw √v_t = √(1−β₂^t)|g|: SparseAdam's
    first step is η/(1 + 1/√(1−β₂)) = η/32.62, and RAdam's first rectified step (t = 6) is
    η r₆ √b/(√b + 1) with b = 1 − β₂⁶, i.e. 0.0718 r₆ η instead of Adam's r₆ η/2."""
    g = torch.tensor([1e-3], dtype=torch.float64)
    adam, _ = one_step(Adam, g, lr=1.0, eps=1e-3)
    assert adam.item() == pytest.approx(-0.5, rel=1e-12)

    theta = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    opt = SparseAdam([theta], lr=1.0, eps=1e-3)
    theta.grad = torch.sparse_coo_tensor([[0]], [[1e-3]], (1, 1), dtype=torch.float64,
                                         check_invariants=True)
    opt.step()
    assert theta.item() == pytest.approx(-1 / (1 + 1 / math.sqrt(1 - 0.999)), rel=1e-12)

    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = RAdam([theta], lr=1.0, eps=1e-3)
    for _ in range(6):
        before = theta.item()
        theta.grad = g.clone()
        opt.step()
    rho_inf, b = 2 / 0.001 - 1, 1 - 0.999**6
    rho = rho_inf - 2 * 6 * 0.999**6 / b
    r6 = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    assert math.sqrt(b) / (math.sqrt(b) + 1) == pytest.approx(0.0718, abs=1e-4)
    assert theta.item() - before == pytest.approx(-r6 * math.sqrt(b) / (math.sqrt(b) + 1),
                                                  rel=1e-12)


def test_amsgrad_keeps_the_max_of_the_raw_v_then_bias_corrects_it():
    """Gradients 10, then 0.1 nine times: v₁ = (1−β₂)·100 = 0.1 stays the max of the raw v_t.
    Step 10 divides by √(0.1/(1−β₂¹⁰)) = √10.05, not by the max of v̂_t (v̂₁ = 100, √ = 10)."""
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Adam([theta], lr=1e-3, amsgrad=True, eps=0.0)
    for g in [10.0] + [0.1] * 9:
        before = theta.detach().clone()
        theta.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    state = opt.state[theta]
    assert state["max_exp_avg_sq"].item() == pytest.approx(0.1, rel=1e-12)
    assert state["exp_avg_sq"].item() < 0.1
    m_hat = state["exp_avg"].item() / (1 - 0.9**10)
    v_hat_max = 0.1 / (1 - 0.999**10)
    assert v_hat_max == pytest.approx(10.05, abs=0.01)
    step = (theta.detach() - before).item()
    assert step == pytest.approx(-1e-3 * m_hat / math.sqrt(v_hat_max), rel=1e-12)


def test_adamw_is_adam_with_decoupled_weight_decay_bit_for_bit():
    """AdamW subclasses Adam; Adam(decoupled_weight_decay=True) follows the same trajectory
    exactly; and loading an Adam checkpoint (decoupled False) into AdamW keeps it True."""
    assert issubclass(AdamW, Adam) and issubclass(torch.optim.AdamW, torch.optim.Adam)
    kwargs = dict(lr=1e-2, weight_decay=0.1, amsgrad=True)
    a, _, adam = train(lambda p, **kw: Adam(p, decoupled_weight_decay=True, **kw), kwargs)
    b, _, _ = train(AdamW, kwargs)
    assert all(torch.equal(x, y) for sa, sb in zip(a, b, strict=True)
               for x, y in zip(sa, sb, strict=True))

    coupled = train(Adam, kwargs, steps=2)[2].state_dict()
    for cls in (AdamW, torch.optim.AdamW):
        opt = cls(tiny_net().parameters(), **kwargs)
        opt.load_state_dict(copy.deepcopy(coupled))
        assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_adamw_with_zero_gradient_shrinks_weights_by_1_minus_lr_lambda_per_step():
    """m = v = 0, so only the decay acts: θ₁₀ = θ₀ (1 − 0.1·0.01)^10 = 0.999^10 θ₀."""
    theta = torch.full((3,), 2.0, dtype=torch.float64, requires_grad=True)
    opt = AdamW([theta], lr=0.1, weight_decay=0.01)
    for _ in range(10):
        theta.grad = torch.zeros_like(theta)
        opt.step()
    torch.testing.assert_close(theta.detach(), torch.full((3,), 2.0 * 0.999**10,
                                                         dtype=torch.float64), rtol=1e-14, atol=0)


def test_adamax_puts_eps_inside_the_max_so_u_is_at_least_eps():
    """After one step u₁ = max(0, |g₁| + ε) = |g₁| + ε, and a zero gradient gives u = ε and a
    zero step instead of 0/0."""
    step, opt = one_step(Adamax, G, lr=0.01, eps=1e-3)
    state = next(iter(opt.state.values()))
    torch.testing.assert_close(state["exp_inf"], G.abs() + 1e-3, rtol=1e-15, atol=0)
    zero_step, opt = one_step(Adamax, torch.zeros(3, dtype=torch.float64), eps=1e-3)
    assert torch.equal(zero_step, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(next(iter(opt.state.values()))["exp_inf"], torch.full((3,), 1e-3,
                                                                             dtype=torch.float64))


def test_nadam_mu_product_is_the_float32_product_of_the_mu_schedule():
    """Π₂₅ = ∏ β₁(1 − ½·0.96^{tψ}) over t = 1..25, rounded to float32 like torch's state; with
    ψ = 4e-3 μ₁ = 0.45007 ≈ β₁/2, and with ψ = 0 μ_t = β₁/2 for every t."""
    assert nadam_mu(0.9, 4e-3, 1) == pytest.approx(0.4500735, rel=1e-6)
    assert nadam_mu(0.9, 0.0, 1000) == 0.45
    for psi in (4e-3, 0.0):
        _, net, opt = train(NAdam, dict(lr=1e-2, momentum_decay=psi), steps=25)
        pi = opt.state[next(net.parameters())]["mu_product"]
        exact = math.prod(nadam_mu(0.9, psi, t) for t in range(1, 26))
        assert pi.dtype == torch.float32
        assert pi.item() == pytest.approx(exact, rel=1e-5)


def test_radam_takes_momentum_sgd_steps_until_rho_t_exceeds_5_at_t_6():
    """With β₂ = 0.999, ρ_t = 1.0, 2.0, 3.0, 4.0, 4.996 for t = 1..5 and 5.994 at t = 6: the
    first five steps are θ −= η m̂_t, independent of ε (and θ₁ = −η g₁ exactly); step 6 is the
    first rectified one, where ε matters."""
    def run(eps):
        theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        opt = RAdam([theta], lr=0.01, eps=eps)
        path = []
        for _ in range(6):
            theta.grad = G.clone()
            opt.step()
            path.append(theta.detach().clone())
        return path
    small, large = run(1e-8), run(10.0)
    torch.testing.assert_close(small[0], -0.01 * G, rtol=1e-15, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(small[:5], large[:5], strict=True))
    assert not torch.equal(small[5], large[5])


# --- SparseAdam with nn.Embedding(sparse=True) -----------------------------------------------

def embedding_run(make, kwargs, steps=25, dtype=torch.float64, split=None):
    """An nn.Embedding(20, 4, sparse=True) fitted to random targets of sums of 3 embeddings of
    6 random (often repeated) rows; returns the weights after each step and the optimizer.
    With ``split``, checkpoint both after that many steps and continue in fresh objects."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(20, 4, sparse=True).to(dtype)
    opt = make(emb.parameters(), **kwargs)
    gen = torch.Generator().manual_seed(1)
    path = []
    for step in range(steps):
        if step == split:
            emb, opt = reload_through_checkpoint(
                emb, opt, lambda: torch.nn.Embedding(20, 4, sparse=True).to(dtype),
                lambda module: make(module.parameters(), **kwargs))
        rows = torch.randint(0, 20, (6, 3), generator=gen)
        target = torch.randn(6, 4, generator=gen).to(dtype)
        opt.zero_grad()
        loss = ((emb(rows).sum(1) - target) ** 2).mean()
        (-loss if kwargs.get("maximize") else loss).backward()
        opt.step()
        path.append(emb.weight.detach().clone())
    return path, opt


# torch's SparseAdam is slow on CPU (its dense += sparse add_), so tensor lr gets two cases.
SPARSE_GRID = grid(lr=[0.05], betas=BETAS, eps=[1e-8, 1e-2], maximize=ON_OFF) + grid(
    lr=[torch.tensor([0.05])], betas=BETAS, eps=[1e-2], maximize=[True])


@pytest.mark.parametrize("kwargs", SPARSE_GRID, ids=str)
def test_sparse_adam_matches_torch_on_a_sparse_embedding_for_25_steps(kwargs):
    ours, _ = embedding_run(SparseAdam, kwargs)
    theirs, _ = embedding_run(torch.optim.SparseAdam, kwargs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a - b).norm() <= RTOL * b.norm()
    assert (ours[-1] - ours[0]).norm() > 1e-3


def test_sparse_adam_state_layout_and_resume_match_torch():
    """step is a Python int (25 after 25 steps), as in torch; a checkpoint at step 9 resumes
    bit-exactly."""
    _, ours = embedding_run(SparseAdam, dict(lr=0.05))
    _, theirs = embedding_run(torch.optim.SparseAdam, dict(lr=0.05))
    assert_same_state_layout(ours, theirs)
    assert ours.state_dict()["state"][0]["step"] == 25
    straight, _ = embedding_run(SparseAdam, dict(lr=0.05))
    resumed, _ = embedding_run(SparseAdam, dict(lr=0.05), split=9)
    assert torch.equal(straight[-1], resumed[-1])


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


@pytest.mark.parametrize("param", [
    torch.zeros(3, dtype=torch.complex64, requires_grad=True),
    torch.zeros(3, 3).to_sparse().requires_grad_(),
], ids=["complex", "sparse"])
def test_sparse_adam_refuses_complex_and_sparse_parameters(param):
    with pytest.raises(ValueError):
        torch.optim.SparseAdam([param])
    with pytest.raises(ValueError, match="Invalid params"):
        SparseAdam([param])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sparse_adam_low_precision_smoke_halves_the_loss(dtype):
    emb = torch.nn.Embedding(6, 2, sparse=True).to(dtype)
    torch.nn.init.constant_(emb.weight, 2.0)
    opt = SparseAdam(emb.parameters(), lr=0.1)
    rows = torch.arange(6)
    for _ in range(40):
        opt.zero_grad()
        emb(rows).float().pow(2).sum().backward()
        opt.step()
    assert emb.weight.dtype == dtype == opt.state[emb.weight]["exp_avg"].dtype
    assert emb.weight.float().pow(2).sum().item() < 0.5 * 24.0
