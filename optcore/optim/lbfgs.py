"""L-BFGS: a quasi-Newton method that remembers the last few steps and gradient changes,
with an optional strong-Wolfe line search (cubic interpolation, bracketing and zoom)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .base import as_scalar, check, check_lr, undo_on_error

CLOSURE_HELP = """\
L-BFGS evaluates the loss several times per step (its inner iterations and line search), so \
step() needs a closure that clears the gradients, re-evaluates the loss, calls backward and \
returns the loss:

    def closure():
        optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward()
        return loss
    optimizer.step(closure)"""


def two_loop_recursion(g, S, Y, rho, H_diag, al):
    r"""The L-BFGS direction :math:`d = -H g`, with :math:`H` the inverse-Hessian estimate
    built from the stored steps :math:`s_i`, gradient changes :math:`y_i` and
    :math:`\rho_i = 1 / y_i^\top s_i`, oldest first (Nocedal & Wright, Algorithm 7.4):

    .. math::
        q &= -g;\quad \text{for } i = k{-}1, \dots, 0:\quad
            a_i = \rho_i\, s_i^\top q,\quad q \leftarrow q - a_i y_i\\
        r &= \gamma\, q,\quad \gamma = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}}
            \quad\text{(the initial Hessian } H_0 = \gamma I)\\
        &\text{for } i = 0, \dots, k{-}1:\quad b_i = \rho_i\, y_i^\top r,\quad
            r \leftarrow r + (a_i - b_i)\, s_i

    Costs :math:`4kn` multiply-adds and no :math:`n\times n` matrix. ``al`` is scratch space
    for the :math:`a_i` (torch.optim keeps it in the optimizer's state).

    The multiply-adds are written as torch.optim writes them (``add_(v, alpha=a)``, one fused
    operation): L-BFGS amplifies a last-bit difference by orders of magnitude within a few
    steps, and written this way optcore's iterates equal torch's bit for bit.
    """
    q = g.neg()
    for i in reversed(range(len(S))):
        al[i] = S[i].dot(q) * rho[i]
        q.add_(Y[i], alpha=-al[i])
    r = torch.mul(q, H_diag)
    for i in range(len(S)):
        be_i = Y[i].dot(r) * rho[i]
        r.add_(S[i], alpha=al[i] - be_i)
    return r


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    r"""Minimizer of the cubic through :math:`(x_1, f_1)` and :math:`(x_2, f_2)` with slopes
    :math:`g_1, g_2`, clamped to ``bounds`` (default: between the two points):

    .. math::
        d_1 = g_1 + g_2 - 3\frac{f_1 - f_2}{x_1 - x_2},\quad
        d_2 = \sqrt{d_1^2 - g_1 g_2},\quad
        x^\star = x_2 - (x_2 - x_1)\frac{g_2 + d_2 - d_1}{g_2 - g_1 + 2 d_2}

    (Nocedal & Wright, eq. 3.59). If the cubic has no minimizer (:math:`d_1^2 < g_1 g_2`),
    the midpoint of the bounds.
    """
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = d2_square.sqrt()
    if x1 <= x2:
        x_min = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x_min = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x_min, lo), hi)


class Point(NamedTuple):
    """A trial step length t with the loss f, flat gradient g and slope gtd = gᵀd there."""
    t: float
    f: float
    g: torch.Tensor
    gtd: torch.Tensor


def strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                 max_ls=25):
    r"""Find a step length :math:`t` along the descent direction :math:`d` that satisfies the
    strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5 and 3.6):

    .. math::
        f(x + t d) &\le f(x) + c_1 t\, \nabla f(x)^\top d      && \text{(sufficient decrease)}\\
        |\nabla f(x + t d)^\top d| &\le c_2\, |\nabla f(x)^\top d|  && \text{(curvature)}

    ``obj_func(x, t, d)`` returns the loss and flat gradient at :math:`x + td`; ``f, g, gtd``
    are those at :math:`t = 0`. First :func:`wolfe_bracket` grows :math:`t` until an interval
    must contain an acceptable point, then :func:`wolfe_zoom` shrinks it. At most ``max_ls``
    evaluations after the first. Returns ``(f, g, t, evaluations)`` at the step chosen.
    """
    start = Point(0, f, g, gtd)
    f_new, g_new = obj_func(x, t, d)
    trial = Point(t, f_new, g_new, g_new.dot(d))
    bracket, done, evals = wolfe_bracket(obj_func, x, d, start, trial, c1, c2, max_ls)
    best, evals = wolfe_zoom(obj_func, x, d, start, bracket, done, evals, c1, c2,
                             tolerance_change, max_ls)
    return best.f, best.g, best.t, evals


def wolfe_bracket(obj_func, x, d, start, trial, c1, c2, max_ls):
    """Phase 1: extrapolate (by cubic interpolation in [t + 0.01 (t − t_prev), 10 t]) until
    the trial point either satisfies the strong Wolfe conditions (``done``) or, with the
    previous trial, brackets one: the loss rose above the sufficient-decrease line, stopped
    falling (checked from the third trial on, as in torch), or the slope turned non-negative.
    Returns the bracket (one or two points), ``done`` and the number of evaluations so far."""
    f, gtd = start.f, start.gtd
    prev, evals, ls_iter = start, 1, 0
    while ls_iter < max_ls:
        if trial.f > f + c1 * trial.t * gtd or (ls_iter > 1 and trial.f >= prev.f):
            return [prev, trial], False, evals
        if abs(trial.gtd) <= -c2 * gtd:
            return [trial], True, evals
        if trial.gtd >= 0:
            return [prev, trial], False, evals
        t = cubic_interpolate(prev.t, prev.f, prev.gtd, trial.t, trial.f, trial.gtd,
                              bounds=(trial.t + 0.01 * (trial.t - prev.t), trial.t * 10))
        prev = trial
        f_new, g_new = obj_func(x, t, d)
        trial = Point(t, f_new, g_new, g_new.dot(d))
        evals += 1
        ls_iter += 1
    # Out of evaluations: keep the better of the start and the last trial.
    return [start, trial], False, evals


def wolfe_zoom(obj_func, x, d, start, bracket, done, evals, c1, c2, tolerance_change, max_ls):
    """Phase 2: shrink the bracket [lo, hi] (lo: the lower loss) by cubic interpolation,
    moving a trial that falls within 10% of an end (twice running, or outside) to 10% inside,
    until a point satisfies the strong Wolfe conditions, the bracket is shorter than
    ``tolerance_change`` (in the max-norm of the step), or ``max_ls`` is spent. Returns the
    low point and the evaluation count."""
    f, gtd = start.f, start.gtd
    d_norm = d.abs().max()
    ls_iter = evals - 1  # evaluations after the first, shared with phase 1's budget
    lo, hi = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient_progress = False
    while not done and ls_iter < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(a.t, a.f, a.gtd, b.t, b.f, b.gtd)

        t_min, t_max = min(a.t, b.t), max(a.t, b.t)
        margin = 0.1 * (t_max - t_min)
        if min(t_max - t, t - t_min) < margin:
            if insufficient_progress or t >= t_max or t <= t_min:
                t = t_max - margin if abs(t - t_max) < abs(t - t_min) else t_min + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False

        f_new, g_new = obj_func(x, t, d)
        trial = Point(t, f_new, g_new, g_new.dot(d))
        evals += 1
        ls_iter += 1

        if trial.f > f + c1 * t * gtd or trial.f >= bracket[lo].f:
            bracket[hi] = trial  # too high: it becomes the new upper end
            lo, hi = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if abs(trial.gtd) <= -c2 * gtd:
                done = True
            elif trial.gtd * (bracket[hi].t - bracket[lo].t) >= 0:
                # the slope at the trial points back to lo: the minimum lies between them
                bracket[hi] = bracket[lo]
            bracket[lo] = trial
    return bracket[lo], evals


def copy_lists(state: dict) -> dict:
    """A copy of a state dict whose lists are copied too (their tensors are shared)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in state.items()}


class LBFGS(torch.optim.Optimizer):
    """Drop-in replacement for ``torch.optim.LBFGS`` (same arguments, defaults and state).

    Not a per-tensor method: the parameters are treated as one flat vector, so this class
    subclasses ``torch.optim.Optimizer`` directly and writes its own ``step(closure)``. The
    whole state (``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``,
    ``H_diag``, ``prev_flat_grad``, ``prev_loss``, ``al``) is kept, as in torch.optim, under
    the first parameter, so that ``state_dict`` and ``load_state_dict`` handle it. One
    parameter group only; complex parameters are optimized as pairs of reals.
    """

    #: As in base.Optimizer: the flat vector holds a complex parameter as real pairs.
    supports_complex = True

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        check_lr(lr)
        # torch.optim fails on these two only inside step() (a RuntimeError, and an
        # IndexError from popping an empty history); refusing them here fails earlier.
        check(line_search_fn in (None, "strong_wolfe"), "line_search_fn", line_search_fn,
              'None or "strong_wolfe"')
        check(history_size >= 1, "history_size", history_size, "history_size >= 1")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    # The parameters as one flat real vector x -------------------------------------------

    def _flat_grad(self):
        """∇f(x) as one flat real vector (zeros for parameters without a gradient)."""
        views = []
        for p in self._params:
            if p.grad is None:
                view = p.new_zeros(p.numel())
            elif p.grad.is_sparse:
                view = p.grad.to_dense().view(-1)
            else:
                view = p.grad.view(-1)
            views.append(torch.view_as_real(view).view(-1) if torch.is_complex(view) else view)
        return torch.cat(views)

    def _move(self, t, d):
        """x ← x + t·d, in place."""
        offset = 0
        for p in self._params:
            p = torch.view_as_real(p) if torch.is_complex(p) else p
            n = p.numel()
            p.add_(d[offset:offset + n].view_as(p), alpha=t)
            offset += n

    def _evaluate_at(self, closure, x, t, d):
        """f and ∇f at x + t·d; the parameters are put back to x afterwards."""
        self._move(t, d)
        loss = float(closure())
        g = self._flat_grad()
        for p, saved in zip(self._params, x, strict=True):
            p.copy_(saved)
        return loss, g

    @torch.no_grad()
    def step(self, closure=None):
        r"""Up to ``max_iter`` L-BFGS iterations on the loss that ``closure`` evaluates.

        Each iteration: direction :math:`d = -Hg` (:func:`two_loop_recursion`; steepest
        descent at the very first iteration), step length :math:`t` = ``lr`` (at the very
        first iteration :math:`\min(1, 1/\lVert g\rVert_1)\,\eta`) or from
        :func:`strong_wolfe`, move :math:`x \leftarrow x + td`, and remember
        :math:`s = td`, :math:`y = g_{\text{new}} - g` when :math:`y^\top s > 10^{-10}`
        (the curvature condition that keeps :math:`H` positive definite). Stops early when
        :math:`\max|g| \le` ``tolerance_grad``, when the step or the change of loss is below
        ``tolerance_change``, or after ``max_eval`` evaluations. The memory persists across
        calls. Returns the loss at the start (Liu & Nocedal 1989; torch.optim's port of
        minFunc).
        """
        if closure is None or not callable(closure):
            raise TypeError(CLOSURE_HELP)
        closure = torch.enable_grad()(closure)
        # A closure that raises half-way through leaves the parameters and the memory as they
        # were. The state's tensors are never changed in place, only its lists, so copying
        # the lists is enough (a deep copy would copy the whole history every step).
        with undo_on_error(self.state, self._params, copy_state=copy_lists):
            return self._step(closure)

    def _step(self, closure):
        group = self.param_groups[0]
        lr = as_scalar(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if g.abs().max() <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        Y, S, rho = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        g_prev, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # Direction
            if state["n_iter"] == 1:
                d = g.neg()
                Y, S, rho = [], [], []
                H_diag = 1
            else:
                y = g.sub(g_prev)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(Y) == history_size:  # forget the oldest pair
                        Y.pop(0)
                        S.pop(0)
                        rho.pop(0)
                    Y.append(y)
                    S.append(s)
                    rho.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = two_loop_recursion(g, S, Y, rho, H_diag, state["al"])

            g_prev = g.clone(memory_format=torch.contiguous_format)
            prev_loss = loss

            # Step length
            t = min(1.0, 1.0 / g.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = g.dot(d)
            if gtd > -tolerance_change:  # not a descent direction (any more)
                break

            evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x = [p.clone(memory_format=torch.contiguous_format) for p in self._params]
                loss, g, t, evals = strong_wolfe(
                    lambda x, t, d: self._evaluate_at(closure, x, t, d),
                    x, t, d, loss, g, gtd, max_ls=max_eval - current_evals)
                self._move(t, d)
                converged = g.abs().max() <= tolerance_grad
            else:
                self._move(t, d)
                # The last iteration skips the evaluation: with mini-batches its loss would
                # belong to a batch the next step() no longer sees.
                if n_iter != max_iter:
                    loss = float(closure())
                    g = self._flat_grad()
                    converged = g.abs().max() <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals

            # Stopping
            if n_iter == max_iter or current_evals >= max_eval or converged:
                break
            if d.mul(t).abs().max() <= tolerance_change:  # the step is negligible
                break
            if abs(loss - prev_loss) < tolerance_change:  # the loss stopped changing
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = Y
        state["old_stps"] = S
        state["ro"] = rho
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = g_prev
        state["prev_loss"] = prev_loss
        return orig_loss
