"""SOAP (chapter 12): Adam in the eigenbasis of Shampoo's factors.

Parity with pytorch-optimizer's SOAP on the tiny network over the argument grid, two groups,
resume, refusals and the non-finite refusal are in test_contract.py (optim_db.ReferenceSOAP
says which three conventions are aligned). Here: the reduction to AdamW, tensors of order 3
and 0, the first call, why the parity grid avoids refreshing a rank-deficient statistic,
bfloat16 checkpoints, convergence.
"""

import pytest
import torch

import optcore
from optcore.optim.soap import SOAP, eigenbasis, power_iteration_
from optcore.training import Run, fit, max_rel_error, regression_batches, tiny_net
from optim_db import ReferenceSOAP
from parity import least_squares, resume_bfloat16_matrix
from test_shampoo import TensorModel, train_tensor_model

ADAMW_SETTINGS = [
    dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    dict(lr=0.01, betas=(0.95, 0.95), eps=1e-8, weight_decay=0.1),
    dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.01, maximize=True),
]


def soap_and_adamw(make_adamw, kwargs, dtype, steps=20, freeze=None, **soap_kwargs):
    """SOAP on batches 0 … steps and AdamW on batches 1 … steps, from the same network: SOAP's
    first call takes no step, so its call t + 1 meets AdamW's call t at the same θ with the
    same batch. ``freeze(opt)`` may set SOAP's eigenbases after its first call. Returns the
    two runs and the starting parameters (which SOAP's first call must leave alone)."""
    data = regression_batches(steps + 1, dtype=dtype)
    maximize = kwargs.get("maximize", False)
    net = tiny_net(dtype=dtype)
    start = [p.detach().clone() for p in net.parameters()]
    soap = SOAP(net.parameters(), **kwargs, **soap_kwargs)
    first = fit(net, soap, data[:1], maximize=maximize)
    if freeze is not None:
        freeze(soap)
    soap_run = fit(net, soap, data[1:], maximize=maximize)
    net = tiny_net(dtype=dtype)
    adamw_run = fit(net, make_adamw(net.parameters(), **kwargs), data[1:], maximize=maximize)
    assert all(torch.equal(a, b) for a, b in zip(first.snapshots[0], start, strict=True))
    return soap_run, adamw_run, start


def assert_bitwise(a: Run, b: Run, start):
    """Every parameter equal after every step, and the first one moved."""
    for t, (sa, sb) in enumerate(zip(a.snapshots, b.snapshots, strict=True), start=1):
        for i, (x, y) in enumerate(zip(sa, sb, strict=True)):
            assert torch.equal(x, y), f"step {t}, parameter {i}: {(x - y).abs().max():.2e}"
    assert (a.snapshots[-1][0] - start[0]).norm() > 1e-3 * start[0].norm()


ADAMWS = [pytest.param(torch.optim.AdamW, id="torch.optim.AdamW"),
          pytest.param(optcore.AdamW, id="optcore.AdamW")]


@pytest.mark.parametrize("make_adamw", ADAMWS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("kwargs", ADAMW_SETTINGS, ids=str)
def test_soap_preconditioning_no_mode_is_adamw_bit_for_bit_over_20_steps(make_adamw, dtype,
                                                                          kwargs):
    """max_precondition_dim=0 keeps every mode as it is (Q = I): then SOAP's 20 steps after
    its first call are AdamW's 20 steps, bit for bit, in float64 and float32 (torch's
    single-tensor AdamW: the same operations in the same order). Catches a wrong ε placement,
    bias correction, decay order, or step count."""
    make = (lambda p, **kw: make_adamw(p, foreach=False, **kw)) if make_adamw is (
        torch.optim.AdamW) else make_adamw
    assert_bitwise(*soap_and_adamw(make, kwargs, dtype, max_precondition_dim=0))


def signed_permutations(opt):
    """Every eigenbasis set to a signed cyclic permutation (the identity's columns shifted by
    one, every other one negated), the precondition frequency made too large for a refresh."""
    for group in opt.param_groups:
        group["precondition_frequency"] = 10**6
    for state in opt.state.values():
        bases = []
        for Q in state["eigenbases"]:
            n = Q.shape[0]
            signs = torch.tensor([(-1.0) ** i for i in range(n)], dtype=Q.dtype)
            bases.append(torch.eye(n, dtype=Q.dtype).roll(1, dims=1) * signs)
        state["eigenbases"] = bases


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("kwargs", ADAMW_SETTINGS, ids=str)
def test_soap_in_a_frozen_signed_permutation_basis_is_adamw_bit_for_bit(dtype, kwargs):
    """Every mode preconditioned (precondition_1d=True: 8×8 and 4×4, 8×8, 1×1 and 8×8, 1×1
    bases), each basis then frozen at a signed cyclic permutation: Adam's elementwise update
    commutes with relabelling and flipping coordinates, and multiplying by ±1 and adding zeros
    is exact, so SOAP is still AdamW bit for bit. A rotation back by Qᵀ instead of Q, or along
    the wrong mode, would scramble the step."""
    assert_bitwise(*soap_and_adamw(optcore.AdamW, kwargs, dtype, freeze=signed_permutations,
                                   precondition_1d=True))


TENSOR_SETTINGS = [
    dict(lr=0.01, precondition_frequency=1),
    dict(lr=0.01, precondition_frequency=2, max_precondition_dim=3, weight_decay=0.1),
    # The 4-bias's statistic has rank one per step: refreshed first at t = 5, with rank 4.
    dict(lr=0.01, betas=(0.9, 0.999), precondition_frequency=5, precondition_1d=True,
         maximize=True),
]


@pytest.mark.parametrize("kwargs", TENSOR_SETTINGS, ids=str)
def test_soap_order3_scalar_and_vector_match_pytorch_optimizer_to_1e10(kwargs):
    """A 2×3×4 tensor (a factor per mode), a 0-d scalar (none) and a 4-vector, 25 steps:
    agreement with the aligned package to 1e-10 (as the contract's tiny network), the
    statistics' shapes, and every tensor moved."""
    ours = train_tensor_model(SOAP, kwargs)
    ref = train_tensor_model(ReferenceSOAP, kwargs)
    err = max_rel_error(ours, ref)
    assert err <= 1e-10, f"{kwargs}: relative error {err:.3e}"
    dim = kwargs.get("max_precondition_dim", 10000)
    shapes = [[None if S is None else tuple(S.shape) for S in ours.optimizer.state[p]["statistics"]]
              for p in ours.net.parameters()]
    assert shapes == [[(n, n) if n <= dim else None for n in (2, 3, 4)], [],
                      [(4, 4) if kwargs.get("precondition_1d") else None]]
    start = [p.detach() for p in TensorModel().parameters()]
    assert all((a - b).norm() > 1e-3 * b.norm() for a, b in zip(ours.snapshots[-1], start,
                                                                   strict=True))


def test_soap_first_call_gathers_statistics_and_a_basis_but_takes_no_step():
    """After one call on a 4×8 weight: θ unchanged, step 0, S_L = (1 − β)GGᵀ and its
    eigenbasis Q_L, by decreasing eigenvalue: Q_Lᵀ S_L Q_L is diagonal, decreasing. A second
    parameter whose first gradient comes at call 3 takes no step then either (its own first
    call), and counts its steps from there."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    W0 = W.detach().clone()
    opt = SOAP([W, b], lr=0.1, betas=(0.9, 0.8))
    G = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    W.grad = G.clone()
    opt.step()
    state = opt.state[W]
    assert torch.equal(W.detach(), W0) and state["step"].item() == 0
    torch.testing.assert_close(state["statistics"][0], 0.2 * G @ G.T, rtol=1e-14, atol=0)
    Q = state["eigenbases"][0]
    D = Q.T @ state["statistics"][0] @ Q
    assert (D - torch.diag(D.diagonal())).abs().max() <= 1e-14 * D.abs().max()
    assert (D.diagonal().diff() <= 0).all()
    for call in (2, 3, 4):
        W.grad = torch.randn(4, 8, generator=gen, dtype=torch.float64)
        b.grad = torch.ones(4, dtype=torch.float64) if call >= 3 else None
        opt.step()
        if call == 3:
            assert torch.equal(b.detach(), torch.zeros(4, dtype=torch.float64))
    assert (opt.state[W]["step"].item(), opt.state[b]["step"].item()) == (3, 1)
    assert (b.detach() != 0).all()


def test_refreshing_a_rank_deficient_statistic_gives_noise_columns():
    """Why the parity grid refreshes only full-rank statistics: S = uuᵀ of rank 2 in 8
    dimensions, one power-iteration step from its eigenbasis. Scaling S by 1 + 2⁻⁵² (one
    rounding) moves the two columns spanning S's range by less than 1e-14, and the six that
    QR makes out of the rounding noise S·q ≈ 0 by more than 0.1: any two implementations
    disagree there, and so do their steps."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    S = u @ u.T
    Q = eigenbasis(S)
    v = torch.zeros(8, dtype=torch.float64)
    Q1 = power_iteration_(S, Q, v.clone(), 0).abs()  # columns up to their sign
    Q2 = power_iteration_(S * (1 + 2**-52), Q, v.clone(), 0).abs()
    assert (Q1[:, :2] - Q2[:, :2]).abs().max() < 1e-14
    assert (Q1[:, 2:] - Q2[:, 2:]).abs().max() > 0.1


def test_soap_bfloat16_resume_keeps_float32_state_and_is_exact():
    """torch.optim's load_state_dict would cast the moments, statistics and bases to bfloat16;
    SOAP's puts them back in float32. Refreshes at steps 2 and 4: around the checkpoint."""
    straight, resumed, state = resume_bfloat16_matrix(
        lambda params: SOAP(params, lr=0.05, precondition_frequency=2), steps=7, split=4)
    tensors = [state["exp_avg"], state["exp_avg_sq"], *state["statistics"], *state["eigenbases"]]
    assert [x.dtype for x in tensors] == [torch.float32] * 6
    assert torch.equal(resumed, straight)


@pytest.mark.parametrize("kwargs, steps, factor", [
    # measured: 1.3e4 and 2.7e3
    (dict(lr=0.05, betas=(0.9, 0.999), weight_decay=0.0), 100, 5e3),
    (dict(lr=0.05, weight_decay=0.0, precondition_frequency=1), 100, 1e3),
], ids=str)
def test_soap_cuts_a_least_squares_loss_by_the_stated_factor(kwargs, steps, factor):
    assert least_squares(SOAP, kwargs, steps) >= factor
