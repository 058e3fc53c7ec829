"""Fused gradient-sign attack steps: FGSM, projected gradient steps (L-inf, L2), perturbation norms.

Every op views its inputs as rows ``(B, D)``, D = elements per sample. The elementwise ops launch
a 1-D grid of ``B * C`` programs, C = ceil(D / BLOCK) chunks per row, so that a batch of one large
image fills the GPU as well as many small ones; ``linear_fgsm`` launches a 2-D grid (chunks of D,
blocks of rows). Per-sample reductions (norms) are written as per-chunk partials
``(3, B, C)`` and finished with a tiny torch reduction: deterministic, no atomics.

Bytes moved per element (fp32; half that for fp16/bf16 data):
- ``fgsm``: reads x, grad; writes out: 12 B.
- ``pgd_step`` L-inf: reads x, x0, grad; writes out: 16 B (norms add nothing: same pass).
- ``pgd_step`` L2: the step direction ``g / ||g||`` and the projection factor need two per-sample
  reductions before any element can be written. One statistics pass reads x, x0, grad once and
  returns ``||d||^2, <d, g>, ||g||^2`` (d = x - x0), from which
  ``||d + a g||^2 = ||d||^2 + 2 a <d, g> + a^2 ||g||^2`` gives the norm after the step; the step
  pass then reads them again and writes: 28 B in all, against 16 B for L-inf.
- ``perturbation_norms``: reads x, x0: 8 B.
- ``linear_fgsm``: x is read twice (logits pass, step pass) and written once: 12 B, plus the weight
  matrix once per ``ROWS`` samples.

References: Goodfellow et al. 2015 (FGSM); Madry et al. 2018 (PGD); Triton's tutorials
(vector add, fused softmax) for the launch pattern.
"""

from __future__ import annotations

import math

import torch

from hdbench.kernels import _checks
from hdbench.kernels._backend import compiled, resolve
from hdbench.kernels.reference import attack as ref
from hdbench.kernels.reference.attack import Norms

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton wheel for this platform: the torch backend serves every call
    triton = None

LINF = 0
L2 = 1
NORMS = {"linf": LINF, "l2": L2}
MAX_BLOCK = 4096  # elements per program in the elementwise kernels: 16 fp32 per thread at 8 warps


if triton is not None:

    @triton.jit
    def _sign(g):
        """sign(g), keeping NaN (a plain where-chain would map NaN to 0 and hide it)."""
        s = tl.where(g > 0, 1.0, tl.where(g < 0, -1.0, 0.0))
        return tl.where(g != g, g, s)

    @triton.jit
    def _clamp(v, lo, hi):
        """min(max(v, lo), hi), keeping NaN (tl.minimum may return the non-NaN operand)."""
        return tl.where(v != v, v, tl.minimum(tl.maximum(v, lo), hi))

    @triton.jit
    def _store_norm_partials(parts_ptr, d, mask, pid, n_programs):
        """parts[0|1|2, pid] = sum(d^2), max|d|, sum|d| over this chunk (masked lanes give 0)."""
        a = tl.where(mask, tl.abs(d), 0.0)
        tl.store(parts_ptr + pid, tl.sum(a * a, axis=0))
        tl.store(parts_ptr + n_programs + pid, tl.max(a, axis=0))
        tl.store(parts_ptr + 2 * n_programs + pid, tl.sum(a, axis=0))

    @triton.jit
    def _step_kernel(
        out_ptr,
        parts_ptr,
        x_ptr,
        x0_ptr,
        g_ptr,
        a_ptr,
        b_ptr,
        active_ptr,
        D,
        C,
        lo,
        hi,
        NORM: tl.constexpr,
        PROJECT: tl.constexpr,
        CLAMP: tl.constexpr,
        HAS_ACTIVE: tl.constexpr,
        RETURN_NORMS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """out = clamp(x0 + P(x - x0 + a * dir(g))); LINF: dir = sign, P = clip to [-b, b];
        L2: dir = identity (a = step / ||g||), P = scale by b. Without PROJECT, x0 = x."""
        pid = tl.program_id(0).to(tl.int64)
        row = pid // C
        offs = (pid % C) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < D
        ptr_off = row * D + offs
        x = tl.load(x_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        g_mask = mask
        if HAS_ACTIVE:
            is_active = tl.load(active_ptr + row) != 0
            # an inactive sample's gradient is never read; vector form: see _linear_logits_kernel
            g_mask = mask & ((offs * 0 + is_active) != 0)
        g = tl.load(g_ptr + ptr_off, mask=g_mask, other=0.0).to(tl.float32)
        a = tl.load(a_ptr + row)
        b = tl.load(b_ptr + row)
        if PROJECT:
            x0 = tl.load(x0_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        else:
            x0 = x
        if NORM == 0:
            y = x + a * _sign(g)
            if PROJECT:
                d = y - x0
                y = x0 + tl.where(d != d, d, tl.minimum(tl.maximum(d, -b), b))
        else:
            y = x + a * g
            if PROJECT:
                y = x0 + (y - x0) * b
        if CLAMP:
            y = _clamp(y, lo, hi)
        if HAS_ACTIVE:
            y = tl.where(is_active, y, x)  # x round-trips exactly: inactive rows stay bit-identical
        y_out = y.to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + ptr_off, y_out, mask=mask)
        if RETURN_NORMS:
            # norms of what was stored, so they equal perturbation_norms(out, x0) in every dtype
            _store_norm_partials(
                parts_ptr, y_out.to(tl.float32) - x0, mask, pid, tl.num_programs(0)
            )

    @triton.jit
    def _l2_stats_kernel(parts_ptr, x_ptr, x0_ptr, g_ptr, D, C, BLOCK: tl.constexpr):
        """parts[0|1|2, pid] = sum(d^2), sum(d g), sum(g^2) over this chunk, d = x - x0."""
        pid = tl.program_id(0).to(tl.int64)
        row = pid // C
        offs = (pid % C) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < D
        ptr_off = row * D + offs
        x = tl.load(x_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        x0 = tl.load(x0_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        d = x - x0
        n = tl.num_programs(0)
        tl.store(parts_ptr + pid, tl.sum(d * d, axis=0))
        tl.store(parts_ptr + n + pid, tl.sum(d * g, axis=0))
        tl.store(parts_ptr + 2 * n + pid, tl.sum(g * g, axis=0))

    @triton.jit
    def _norms_kernel(parts_ptr, x_ptr, x0_ptr, D, C, BLOCK: tl.constexpr):
        """Norm partials of d = x - x0 (see _store_norm_partials)."""
        pid = tl.program_id(0).to(tl.int64)
        row = pid // C
        offs = (pid % C) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < D
        ptr_off = row * D + offs
        x = tl.load(x_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        x0 = tl.load(x0_ptr + ptr_off, mask=mask, other=0.0).to(tl.float32)
        _store_norm_partials(parts_ptr, x - x0, mask, pid, tl.num_programs(0))

    @triton.jit
    def _weight_tile(w_ptr, c, D, K, BLOCK: tl.constexpr, K_PAD: tl.constexpr):
        """Chunk c of W (K, D) as a (K_PAD, BLOCK) fp32 tile, with its offsets, mask and classes."""
        offs = c * BLOCK + tl.arange(0, BLOCK)
        ks = tl.arange(0, K_PAD)
        d_mask = offs < D
        w = tl.load(
            w_ptr + ks[:, None] * D + offs[None, :],
            mask=(ks[:, None] < K) & d_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        return w, offs, d_mask, ks

    @triton.jit
    def _linear_logits_kernel(
        parts_ptr,
        x_ptr,
        w_ptr,
        B,
        D,
        K,
        C,
        ROWS: tl.constexpr,
        BLOCK: tl.constexpr,
        K_PAD: tl.constexpr,
    ):
        """parts[b, c, k] = sum_{d in chunk c} x[b, d] W[k, d] for ROWS samples b; W read once."""
        c = tl.program_id(0).to(tl.int64)
        row0 = tl.program_id(1).to(tl.int64) * ROWS
        w, offs, d_mask, ks = _weight_tile(w_ptr, c, D, K, BLOCK, K_PAD)
        for r in range(ROWS):
            row = row0 + r
            # row bounds as vectors: a scalar mask term breaks the interpreter's masked load
            x = tl.load(x_ptr + row * D + offs, mask=d_mask & (offs * 0 + row < B), other=0.0)
            part = tl.sum(w * x.to(tl.float32)[None, :], axis=1)
            tl.store(parts_ptr + (row * C + c) * K_PAD + ks, part, mask=ks * 0 + row < B)

    @triton.jit
    def _linear_step_kernel(
        out_ptr,
        x_ptr,
        w_ptr,
        coef_ptr,
        eps_ptr,
        B,
        D,
        K,
        lo,
        hi,
        CLAMP: tl.constexpr,
        ROWS: tl.constexpr,
        BLOCK: tl.constexpr,
        K_PAD: tl.constexpr,
    ):
        """out[b] = clamp(x[b] + eps[b] * sign(coef[b] @ W)) for ROWS samples b; W read once."""
        c = tl.program_id(0).to(tl.int64)
        row0 = tl.program_id(1).to(tl.int64) * ROWS
        w, offs, d_mask, ks = _weight_tile(w_ptr, c, D, K, BLOCK, K_PAD)
        for r in range(ROWS):
            row = row0 + r
            m = d_mask & (offs * 0 + row < B)  # vector row bounds: see _linear_logits_kernel
            coef = tl.load(
                coef_ptr + row * K_PAD + ks, mask=(ks < K) & (ks * 0 + row < B), other=0.0
            )
            g = tl.sum(coef[:, None] * w, axis=0)
            eps = tl.load(eps_ptr + row, mask=row < B, other=0.0)
            x = tl.load(x_ptr + row * D + offs, mask=m, other=0.0).to(tl.float32)
            y = x + eps * _sign(g)
            if CLAMP:
                y = _clamp(y, lo, hi)
            tl.store(out_ptr + row * D + offs, y.to(out_ptr.dtype.element_ty), mask=m)


# Torch backend: the eager reference, compiled where torch.compile can (see kernels._backend).
_torch_fgsm = compiled(ref.fgsm)
_torch_pgd_step = compiled(ref.pgd_step)
_torch_perturbation_norms = compiled(ref.perturbation_norms)
_torch_linear_fgsm = compiled(ref.linear_fgsm)


def _block(d: int) -> int:
    """Power-of-two block for rows of d elements: no wasted lanes on small images."""
    return max(16, min(MAX_BLOCK, triton.next_power_of_2(d)))


def _warps(block: int) -> int:
    return max(1, min(8, block // 512))


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> contiguous (B, D): non-contiguous views are copied, not rejected."""
    return t.contiguous().view(t.shape[0], -1)


def _finish_norms(parts: torch.Tensor, batch: int, d: int) -> Norms:
    """Reduce (3, B, C) norm partials to Norms; a NaN anywhere in a sample makes all its norms NaN
    (tl.max drops NaN, so L-inf takes it from the L2 sum)."""
    parts = parts.view(3, batch, -1)
    l2 = parts[0].sum(dim=1).sqrt()
    linf = torch.where(torch.isnan(l2), l2, parts[1].amax(dim=1))
    return Norms(l2, l2 / math.sqrt(d), linf, parts[2].sum(dim=1))


def _check_data(op: str, x: torch.Tensor, **others: torch.Tensor) -> None:
    _checks.tensor(op, "x", x)
    for name, t in others.items():
        _checks.same_as(op, name, t, "x", x)


def fgsm(
    x: torch.Tensor,
    grad: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    backend: str | None = None,
) -> torch.Tensor:
    """Fast gradient-sign step ``clamp(x + eps * sign(grad))`` in one pass.

    Args:
        x: inputs, any shape with a leading batch axis, fp32/fp16/bf16.
        grad: gradient of the loss with respect to x, same shape, dtype and device.
        eps: step size, a float or one per sample.
        clamp: value range ``(lo, hi)`` of the result, or None for none.
        backend: ``"triton"`` or ``"torch"``; None resolves as ``kernels._backend`` describes.

    Returns:
        The perturbed inputs, shape and dtype of x. NaN in grad gives NaN in those elements.

    Shape:
        x, grad: (B, ...); eps: () or (B,).

    Raises:
        TypeError, ValueError: on invalid inputs, naming the op, the expectation and the value.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x, g = torch.full((2, 3, 4, 4), 0.5), torch.randn(2, 3, 4, 4)
        >>> x_adv = kernels.fgsm(x, g, 0.1)
        >>> bool(((x_adv - x).abs() - 0.1).abs().max() < 1e-6)
        True
    """
    op = "fgsm"
    _check_data(op, x, grad=grad)
    eps_t = _checks.scalar_or_per_sample(op, "eps", eps, x.shape[0], x.device)
    bounds = _checks.clamp_range(op, clamp)
    if resolve(op, x, backend) == "torch":
        return _torch_fgsm(x, grad, eps_t, clamp=bounds)
    xr, gr = _rows(x), _rows(grad)
    batch, d = xr.shape
    out = torch.empty_like(xr)
    block = _block(d)
    chunks = triton.cdiv(d, block)
    lo, hi = bounds or (0.0, 0.0)
    _step_kernel[(batch * chunks,)](
        out,
        out,
        xr,
        xr,
        gr,
        eps_t,
        eps_t,
        eps_t,
        d,
        chunks,
        lo,
        hi,
        NORM=LINF,
        PROJECT=False,
        CLAMP=bounds is not None,
        HAS_ACTIVE=False,
        RETURN_NORMS=False,
        BLOCK=block,
        num_warps=_warps(block),
    )
    return out.view(x.shape)


def pgd_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    grad: torch.Tensor,
    *,
    step: float | torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "linf",
    clamp: tuple[float, float] | None = (0.0, 1.0),
    active: torch.Tensor | None = None,
    return_norms: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, Norms]:
    """One projected gradient step of an iterative attack, fused.

    ``norm="linf"``: ``x' = x + step * sign(g)``, delta clipped to ``[-eps, eps]`` per element.
    ``norm="l2"``: ``x' = x + step * g / ||g||_2`` (no step where g = 0), delta scaled onto the L2
    ball of radius eps when outside it. Then ``x_next = clamp(x0 + delta)``. The result stays in
    the eps-ball whenever x0 lies in the clamp range (clamping only moves towards x0 then).

    Args:
        x: current iterate, (B, ...), fp32/fp16/bf16.
        x0: the clean inputs the ball is centred on, like x.
        grad: loss gradient at x, like x.
        step: step size, float or (B,).
        eps: ball radius, float or (B,).
        norm: ``"linf"`` or ``"l2"``.
        clamp: value range ``(lo, hi)`` or None.
        active: optional (B,) bool mask; inactive samples come back bit-identical to x, so a loop
            can stop samples early without a host synchronisation.
        return_norms: also return ``Norms`` of ``x_next - x0`` computed in the same pass.
        backend: ``"triton"``, ``"torch"`` or None (automatic).

    Returns:
        ``x_next`` like x, or ``(x_next, Norms)`` with ``return_norms``. A NaN gradient element
        gives NaN in that element (L-inf) or in the whole sample (L2, through ``||g||``).

    Shape:
        x, x0, grad: (B, ...); step, eps: () or (B,); active: (B,); norms: (B,) each.

    Raises:
        TypeError, ValueError: on invalid inputs, naming the op, the expectation and the value.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x0 = torch.rand(2, 3, 5, 5)
        >>> x, norms = kernels.pgd_step(x0, x0, torch.randn(2, 3, 5, 5), step=0.1, eps=0.05,
        ...                             return_norms=True)
        >>> bool((norms.linf <= 0.05 + 1e-6).all()), bool(((x >= 0) & (x <= 1)).all())
        (True, True)
    """
    op = "pgd_step"
    _check_data(op, x, x0=x0, grad=grad)
    mode = NORMS[_checks.choice(op, "norm", norm, tuple(NORMS))]
    batch = x.shape[0]
    step_t = _checks.scalar_or_per_sample(op, "step", step, batch, x.device)
    eps_t = _checks.scalar_or_per_sample(op, "eps", eps, batch, x.device)
    bounds = _checks.clamp_range(op, clamp)
    active = _checks.active_mask(op, active, batch, x.device)
    if resolve(op, x, backend) == "torch":
        return _torch_pgd_step(
            x,
            x0,
            grad,
            step=step_t,
            eps=eps_t,
            norm=norm,
            clamp=bounds,
            active=active,
            return_norms=return_norms,
        )
    xr, x0r, gr = _rows(x), _rows(x0), _rows(grad)
    d = xr.shape[1]
    block = _block(d)
    chunks = triton.cdiv(d, block)
    grid = (batch * chunks,)
    if mode == L2:
        stats = torch.empty((3, batch, chunks), dtype=torch.float32, device=x.device)
        _l2_stats_kernel[grid](stats, xr, x0r, gr, d, chunks, BLOCK=block, num_warps=_warps(block))
        a, b = ref.l2_scales(*stats.sum(dim=2), step_t, eps_t)
    else:
        a, b = step_t, eps_t
    out = torch.empty_like(xr)
    parts = (
        torch.empty((3, batch, chunks), dtype=torch.float32, device=x.device)
        if return_norms
        else out
    )
    act = active.view(torch.uint8) if active is not None else out
    lo, hi = bounds or (0.0, 0.0)
    _step_kernel[grid](
        out,
        parts,
        xr,
        x0r,
        gr,
        a,
        b,
        act,
        d,
        chunks,
        lo,
        hi,
        NORM=mode,
        PROJECT=True,
        CLAMP=bounds is not None,
        HAS_ACTIVE=active is not None,
        RETURN_NORMS=return_norms,
        BLOCK=block,
        num_warps=_warps(block),
    )
    out = out.view(x.shape)
    return (out, _finish_norms(parts, batch, d)) if return_norms else out


def perturbation_norms(x: torch.Tensor, x0: torch.Tensor, *, backend: str | None = None) -> Norms:
    """Per-sample norms of ``delta = x - x0`` in one pass.

    Args:
        x: perturbed inputs, (B, ...), fp32/fp16/bf16.
        x0: clean inputs, like x.
        backend: ``"triton"``, ``"torch"`` or None (automatic).

    Returns:
        ``Norms(l2, l2_area, linf, l1)``, float32 (B,) each; ``l2_area = l2 / sqrt(D)``. A NaN in
        a sample makes all four of its norms NaN.

    Raises:
        TypeError, ValueError: on invalid inputs, naming the op, the expectation and the value.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x0 = torch.zeros(1, 1, 2, 2)
        >>> x = x0 + torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 1, 2, 2)
        >>> n = kernels.perturbation_norms(x, x0)
        >>> [round(float(v), 4) for v in (n.l2[0], n.l2_area[0], n.linf[0], n.l1[0])]
        [5.0, 2.5, 4.0, 7.0]
    """
    op = "perturbation_norms"
    _check_data(op, x, x0=x0)
    if resolve(op, x, backend) == "torch":
        return _torch_perturbation_norms(x, x0)
    xr, x0r = _rows(x), _rows(x0)
    batch, d = xr.shape
    block = _block(d)
    chunks = triton.cdiv(d, block)
    parts = torch.empty((3, batch, chunks), dtype=torch.float32, device=x.device)
    _norms_kernel[(batch * chunks,)](
        parts, xr, x0r, d, chunks, BLOCK=block, num_warps=_warps(block)
    )
    return _finish_norms(parts, batch, d)


def linear_fgsm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    targeted: bool = False,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    return_logits: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """FGSM against a linear softmax classifier, whole: logits, softmax, input gradient, step.

    The cross-entropy's input gradient is ``g = (softmax(x W^T + b) - onehot(target)) W``; the
    result is ``clamp(x + eps * sign(g))`` (``- eps`` when targeted). Two passes over x: one for
    the logits (the softmax needs them whole), one for the step; nothing of size B x D is stored
    besides the result.

    Args:
        x: inputs, (B, ...) with D elements per sample, fp32/fp16/bf16.
        weight: (K, D) classifier weights, any float dtype, on x's device.
        bias: (K,) or None.
        target: (B,) int64/int32 labels: the true class (untargeted) or the target class.
        eps: step size, float or (B,).
        targeted: descend the target's loss instead of ascending the label's.
        clamp: value range ``(lo, hi)`` or None.
        return_logits: also return the clean logits (B, K) in float32.
        backend: ``"triton"``, ``"torch"`` or None (automatic).

    Returns:
        x_adv like x, or ``(x_adv, logits)``.

    Raises:
        TypeError, ValueError: on invalid inputs, naming the op, the expectation and the value.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x, w = torch.full((2, 6), 0.5), torch.randn(3, 6)
        >>> x_adv, logits = kernels.linear_fgsm(x, w, None, torch.tensor([0, 2]), 0.1,
        ...                                     return_logits=True)
        >>> tuple(x_adv.shape), tuple(logits.shape)
        ((2, 6), (2, 3))
    """
    op = "linear_fgsm"
    _checks.tensor(op, "x", x)
    batch = x.shape[0]
    d = x.numel() // batch
    _checks.tensor(op, "weight", weight, min_dim=2)
    if weight.dim() != 2 or weight.shape[1] != d:
        _checks.fail(
            op,
            f"weight of shape (K, {d}) for x of shape {tuple(x.shape)}",
            f"shape {tuple(weight.shape)}",
        )
    k = weight.shape[0]
    if weight.device != x.device:
        _checks.fail(op, f"weight on {x.device} like x", weight.device)
    if bias is not None:
        _checks.tensor(op, "bias", bias)
        if bias.shape != (k,) or bias.device != x.device:
            _checks.fail(
                op,
                f"bias of shape ({k},) on {x.device}",
                f"shape {tuple(bias.shape)} on {bias.device}",
            )
    _checks.labels(op, "target", target, batch, k, x.device)
    eps_t = _checks.scalar_or_per_sample(op, "eps", eps, batch, x.device)
    bounds = _checks.clamp_range(op, clamp)
    if resolve(op, x, backend) == "torch":
        return _torch_linear_fgsm(
            x,
            weight,
            bias,
            target,
            eps_t,
            targeted=targeted,
            clamp=bounds,
            return_logits=return_logits,
        )
    xr, w = _rows(x), weight.contiguous()
    k_pad = triton.next_power_of_2(k)
    # keep the register tile K_PAD x BLOCK at 4096 values; small images need no wider block
    block = max(16, min(4096 // k_pad, triton.next_power_of_2(d)))
    rows = 16
    chunks = triton.cdiv(d, block)
    grid = (chunks, triton.cdiv(batch, rows))
    parts = torch.empty((batch, chunks, k_pad), dtype=torch.float32, device=x.device)
    _linear_logits_kernel[grid](
        parts, xr, w, batch, d, k, chunks, ROWS=rows, BLOCK=block, K_PAD=k_pad, num_warps=4
    )
    logits = parts.sum(dim=1)[:, :k]
    if bias is not None:
        logits = logits + bias.float()
    onehot = torch.nn.functional.one_hot(target.long(), k).float()
    coef = logits.softmax(dim=1) - onehot
    if targeted:
        coef = -coef
    coef = torch.nn.functional.pad(coef, (0, k_pad - k)).contiguous()
    out = torch.empty_like(xr)
    lo, hi = bounds or (0.0, 0.0)
    _linear_step_kernel[grid](
        out,
        xr,
        w,
        coef,
        eps_t,
        batch,
        d,
        k,
        lo,
        hi,
        CLAMP=bounds is not None,
        ROWS=rows,
        BLOCK=block,
        K_PAD=k_pad,
        num_warps=4,
    )
    out = out.view(x.shape)
    return (out, logits) if return_logits else out
