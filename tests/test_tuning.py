"""optcore.tuning: the Gaussian process against scikit-learn and a dense closed form, expected
improvement against Monte Carlo, the searches' determinism and budgets, and refusals."""

import math

import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel

import optcore
from optcore import training, tuning


def data(n=15, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=gen, dtype=torch.float64)
    y = torch.cos(4 * X[:, 0]) * X[:, 1] + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    return X, y, torch.rand(40, d, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("ell, s2, noise", [(0.2, 1.0, 1e-6), (0.7, 2.5, 0.05), (1.5, 0.3, 1e-3)])
def test_posterior_and_likelihood_match_sklearn_to_1e10(ell, s2, noise):
    X, y, X_new = data()
    gp = tuning.GaussianProcess(X, y, length_scale=ell, signal_variance=s2, noise=noise)
    mean, std = gp.posterior(X_new)
    ref = GaussianProcessRegressor(ConstantKernel(s2, "fixed") * RBF(ell, "fixed"), alpha=noise,
                                   optimizer=None).fit(X.numpy(), y.numpy())
    ref_mean, ref_std = ref.predict(X_new.numpy(), return_std=True)
    # 1e-10, not looser: at noise 1e-6 an s(x) that wrongly included the noise differs by ~1e-6
    assert torch.allclose(mean, torch.from_numpy(ref_mean), atol=1e-10, rtol=0)
    assert torch.allclose(std, torch.from_numpy(ref_std), atol=1e-10, rtol=0)
    assert math.isclose(gp.log_marginal_likelihood(), ref.log_marginal_likelihood_value_, rel_tol=1e-10)


def test_posterior_matches_dense_conditioning_and_interpolates_without_noise():
    X, y, X_new = data(n=10, d=2, seed=3)
    gp = tuning.GaussianProcess(X, y, length_scale=0.4, signal_variance=1.3, noise=1e-3)
    joint = torch.cat([X, X_new])
    C = 1.3 * tuning.rbf_kernel(joint, joint, 0.4)
    K = C[:10, :10] + 1e-3 * torch.eye(10, dtype=torch.float64)
    mean = C[10:, :10] @ torch.linalg.solve(K, y)
    cov = C[10:, 10:] - C[10:, :10] @ torch.linalg.solve(K, C[:10, 10:])
    got_mean, got_std = gp.posterior(X_new)
    assert torch.allclose(got_mean, mean, atol=1e-10)
    assert torch.allclose(got_std**2, cov.diagonal(), atol=1e-10)
    exact = tuning.GaussianProcess(X, y, length_scale=0.4, signal_variance=1.3, noise=0.0)
    at_data, spread = exact.posterior(X)
    assert torch.allclose(at_data, y, atol=1e-6) and spread.max() < 1e-3


def test_fit_gp_picks_the_profile_maximum_of_the_likelihood():
    X, y, _ = data()
    gp = tuning.fit_gp(X, y)
    standard = (y - y.mean()) / y.std()
    assert torch.allclose(gp.y, standard)
    for ell in (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0):  # no grid point, nor other σ_f², is better
        for r in (1e-6, 1e-3, 1e-2, 1e-1):
            for scale in (0.8, 1.0, 1.25):
                unit = tuning.GaussianProcess(X, standard, length_scale=ell, noise=r)
                s2 = scale * (standard @ unit.alpha).item() / len(y)
                other = tuning.GaussianProcess(X, standard, length_scale=ell, signal_variance=s2, noise=r * s2)
                assert other.log_marginal_likelihood() <= gp.log_marginal_likelihood() + 1e-9


def test_expected_improvement_matches_monte_carlo_within_four_standard_errors():
    mean = torch.tensor([-1.0, -0.1, 0.0, 0.4, 2.0], dtype=torch.float64)
    std = torch.tensor([0.3, 1.0, 0.2, 0.5, 1.0], dtype=torch.float64)
    f = mean + std * torch.randn(2_000_000, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gain = (0.1 - f).clamp_min(0)
    closed = tuning.expected_improvement(mean, std, best=0.1)
    assert ((closed - gain.mean(0)).abs() < 4 * gain.std(0) / math.sqrt(len(f))).all()
    zero_std = tuning.expected_improvement(torch.tensor([-0.5, 0.5], dtype=torch.float64),
                                           torch.zeros(2, dtype=torch.float64), best=0.0)
    assert zero_std.tolist() == [0.5, 0.0]


def test_grid_is_the_largest_full_grid_within_the_budget():
    assert tuning.grid(2, 16).shape == (16, 2) and tuning.grid(3, 30).shape == (27, 3)
    assert tuning.grid(3, 26).shape == (8, 3) and tuning.grid(1, 5).shape == (5, 1)
    assert torch.allclose(tuning.grid(1, 4)[:, 0], torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64))


def test_log_dimension_maps_the_cube_to_decades():
    d = tuning.Dimension(1e-4, 1.0, log=True)
    assert [round(math.log10(d.value(u)), 12) for u in (0, 0.25, 0.5, 1)] == [-4, -3, -2, 0]
    assert tuning.Dimension(0.0, 0.99).value(0.5) == pytest.approx(0.495, abs=1e-15)


def quadratic(x, y):
    return (math.log10(x) + 2) ** 2 + 0.1 * (y - 0.3) ** 2


SPACE = tuning.Space({"x": tuning.Dimension(1e-4, 1.0, log=True), "y": tuning.Dimension(0.0, 1.0)})


@pytest.mark.parametrize("method", tuning.METHODS)
def test_searches_are_seeded_and_spend_their_budget(method):
    a = tuning.search(quadratic, SPACE, 12, method, seed=3)
    b = tuning.search(quadratic, SPACE, 12, method, seed=3)
    assert a.values == b.values and len(a.values) == (9 if method == "grid" else 12)
    assert a.running_best()[-1] == a.best()[1] == min(a.values)
    if method != "grid":
        assert tuning.search(quadratic, SPACE, 12, method, seed=4).values != a.values


def test_gp_ei_finds_the_minimum_of_a_smooth_function_better_than_random():
    gp = [tuning.search(quadratic, SPACE, 20, "gp-ei", seed=s).best()[1] for s in range(3)]
    rand = [tuning.search(quadratic, SPACE, 20, "random", seed=s).best()[1] for s in range(3)]
    assert max(gp) < 0.01 and sum(gp) < sum(rand)


def test_tpe_is_seeded_and_reports_cube_points():
    a, b = (tuning.tpe(quadratic, SPACE, 8, seed=1) for _ in range(2))
    assert a.values == b.values and len(a.values) == 8
    for u, p in zip(a.points, a.params):
        assert p == pytest.approx(SPACE.values(u), rel=1e-9)


def test_staged_training_equals_train_digits_and_validation_excludes_test():
    digits = training.digits()
    val = tuning.validation_split(digits, 300)
    assert len(val.y_test) == 300 and len(val.y_train) == 1000
    assert torch.equal(val.x_test, digits.x_train[:300])
    stages = list(tuning.staged_digits(optcore.Adam, [10, 25, 40], val, seed=2, lr=3e-3))
    whole = training.train_digits(optcore.Adam, 40, hidden=16, data=val, seed=2, lr=3e-3)
    assert [s for s, _ in stages] == [10, 25, 40]
    assert stages[-1][1] == pytest.approx(whole.test_loss, rel=1e-6)


@pytest.mark.parametrize("call, name", [
    (lambda: tuning.search(quadratic, SPACE, 5, "bayes"), "method"),
    (lambda: tuning.search(quadratic, SPACE, 0), "budget"),
    (lambda: tuning.search(quadratic, SPACE, 5, "gp-ei", initial=0), "initial"),
    (lambda: tuning.grid(0, 4), "dim"),
    (lambda: tuning.Dimension(1.0, 1.0), "high"),
    (lambda: tuning.Dimension(0.0, 1.0, log=True), "low"),
    (lambda: tuning.GaussianProcess(torch.zeros(2, 1), torch.zeros(2), length_scale=0.0), "length_scale"),
    (lambda: tuning.GaussianProcess(torch.zeros(2, 1), torch.zeros(2), length_scale=1.0, noise=-1.0), "noise"),
    (lambda: tuning.GaussianProcess(torch.zeros(2, 1), torch.zeros(3), length_scale=1.0), "y"),
    (lambda: tuning.validation_split(training.digits(), 0), "size"),
    (lambda: next(tuning.staged_digits(optcore.Adam, [5, 5], training.digits())), "stages"),
])
def test_bad_input_is_refused_with_the_argument_named(call, name):
    with pytest.raises(ValueError, match=f"Invalid {name}:"):
        call()
