"""Pure-torch twins of the resolution-pyramid ops in ``kernels/pyramid.py``.

Written the plain way (reflect-pad by index, separable 5-tap blur as shifted sums, slicing for
decimation, zero insertion, ``F.interpolate`` for the kornia-like resizes), so that they check the
kernels' operator tables rather than share them. They compute in float32 and return the input
dtype. They validate nothing: the public launchers in ``kernels/pyramid.py`` do.

Two conventions (see ``kernels/pyramid.py`` for the full statement):

- ``"opencv"``: ``pyr_down`` blurs and keeps the even rows and columns: side ``ceil(n / 2)``;
  ``pyr_up`` inserts zeros, blurs with 4x the kernel and crops to the target size.
- ``"kornia"``: ``pyr_down`` blurs and resizes bilinearly (``align_corners=False``) to side
  ``floor(n / 2)``; ``pyr_up`` resizes bilinearly and then blurs.

Borders reflect without repeating the edge pixel (OpenCV's ``BORDER_REFLECT_101``, torch's
``"reflect"``), folded as many times as needed, so images of side 1 and 2 are valid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BINOMIAL_5 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
CONVENTIONS = ("opencv", "kornia")


def reflect_indices(n: int, pad: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n + 2 pad,) source index of each position in ``[-pad, n + pad)``, reflect-101 folded."""
    p = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(p)
    period = 2 * (n - 1)
    p = p.abs() % period
    return torch.where(p >= n, period - p, p)


def blur(x: torch.Tensor) -> torch.Tensor:
    """Separable [1 4 6 4 1] / 16 blur with reflect-101 borders: (B, C, H, W) -> same, float32."""
    x = x.float()
    h, w = x.shape[-2:]
    xp = x.index_select(-1, reflect_indices(w, 2, x.device))
    xp = sum(k * xp[..., t : t + w] for t, k in enumerate(BINOMIAL_5))
    xp = xp.index_select(-2, reflect_indices(h, 2, x.device))
    return sum(k * xp[..., t : t + h, :] for t, k in enumerate(BINOMIAL_5))


def down_side(n: int, convention: str) -> int:
    """One side after ``pyr_down``: ceil half (opencv) or floor half (kornia)."""
    return (n + 1) // 2 if convention == "opencv" else n // 2


def down_size(h: int, w: int, convention: str) -> tuple[int, int]:
    """Output (H, W) of ``pyr_down``."""
    return down_side(h, convention), down_side(w, convention)


def _bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def pyr_down(x: torch.Tensor, convention: str = "opencv") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W'), sides from ``down_size``."""
    b = blur(x)
    if convention == "opencv":
        out = b[..., ::2, ::2]
    else:
        out = _bilinear(b, down_size(*x.shape[-2:], convention))
    return out.to(x.dtype)


def _up_float(x: torch.Tensor, size: tuple[int, int] | None, convention: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    ho, wo = size if size is not None else (2 * h, 2 * w)
    if convention == "opencv":
        # cv2.pyrUp to an odd side 2n - 1 crops its 2n result
        z = x.new_zeros((*x.shape[:-2], 2 * h, 2 * w), dtype=torch.float32)
        z[..., ::2, ::2] = x.float()
        return 4.0 * blur(z)[..., :ho, :wo]
    return blur(_bilinear(x.float(), (ho, wo)))


def pyr_up(
    x: torch.Tensor, size: tuple[int, int] | None = None, convention: str = "opencv"
) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), default size (2H, 2W)."""
    return _up_float(x, size, convention).to(x.dtype)


def gaussian_pyramid(
    x: torch.Tensor, levels: int, convention: str = "opencv"
) -> list[torch.Tensor]:
    """``levels`` images: x, pyr_down(x), pyr_down(pyr_down(x)), ..."""
    out = [x]
    for _ in range(levels - 1):
        out.append(pyr_down(out[-1], convention))
    return out


def detail(fine: torch.Tensor, coarse: torch.Tensor, convention: str = "opencv") -> torch.Tensor:
    """Float32 detail level ``fine - pyr_up(coarse, size of fine)``, rounded nowhere (as the
    kernel's epilogue): (B, C, H, W), (B, C, H', W') -> (B, C, H, W) float32."""
    return fine.float() - _up_float(coarse, fine.shape[-2:], convention)


def rebuild(band: torch.Tensor, coarse: torch.Tensor, convention: str = "opencv") -> torch.Tensor:
    """One reconstruction step ``band + pyr_up(coarse, size of band)``, in band's dtype."""
    return (band.float() + _up_float(coarse, band.shape[-2:], convention)).to(band.dtype)


def detail_energy(fine: torch.Tensor, coarse: torch.Tensor, convention: str = "opencv"):
    """(B,) float32 mean square of ``detail(fine, coarse)``."""
    return detail(fine, coarse, convention).pow(2).mean(dim=(1, 2, 3))


def laplacian_pyramid(
    x: torch.Tensor, levels: int, convention: str = "opencv"
) -> list[torch.Tensor]:
    """``levels`` images: G_l - pyr_up(G_{l+1}) for l < levels - 1, then the coarsest G."""
    g = gaussian_pyramid(x, levels, convention)
    bands = [detail(g[i], g[i + 1], convention).to(x.dtype) for i in range(levels - 1)]
    return bands + [g[-1]]


def reconstruct(laplacian: list[torch.Tensor], convention: str = "opencv") -> torch.Tensor:
    """Inverse of ``laplacian_pyramid``: G_l = L_l + pyr_up(G_{l+1})."""
    cur = laplacian[-1]
    for band in reversed(laplacian[:-1]):
        cur = rebuild(band, cur, convention)
    return cur


def chain(h: int, w: int, levels: int, convention: str) -> list[tuple[int, int]]:
    """Sides of the pyramid levels of an (h, w) image: ``levels`` pairs, (h, w) first."""
    sizes = [(h, w)]
    for _ in range(levels - 1):
        sizes.append(down_size(*sizes[-1], convention))
    return sizes


def resample(x: torch.Tensor, size: tuple[int, int], convention: str = "opencv") -> torch.Tensor:
    """Move x to ``size`` on its pyramid chain: pyr_up with zero detail, or pyr_down."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x.clone()
    if size[0] * size[1] < h * w:
        steps = next(i for i, s in enumerate(chain(h, w, 64, convention)) if s == tuple(size))
        return gaussian_pyramid(x, steps + 1, convention)[-1]
    sizes = chain(size[0], size[1], 64, convention)
    steps = next(i for i, s in enumerate(sizes) if s == (h, w))
    for s in reversed(sizes[:steps]):
        x = pyr_up(x, s, convention)
    return x


def level_energy(x: torch.Tensor, levels: int, convention: str = "opencv") -> torch.Tensor:
    """(B, levels) float32 shares of the Laplacian levels' area-normalised energy."""
    g = gaussian_pyramid(x, levels, convention)
    e = [detail_energy(g[i], g[i + 1], convention) for i in range(levels - 1)]
    e = torch.stack(e + [g[-1].float().pow(2).mean(dim=(1, 2, 3))], dim=1)
    return e / e.sum(dim=1, keepdim=True)
