"""L-BFGS: the strong-Wolfe line search and the closure contract (chapter 16). Parity over
every argument (20 closure steps), resume, layout, complex parameters and refusals are in
test_contract.py (table: optim_db.py)."""

import pytest
import torch

from optcore.optim.lbfgs import LBFGS, cubic_interpolate, strong_wolfe
from parity import train


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
    ours = train(LBFGS, kwargs, steps=10, closure=True).optimizer
    theirs = train(torch.optim.LBFGS, kwargs, steps=10, closure=True).optimizer
    assert ours.param_groups[0]["max_eval"] == 1
    assert ours.state_dict()["state"][0]["func_evals"] == 20
    assert theirs.state_dict()["state"][0]["func_evals"] == 20


def test_lbfgs_keeps_its_whole_history_under_the_first_parameter():
    """All state under parameter 0 (torch's layout, compared key by key in the contract):
    func_evals, n_iter, al, d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad, prev_loss."""
    kwargs = dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe")
    ours = train(LBFGS, kwargs, steps=3, closure=True).optimizer
    assert list(ours.state_dict()["state"]) == [0]
    assert list(ours.state_dict()["state"][0]) == [
        "func_evals", "n_iter", "al", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
        "prev_flat_grad", "prev_loss"]


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


def test_lbfgs_without_a_closure_explains_how_to_write_one():
    opt = LBFGS([torch.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match=r"closure(.|\n)*loss.backward\(\)(.|\n)*step\(closure\)"):
        opt.step()


def test_lbfgs_refuses_parameter_groups_like_torch():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([a]).add_param_group({"params": [b]})
