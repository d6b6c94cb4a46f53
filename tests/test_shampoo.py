"""Shampoo (chapter 12): Kronecker-factored preconditioners.

Parity on the tiny network with the dense-Kronecker reference of optim_db.py over every
argument, resume, refusals and the non-finite refusal are in test_contract.py. Here: tensors
of order 3 and 0, the preconditioners against scipy's matrix powers, update_freq, bfloat16
checkpoints, the state's shapes, convergence.
"""

import numpy as np
import pytest
import scipy.linalg
import torch

from optcore.optim.shampoo import Shampoo
from optcore.training import Run, max_rel_error
from optim_db import ReferenceShampoo
from parity import least_squares, resume_bfloat16_matrix, train


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
    return Run([], snapshots, model, opt)


TENSOR_GRID = [
    dict(lr=0.02, momentum=mu, weight_decay=wd, beta=b, update_freq=f, maximize=mx)
    for mu, wd, b, f, mx in [(0.0, 0.0, 1.0, 1, False), (0.9, 0.05, 0.9, 3, True),
                             (0.5, 0.0, 0.95, 2, False), (0.0, 0.05, 1.0, 4, True)]
]


@pytest.mark.parametrize("kwargs", TENSOR_GRID, ids=str)
def test_shampoo_order3_scalar_and_vector_match_triple_kronecker_to_1e9(kwargs):
    ours = train_tensor_model(Shampoo, kwargs)
    ref = train_tensor_model(ReferenceShampoo, kwargs)
    err = max_rel_error(ours, ref)
    assert err <= 1e-9, f"{kwargs}: relative error {err:.3e}"
    opt = ours.optimizer
    shapes = [[tuple(H.shape) for H in opt.state[p]["statistics"]] for p in opt.state]
    assert shapes == [[(2, 2), (3, 3), (4, 4)], [(1, 1)], [(4, 4)]]
    start = Run([], [[p.detach() for p in TensorModel().parameters()]])
    assert all(max_rel_error(Run([], [[a]]), Run([], [[b]])) > 1e-3
               for a, b in zip(ours.snapshots[-1], start.snapshots[0], strict=True))


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


def test_shampoo_keeps_one_n_by_n_statistic_per_dimension_and_a_0d_step():
    """After 3 steps on the tiny network: statistics of shapes (8, 8), (4, 4) for the 8×4
    weight, (8, 8) for its bias, ...; step a 0-d tensor equal to 3."""
    run = train(Shampoo, dict(lr=0.01), steps=3)
    for p, s in zip(run.net.parameters(), run.optimizer.state_dict()["state"].values(),
                    strict=True):
        assert [tuple(H.shape) for H in s["statistics"]] == [(n, n) for n in p.shape]
        assert s["step"].shape == () and s["step"].item() == 3.0


def test_shampoo_bfloat16_resume_keeps_float32_statistics_and_is_exact():
    """torch.optim's load_state_dict would cast the statistics to bfloat16; Shampoo's does not."""
    straight, resumed, state = resume_bfloat16_matrix(
        lambda params: Shampoo(params, lr=0.05, momentum=0.5, update_freq=2), steps=6, split=3)
    assert [H.dtype for H in state["statistics"] + state["preconditioners"]] == [torch.float32] * 4
    assert state["momentum_buffer"].dtype == torch.bfloat16
    assert torch.equal(resumed, straight)


def test_shampoo_refuses_complex_parameters_in_add_param_group_too():
    """(The constructor's refusal is in the contract.) A refused group is not added."""
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    opt = Shampoo([torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="complex"):
        opt.add_param_group({"params": [z]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("kwargs, steps, factor", [
    # β = 1 is AdaGrad-like (steps shrink as the statistics grow), so η can be large:
    (dict(lr=1.0), 100, 1e5),
    (dict(lr=0.3, momentum=0.5, update_freq=5), 100, 1e4),
    (dict(lr=0.05, momentum=0.5, beta=0.9, update_freq=3), 200, 1e4),
], ids=str)
def test_shampoo_cuts_a_least_squares_loss_by_the_stated_factor(kwargs, steps, factor):
    assert least_squares(Shampoo, kwargs, steps) >= factor
