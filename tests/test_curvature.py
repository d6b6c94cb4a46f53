"""optcore.curvature: Hessian-vector products, the dense Hessian, power iteration, Lanczos,
conjugate gradients and sharpness, checked against torch.autograd.functional.hessian and
torch.linalg on small models."""

import pytest
import torch

from optcore import curvature, training


def _net_and_loss(seed=0):
    """tiny_net (4 → 8 → 1, tanh, float64: 49 parameters) and its MSE on one batch."""
    net = training.tiny_net(seed=seed)
    x, y = training.regression_batches(1, size=32)[0]
    params = list(net.parameters())
    return net, params, x, y, (lambda: training.mse(net, x, y))


def _loss_of_flat(net, params, x, y):
    """The same loss as a function of one flat parameter vector, for torch.func."""
    names = [name for name, _ in net.named_parameters()]
    shapes = [p.shape for p in params]

    def loss(theta):
        chunks, start = [], 0
        for shape in shapes:
            n = torch.Size(shape).numel()
            chunks.append(theta[start:start + n].view(shape))
            start += n
        out = torch.func.functional_call(net, dict(zip(names, chunks)), (x,))
        # written out: jvp of grad through F.mse_loss fails in torch 2.13 ("ZeroTensors are
        # immutable"), while the same mean of squares works
        return ((out - y) ** 2).mean()

    return loss


def _torch_hessian(net, params, x, y):
    """The reference: torch.autograd.functional.hessian of the loss in the flat parameters."""
    return torch.autograd.functional.hessian(_loss_of_flat(net, params, x, y),
                                             curvature.flat(params).detach())


def test_dense_hessian_of_a_network_matches_torch_autograd_functional_hessian():
    """49 × 49 Hessian of tiny_net's MSE: equal to torch's to 1e-12, symmetric, and indefinite
    (a network's Hessian has negative eigenvalues away from a minimum)."""
    net, params, x, y, loss = _net_and_loss()
    H = curvature.hessian(loss, params)
    reference = _torch_hessian(net, params, x, y)
    assert H.shape == (49, 49)
    torch.testing.assert_close(H, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-12)
    eigenvalues = torch.linalg.eigvalsh(H)
    assert eigenvalues[0] < -1e-3 < 1e-3 < eigenvalues[-1]


def test_hvp_equals_dense_hessian_times_v_and_torch_func_jvp_of_grad():
    """Double backward H v = the dense Hessian times v = forward-over-reverse jvp(grad) to 1e-12,
    for three random directions."""
    net, params, x, y, loss = _net_and_loss()
    H = curvature.hessian(loss, params)
    theta = curvature.flat(params).detach()
    gradient = torch.func.grad(_loss_of_flat(net, params, x, y))
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(49, generator=gen, dtype=torch.float64)
        Hv = curvature.hvp(loss, params, v)
        torch.testing.assert_close(Hv, H @ v, rtol=1e-12, atol=1e-12)
        _, jvp = torch.func.jvp(gradient, (theta,), (v,))
        torch.testing.assert_close(jvp, Hv, rtol=1e-12, atol=1e-12)


def test_power_iteration_finds_the_largest_eigenvalue_of_a_known_matrix():
    """diag(10, 5, 1, …): λ = 10 to 1e-10 after 60 iterations (the error shrinks like
    (5/10)^(2k)), and the vector is ±e₁."""
    A = torch.diag(torch.tensor([10.0, 5.0, 1.0, 0.5, 0.1], dtype=torch.float64))
    lam, v = curvature.top_eigenvalue(lambda u: A @ u, torch.ones(5, dtype=torch.float64),
                                      iterations=60)
    assert lam == pytest.approx(10.0, rel=1e-10)
    assert abs(v[0]) == pytest.approx(1.0, rel=1e-10)
    with pytest.raises(ValueError, match="iterations"):
        curvature.top_eigenvalue(lambda u: A @ u, torch.ones(5, dtype=torch.float64),
                                 iterations=0)


def test_lanczos_extreme_ritz_values_match_eigvalsh_of_a_network_hessian():
    """20 Lanczos steps on the 49-parameter Hessian: the largest and the smallest Ritz values
    equal eigvalsh's to 1e-8, and 49 steps give the whole spectrum."""
    net, params, x, y, loss = _net_and_loss()
    H = curvature.hessian(loss, params)
    exact = torch.linalg.eigvalsh(H)
    v0 = torch.randn(49, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ritz = curvature.lanczos(lambda u: curvature.hvp(loss, params, u), v0, 20)
    assert ritz[-1].item() == pytest.approx(exact[-1].item(), rel=1e-8)
    assert ritz[0].item() == pytest.approx(exact[0].item(), rel=1e-8)
    torch.testing.assert_close(curvature.lanczos(lambda u: H @ u, v0, 49), exact,
                               rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="steps"):
        curvature.lanczos(lambda u: H @ u, v0, 50)


def test_conjugate_gradient_solves_an_spd_system_in_n_steps():
    """A 12 × 12 SPD system with eigenvalues spread evenly over [1, 10]: the residual is
    ≤ 1e-10‖b‖ after 12 iterations, x = A⁻¹b to 1e-10, and tol stops it early. (With a
    logarithmic spread over [1, 100] rounding delays the end by a few iterations.)"""
    gen = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    A = Q @ torch.diag(torch.linspace(1, 10, 12, dtype=torch.float64)) @ Q.T
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    x, norms = curvature.conjugate_gradient(lambda u: A @ u, b)
    assert len(norms) == 13 and norms[-1] <= 1e-10 * b.norm()
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-10, atol=1e-10)
    _, early = curvature.conjugate_gradient(lambda u: A @ u, b, tol=1e-2)
    assert len(early) < 13 and early[-1] <= 1e-2 * b.norm() < early[-2]
    with pytest.raises(ValueError, match="tol"):
        curvature.conjugate_gradient(lambda u: A @ u, b, tol=-1.0)


def test_sharpness_of_a_network_is_the_top_eigenvalue_of_its_hessian():
    """sharpness(net, mse, x, y) after 100 power iterations equals eigvalsh's largest eigenvalue
    of the 49 × 49 Hessian to 1e-6, and leaves the parameters' gradients untouched."""
    net, params, x, y, loss = _net_and_loss()
    exact = torch.linalg.eigvalsh(curvature.hessian(loss, params))
    assert exact[-1] > abs(exact[0])  # so power iteration's answer is the largest eigenvalue
    lam, v = curvature.sharpness(net, training.mse, x, y, iterations=100)
    assert lam == pytest.approx(exact[-1].item(), rel=1e-6)
    assert v.shape == (49,) and all(p.grad is None for p in net.parameters())
