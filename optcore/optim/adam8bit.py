r"""8-bit Adam: Adam whose two moments are stored as one byte per element ({ref}`ch-memory`).

Dettmers, Lewis, Shleifer & Zettlemoyer (2022), "8-bit Optimizers via Block-wise
Quantization". Adam keeps two float32 numbers per parameter element, m and v: 8 bytes, twice
the parameter itself. Here each is stored as a byte, an index into a table of 256 values
(the *dynamic map*), plus one float32 scale per block of ``block_size`` elements (the block's
largest |value|, its *absmax*): 2 + 8/``block_size`` bytes per element, about 2.03 at the
default 256. Each step dequantizes m and v, takes an ordinary float32 Adam step
(:func:`~optcore.optim.adam.adam_update`, the same code as optcore.Adam) and quantizes them
again.

Three functions are the quantization and can be used alone: :func:`dynamic_map`,
:func:`quantize_blockwise` and :func:`dequantize_blockwise`. They equal bitsandbytes'
``create_dynamic_map``, ``quantize_blockwise`` and ``dequantize_blockwise`` (tests/
test_adam8bit.py checks it), but are plain torch, so they run on any device.
"""

from __future__ import annotations

import torch

from .adam import adam_update
from .base import Optimizer, as_scalar, check, check_betas, check_lr
from .pieces import step_counter
from .shampoo import refuse_non_finite

__all__ = ["Adam8bit", "dynamic_map", "quantize_blockwise", "dequantize_blockwise"]


def dynamic_map(signed: bool = True) -> torch.Tensor:
    r"""The dynamic (tree) quantization map: 256 sorted float32 values in [−1, 1] (``signed``)
    or [0, 1].

    A value is a decimal exponent times a fraction: for each of the seven exponents
    :math:`10^{-6}, 10^{-5}, \dots, 10^{0}`, the fractions are the midpoints of a linear grid
    of [0.1, 1] that gets finer as the exponent grows (with ``signed``, 2⁰, 2¹, …, 2⁶
    intervals, each value also negated; unsigned, 2¹, …, 2⁷ intervals, the sign bit spent on
    the fraction instead). That makes 254 values; 0 and 1 complete the 256. So numbers down
    to 10⁻⁶ of the block's absmax are still told apart from 0 (a linear map of 256 levels
    rounds everything below 1/255 of it to 0), with fewer fraction bits the smaller they are,
    and the largest numbers of a block, which dominate the update, get the finest grid: no
    x/absmax is farther than 0.9/128 (signed) or 0.9/256 (unsigned) from a map value.

    It equals bitsandbytes' ``create_dynamic_map(signed)`` value for value, including its one
    asymmetry: the signed map holds +1 but not −1 (its most negative value is
    −(0.99296875…)), so a block whose absmax comes from a negative entry stores that entry
    0.7% short. The fractions are computed in float32 as there.
    """
    values = [0.0, 1.0]
    for i in range(7):  # exponent 10^(i − 6)
        intervals = 2 ** i if signed else 2 ** (i + 1)
        grid = torch.linspace(0.1, 1, intervals + 1, dtype=torch.float32)
        fractions = (grid[:-1] + grid[1:]) / 2 * 10.0 ** (i - 6)
        values += fractions.tolist()
        if signed:
            values += (-fractions).tolist()
    return torch.tensor(sorted(values), dtype=torch.float32)


def _blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """x flattened and zero-padded to whole blocks: a (blocks, block_size) matrix."""
    flat = x.reshape(-1)
    pad = -flat.numel() % block_size
    return torch.nn.functional.pad(flat, (0, pad)).view(-1, block_size)


def quantize_blockwise(x: torch.Tensor, code: torch.Tensor, block_size: int = 256):
    """Codes and scales of ``x``: per block of ``block_size`` consecutive elements (the last
    one may be shorter), absmax = max |x|, and each element's code is the index of the value
    of ``code`` (a sorted map, :func:`dynamic_map`) nearest to x/absmax; a tie goes to the
    lower index, as in bitsandbytes. A block of zeros gets absmax 0 and the codes of 0.

    Returns ``(codes, absmax)``: uint8 codes shaped like ``x`` and one absmax per block
    (⌈numel/block_size⌉ of them), in float32, or float64 for a float64 ``x``. The arithmetic
    is in that dtype.
    """
    work = torch.promote_types(x.dtype, torch.float32)
    blocks = _blocks(x.to(work), block_size)
    absmax = blocks.abs().amax(dim=1)
    normed = blocks / torch.where(absmax > 0, absmax, 1).unsqueeze(1)
    code = code.to(device=x.device, dtype=work)
    # The nearest of the two map values around x/absmax: below-or-equal, and the next one.
    low = (torch.searchsorted(code, normed, right=True) - 1).clamp_(0, code.numel() - 2)
    closer_above = (code[low + 1] - normed).abs() < (normed - code[low]).abs()
    codes = (low + closer_above).to(torch.uint8)
    return codes.view(-1)[:x.numel()].view(x.shape), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor,
                         block_size: int = 256) -> torch.Tensor:
    """The values ``code[codes] · absmax`` of their block, shaped like ``codes``, in
    ``absmax``'s dtype: the inverse of :func:`quantize_blockwise` up to half the gap between
    neighbouring map values, times the block's absmax."""
    values = code.to(device=codes.device, dtype=absmax.dtype)[codes.long()]
    scaled = _blocks(values, block_size) * absmax.unsqueeze(1)
    return scaled.view(-1)[:codes.numel()].view(codes.shape)


_MAPS: dict = {}


def _map(signed: bool, device, dtype) -> torch.Tensor:
    """:func:`dynamic_map`, built once per device and dtype."""
    key = (signed, torch.device(device), dtype)
    if key not in _MAPS:
        _MAPS[key] = dynamic_map(signed).to(device=device, dtype=dtype)
    return _MAPS[key]


#: State entries whose dtype is not the parameter's: torch's load_state_dict would cast them.
QUANTIZED = ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax")


class Adam8bit(Optimizer):
    r"""Adam with block-wise 8-bit moments (Dettmers et al. 2022), as bitsandbytes'
    ``Adam8bit``.

    One step on a tensor of at least ``min_8bit_size`` elements:

    .. math::
        m_{t-1} &= \mathrm{absmax}^{(m)}_b \cdot Q^{\pm}[c^{(m)}], \qquad
        v_{t-1} = \mathrm{absmax}^{(v)}_b \cdot Q^{+}[c^{(v)}]
        \quad\text{(dequantize, per block } b)\\
        \theta, m_t, v_t &\leftarrow \text{the AdamW step of } (\theta_{t-1}, g_t, m_{t-1},
        v_{t-1}) \text{ in float32}\\
        c^{(m)}, \mathrm{absmax}^{(m)} &= \mathrm{quantize}(m_t, Q^{\pm}), \qquad
        c^{(v)}, \mathrm{absmax}^{(v)} = \mathrm{quantize}(v_t, Q^{+})

    where :math:`Q^{\pm}` and :math:`Q^{+}` are the signed and unsigned :func:`dynamic_map`
    (v ≥ 0 needs no sign bit, so its map is twice as fine) and the step is
    :func:`~optcore.optim.adam.adam_update` with ``decoupled=True``: torch's ε outside
    :math:`\sqrt{\hat v_t}` and, for ``weight_decay``, decoupled decay
    :math:`\theta \leftarrow (1 - \eta\lambda)\theta`, which is what bitsandbytes' 8-bit Adam
    kernel does (its ``Adam8bit`` and ``AdamW8bit`` differ only in the default λ). Smaller
    tensors (biases, norms) keep m and v unquantized, in the parameter's dtype: the step is
    then exactly ``optcore.Adam(..., decoupled_weight_decay=True)``.

    The computation is in float32 (float64 for a float64 parameter, whose absmax is then
    float64 too); a bfloat16 or float16 parameter is updated in float32 and rounded back.

    State per parameter: ``step``, and ``exp_avg`` and ``exp_avg_sq`` as uint8 codes shaped
    like the parameter plus ``exp_avg_absmax`` and ``exp_avg_sq_absmax`` (⌈numel/block_size⌉
    scales); or, below ``min_8bit_size``, float ``exp_avg`` and ``exp_avg_sq`` as in Adam.
    The two maps are not stored (bitsandbytes keeps them in every state as ``qmap1`` and
    ``qmap2``): :func:`dynamic_map` rebuilds them.

    Deviations. From the paper: blocks of 256 rather than 2048 (bitsandbytes' value, on every
    device); no *stable embedding* layer (a model change, not an optimizer's). From
    bitsandbytes: no ``amsgrad``, ``optim_bits``, ``percentile_clipping``, ``max_unorm`` or
    paged memory; the small-tensor path is torch's Adam (bitsandbytes' 32-bit kernel adds
    :math:`\epsilon\sqrt{1 - \beta_2^t}` to :math:`\sqrt{v_t}`, and keeps float32 state for
    16-bit parameters); the m average is torch's ``lerp_``, which rounds differently from
    bitsandbytes' ``mul_().add_()`` in the last float32 bit, so a code can differ where
    m/absmax falls on a rounding boundary; the code is always the nearest one (bitsandbytes'
    CPU quantizer, in 0.50.2, misses it for a few in a thousand values and stores an exact 0
    as 2·10⁻⁵·absmax); and a non-finite gradient is refused (one NaN would set its block's
    absmax, and with it 255 neighbours' moments, to NaN).
    ``block_size`` is a power of two from 64, the sizes bitsandbytes' blockwise quantization
    accepts (64 … 4096) and GPU kernels tile evenly; larger ones are allowed here, up to one
    block per tensor, the non-blockwise quantization the paper compares against.
    """

    supports_complex = False
    #: A non-finite gradient is refused tensor by tensor, after the tensors before it were
    #: updated: the undo makes the refusal leave every tensor as it was.
    undo_failed_steps = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 block_size=256, min_8bit_size=4096):
        check_lr(lr)
        check(eps >= 0.0, "eps", eps, "eps >= 0")
        check_betas(betas)
        check(weight_decay >= 0.0, "weight_decay", weight_decay, "weight_decay >= 0")
        is_int = isinstance(block_size, int) and not isinstance(block_size, bool)
        check(is_int and block_size >= 64 and block_size & (block_size - 1) == 0,
              "block_size", block_size, "a power of two >= 64, as bitsandbytes' blockwise "
              "quantization takes (64 ... 4096)")
        is_int = isinstance(min_8bit_size, int) and not isinstance(min_8bit_size, bool)
        check(is_int and min_8bit_size >= 0, "min_8bit_size", min_8bit_size,
              "an integer >= 0")
        defaults = dict(lr=lr, betas=tuple(as_scalar(beta) for beta in betas), eps=eps,
                        weight_decay=weight_decay, block_size=block_size,
                        min_8bit_size=min_8bit_size)
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict):
        """torch's, except that the codes stay uint8 and the scales keep their dtype (torch
        casts every state tensor of a floating-point parameter to the parameter's dtype)."""
        super().load_state_dict(state_dict)
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for saved_id, param in zip(saved_ids, params, strict=True):
            saved = state_dict["state"].get(saved_id, {})
            if torch.is_tensor(saved.get("exp_avg")) and saved["exp_avg"].dtype == torch.uint8:
                for key in QUANTIZED:
                    self.state[param][key] = saved[key].to(device=param.device, copy=True)

    def update(self, param, grad, state, group):
        refuse_non_finite(grad, "Adam8bit")
        beta1, beta2 = map(as_scalar, group["betas"])
        hyper = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                     weight_decay=group["weight_decay"], decoupled=True)
        quantized = state["exp_avg"].dtype == torch.uint8 if state else (
            param.numel() >= group["min_8bit_size"])
        if not quantized:
            adam_update(param, grad, state, **hyper)
            return
        block_size = group["block_size"]
        work = torch.promote_types(param.dtype, torch.float32)
        signed, unsigned = (_map(s, param.device, work) for s in (True, False))
        if not state:
            blocks = -(-param.numel() // block_size)
            codes = dict(dtype=torch.uint8, device=param.device)
            scales = dict(dtype=work, device=param.device)
            state.update(step=step_counter(),
                         exp_avg=torch.zeros(param.shape, **codes),
                         exp_avg_sq=torch.zeros(param.shape, **codes),
                         exp_avg_absmax=torch.zeros(blocks, **scales),
                         exp_avg_sq_absmax=torch.zeros(blocks, **scales))
        moments = {  # the float32 Adam state this step works on
            "step": state["step"],
            "exp_avg": dequantize_blockwise(state["exp_avg"], state["exp_avg_absmax"],
                                            signed, block_size),
            "exp_avg_sq": dequantize_blockwise(state["exp_avg_sq"], state["exp_avg_sq_absmax"],
                                               unsigned, block_size)}
        theta = param if param.dtype == work else param.to(work)
        adam_update(theta, grad.to(work), moments, **hyper)
        if theta is not param:
            param.copy_(theta)
        state["step"] = moments["step"]
        for key, code in (("exp_avg", signed), ("exp_avg_sq", unsigned)):
            codes, absmax = quantize_blockwise(moments[key], code, block_size)
            state[key].copy_(codes)
            state[f"{key}_absmax"].copy_(absmax)
