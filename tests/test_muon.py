"""Muon: orthogonalized momentum by Newton–Schulz (chapter 14). The contract (parity on a
network of matrices, resume, layout, refusals) is in test_contract.py."""

import pytest
import torch

from optcore.optim.muon import Muon, newton_schulz


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


def test_muon_refuses_a_bias_and_says_what_to_do_instead():
    net = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"shape \(3,\).*AdamW.*reshape"):
        Muon(net.parameters())
    opt = Muon([net.weight])
    with pytest.raises(ValueError, match="2-D"):
        opt.add_param_group({"params": [net.bias]})
    assert len(opt.param_groups) == 1


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
