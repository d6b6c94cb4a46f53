"""optcore's foundations: device and seeding, problems, trace and plot."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import optcore  # noqa: E402
from optcore import plot, problems, trace  # noqa: E402


def test_device_is_cuda_exactly_when_available(monkeypatch):
    monkeypatch.delenv("OPTCORE_DEVICE", raising=False)
    assert optcore.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("OPTCORE_DEVICE", "cpu")
    assert optcore.device() == torch.device("cpu")


def test_seed_everything_makes_runs_repeatable():
    optcore.seed_everything(3)
    a = torch.randn(4)
    optcore.seed_everything(3)
    assert torch.equal(a, torch.randn(4))


@pytest.mark.parametrize("kappa, angle", [(1.0, 0.0), (10.0, 0.3), (1000.0, 2.0)])
def test_quadratic_has_the_requested_spectrum_and_minimum(kappa, angle):
    q = problems.quadratic(kappa=kappa, L=2.0, angle=angle)
    eig = torch.linalg.eigvalsh(q.hessian)
    assert torch.allclose(eig, torch.tensor([2.0 / kappa, 2.0], dtype=torch.float64))
    assert q.kappa == pytest.approx(kappa)
    assert q.grad(q.minimizer).abs().max() < 1e-15
    assert q.f(q.x0) > 0 and q.min_value == 0.0


def test_quadratic_in_higher_dimension_spans_mu_to_L():
    q = problems.quadratic(kappa=100.0, dim=5)
    eig = torch.linalg.eigvalsh(q.hessian)
    assert eig[0].item() == pytest.approx(0.01) and eig[-1].item() == pytest.approx(1.0)


def test_losses_accept_a_grid_of_points():
    for p in [problems.quadratic(), problems.rosenbrock(), problems.saddle(),
              problems.least_squares(n=50), problems.logistic_regression(n=50)]:
        grid = torch.zeros(3, 4, 2, dtype=torch.float64)
        assert p.f(grid).shape == (3, 4)


def test_rosenbrock_and_saddle_stationary_points():
    r = problems.rosenbrock()
    assert r.f(r.minimizer) == 0 and r.grad(r.minimizer).abs().max() == 0
    s = problems.saddle()
    assert s.grad(torch.zeros(2, dtype=torch.float64)).abs().max() == 0  # the saddle
    hess = torch.autograd.functional.hessian(s.f, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(torch.linalg.eigvalsh(hess), torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert s.grad(s.minimizer).abs().max() == 0


def test_least_squares_minimizer_and_constants():
    p = problems.least_squares(n=500, d=3, kappa=20.0, seed=1)
    assert p.grad(p.minimizer).norm() < 1e-12
    eig = torch.linalg.eigvalsh(p.X.T @ p.X / p.n)
    assert p.L == pytest.approx(eig[-1].item()) and p.mu == pytest.approx(eig[0].item())
    assert 5 < p.kappa < 80  # the features' scales give a condition number near 20


def test_logistic_regression_minimizer_and_smoothness_bound():
    p = problems.logistic_regression(n=400, d=2, intercept=True, seed=2)
    assert p.grad(p.minimizer).norm() < 1e-12
    assert torch.equal(p.X[:, -1], torch.ones(400, dtype=torch.float64))
    # L bounds the Hessian everywhere: check at random points
    for theta in torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)):
        hess = torch.autograd.functional.hessian(p.f, theta)
        assert torch.linalg.eigvalsh(hess)[-1] <= p.L + 1e-12


def test_sorted_logistic_data_come_in_label_order():
    p = problems.logistic_regression(n=100, sort_by_label=True)
    assert (p.y.diff() >= 0).all() and p.y[0] == -1 and p.y[-1] == 1


def test_minibatch_loss_is_the_mean_over_the_batch():
    p = problems.least_squares(n=30)
    theta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    batch = torch.tensor([1, 5, 7])
    per_example = p.example_loss(theta, p.X, p.y)
    assert torch.isclose(p.loss(theta, batch), per_example[batch].mean())
    assert torch.isclose(p.loss(theta), per_example.mean())


def test_batches_visit_every_example_once_per_epoch():
    stream = trace.batches(10, 3, shuffle=True, generator=torch.Generator().manual_seed(0))
    epoch = torch.cat([next(stream) for _ in range(3)])  # the 10th example is dropped
    assert len(set(epoch.tolist())) == 9
    ordered = trace.batches(6, 2, shuffle=False, generator=torch.Generator())
    assert [next(ordered).tolist() for _ in range(4)] == [[0, 1], [2, 3], [4, 5], [0, 1]]


def test_trace_records_gradient_descent_exactly():
    q = problems.quadratic(kappa=4.0, angle=0.5)
    run = trace.run(q, optcore.SGD, steps=5, lr=0.3, label="gd")
    assert run.thetas.shape == (6, 2) and run.losses.shape == (6,) and run.steps == 5
    theta = q.x0
    for t in range(1, 6):
        theta = theta - 0.3 * q.hessian @ (theta - q.minimizer)
        assert torch.allclose(run.thetas[t], theta, rtol=1e-14)
        assert torch.isclose(run.losses[t], q.f(theta))


def test_trace_works_with_closure_optimizers_and_torch_optimizers():
    r = problems.rosenbrock()
    run = trace.run(r, torch.optim.LBFGS, steps=20, lr=1.0, line_search_fn="strong_wolfe")
    assert run.losses[0] > 10 and run.losses[-1] < 1e-8


def test_trace_minibatch_runs_are_seeded():
    p = problems.least_squares(n=100)
    a = trace.run(p, optcore.SGD, steps=30, lr=0.1, batch_size=10, seed=4)
    b = trace.run(p, optcore.SGD, steps=30, lr=0.1, batch_size=10, seed=4)
    c = trace.run(p, optcore.SGD, steps=30, lr=0.1, batch_size=10, seed=5)
    assert torch.equal(a.thetas, b.thetas) and not torch.equal(a.thetas, c.thetas)


def test_plot_draws_contours_trajectories_and_loss_curves():
    plot.use_style()
    q = problems.quadratic(kappa=10.0)
    run = trace.run(q, optcore.SGD, steps=10, lr=1.0, label="gd")
    fig, (a, b) = matplotlib.pyplot.subplots(1, 2)
    plot.contour(a, q)
    plot.trajectories(a, [run])
    plot.loss_curves(b, [run], optimum=0.0)
    assert len(a.collections) > 0  # contour sets
    assert [line.get_label() for line in a.get_lines()][-2] == "gd"
    assert b.get_yscale() == "log" and len(b.get_lines()) == 1
    matplotlib.pyplot.close(fig)


def test_animation_is_self_contained_html_with_one_frame_per_step_shown():
    q = problems.quadratic(kappa=10.0)
    run = trace.run(q, optcore.SGD, steps=12, lr=1.5)
    html = plot.animate(q, [run], frames=7).data
    assert "<script" in html and html.count("data:image/png;base64") == 7
    assert "http" not in html and "<i class=" not in html  # no CDN stylesheet, no icon font
