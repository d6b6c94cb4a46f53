"""optcore's Lion, SignSGD and Shampoo against reference updates written out in this file.

torch.optim has none of the three, so each is checked step by step, in float64, against a
reference that re-derives its update from the paper in plain numpy: sign formulas for Lion and
signSGD/Signum; for Shampoo a dense Kronecker product, vec(Ĝ) = (P₁ ⊗ … ⊗ P_k) vec(G) with
row-major vec, which never forms a mode product. Then convergence, checkpoints, maximize,
refusals and low-precision runs.
"""

import io
import itertools
import re

import numpy as np
import pytest
import scipy.linalg
import torch

from optcore.optim.lion import Lion
from optcore.optim.shampoo import Shampoo
from optcore.optim.sign import SignSGD
from parity import assert_resume_is_exact, max_rel_error, tiny_net, train

LR = torch.tensor(0.05, dtype=torch.float64)  # a float64 tensor lr: 1 − ηλ stays in float64


# --- references: numpy, one parameter at a time ---------------------------------------------


class Reference(torch.optim.Optimizer):
    """Hands ``numpy_update`` float64 arrays θ and g (maximize applied, complex as real pairs)
    and writes the θ it returns back into the parameter."""

    def __init__(self, params, **defaults):
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                real = torch.view_as_real if p.is_complex() else (lambda t: t)
                theta = real(p).double().numpy().copy()
                g = real(p.grad).double().numpy().copy()
                if group.get("maximize", False):
                    g = -g
                hyper = dict(group, lr=float(group["lr"]))
                theta = self.numpy_update(theta, g, self.state[p], hyper)
                real(p).copy_(torch.from_numpy(np.asarray(theta)))
        return loss


class ReferenceLion(Reference):
    """Chen et al. (2023), Algorithm 2, line by line."""

    def numpy_update(self, theta, g, st, h):
        b1, b2 = h.get("betas", (0.9, 0.99))
        lr, wd = h["lr"], h.get("weight_decay", 0.0)
        m = st.get("m", np.zeros_like(theta))
        c = b1 * m + (1 - b1) * g
        theta = theta - lr * (np.sign(c) + wd * theta)
        st["m"] = b2 * m + (1 - b2) * g
        return theta


class ReferenceSignSGD(Reference):
    """Bernstein et al. (2018), Algorithm 1 (signSGD) and 2 (Signum), plus decoupled decay."""

    def numpy_update(self, theta, g, st, h):
        mu, lr, wd = h.get("momentum", 0.0), h["lr"], h.get("weight_decay", 0.0)
        if mu > 0:
            st["m"] = mu * st.get("m", np.zeros_like(theta)) + (1 - mu) * g
            g = st["m"]
        return theta * (1 - lr * wd) - lr * np.sign(g)


def kron_all(mats):
    out = np.ones((1, 1))
    for m in mats:
        out = np.kron(out, m)
    return out


class ReferenceShampoo(Reference):
    """Gupta et al. (2018), Algorithm 2, with the preconditioner applied as one dense
    Kronecker product of all dimensions' P_i."""

    def numpy_update(self, theta, g, st, h):
        lr, wd, mu = h["lr"], h.get("weight_decay", 0.0), h.get("momentum", 0.0)
        eps, beta, freq = h.get("epsilon", 1e-4), h.get("beta", 1.0), h.get("update_freq", 1)
        shape = theta.shape if theta.ndim > 0 else (1,)
        k = len(shape)
        G = (g + wd * theta).reshape(shape)
        if not st:
            st.update(t=0, H=[eps * np.eye(n) for n in shape])
        st["t"] += 1
        t = st["t"]
        for i in range(k):
            others = [j for j in range(k) if j != i]
            # Σ over all other indices of G[..a..] G[..b..]: the Gram matrix of the mode-i fibres.
            st["H"][i] = beta * st["H"][i] + np.tensordot(G, G, axes=(others, others))
        if (t - 1) % freq == 0:
            st["P"] = []
            for H in st["H"]:
                lam, Q = np.linalg.eigh(H)
                lam = np.maximum(lam, eps * beta**t)  # H ⪰ εβᵗI in exact arithmetic
                st["P"].append(Q @ np.diag(lam ** (-1 / (2 * k))) @ Q.T)
        G_hat = (kron_all(st["P"]) @ G.reshape(-1)).reshape(theta.shape)
        if mu > 0:
            st["buf"] = mu * st.get("buf", np.zeros_like(theta)) + G_hat
            G_hat = st["buf"]
        return theta - lr * G_hat


def assert_matches_reference(ours, reference, kwargs, rtol, steps=25, **train_kwargs):
    a, _, _ = train(ours, kwargs, steps, **train_kwargs)
    b, _, _ = train(reference, kwargs, steps, **train_kwargs)
    err = max_rel_error(a, b)
    assert err <= rtol, f"{ours.__name__}{kwargs}: relative error {err:.3e} > {rtol:.0e}"
    start = [p.detach() for p in tiny_net(train_kwargs.get("seed", 0)).parameters()]
    assert max_rel_error([a[-1]], [start]) > 1e-3, f"{ours.__name__}{kwargs}: did not move"
    return err


# --- Lion -------------------------------------------------------------------------------------

LION_GRID = [
    dict(lr=0.01, betas=b, weight_decay=wd, maximize=mx)
    for b, wd, mx in itertools.product([(0.9, 0.99), (0.95, 0.5), (0.0, 0.9)], [0.0, 0.5],
                                       [False, True])
]


@pytest.mark.parametrize("kwargs", LION_GRID, ids=str)
def test_lion_matches_reference_to_1e12_over_25_steps(kwargs):
    assert_matches_reference(Lion, ReferenceLion, kwargs, rtol=1e-12)


def test_lion_matches_reference_with_groups_closure_and_tensor_lr():
    kwargs = dict(lr=LR, betas=(0.9, 0.99), weight_decay=0.1)
    assert_matches_reference(Lion, ReferenceLion, kwargs, rtol=1e-12, groups=True,
                             use_closure=True)


def test_lion_moves_every_entry_by_exactly_lr_without_decay():
    """|θ_t − θ_{t−1}| = η = 2⁻⁷ entrywise (a power of two, so the difference is exact)."""
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    opt = Lion([w], lr=2.0**-7)
    for _ in range(20):
        before = w.detach().clone()
        opt.zero_grad()
        (w**3).sum().backward()
        opt.step()
        assert torch.equal((w.detach() - before).abs(), torch.full((3,), 2.0**-7,
                                                                   dtype=torch.float64))


# --- SignSGD / Signum -------------------------------------------------------------------------

SIGN_GRID = [
    dict(lr=0.01, momentum=mu, weight_decay=wd, maximize=mx)
    for mu, wd, mx in itertools.product([0.0, 0.5, 0.9], [0.0, 0.5], [False, True])
]


@pytest.mark.parametrize("kwargs", SIGN_GRID, ids=str)
def test_signsgd_matches_reference_to_1e12_over_25_steps(kwargs):
    assert_matches_reference(SignSGD, ReferenceSignSGD, kwargs, rtol=1e-12)


def test_signsgd_matches_reference_with_groups_closure_and_tensor_lr():
    kwargs = dict(lr=LR, momentum=0.9, weight_decay=0.1)
    assert_matches_reference(SignSGD, ReferenceSignSGD, kwargs, rtol=1e-12, groups=True,
                             use_closure=True)


@pytest.mark.parametrize("make_opt, reference, kwargs, key", [
    (Lion, ReferenceLion, dict(lr=0.01, betas=(0.9, 0.99)), "exp_avg"),
    (SignSGD, ReferenceSignSGD, dict(lr=0.01, momentum=0.9), "momentum_buffer"),
], ids=str)
def test_stored_momentum_is_the_ema_started_at_zero_to_1e12(make_opt, reference, kwargs, key):
    """The sign hides the scale of m (Signum without the 1 − μ factor takes the same steps),
    so the state itself is compared: after 25 steps m = Σ (1 − β) β^(t−s) g_s."""
    _, net, ours = train(make_opt, kwargs, 25)
    _, ref_net, ref = train(reference, kwargs, 25)
    for p, q in zip(net.parameters(), ref_net.parameters(), strict=True):
        expected = torch.from_numpy(ref.state[q]["m"])
        assert torch.linalg.vector_norm(ours.state[p][key] - expected) <= (
            1e-12 * torch.linalg.vector_norm(expected))


# --- Shampoo on tiny_net: order 2 (weights 8×4, 1×8) and order 1 (biases 8, 1) ----------------

SHAMPOO_GRID = [
    dict(lr=0.02, momentum=mu, weight_decay=wd, beta=b, update_freq=f, maximize=mx)
    for mu, wd, b, f, mx in itertools.product([0.0, 0.9], [0.0, 0.05], [1.0, 0.9], [1, 3],
                                              [False, True])
]


@pytest.mark.parametrize("kwargs", SHAMPOO_GRID, ids=str)
def test_shampoo_matches_kronecker_reference_to_1e9_over_25_steps(kwargs):
    assert_matches_reference(Shampoo, ReferenceShampoo, kwargs, rtol=1e-9)


def test_shampoo_matches_reference_with_groups_closure_tensor_lr_and_epsilon():
    kwargs = dict(lr=LR, momentum=0.5, weight_decay=0.01, epsilon=1e-2, update_freq=2)
    assert_matches_reference(Shampoo, ReferenceShampoo, kwargs, rtol=1e-9, groups=True,
                             use_closure=True)


class TensorModel(torch.nn.Module):
    """ŷ = s · (x ×₁,₂ T) + b with T of order 3 (2×3×4), s a 0-d scalar and b a vector."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.T = torch.nn.Parameter(0.5 * torch.randn(2, 3, 4, generator=gen, dtype=torch.float64))
        self.s = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))

    def forward(self, x):
        return self.s * torch.einsum("nij,ijk->nk", x, self.T) + self.b


def train_tensor_model(make_opt, kwargs, steps=25):
    gen = torch.Generator().manual_seed(1)
    T_true = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    model = TensorModel()
    opt = make_opt(model.parameters(), **kwargs)
    snapshots = []
    for _ in range(steps):
        x = torch.randn(16, 2, 3, generator=gen, dtype=torch.float64)
        y = torch.einsum("nij,ijk->nk", x, T_true) + 1.0
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        (-loss if kwargs.get("maximize", False) else loss).backward()
        opt.step()
        snapshots.append([p.detach().clone() for p in model.parameters()])
    return snapshots, opt


TENSOR_GRID = [
    dict(lr=0.02, momentum=mu, weight_decay=wd, beta=b, update_freq=f, maximize=mx)
    for mu, wd, b, f, mx in [(0.0, 0.0, 1.0, 1, False), (0.9, 0.05, 0.9, 3, True),
                             (0.5, 0.0, 0.95, 2, False), (0.0, 0.05, 1.0, 4, True)]
]


@pytest.mark.parametrize("kwargs", TENSOR_GRID, ids=str)
def test_shampoo_order3_scalar_and_vector_match_triple_kronecker_to_1e9(kwargs):
    ours, opt = train_tensor_model(Shampoo, kwargs)
    ref, _ = train_tensor_model(ReferenceShampoo, kwargs)
    err = max_rel_error(ours, ref)
    assert err <= 1e-9, f"{kwargs}: relative error {err:.3e}"
    shapes = [[tuple(H.shape) for H in opt.state[p]["statistics"]] for p in opt.state]
    assert shapes == [[(2, 2), (3, 3), (4, 4)], [(1, 1)], [(4, 4)]]
    start = [p.detach() for p in TensorModel().parameters()]
    assert all(max_rel_error([[a]], [[b]]) > 1e-3 for a, b in zip(ours[-1], start, strict=True))


def test_shampoo_on_a_scalar_is_adagrad_eta_g_over_sqrt_eps_plus_sum_g2():
    s = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([s], lr=0.3, epsilon=1e-3)
    x, total = 0.0, 1e-3
    for _ in range(20):
        opt.zero_grad()
        ((s - 3.0) ** 2).backward()
        opt.step()
        g = 2 * (x - 3.0)
        total += g * g
        x -= 0.3 * g / np.sqrt(total)
        assert abs(s.item() - x) <= 1e-12 * abs(x)


def _record_matrix_run(steps, **kwargs):
    gen = torch.Generator().manual_seed(3)
    A, B = torch.randn(6, 5, generator=gen, dtype=torch.float64), torch.randn(3, 4, generator=gen,
                                                                            dtype=torch.float64)
    C = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    W = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([W], **kwargs)
    grads = []
    for _ in range(steps):
        opt.zero_grad()
        ((A @ W @ B - C) ** 2).sum().backward()
        grads.append(W.grad.numpy().copy())
        opt.step()
    return opt.state[W], grads


def test_shampoo_2d_preconditioners_are_L_and_R_to_the_minus_quarter_to_1e10():
    """After 20 steps with β = 1, update_freq = 1: P₁ = (εI + Σ G Gᵀ)^(−1/4),
    P₂ = (εI + Σ GᵀG)^(−1/4), by scipy's fractional_matrix_power (Schur–Padé, not eigh)."""
    eps = 1e-3
    state, grads = _record_matrix_run(20, lr=0.01, epsilon=eps)
    L = eps * np.eye(5) + sum(G @ G.T for G in grads)
    R = eps * np.eye(3) + sum(G.T @ G for G in grads)
    for P, M in zip(state["preconditioners"], [L, R], strict=True):
        expected = np.real(scipy.linalg.fractional_matrix_power(M, -0.25))
        assert np.linalg.norm(P.numpy() - expected) <= 1e-10 * np.linalg.norm(expected)


def test_shampoo_with_update_freq_5_keeps_step_11_preconditioners_through_step_14():
    eps = 1e-3
    state, grads = _record_matrix_run(14, lr=0.01, epsilon=eps, update_freq=5)
    L11 = eps * np.eye(5) + sum(G @ G.T for G in grads[:11])
    expected = np.real(scipy.linalg.fractional_matrix_power(L11, -0.25))
    P = state["preconditioners"][0].numpy()
    assert np.linalg.norm(P - expected) <= 1e-10 * np.linalg.norm(expected)
    L14 = eps * np.eye(5) + sum(G @ G.T for G in grads)
    assert np.allclose(state["statistics"][0].numpy(), L14, rtol=1e-12, atol=0)
    assert state["step"].item() == 14.0


# --- all three: convergence, maximize, checkpoints, state layout ------------------------------


def least_squares(make_opt, kwargs, steps):
    """min_W ½‖XW − Y‖²/n for a 64×6 design with condition number ~10 and a 6×3 solution."""
    gen = torch.Generator().manual_seed(5)
    U, _ = torch.linalg.qr(torch.randn(64, 6, generator=gen, dtype=torch.float64))
    X = U * torch.logspace(0, 1, 6, dtype=torch.float64) * 8.0
    Y = X @ torch.randn(6, 3, generator=gen, dtype=torch.float64)
    W = torch.zeros(6, 3, dtype=torch.float64, requires_grad=True)
    opt = make_opt([W], **kwargs)

    def loss():
        return 0.5 * ((X @ W - Y) ** 2).sum() / 64

    start = loss().item()
    for _ in range(steps):
        opt.zero_grad()
        loss().backward()
        opt.step()
    return start / loss().item()


@pytest.mark.parametrize("make_opt, kwargs, steps, factor", [
    # A sign step has length η in every entry, so with a constant η the loss stalls near η²:
    (Lion, dict(lr=0.02), 300, 1e3),
    (SignSGD, dict(lr=0.02), 300, 1e3),
    (SignSGD, dict(lr=0.01, momentum=0.9), 300, 1e3),
    # β = 1 is AdaGrad-like (steps shrink as the statistics grow), so η can be large:
    (Shampoo, dict(lr=1.0), 100, 1e5),
    (Shampoo, dict(lr=0.3, momentum=0.5, update_freq=5), 100, 1e4),
    (Shampoo, dict(lr=0.05, momentum=0.5, beta=0.9, update_freq=3), 200, 1e4),
], ids=str)
def test_least_squares_loss_drops_by_stated_factor(make_opt, kwargs, steps, factor):
    assert least_squares(make_opt, kwargs, steps) >= factor


@pytest.mark.parametrize("make_opt, kwargs", [
    (Lion, dict(lr=0.01, weight_decay=0.1)),
    (SignSGD, dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    (Shampoo, dict(lr=0.02, momentum=0.9, weight_decay=0.01, beta=0.9, update_freq=3)),
], ids=str)
def test_maximize_of_minus_loss_is_bitwise_minimize_of_loss(make_opt, kwargs):
    a, _, _ = train(make_opt, kwargs, 20)
    b, _, _ = train(make_opt, dict(kwargs, maximize=True), 20)  # objective() negates the loss
    assert all(torch.equal(x, y) for sa, sb in zip(a, b, strict=True)
               for x, y in zip(sa, sb, strict=True))


@pytest.mark.parametrize("make_opt, kwargs", [
    (Lion, dict(lr=0.01, weight_decay=0.1)),
    (SignSGD, dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    (SignSGD, dict(lr=0.01)),
    (Shampoo, dict(lr=0.02, momentum=0.9, weight_decay=0.01, beta=0.9, update_freq=3)),
], ids=str)
def test_resume_from_checkpoint_after_8_of_20_steps_is_exact(make_opt, kwargs):
    # For Shampoo with update_freq = 3, step 9 reuses the preconditioners of step 7 from the file.
    assert_resume_is_exact(make_opt, kwargs, steps=20, split=8)


def test_shampoo_bfloat16_resume_keeps_float32_statistics_and_is_exact():
    """torch.optim's load_state_dict would cast the statistics to bfloat16; Shampoo's does not."""
    target = torch.linspace(-1, 1, 12).reshape(4, 3)

    def run(W, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((W.float() - target) ** 2).sum().backward()
            opt.step()

    W1 = torch.zeros(4, 3, dtype=torch.bfloat16, requires_grad=True)
    opt1 = Shampoo([W1], lr=0.05, momentum=0.5, update_freq=2)
    run(W1, opt1, 6)
    W2 = torch.zeros(4, 3, dtype=torch.bfloat16, requires_grad=True)
    opt2 = Shampoo([W2], lr=0.05, momentum=0.5, update_freq=2)
    run(W2, opt2, 3)
    buffer = io.BytesIO()
    torch.save({"W": W2.detach(), "opt": opt2.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    W3 = checkpoint["W"].clone().requires_grad_()
    opt3 = Shampoo([W3], lr=0.05, momentum=0.5, update_freq=2)
    opt3.load_state_dict(checkpoint["opt"])
    state = opt3.state[W3]
    assert [H.dtype for H in state["statistics"] + state["preconditioners"]] == [torch.float32] * 4
    assert state["momentum_buffer"].dtype == torch.bfloat16
    run(W3, opt3, 3)
    assert torch.equal(W3, W1)


@pytest.mark.parametrize("make_opt, kwargs, group_keys, state_keys", [
    (Lion, dict(lr=0.01), {"lr", "betas", "weight_decay", "maximize"}, {"exp_avg"}),
    (SignSGD, dict(lr=0.01), {"lr", "momentum", "weight_decay", "maximize"}, set()),
    (SignSGD, dict(lr=0.01, momentum=0.9), {"lr", "momentum", "weight_decay", "maximize"},
     {"momentum_buffer"}),
    (Shampoo, dict(lr=0.01), {"lr", "momentum", "weight_decay", "epsilon", "beta", "update_freq",
                              "maximize"}, {"step", "statistics", "preconditioners"}),
    (Shampoo, dict(lr=0.01, momentum=0.9), {"lr", "momentum", "weight_decay", "epsilon", "beta",
                                            "update_freq", "maximize"},
     {"step", "statistics", "preconditioners", "momentum_buffer"}),
], ids=lambda v: str(sorted(v)) if isinstance(v, set) else str(v))  # a set's order varies by process
def test_state_dict_layout(make_opt, kwargs, group_keys, state_keys):
    _, net, opt = train(make_opt, kwargs, steps=3)
    sd = opt.state_dict()
    assert all(g.keys() == group_keys | {"params"} for g in sd["param_groups"])
    assert all(s.keys() == state_keys for s in sd["state"].values())
    for p, s in zip(net.parameters(), sd["state"].values(), strict=True):
        for key in state_keys & {"exp_avg", "momentum_buffer"}:
            assert s[key].shape == p.shape
        if "statistics" in s:
            assert [tuple(H.shape) for H in s["statistics"]] == [(n, n) for n in p.shape]
            assert s["step"].shape == () and s["step"].item() == 3.0


# --- complex numbers: sign per real and imaginary part; Shampoo refuses -----------------------


@pytest.mark.parametrize("make_opt, reference, kwargs", [
    (Lion, ReferenceLion, dict(lr=0.1, weight_decay=0.1)),
    (SignSGD, ReferenceSignSGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    (SignSGD, ReferenceSignSGD, dict(lr=0.1, maximize=True)),
], ids=str)
def test_sign_methods_on_complex_take_signs_of_real_and_imaginary_parts(make_opt, reference,
                                                                        kwargs):
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(5, dtype=torch.complex128, generator=gen)
    runs, opts = [], []
    for cls in (make_opt, reference):
        z = torch.zeros(5, dtype=torch.complex128, requires_grad=True)
        opts.append(opt := cls([z], **kwargs))
        for _ in range(30):
            opt.zero_grad()
            loss = (z - target).abs().pow(2).sum()
            (-loss if kwargs.get("maximize") else loss).backward()
            opt.step()
        runs.append(z.detach())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-12, atol=0)
    assert (runs[0] - target).abs().max() < 0.5 * target.abs().max()
    if make_opt is Lion or kwargs.get("momentum"):
        state = next(iter(opts[0].state.values()))  # stored complex again, shaped like z
        assert [(v.dtype, v.shape) for v in state.values()] == [(torch.complex128, (5,))]


def test_shampoo_refuses_complex_parameters_in_constructor_and_add_param_group():
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(TypeError, match="Shampoo does not support complex"):
        Shampoo([z])
    opt = Shampoo([torch.zeros(3, requires_grad=True)])
    with pytest.raises(TypeError, match="complex"):
        opt.add_param_group({"params": [z]})
    assert len(opt.param_groups) == 1


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make_opt, kwargs, message", [
    (Lion, dict(lr=-1e-4), "Invalid lr: -0.0001"),
    (Lion, dict(lr=torch.tensor([0.1, 0.2])), "Invalid lr: tensor([0.1000, 0.2000])"),
    (Lion, dict(betas=(1.0, 0.99)), "Invalid betas[0]: 1.0"),
    (Lion, dict(betas=(0.9, -0.1)), "Invalid betas[1]: -0.1"),
    (Lion, dict(weight_decay=-0.1), "Invalid weight_decay: -0.1"),
    (SignSGD, dict(lr=-1e-3), "Invalid lr: -0.001"),
    (SignSGD, dict(momentum=1.0), "Invalid momentum: 1.0"),
    (SignSGD, dict(momentum=-0.5), "Invalid momentum: -0.5"),
    (SignSGD, dict(weight_decay=-0.1), "Invalid weight_decay: -0.1"),
    (Shampoo, dict(lr=-0.1), "Invalid lr: -0.1"),
    (Shampoo, dict(momentum=1.0), "Invalid momentum: 1.0"),
    (Shampoo, dict(momentum=-0.1), "Invalid momentum: -0.1"),
    (Shampoo, dict(weight_decay=-0.1), "Invalid weight_decay: -0.1"),
    (Shampoo, dict(epsilon=0.0), "Invalid epsilon: 0.0"),
    (Shampoo, dict(epsilon=-1e-4), "Invalid epsilon: -0.0001"),
    (Shampoo, dict(beta=0.0), "Invalid beta: 0.0"),
    (Shampoo, dict(beta=1.5), "Invalid beta: 1.5"),
    (Shampoo, dict(update_freq=0), "Invalid update_freq: 0"),
    (Shampoo, dict(update_freq=2.0), "Invalid update_freq: 2.0"),
    (Shampoo, dict(update_freq=True), "Invalid update_freq: True"),
], ids=str)
def test_rejects_invalid_hyperparameters_naming_argument_and_value(make_opt, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_opt([torch.zeros(2, requires_grad=True)], **kwargs)


# --- low precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("make_opt, kwargs, steps", [
    (Lion, dict(lr=0.02), 150),
    (SignSGD, dict(lr=0.02, momentum=0.9), 150),
    (Shampoo, dict(lr=0.2, momentum=0.5), 60),
], ids=str)
def test_low_precision_smoke_cuts_loss_100x(make_opt, kwargs, steps, dtype):
    target = torch.linspace(-1, 1, 12).reshape(4, 3)
    W = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    opt = make_opt([W], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        ((W.float() - target) ** 2).sum().backward()
        opt.step()
    final = ((W.float() - target) ** 2).sum().item()
    start = (target**2).sum().item()
    assert W.dtype == dtype and final <= start / 100, f"{start:.3g} -> {final:.3g}"
    if make_opt is Shampoo:
        assert all(H.dtype == torch.float32 for H in opt.state[W]["statistics"])
