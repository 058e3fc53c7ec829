"""Resolution pyramids: pyr_down / pyr_up, Gaussian and Laplacian pyramids, exact reconstruction,
resampling along the pyramid, and the per-level energy of an image.

Inputs are ``(B, C, H, W)`` float32 / float16 / bfloat16 of any H and W (odd, non-power-of-two and
1 included); outputs keep the input dtype, arithmetic is float32.

Conventions (``convention=``), the two users meet:

============  ======================================  ======================================
              ``"opencv"`` (default)                  ``"kornia"``
============  ======================================  ======================================
pyr_down      blur, keep even rows / columns          blur, bilinear resize (align_corners
                                                      False), as ``kornia.geometry.pyrdown``
down side     ``ceil(n / 2)``: 5 -> 3, 1 -> 1         ``floor(n / 2)``: 5 -> 2, 1 is an error
pyr_up        zeros inserted, blur x 4, as            bilinear resize, then blur, as
              ``cv2.pyrUp`` (side 2n - 1: the 2n      ``kornia.geometry.pyrup``
              result cropped, as OpenCV does)
up sizes      ``2n`` (default) or ``2n - 1``          ``2n`` (default) or ``2n + 1``
============  ======================================  ======================================

The blur is the separable binomial [1 4 6 4 1] / 16 with reflect-101 borders (the edge pixel is not
repeated), folded by index arithmetic, never padded in memory. A ``size=`` for ``pyr_up`` must be
one that ``pyr_down`` maps back to the input's size, so every Laplacian level lines up with the
Gaussian level it came from for every H and W. (kornia's own ``build_laplacian_pyramid`` instead
pads odd images to a power of two; on sides divisible by ``2 ** (levels - 1)`` the two agree.)

``levels`` counts the images of a pyramid, the input included (as kornia's ``max_level``).

How the kernels work: every op here is a separable linear map, out = A_h x A_w^T with A banded.
Each 1-D operator (blur then decimate, zero-insert then blur, blur then bilinear, any chain of
pyr_up steps composed into one) is built once per size in float64 as a table of (source index,
weight) per output index, reflection folded in. One Triton kernel applies any pair of tables to a
tile of output pixels, both blur passes in registers, reading each input pixel from DRAM once and
writing each output once; it optionally adds or subtracts a second image in the epilogue (Laplacian
levels, reconstruction) or reduces the result's squares to per-tile partials without writing it
(``level_energy``). Reads per level: the level's input once; a Gaussian pyramid of L levels reads
``(1 + 1/4 + ...)`` of the input, less than 4/3.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from hdbench.kernels import _checks
from hdbench.kernels._backend import compiled, resolve
from hdbench.kernels.reference import pyramid as ref
from hdbench.kernels.reference.pyramid import CONVENTIONS

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton wheel for this platform: the torch backend serves every call
    triton = None

NO_BASE, ADD_BASE, SUBTRACT_FROM_BASE = 0, 1, 2
MAX_TILE = 1024  # output pixels per program


if triton is not None:

    @triton.jit
    def _separable_kernel(
        out_ptr,
        parts_ptr,
        x_ptr,
        base_ptr,
        ih_ptr,
        wh_ptr,
        iw_ptr,
        ww_ptr,
        H,
        W,
        Ho,
        Wo,
        tiles_w,
        n_tiles,
        TH: tl.constexpr,
        TW: tl.constexpr,
        BASE: tl.constexpr,
        STORE: tl.constexpr,
        ENERGY: tl.constexpr,
        BH: tl.constexpr,
        BW: tl.constexpr,
    ):
        """One (BH, BW) output tile of one plane: y = sum_{s,t} wh[i,s] ww[j,t] x[ih[i,s], iw[j,t]].

        BASE: y = base + y (ADD) or base - y (SUBTRACT). STORE writes y; ENERGY writes sum(y^2).
        """
        plane = tl.program_id(0).to(tl.int64)
        tile = tl.program_id(1)
        rows = (tile // tiles_w) * BH + tl.arange(0, BH)
        cols = (tile % tiles_w) * BW + tl.arange(0, BW)
        rmask = rows < Ho
        cmask = cols < Wo
        mask = rmask[:, None] & cmask[None, :]
        src = x_ptr + plane * H * W
        acc = tl.zeros((BH, BW), dtype=tl.float32)
        for s in tl.static_range(TH):
            src_row = tl.load(ih_ptr + rows * TH + s, mask=rmask, other=0)
            w_row = tl.load(wh_ptr + rows * TH + s, mask=rmask, other=0.0)
            # horizontal pass for this source row, kept in registers
            line = tl.zeros((BH, BW), dtype=tl.float32)
            for t in tl.static_range(TW):
                src_col = tl.load(iw_ptr + cols * TW + t, mask=cmask, other=0)
                w_col = tl.load(ww_ptr + cols * TW + t, mask=cmask, other=0.0)
                v = tl.load(src + src_row[:, None] * W + src_col[None, :], mask=mask, other=0.0)
                line += w_col[None, :] * v.to(tl.float32)
            acc += w_row[:, None] * line
        offs = plane * Ho * Wo + rows[:, None] * Wo + cols[None, :]
        if BASE == 1:
            acc = tl.load(base_ptr + offs, mask=mask, other=0.0).to(tl.float32) + acc
        if BASE == 2:
            acc = tl.load(base_ptr + offs, mask=mask, other=0.0).to(tl.float32) - acc
        if STORE:
            tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)
        if ENERGY:
            sq = tl.where(mask, acc * acc, 0.0)
            tl.store(parts_ptr + plane * n_tiles + tile, tl.sum(tl.sum(sq, axis=1), axis=0))


# --------------------------------------------------------------------------------------------
# 1-D operators: (start, weights) windows, composed in float64, then (index, weight) tables
# --------------------------------------------------------------------------------------------
# A 1-D operator from n_in to n_out samples is a pair (start (n_out,) int64, w (n_out, T) float64):
# out[o] = sum_t w[o, t] * x[start[o] + t]. Reflection keeps every window contiguous.


def _window(idx: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_out, K) source indices and weights (duplicates allowed) -> merged window form, trimmed
    to the narrowest width that holds every row's nonzero weights."""
    start = idx.min(dim=1).values
    width = int((idx.max(dim=1).values - start).max()) + 1
    dense = torch.zeros(idx.shape[0], width, dtype=torch.float64)
    dense.scatter_add_(1, idx - start[:, None], w)
    nz = (dense != 0).to(torch.float32)
    first = nz.argmax(dim=1)
    last = width - 1 - nz.flip(1).argmax(dim=1)
    taps = int((last - first).clamp_min(0).max()) + 1
    cols = first[:, None] + torch.arange(taps)
    trimmed = torch.where(cols < width, dense.gather(1, cols.clamp_max(width - 1)), 0.0)
    return start + first, trimmed


def _blur_op(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = ref.reflect_indices(n, 2)[torch.arange(n)[:, None] + torch.arange(5)]
    w = torch.tensor(ref.BINOMIAL_5, dtype=torch.float64).expand(n, 5)
    return _window(idx, w)


def _decimate_op(n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    return 2 * torch.arange(n_out), torch.ones(n_out, 1, dtype=torch.float64)


def _zero_insert_op(n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.arange(n_out)
    return p // 2, (p % 2 == 0).to(torch.float64)[:, None]


def _bilinear_op(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``F.interpolate(mode="bilinear", align_corners=False)`` along one axis, in its float32
    arithmetic (scale = n_in / n_out, source = scale * (o + 0.5) - 0.5, clamped at 0)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = (scale * (torch.arange(n_out, dtype=torch.float32) + 0.5) - 0.5).clamp_min(0)
    i0 = src.floor().to(torch.int64).clamp_max(n_in - 1)
    lam = (src - i0.to(torch.float32)).to(torch.float64)
    lam = torch.where(i0 < n_in - 1, lam, torch.zeros_like(lam))
    return i0, torch.stack([1 - lam, lam], dim=1)


def _compose(outer, inner) -> tuple[torch.Tensor, torch.Tensor]:
    """The operator ``outer(inner(x))``: windows of outer over inner's outputs, expanded."""
    so, wo = outer
    si, wi = inner
    n_mid = si.shape[0]
    mid = so[:, None] + torch.arange(wo.shape[1])  # (n_out, To) indices into inner's outputs
    w_outer = torch.where(mid < n_mid, wo, 0.0)
    mid = mid.clamp_max(n_mid - 1)
    idx = si[mid][:, :, None] + torch.arange(wi.shape[1])  # (n_out, To, Ti)
    w = w_outer[:, :, None] * wi[mid]
    return _window(idx.flatten(1), w.flatten(1))


@functools.lru_cache(maxsize=256)
def _operator(kind: str, n_in: int, n_out: int, convention: str):
    """Window form (start (n_out,), weights (n_out, T) float64) of a 1-D operator: ``"down"`` =
    pyr_down, ``"up"`` = pyr_up, ``"synth"`` = the chain of pyr_up steps from n_in to n_out."""
    if kind == "down":
        sample = _decimate_op(n_out) if convention == "opencv" else _bilinear_op(n_in, n_out)
        return _compose(sample, _blur_op(n_in))
    if kind == "up":
        if convention == "opencv":
            # cv2.pyrUp to an odd side 2n - 1 is its 2n result cropped, not a 2n - 1 grid
            start, w = _compose(_blur_op(2 * n_in), _zero_insert_op(2 * n_in))
            return start[:n_out], 2.0 * w[:n_out]  # 4x in 2-D: the inserted zeros carry nothing
        return _compose(_blur_op(n_out), _bilinear_op(n_in, n_out))
    sides = [n_out]
    while sides[-1] != n_in:
        sides.append(ref.down_side(sides[-1], convention))
    op = None
    for lo, hi in zip(reversed(sides[1:]), reversed(sides[:-1]), strict=True):
        step = _operator("up", lo, hi, convention)
        op = step if op is None else _compose(step, op)
    return op


@functools.lru_cache(maxsize=256)
def _table(kind: str, n_in: int, n_out: int, convention: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(index int32 (n_out, T), weight float32 (n_out, T)) of a 1-D operator, on the CPU."""
    start, w = _operator(kind, n_in, n_out, convention)
    # zero-weight taps past the end are clamped to a valid index so every load stays in bounds
    idx = (start[:, None] + torch.arange(w.shape[1])).clamp(0, n_in - 1)
    return idx.to(torch.int32).contiguous(), w.to(torch.float32).contiguous()


_DEVICE_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _device_table(kind: str, n_in: int, n_out: int, convention: str, device: torch.device):
    key = (kind, n_in, n_out, convention, str(device))
    if key not in _DEVICE_TABLES:
        idx, w = _table(kind, n_in, n_out, convention)
        _DEVICE_TABLES[key] = (idx.to(device), w.to(device))
    return _DEVICE_TABLES[key]


def _tile(ho: int, wo: int) -> tuple[int, int]:
    bw = min(64, triton.next_power_of_2(wo))
    bh = min(MAX_TILE // bw, triton.next_power_of_2(ho))
    return bh, bw


def _separable(
    x: torch.Tensor,
    kind: str,
    size: tuple[int, int],
    convention: str,
    *,
    base: torch.Tensor | None = None,
    base_mode: int = NO_BASE,
    store: bool = True,
    energy: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Launch the separable kernel on (B, C, H, W) x -> (B, C, *size); returns (out, partials)."""
    x = x.contiguous()
    b, c, h, w = x.shape
    ho, wo = size
    ih, wh = _device_table(kind, h, ho, convention, x.device)
    iw, ww = _device_table(kind, w, wo, convention, x.device)
    bh, bw = _tile(ho, wo)
    tiles_w = triton.cdiv(wo, bw)
    n_tiles = triton.cdiv(ho, bh) * tiles_w
    out = torch.empty((b, c, ho, wo), dtype=x.dtype, device=x.device) if store else None
    parts = torch.empty((b * c, n_tiles), dtype=torch.float32, device=x.device) if energy else None
    base = base.contiguous() if base is not None else None
    # unused pointers get a valid tensor: the constexpr flags compile their accesses away
    _separable_kernel[(b * c, n_tiles)](
        out if out is not None else x,
        parts if parts is not None else x,
        x,
        base if base is not None else x,
        ih,
        wh,
        iw,
        ww,
        h,
        w,
        ho,
        wo,
        tiles_w,
        n_tiles,
        TH=ih.shape[1],
        TW=iw.shape[1],
        BASE=base_mode,
        STORE=store,
        ENERGY=energy,
        BH=bh,
        BW=bw,
        num_warps=4,
    )
    return out, parts


# --------------------------------------------------------------------------------------------
# sizes and validation
# --------------------------------------------------------------------------------------------


def max_levels(h: int, w: int, convention: str = "opencv") -> int:
    """Most pyramid levels (images, input included) an (h, w) image has: opencv stops once the
    image is 1 x 1, kornia before a side would reach 0.

    Examples:
        >>> from hdbench import kernels
        >>> kernels.max_levels(5, 5), kernels.max_levels(5, 5, convention="kornia")
        (4, 3)
    """
    levels = 1
    while True:
        nh, nw = ref.down_size(h, w, convention)
        if min(nh, nw) < 1 or (h, w) == (1, 1):
            return levels
        levels, h, w = levels + 1, nh, nw


def pyramid_sizes(h: int, w: int, levels: int, convention: str = "opencv") -> list[tuple[int, int]]:
    """(H, W) of each of the ``levels`` images of the pyramid of an (h, w) image, finest first.

    Examples:
        >>> from hdbench import kernels
        >>> kernels.pyramid_sizes(5, 8, 3)
        [(5, 8), (3, 4), (2, 2)]
    """
    return ref.chain(h, w, levels, convention)


def _check_image(op: str, x: object) -> torch.Tensor:
    _checks.tensor(op, "x", x)
    if x.dim() != 4:  # type: ignore[union-attr]
        _checks.fail(op, "a 4-D tensor (B, C, H, W)", f"shape {tuple(x.shape)}")  # type: ignore
    return x  # type: ignore[return-value]


def _check_convention(op: str, convention: object) -> str:
    return _checks.choice(op, "convention", convention, CONVENTIONS)


def _check_levels(op: str, levels: object, h: int, w: int, convention: str) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int):
        _checks.fail(op, "levels to be an int", type(levels).__name__, TypeError)
    most = max_levels(h, w, convention)
    if not 1 <= levels <= most:  # type: ignore[operator]
        _checks.fail(op, f"levels in [1, {most}] for a {h}x{w} image ({convention} sizes)", levels)
    return levels  # type: ignore[return-value]


def _check_size(op: str, size: object) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)
    ):
        _checks.fail(op, "size to be a pair of positive ints (H, W)", repr(size), TypeError)
    return int(size[0]), int(size[1])  # type: ignore[index]


def _up_size(op: str, x: torch.Tensor, size: object, convention: str) -> tuple[int, int]:
    h, w = x.shape[-2:]
    if size is None:
        return 2 * h, 2 * w
    ho, wo = _check_size(op, size)
    if ref.down_size(ho, wo, convention) != (h, w):
        odd = -1 if convention == "opencv" else 1
        _checks.fail(
            op,
            f"size ({2 * h} or {2 * h + odd}, {2 * w} or {2 * w + odd}) for a {h}x{w} input "
            f"({convention} sizes: 2n or 2n {'-' if odd < 0 else '+'} 1)",
            (ho, wo),
        )
    return ho, wo


# --------------------------------------------------------------------------------------------
# public ops
# --------------------------------------------------------------------------------------------

# One pyramid level at a time, per backend; the pyramid ops below loop over levels with either.
# The torch backend compiles these single-level steps, not whole pyramids: with dynamic shapes one
# compiled step serves every level, where a compiled pyramid would unroll (minutes of compiling).


def _triton_down(x: torch.Tensor, size: tuple[int, int], convention: str) -> torch.Tensor:
    return _separable(x, "down", size, convention)[0]


def _triton_up(x: torch.Tensor, size: tuple[int, int], convention: str) -> torch.Tensor:
    return _separable(x, "up", size, convention)[0]


def _triton_detail(fine: torch.Tensor, coarse: torch.Tensor, convention: str) -> torch.Tensor:
    size = fine.shape[-2:]
    return _separable(coarse, "up", size, convention, base=fine, base_mode=SUBTRACT_FROM_BASE)[0]


def _triton_energy(fine: torch.Tensor, coarse: torch.Tensor, convention: str) -> torch.Tensor:
    parts = _separable(
        coarse,
        "up",
        fine.shape[-2:],
        convention,
        base=fine,
        base_mode=SUBTRACT_FROM_BASE,
        store=False,
        energy=True,
    )[1]
    return parts.view(fine.shape[0], -1).sum(dim=1) / math.prod(fine.shape[1:])


def _triton_rebuild(band: torch.Tensor, coarse: torch.Tensor, convention: str) -> torch.Tensor:
    return _separable(coarse, "up", band.shape[-2:], convention, base=band, base_mode=ADD_BASE)[0]


def _torch_down(x: torch.Tensor, size: tuple[int, int], convention: str) -> torch.Tensor:
    return ref.pyr_down(x, convention)


def _torch_detail(fine: torch.Tensor, coarse: torch.Tensor, convention: str) -> torch.Tensor:
    return ref.detail(fine, coarse, convention).to(fine.dtype)


class _Steps(NamedTuple):
    down: Callable[[torch.Tensor, tuple[int, int], str], torch.Tensor]
    up: Callable[[torch.Tensor, tuple[int, int], str], torch.Tensor]
    detail: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
    energy: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
    rebuild: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]


_STEPS = {
    "triton": _Steps(_triton_down, _triton_up, _triton_detail, _triton_energy, _triton_rebuild),
    "torch": _Steps(
        compiled(_torch_down),
        compiled(ref.pyr_up),
        compiled(_torch_detail),
        compiled(ref.detail_energy),
        compiled(ref.rebuild),
    ),
}


def _gaussian(x: torch.Tensor, levels: int, convention: str, steps: _Steps) -> list[torch.Tensor]:
    out = [x]
    for size in pyramid_sizes(*x.shape[-2:], levels, convention)[1:]:
        out.append(steps.down(out[-1], size, convention))
    return out


def _pyramid_call(op: str, x: object, levels: object, convention: object, backend: str | None):
    """Validate a pyramid op's arguments; return its backend's steps and the Gaussian pyramid."""
    x = _check_image(op, x)
    convention = _check_convention(op, convention)
    levels = _check_levels(op, levels, *x.shape[-2:], convention)
    steps = _STEPS[resolve(op, x, backend)]
    return steps, _gaussian(x, levels, convention, steps)


def pyr_down(
    x: torch.Tensor, *, convention: str = "opencv", backend: str | None = None
) -> torch.Tensor:
    """Blur and halve: (B, C, H, W) -> (B, C, H', W'), H' = ceil(H/2) (opencv) or floor (kornia).

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> tuple(kernels.pyr_down(torch.rand(1, 3, 7, 10)).shape)
        (1, 3, 4, 5)
        >>> float(kernels.pyr_down(torch.ones(1, 1, 7, 10)).mean())  # the blur keeps constants
        1.0
    """
    op = "pyr_down"
    x = _check_image(op, x)
    convention = _check_convention(op, convention)
    if convention == "kornia" and min(x.shape[-2:]) < 2:
        _checks.fail(op, "H, W >= 2 for kornia sizes (floor halves)", f"shape {tuple(x.shape)}")
    size = pyramid_sizes(*x.shape[-2:], 2, convention)[1]
    return _STEPS[resolve(op, x, backend)].down(x, size, convention)


def pyr_up(
    x: torch.Tensor,
    size: tuple[int, int] | None = None,
    *,
    convention: str = "opencv",
    backend: str | None = None,
) -> torch.Tensor:
    """Double and blur: (B, C, H, W) -> (B, C, *size), size (2H, 2W) by default; see the module
    docstring for the other size each convention allows.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> tuple(kernels.pyr_up(torch.rand(1, 3, 4, 5)).shape)
        (1, 3, 8, 10)
        >>> tuple(kernels.pyr_up(torch.rand(1, 3, 4, 5), size=(7, 9)).shape)
        (1, 3, 7, 9)
    """
    op = "pyr_up"
    x = _check_image(op, x)
    convention = _check_convention(op, convention)
    size = _up_size(op, x, size, convention)
    return _STEPS[resolve(op, x, backend)].up(x, size, convention)


def gaussian_pyramid(
    x: torch.Tensor, levels: int, *, convention: str = "opencv", backend: str | None = None
) -> list[torch.Tensor]:
    """``levels`` images [x, pyr_down(x), ...], finest first; level 0 is x itself.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> [tuple(g.shape[-2:]) for g in kernels.gaussian_pyramid(torch.rand(1, 1, 9, 9), 3)]
        [(9, 9), (5, 5), (3, 3)]
    """
    op = "gaussian_pyramid"
    x = _check_image(op, x)
    convention = _check_convention(op, convention)
    levels = _check_levels(op, levels, *x.shape[-2:], convention)
    return _gaussian(x, levels, convention, _STEPS[resolve(op, x, backend)])


def laplacian_pyramid(
    x: torch.Tensor, levels: int, *, convention: str = "opencv", backend: str | None = None
) -> list[torch.Tensor]:
    """``levels`` images, finest first: L_l = G_l - pyr_up(G_{l+1}, size of G_l) for
    l < levels - 1, and the coarsest Gaussian level G_{levels-1} last. In x's dtype.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x = torch.rand(2, 3, 9, 12)
        >>> lap = kernels.laplacian_pyramid(x, 3)
        >>> [tuple(level.shape[-2:]) for level in lap]
        [(9, 12), (5, 6), (3, 3)]
    """
    op = "laplacian_pyramid"
    steps, g = _pyramid_call(op, x, levels, convention, backend)
    return [steps.detail(g[i], g[i + 1], convention) for i in range(len(g) - 1)] + [g[-1]]


def reconstruct(
    laplacian: Sequence[torch.Tensor], *, convention: str = "opencv", backend: str | None = None
) -> torch.Tensor:
    """Inverse of ``laplacian_pyramid``: G_l = L_l + pyr_up(G_{l+1}), exact to the rounding of
    the levels' dtype (float32: a few ulp).

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x = torch.rand(2, 3, 9, 12)
        >>> bool((kernels.reconstruct(kernels.laplacian_pyramid(x, 3)) - x).abs().max() < 1e-5)
        True
    """
    op = "reconstruct"
    if isinstance(laplacian, torch.Tensor) or not isinstance(laplacian, Sequence) or not laplacian:
        _checks.fail(
            op, "a non-empty list of (B, C, H, W) tensors", type(laplacian).__name__, TypeError
        )
    convention = _check_convention(op, convention)
    first = _check_image(op, laplacian[0])
    for i, band in enumerate(laplacian):
        band = _check_image(op, band)
        if band.shape[:2] != first.shape[:2] or band.dtype != first.dtype:
            expected = f"level {i} with (B, C) = {tuple(first.shape[:2])} and dtype {first.dtype}"
            _checks.fail(op, expected + " like level 0", f"{tuple(band.shape)} {band.dtype}")
        if band.device != first.device:
            _checks.fail(op, f"level {i} on {first.device} like level 0", band.device)
        if i > 0:
            want = pyramid_sizes(*laplacian[i - 1].shape[-2:], 2, convention)[1]
            if tuple(band.shape[-2:]) != want:
                _checks.fail(
                    op, f"level {i} of size {want} ({convention} sizes)", tuple(band.shape[-2:])
                )
    steps = _STEPS[resolve(op, first, backend)]
    cur = laplacian[-1]
    for band in reversed(laplacian[:-1]):
        cur = steps.rebuild(band, cur, convention)
    return cur


def resample(
    x: torch.Tensor,
    size: tuple[int, int],
    *,
    convention: str = "opencv",
    backend: str | None = None,
) -> torch.Tensor:
    """Move (B, C, H, W) x to ``size`` along the pyramid: upward with zero detail (the image whose
    Laplacian pyramid is x at the coarsest level and zero elsewhere, the exact multiresolution
    model; the Triton backend composes the pyr_up chain into one pass), downward by the Gaussian
    pyramid. ``size`` must lie on the pyramid chain through x, above or below it.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> x = torch.rand(1, 1, 5, 5)
        >>> tuple(kernels.resample(x, (9, 9)).shape), tuple(kernels.resample(x, (3, 3)).shape)
        ((1, 1, 9, 9), (1, 1, 3, 3))
        >>> float(kernels.resample(torch.ones(1, 1, 5, 5), (9, 9)).mean())  # constants stay
        1.0
    """
    op = "resample"
    x = _check_image(op, x)
    convention = _check_convention(op, convention)
    size = _check_size(op, size)
    h, w = x.shape[-2:]
    below = pyramid_sizes(h, w, max_levels(h, w, convention), convention)
    above = pyramid_sizes(*size, max_levels(*size, convention), convention)
    if size not in below and (h, w) not in above:
        _checks.fail(
            op,
            f"a size whose pyramid holds {h}x{w}, or one in {h}x{w}'s pyramid {below} "
            f"({convention} sizes)",
            size,
        )
    backend = resolve(op, x, backend)
    if size == (h, w):
        return x.clone()
    if size in below:
        return _gaussian(x, below.index(size) + 1, convention, _STEPS[backend])[-1]
    if backend == "triton":
        return _separable(x, "synth", size, convention)[0]
    for s in reversed(above[: above.index((h, w))]):
        x = _STEPS[backend].up(x, s, convention)
    return x


def level_energy(
    x: torch.Tensor, levels: int, *, convention: str = "opencv", backend: str | None = None
) -> torch.Tensor:
    """(B, levels) float32: the share of each Laplacian level in the pyramid's energy, finest first.

    A level's energy is its area-normalised squared norm mean(L_l^2) over (C, H_l, W_l), the level
    read as a function on the unit square, so a level's share does not depend on its pixel count;
    shares sum to 1. Laplacian levels are not orthogonal, so this splits the pyramid's energy, not
    exactly ||x||^2. A sample with no energy gets NaN shares. The Laplacian levels are never
    written: the kernel reduces G_l - pyr_up(G_{l+1}) to per-tile sums of squares in its epilogue.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> shares = kernels.level_energy(torch.randn(2, 1, 16, 16), 3)
        >>> tuple(shares.shape), bool(((shares.sum(dim=1) - 1).abs() < 1e-5).all())
        ((2, 3), True)
    """
    op = "level_energy"
    steps, g = _pyramid_call(op, x, levels, convention, backend)
    e = [steps.energy(g[i], g[i + 1], convention) for i in range(len(g) - 1)]
    e = torch.stack(e + [g[-1].float().pow(2).mean(dim=(1, 2, 3))], dim=1)
    return e / e.sum(dim=1, keepdim=True)
