"""Pyramid kernels against their torch twins, against kornia and OpenCV, and their invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hdbench import kernels
from hdbench.kernels import pyramid as pyr
from hdbench.kernels.reference import pyramid as ref
from tests.conftest import DEVICE, DTYPES
from tests.tolerances import REDUCTION, TOLERANCES

SIZES = [(1, 1), (2, 3), (5, 8), (17, 31), (64, 64)]
CONVENTIONS = ["opencv", "kornia"]


def _image(h: int, w: int, dtype=torch.float32, b: int = 2, c: int = 3) -> torch.Tensor:
    return torch.rand(b, c, h, w, device=DEVICE).to(dtype)


def _close(got, want, dtype=torch.float32) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got.float(), want.float(), **TOLERANCES[dtype])


# a side of 1 has no kornia reduction (tested as an error)
VALID = [(c, s) for c in CONVENTIONS for s in SIZES if c == "opencv" or min(s) >= 2]


# ------------------------------------------------------------------ sizes and borders


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12])
def test_reflect_indices_fold_like_reflect_101(n):
    got = ref.reflect_indices(n, 2).tolist()
    # walk out from each edge, bouncing off the edge pixels without repeating them
    want = []
    for p in range(-2, n + 2):
        while not 0 <= p < n:
            p = -p if p < 0 else 2 * (n - 1) - p
            if n == 1:
                p = 0
        want.append(p)
    assert got == want
    if n >= 3:
        x = torch.arange(float(n)).view(1, 1, n)
        assert F.pad(x, (2, 2), mode="reflect").long().view(-1).tolist() == got


@pytest.mark.parametrize(
    "convention, side, down, ups",
    [
        ("opencv", 1, 1, (2, 1)),
        ("opencv", 5, 3, (10, 9)),
        ("opencv", 8, 4, (16, 15)),
        ("opencv", 17, 9, (34, 33)),
        ("kornia", 2, 1, (4, 5)),
        ("kornia", 5, 2, (10, 11)),
        ("kornia", 8, 4, (16, 17)),
        ("kornia", 17, 8, (34, 35)),
    ],
)
def test_size_conventions_are_pinned(convention, side, down, ups):
    x = _image(side, side, b=1, c=1)
    assert kernels.pyr_down(x, convention=convention).shape[-2:] == (down, down)
    assert kernels.pyr_up(x, convention=convention).shape[-2:] == (ups[0], ups[0])
    assert kernels.pyr_up(x, (ups[1], ups[1]), convention=convention).shape[-2:] == (ups[1],) * 2
    assert kernels.pyramid_sizes(side, side, 2, convention) == [(side, side), (down, down)]


def test_max_levels():
    assert kernels.max_levels(1, 1) == 1
    assert kernels.max_levels(64, 64) == 7  # 64 .. 1
    assert kernels.max_levels(5, 8) == 4  # 8, 4, 2, 1
    assert kernels.max_levels(64, 64, "kornia") == 7
    assert kernels.max_levels(5, 8, "kornia") == 3  # 5x8, 2x4, 1x2


# ------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("convention, size", VALID, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pyr_down_matches_reference(convention, size, dtype, backend):
    x = _image(*size, dtype)
    _close(
        kernels.pyr_down(x, convention=convention, backend=backend),
        ref.pyr_down(x, convention),
        dtype,
    )


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("odd", [False, True], ids=["2n", "odd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pyr_up_matches_reference(convention, size, odd, dtype, backend):
    h, w = size
    step = -1 if convention == "opencv" else 1
    target = (2 * h + step, 2 * w + step) if odd else None
    if target is not None and min(target) < 1:
        target = (2 * h, 2 * w + step) if 2 * w + step >= 1 else None
    x = _image(h, w, dtype)
    _close(
        kernels.pyr_up(x, target, convention=convention, backend=backend),
        ref.pyr_up(x, target, convention),
        dtype,
    )


@pytest.mark.parametrize("convention, size", VALID, ids=str)
def test_pyramids_match_reference_and_reconstruct_exactly(convention, size, backend):
    x = _image(*size)
    levels = kernels.max_levels(*size, convention)
    gauss = kernels.gaussian_pyramid(x, levels, convention=convention, backend=backend)
    lap = kernels.laplacian_pyramid(x, levels, convention=convention, backend=backend)
    want_g = ref.gaussian_pyramid(x, levels, convention)
    want_l = ref.laplacian_pyramid(x, levels, convention)
    assert [t.shape[-2:] for t in gauss] == kernels.pyramid_sizes(*size, levels, convention)
    assert gauss[0] is x
    for got, want in zip(gauss + lap, want_g + want_l, strict=True):
        _close(got, want)
    if levels > 1:  # the detail is not trivially zero
        assert lap[0].abs().max() > 0.05
    back = kernels.reconstruct(lap, convention=convention, backend=backend)
    # exact up to float32 rounding: a few ulp of values in [0, 1]
    assert (back - x).abs().max().item() <= 4 * torch.finfo(torch.float32).eps


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reconstruct_in_low_precision_is_exact_to_its_rounding(dtype, backend):
    x = _image(17, 31, dtype)
    lap = kernels.laplacian_pyramid(x, 4, backend=backend)
    assert all(t.dtype == dtype for t in lap)
    back = kernels.reconstruct(lap, backend=backend)
    assert (back.float() - x.float()).abs().max().item() <= 4 * torch.finfo(dtype).eps


def test_non_contiguous_input(backend):
    x = _image(20, 34)[:, :, ::2, 1::2]  # 10 x 17 strided view
    _close(kernels.pyr_down(x, backend=backend), ref.pyr_down(x.contiguous()))
    _close(
        kernels.pyr_up(x.transpose(-1, -2), backend=backend),
        ref.pyr_up(x.transpose(-1, -2).contiguous()),
    )


# ------------------------------------------------------------------ against kornia and OpenCV


@pytest.mark.parametrize("size", [(3, 3), (5, 8), (17, 31), (32, 48)], ids=str)
def test_kornia_convention_matches_kornia(size, backend):
    kornia_t = pytest.importorskip("kornia.geometry.transform")
    x = _image(*size)
    _close(kernels.pyr_down(x, convention="kornia", backend=backend), kornia_t.pyrdown(x))
    _close(kernels.pyr_up(x, convention="kornia", backend=backend), kornia_t.pyrup(x))
    # kornia's reflect padding needs sides >= 3 at every level it reduces
    sizes = kernels.pyramid_sizes(*size, 3, "kornia")
    levels = 1 + sum(min(s) >= 3 for s in sizes[:-1])
    for got, want in zip(
        kernels.gaussian_pyramid(x, levels, convention="kornia", backend=backend),
        kornia_t.build_pyramid(x, levels),
        strict=True,
    ):
        _close(got, want)


def test_kornia_laplacian_matches_where_kornia_does_not_pad(backend):
    kornia_t = pytest.importorskip("kornia.geometry.transform")
    x = _image(32, 48)  # divisible by 2 ** (levels - 1), one side a power of two: no padding
    for got, want in zip(
        kernels.laplacian_pyramid(x, 4, convention="kornia", backend=backend),
        kornia_t.build_laplacian_pyramid(x, 4),
        strict=True,
    ):
        _close(got, want)


@pytest.mark.parametrize("size", SIZES + [(7, 6)], ids=str)
def test_opencv_convention_matches_opencv(size, backend):
    cv2 = pytest.importorskip("cv2")
    x = _image(*size, b=1, c=1)
    img = x[0, 0].cpu().numpy()
    got = kernels.pyr_down(x, backend=backend)[0, 0].cpu().numpy()
    np.testing.assert_allclose(got, cv2.pyrDown(img), **TOLERANCES[torch.float32])
    got = kernels.pyr_up(x, backend=backend)[0, 0].cpu().numpy()
    np.testing.assert_allclose(got, cv2.pyrUp(img), **TOLERANCES[torch.float32])
    h, w = size
    if h > 1 and w > 1:
        got = kernels.pyr_up(x, (2 * h - 1, 2 * w - 1), backend=backend)[0, 0].cpu().numpy()
        want = cv2.pyrUp(img, dstsize=(2 * w - 1, 2 * h - 1))
        np.testing.assert_allclose(got, want, **TOLERANCES[torch.float32])


# ------------------------------------------------------------------ resample and energy


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize(
    "src, dst", [((5, 8), (17, 31)), ((8, 8), (64, 64)), ((4, 4), (4, 4))], ids=str
)
def test_resample_up_is_zero_detail_synthesis(convention, src, dst, backend):
    if convention == "kornia":  # kornia's chain through 17 x 31 is 8 x 15, 4 x 7, ...
        src = kernels.pyramid_sizes(*dst, 3, convention)[-1] if src != dst else src
    x = _image(*src)
    up = kernels.resample(x, dst, convention=convention, backend=backend)
    assert up.shape[-2:] == dst
    _close(up, ref.resample(x, dst, convention))
    # the same as reconstructing a Laplacian pyramid whose detail levels are all zero
    sizes = kernels.pyramid_sizes(*dst, kernels.max_levels(*dst, convention), convention)
    k = sizes.index(tuple(src))
    zeros = [torch.zeros(2, 3, *s, device=DEVICE) for s in sizes[:k]]
    _close(up, ref.reconstruct(zeros + [x], convention))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_resample_down_is_the_gaussian_level(convention, backend):
    x = _image(64, 40)
    sizes = kernels.pyramid_sizes(64, 40, 4, convention)
    got = kernels.resample(x, sizes[3], convention=convention, backend=backend)
    _close(got, ref.gaussian_pyramid(x, 4, convention)[3])


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("size", [(2, 3), (17, 31), (64, 64)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_level_energy_matches_reference_and_sums_to_one(convention, size, dtype, backend):
    x = _image(*size, dtype)
    levels = kernels.max_levels(*size, convention)
    got = kernels.level_energy(x, levels, convention=convention, backend=backend)
    assert got.shape == (2, levels) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref.level_energy(x, levels, convention), **REDUCTION)
    torch.testing.assert_close(got.sum(dim=1), torch.ones(2, device=DEVICE), **REDUCTION)


def test_level_energy_tells_fine_detail_from_coarse_content(backend):
    noise = torch.randn(2, 1, 64, 64, device=DEVICE)
    smooth = kernels.resample(torch.randn(2, 1, 8, 8, device=DEVICE), (64, 64), backend="torch")
    fine = kernels.level_energy(noise, 4, backend=backend)
    coarse = kernels.level_energy(smooth, 4, backend=backend)
    assert (fine[:, 0] > 0.5).all()  # white noise lives in the finest level
    assert (coarse[:, 0] < 0.05).all() and (coarse[:, -1] > 0.5).all()


def test_torch_backend_compiled_matches_eager(monkeypatch):
    """The CPU main job runs the compiled single-level steps: they must agree with the oracle."""
    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "1")
    x = _image(17, 31)
    lap = kernels.laplacian_pyramid(x, 4, backend="torch")
    for got, want in zip(lap, ref.laplacian_pyramid(x, 4), strict=True):
        _close(got, want)
    _close(kernels.reconstruct(lap, backend="torch"), x)
    torch.testing.assert_close(
        kernels.level_energy(x, 4, backend="torch"), ref.level_energy(x, 4), **REDUCTION
    )
    _close(
        kernels.resample(x[..., :5, :8], (17, 31), backend="torch"),
        ref.resample(x[..., :5, :8], (17, 31)),
    )


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: kernels.pyr_down(torch.rand(3, 8, 8)), ValueError, "pyr_down: expected a 4-D"),
        (lambda: kernels.pyr_up(torch.rand(1, 1, 4, 4).to(torch.int32)), TypeError, "pyr_up: "),
        (
            lambda: kernels.pyr_down(torch.rand(1, 1, 4, 4), convention="cv"),
            ValueError,
            "convention",
        ),
        (
            lambda: kernels.pyr_down(torch.rand(1, 1, 1, 5), convention="kornia"),
            ValueError,
            "H, W >= 2",
        ),
        (lambda: kernels.pyr_up(torch.rand(1, 1, 4, 4), (9, 8)), ValueError, "got (9, 8)"),
        (
            lambda: kernels.pyr_up(torch.rand(1, 1, 4, 4), (7, 8), convention="kornia"),
            ValueError,
            "kornia sizes",
        ),
        (lambda: kernels.pyr_up(torch.rand(1, 1, 4, 4), (8,)), TypeError, "pair"),
        (
            lambda: kernels.gaussian_pyramid(torch.rand(1, 1, 8, 8), 5),
            ValueError,
            "levels in [1, 4] for a 8x8 image",
        ),
        (lambda: kernels.laplacian_pyramid(torch.rand(1, 1, 8, 8), 0), ValueError, "levels"),
        (lambda: kernels.level_energy(torch.rand(1, 1, 8, 8), 2.0), TypeError, "levels to be"),
        (lambda: kernels.gaussian_pyramid(torch.rand(1, 1, 8, 8).long(), 2), TypeError, "dtype"),
        (
            lambda: kernels.resample(torch.rand(1, 1, 8, 8), (24, 24)),
            ValueError,
            "resample: expected a size whose pyramid",
        ),
        (lambda: kernels.reconstruct(torch.rand(1, 1, 8, 8)), TypeError, "list"),
        (
            lambda: kernels.reconstruct([torch.rand(1, 1, 8, 8), torch.rand(1, 1, 3, 3)]),
            ValueError,
            "level 1 of size (4, 4)",
        ),
        (
            lambda: kernels.reconstruct([torch.rand(1, 1, 8, 8), torch.rand(1, 2, 4, 4)]),
            ValueError,
            "(B, C) = (1, 1)",
        ),
    ],
)
def test_errors_name_the_op_and_what_was_expected(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_tables_cover_each_output_with_unit_gain():
    # every 1-D operator preserves constants: its weights sum to 1 per output (the pyramid's
    # DC gain), for all kinds, conventions and odd sizes
    for convention in CONVENTIONS:
        for n in (2, 3, 5, 17, 64):
            cases = [("down", n, ref.down_side(n, convention)), ("up", n, 2 * n)]
            cases.append(("synth", n, 4 * n))
            for kind, n_in, n_out in cases:
                if n_out < 1:
                    continue
                idx, w = pyr._table(kind, n_in, n_out, convention)
                assert idx.shape == (n_out, w.shape[1]) and int(idx.max()) < n_in
                torch.testing.assert_close(w.sum(dim=1), torch.ones(n_out), **REDUCTION)
