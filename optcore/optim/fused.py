"""The fused (``fused=True``) updates: each optimizer's step on a whole list of tensors,
compiled by ``torch.compile`` into one kernel per device, dtype and chunk of at most
:data:`CHUNK` tensors.

Each ``*_fused`` function below reads like its multi-tensor twin in
:mod:`optcore.optim.multi_tensor` with two differences that let it compile into one graph
with no break: the step counters stay tensors (``t ← t + 1`` in place, never ``.item()``;
the per-tensor numbers that depend on t, such as Adam's −η/(1 − β₁ᵗ), are computed from
them in one short float64 vector before the kernel, see :func:`count_steps`), and the
learning rate arrives as a tensor, so that a scheduler changing it changes an input of
the graph, not a constant baked into it (no recompilation). Inductor fuses the ``torch._foreach_*`` lines of
a function horizontally: one loop reads θ, g, m, v once and writes θ, m, v once.

:func:`compiled` keeps one compiled function per optimizer function, flags, and layout of
the lists (number of tensors, dtypes, devices; sizes are symbols, so a new size does not
recompile); :data:`COMPILES` records how long each compilation took (first call, compile
plus one run), for ``optcore.bench`` to read.

The results agree with the for-loop path to within about one unit in the last place per
step, not bit for bit: the compiler may contract a multiply and an add into one rounding
(FMA) or reorder a product and a quotient, and the bias corrections ``1 − βᵗ`` come from
float64 tensors rather than Python floats. tests/test_fast_paths.py derives and checks
the bound. The ``step`` entries and every other state entry have the for-loop path's
layout (and torch.optim's for ``fused=True``), so a checkpoint moves between the paths.
"""

from __future__ import annotations

import time
import types

import torch
import torch.fx.experimental._config

from .pieces import init_state, step_counter

#: One entry per compilation: {"name", "tensors", "seconds"}.
COMPILES: list = []
_CACHE: dict = {}


def _fresh(fn):
    """A copy of ``fn`` with its own code object: dynamo keeps its cache of compiled graphs
    on the code object, so each layout gets its own cache (and never hits the limit of
    recompilations that one code object allows)."""
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def compiled(fn, tensors, **flags):
    """``torch.compile(fn, fullgraph=True, dynamic=True)``, compiled once per (fn, flags,
    layout). The sizes are symbols of the graph, so the layout is only what a compiled
    kernel specializes on: the number of tensors, and per tensor its dimensions that are 0
    or 1 (or more), its dtype and device."""
    layout = tuple((tuple(min(size, 2) for size in t.shape), t.dtype, t.device)
                   for t in tensors)
    key = (fn.__name__, tuple(sorted(flags.items())), layout)
    if key not in _CACHE:
        compiled_fn = torch.compile(_fresh(fn), fullgraph=True, dynamic=True)

        def graph(*args, **kwargs):
            # A symbol per size, not one per distinct value ("duck shapes"), so that a
            # chunk whose sizes happen to coincide, (5, 5) after (6, 5), does not recompile.
            with torch.fx.experimental._config.patch(use_duck_shape=False):
                return compiled_fn(*args, **kwargs)

        def first_call(*args, **kwargs):
            start = time.perf_counter()
            out = graph(*args, **kwargs)
            COMPILES.append(dict(name=fn.__name__, tensors=len(tensors),
                                 seconds=time.perf_counter() - start))
            _CACHE[key] = graph
            return out

        _CACHE[key] = first_call
    return _CACHE[key]


#: The most tensors one compiled call takes. Compile time grows with the number of
#: tensors in a graph (Adam, measured on a busy 2-core CPU: 5–25 s for 2 tensors, 30–75 s
#: for 20, 25–100 s for 25, the lower figures when Inductor's caches are warm), so a
#: long list is cut into chunks of at most CHUNK tensors and of equal length where possible
#: (1000 tensors: 40 chunks of 25), which share one compiled graph (two when the lengths
#: must differ by one).
CHUNK = 32


def in_chunks(fn, lists, *args, **kwargs):
    """``compiled(fn)(*chunk_of_each_list, *args, **kwargs)`` chunk by chunk; the chunks'
    results (if ``fn`` returns a list) concatenated. Empty lists stay empty. Keyword
    arguments that are not tensors are constants of the graph, so they key the cache."""
    flags = {k: v for k, v in kwargs.items() if not torch.is_tensor(v)}
    n = len(lists[0])
    count = -(-n // CHUNK)  # chunks of equal length if some count up to twice this allows
    count = next((c for c in range(count, 2 * count + 1) if n % c == 0), count)
    bounds = [n * k // count for k in range(count + 1)]
    out = []
    for start, stop in zip(bounds, bounds[1:]):
        part = [lst[start:stop] for lst in lists]
        result = compiled(fn, part[0], **flags)(*part, *args, **kwargs)
        out.extend(result or [])
    return out


def lr_tensor(lr, device):
    """The learning rate as a 0-d float64 tensor on ``device``: an input of the graph."""
    return torch.as_tensor(lr, dtype=torch.float64, device=device).detach()


def step_tensors(states, param_list):
    """The states' step counters, each a 0-d float32 tensor on its parameter's device, as
    torch.optim keeps them for ``fused=True`` (so the compiled graph reads no host value)."""
    for state, param in zip(states, param_list):
        step = state["step"]
        if not torch.is_tensor(step) or step.device != param.device:
            state["step"] = step_counter(float(step), device=param.device)
    return [state["step"] for state in states]


# --- the compiled functions ------------------------------------------------------------


def adam_fused(params, grads, m, v, v_max, step_size, bc2_sqrt, lr, *, beta1, beta2, eps,
               weight_decay, amsgrad, decoupled):
    """:func:`~optcore.optim.multi_tensor.adam_foreach` with tensor learning rate and step
    sizes: ``step_size`` and ``bc2_sqrt`` hold −η/(1 − β₁ᵗ) and √(1 − β₂ᵗ), one entry per
    tensor (see :func:`bias_corrections`)."""
    step_size, bc2_sqrt = step_size.unbind(), bc2_sqrt.unbind()
    if decoupled:
        if weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
    elif weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(m, grads, 1 - beta1)  # m ← β₁m + (1 − β₁)g
    torch._foreach_mul_(v, beta2)  # v ← β₂v + (1 − β₂)g²
    torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(v_max, v)  # v_max ← max(v_max, v)
        v = v_max
    denom = torch._foreach_sqrt(v)  # √v / √(1 − β₂ᵗ) + ε
    torch._foreach_div_(denom, bc2_sqrt)
    torch._foreach_add_(denom, eps)
    # addcdiv's order: θ + (s·m)/d
    torch._foreach_add_(params, torch._foreach_div(torch._foreach_mul(m, step_size), denom))


def sgd_fused(params, grads, bufs, lr, *, momentum, dampening, weight_decay, nesterov):
    """:func:`~optcore.optim.multi_tensor.sgd_foreach` after the first step (every buffer
    exists), with a tensor learning rate."""
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads, alpha=1 - dampening)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    torch._foreach_add_(params, torch._foreach_mul(grads, -lr))


def rmsprop_fused(params, grads, v, m, b, steps, lr, *, alpha, eps, weight_decay, momentum,
                  centered):
    """:func:`~optcore.optim.multi_tensor.rmsprop_foreach` with tensor steps and learning
    rate."""
    torch._foreach_add_(steps, 1)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(v, alpha)
    torch._foreach_addcmul_(v, grads, grads, value=1 - alpha)
    if centered:
        torch._foreach_lerp_(m, grads, 1 - alpha)
        s = torch._foreach_addcmul(v, m, m, value=-1)
        torch._foreach_sqrt_(s)
    else:
        s = torch._foreach_sqrt(v)
    torch._foreach_add_(s, eps)
    if momentum > 0:
        torch._foreach_mul_(b, momentum)
        torch._foreach_addcdiv_(b, grads, s)
        torch._foreach_add_(params, torch._foreach_mul(b, -lr))
    else:
        torch._foreach_add_(params, torch._foreach_mul(torch._foreach_div(grads, s), -lr))


def adagrad_fused(params, grads, G, eta, *, weight_decay, eps):
    """:func:`~optcore.optim.multi_tensor.adagrad_foreach` with the step sizes
    −η/(1 + (t − 1)γ), one per tensor, in the tensor ``eta``."""
    eta = eta.unbind()
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_addcmul_(G, grads, grads)
    denom = torch._foreach_sqrt(G)
    torch._foreach_add_(denom, eps)
    torch._foreach_add_(params, torch._foreach_mul(torch._foreach_div(grads, denom), eta))


def lion_fused(params, grads, m, lr, *, beta1, beta2, weight_decay):
    """:func:`~optcore.optim.multi_tensor.lion_foreach` with a tensor learning rate."""
    c = torch._foreach_mul(m, beta1)
    torch._foreach_add_(c, torch._foreach_mul(grads, 1 - beta1))
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    signs = [torch.where(c_i.isfinite(), c_i.sign(), c_i) for c_i in c]
    torch._foreach_add_(params, torch._foreach_mul(signs, -lr))
    torch._foreach_lerp_(m, grads, 1 - beta2)


def muon_momentum_fused(grads, M, *, momentum, nesterov):
    """Muon's elementwise part for all matrices: M ← βM + (1 − β)g and the Nesterov
    blend (1 − β)g + βM."""
    torch._foreach_lerp_(M, grads, 1 - momentum)
    return torch._foreach_lerp(grads, M, momentum) if nesterov else list(M)


# --- the calls from each optimizer's update_fused ----------------------------------------


def count_steps(steps):
    """t ← t + 1 in every counter (one foreach add), and the new t's as one float64 vector.
    The scalar arithmetic that depends on t then runs once per tensor on that short
    vector, outside the compiled kernel: inside, the compiler would inline it into the
    elementwise loop and evaluate βᵗ for every 16 elements (measured: 3.6x slower)."""
    torch._foreach_add_(steps, 1)
    return torch.stack(steps).double()


def bias_corrections(steps, lr, beta1, beta2, dtype):
    """−η/(1 − β₁ᵗ) and √(1 − β₂ᵗ) for each tensor, computed in float64 (as the loop path
    computes them in Python floats) and rounded to θ's dtype (as a kernel of the loop path
    rounds its number arguments)."""
    t = count_steps(steps)
    return (-lr / (1 - beta1**t)).to(dtype), (1 - beta2**t).sqrt().to(dtype)


def adam_step(params, grads, states, *, lr, beta1, beta2, eps, weight_decay, amsgrad=False,
              decoupled=False):
    max_v = ["max_exp_avg_sq"] if amsgrad else []
    for param, state in zip(params, states):
        init_state(state, param, ("step", lambda p: step_counter(device=p.device)),
                   "exp_avg", "exp_avg_sq", *max_v)
    step_size, bc2_sqrt = bias_corrections(step_tensors(states, params), lr, beta1, beta2,
                                           params[0].dtype)
    lists = (params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
             [s["max_exp_avg_sq"] for s in states] if amsgrad else [], step_size, bc2_sqrt)
    in_chunks(adam_fused, lists, lr_tensor(lr, params[0].device), beta1=beta1, beta2=beta2,
              eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, decoupled=decoupled)


def sgd_step(params, grads, states, *, lr, momentum, dampening, weight_decay, nesterov):
    from .multi_tensor import sgd_foreach
    if momentum != 0 and any("momentum_buffer" not in s for s in states):
        # The first step only copies g into the buffer: the multi-tensor path does it.
        sgd_foreach(params, grads, states, lr=lr, momentum=momentum, dampening=dampening,
                    weight_decay=weight_decay, nesterov=nesterov)
        return
    bufs = [s["momentum_buffer"] for s in states] if momentum != 0 else []
    in_chunks(sgd_fused, (params, grads, bufs), lr_tensor(lr, params[0].device),
              momentum=momentum, dampening=dampening, weight_decay=weight_decay,
              nesterov=nesterov)


def rmsprop_step(params, grads, states, *, lr, alpha, eps, weight_decay, momentum, centered):
    buffers = (["momentum_buffer"] if momentum > 0 else []) + (["grad_avg"] if centered else [])
    for param, state in zip(params, states):
        init_state(state, param, ("step", lambda p: step_counter(device=p.device)),
                   "square_avg", *buffers)
    steps = step_tensors(states, params)
    lists = (params, grads, [s["square_avg"] for s in states],
             [s["grad_avg"] for s in states] if centered else [],
             [s["momentum_buffer"] for s in states] if momentum > 0 else [], steps)
    in_chunks(rmsprop_fused, lists, lr_tensor(lr, params[0].device), alpha=alpha, eps=eps,
              weight_decay=weight_decay, momentum=momentum, centered=centered)


def adagrad_step(params, grads, states, *, lr, lr_decay, weight_decay, eps):
    t = count_steps(step_tensors(states, params))
    eta = (-lr / (1 + (t - 1) * lr_decay)).to(params[0].dtype)
    in_chunks(adagrad_fused, (params, grads, [s["sum"] for s in states], eta),
              weight_decay=weight_decay, eps=eps)


def lion_step(params, grads, states, *, lr, betas, weight_decay):
    for param, state in zip(params, states):
        init_state(state, param, "exp_avg")
    in_chunks(lion_fused, (params, grads, [s["exp_avg"] for s in states]),
              lr_tensor(lr, params[0].device), beta1=betas[0], beta2=betas[1],
              weight_decay=weight_decay)


def muon_step(params, grads, states, *, lr, weight_decay, momentum, nesterov,
              ns_coefficients, eps, ns_steps, adjust_lr_fn):
    from .muon import adjusted_lr, newton_schulz  # muon imports this module
    for param, state in zip(params, states):
        init_state(state, param, "momentum_buffer")
    D = in_chunks(muon_momentum_fused, (grads, [s["momentum_buffer"] for s in states]),
                  momentum=momentum, nesterov=nesterov)
    O = [newton_schulz(D_i, ns_coefficients, ns_steps, eps) for D_i in D]
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    for param, O_i in zip(params, O):  # η' depends on each matrix's shape
        param.add_(O_i, alpha=-adjusted_lr(lr, adjust_lr_fn, param.shape))
