"""Line searches back to the decision boundary along a segment, for DeepFool's points.

Along the segment from a clean point to an adversarial one, ``search_boundary`` brackets the
first crossing of the margin by a window of points at once (one call of the model's tail per
window where the model has an affine stem: along a segment the stem's output is the same segment
between its ends' outputs), then narrows the bracket by the Illinois variant of false position,
so that the reported point flips the label and a point slightly closer along the same direction
does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hdbench.kernels import compiled
from hdbench.suite.experiments.linearise import model_margin


def _along(
    tail: nn.Module, z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor, lift: torch.Tensor
) -> Callable:
    """margin_at(t (R, P), rows (R,) or None for all) -> margins less ``lift`` (R, P) at
    lerp(z0, z1, t) of the stem's outputs z0, z1 (B, ...) at the ends of B segments, P points of
    each segment in one call of the tail: the stem being affine, these are the stem's outputs at
    the same points of the segments in input space."""
    ones = [1] * (z0.dim() - 1)

    def at(t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        r, p = t.shape
        a, b, yr, lr = (
            (z0, z1, y, lift) if rows is None else (z0[rows], z1[rows], y[rows], lift[rows])
        )
        if p == 1:  # no copy of the segment ends for a single point
            zt, yt = torch.lerp(a, b, t.view(r, *ones)), yr
        else:
            zt = torch.lerp(a[:, None], b[:, None], t.view(r, p, *ones)).flatten(0, 1)
            yt = yr.repeat_interleave(p)
        return model_margin(tail, zt, yt).view(r, p) - lr[:, None]

    return at


def search_boundary(
    tail: nn.Module,
    z0: torch.Tensor,
    z1: torch.Tensor,
    y: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    tol: float,
    *,
    window: int,
    rows: torch.Tensor,
    fast: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_boundary`` (with its `window`, on `rows` (B,) bool) on the segments between stem
    outputs z0 and z1, margins f0 < 0 and f1 > 0 at their ends, aiming a little past the
    boundary: at the margin min(tol/4 |f0|, f1/2) rather than 0, which a margin of rounding size
    could read either way. `fast`: its bracketing stage through ``torch.compile`` (for a small
    tail, where the stage is a few dozen small operations). Returns (hi, margin - lift)."""
    lift = torch.minimum(tol / 4 * f0.abs(), f1 / 2)
    f0, f1 = f0 - lift, f1 - lift
    margin_at = _along(tail, z0, z1, y, lift)
    if not fast:
        return _boundary(margin_at, f0, f1, tol=tol, window=window, rows=rows)
    bracket = _bracket_along_compiled(tail, z0, z1, y, lift, f0, f1, tol, window)
    return _illinois(margin_at, *bracket, tol=tol, rows=rows)


def _boundary(
    margin_at: Callable,
    f0: torch.Tensor,
    f1: torch.Tensor,
    *,
    tol: float,
    window: int = 2,
    rows: torch.Tensor | None = None,
    max_evals: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, f(hi)) (B,): the point at t = hi of each segment flipped (margin f(hi) > 0) and a
    point at or above hi (1 - tol) not, given ``margin_at`` (see ``_along``) and the margins
    f0 < 0 at t = 0 and f1 > 0 at t = 1: ``_bracket``, then ``_illinois`` on `rows` (B,) bool
    (all by default) for at most `max_evals` more evaluations."""
    bracket = _bracket(margin_at, f0, f1, tol=tol, window=window)
    return _illinois(margin_at, *bracket, tol=tol, rows=rows, max_evals=max_evals)


def _false_position(
    lo: torch.Tensor, hi: torch.Tensor, flo: torch.Tensor, fhi: torch.Tensor, margin: float = 1e-3
) -> torch.Tensor:
    """The false-position root of each bracket [lo, hi], `margin` of its width inside it (so
    that every step makes progress)."""
    width = hi - lo
    t = (lo * fhi - hi * flo) / (fhi - flo)
    return torch.minimum(torch.maximum(t, lo + margin * width), hi - margin * width)


def _bracket(
    margin_at: Callable, f0: torch.Tensor, f1: torch.Tensor, *, tol: float, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo, flo, hi, fhi) (B,): a bracket of each segment's crossing after two calls of
    ``margin_at``, a fixed sequence of tensor operations (no data-dependent control flow).

    One false-position step on the two ends, then a `window` of points in ratio 1 + tol centred
    on the false-position root of the bracket it leaves, all in one call: where the margin is
    smooth along the segment (the usual case after DeepFool) the window holds the crossing, and
    its first point past it and the point before bracket it within tol. A wider window holds
    more rows; each of its points costs a pass of the tail."""
    lo, hi = torch.zeros_like(f0), torch.ones_like(f0)
    t = _false_position(lo, hi, f0, f1)
    ft = margin_at(t[:, None])[:, 0]
    up = ft > 0
    hi, fhi = torch.where(up, t, hi), torch.where(up, ft, f1)
    lo, flo = torch.where(up, lo, t), torch.where(up, f0, ft)
    # the window, kept inside the bracket; centred on the root itself, which after an exact
    # first step lies on the bracket's end
    steps = torch.arange(window, dtype=f0.dtype, device=f0.device) - (window - 1) / 2
    ts = _false_position(lo, hi, flo, fhi, 0.0)[:, None] * (1 + tol) ** steps
    ts = torch.minimum(torch.maximum(ts, lo[:, None]), hi[:, None])
    fs = margin_at(ts)
    up = fs > 0
    # the first point past the boundary (argmax of a bool row: its first True) and the one before
    k = torch.where(up.any(dim=1), up.to(torch.uint8).argmax(dim=1), window)[:, None]
    ts = torch.cat([lo[:, None], ts, hi[:, None]], dim=1)  # k: the new lower end, k + 1 the upper
    fs = torch.cat([flo[:, None], fs, fhi[:, None]], dim=1)
    return (
        ts.gather(1, k)[:, 0],
        fs.gather(1, k)[:, 0],
        ts.gather(1, k + 1)[:, 0],
        fs.gather(1, k + 1)[:, 0],
    )


def _bracket_along(
    tail: nn.Module,
    z0: torch.Tensor,
    z1: torch.Tensor,
    y: torch.Tensor,
    lift: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    tol: float,
    window: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_bracket`` of ``_along(tail, z0, z1, y, lift)``: a function of tensors and the tail,
    which ``torch.compile`` can take whole."""
    return _bracket(_along(tail, z0, z1, y, lift), f0, f1, tol=tol, window=window)


# the same, as one compiled graph: eager, its two tail passes come with some 60 small operations
# whose dispatch, not arithmetic, is most of a search's time
_bracket_along_compiled = compiled(_bracket_along)


def _illinois(
    margin_at: Callable,
    lo: torch.Tensor,
    flo: torch.Tensor,
    hi: torch.Tensor,
    fhi: torch.Tensor,
    *,
    tol: float,
    rows: torch.Tensor | None = None,
    max_evals: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, f(hi)) (B,) from the brackets [lo, hi] (margins flo <= 0 < fhi) that ``_bracket``
    left: rows still wider than tol go on alone by the Illinois variant of false position, at
    most `max_evals` evaluations; only `rows` (B,) bool, all by default, go on (others carry
    placeholder margins whose search would be wasted)."""
    side = torch.zeros_like(lo)  # +1 / -1: which end moved last (Illinois halves the other)
    f_at_hi = fhi.clone()  # fhi itself may be halved below
    wanted = torch.ones_like(lo, dtype=torch.bool) if rows is None else rows
    for _ in range(max_evals):
        rows = ((hi - lo > tol * hi) & wanted).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        t = _false_position(lo, hi, flo, fhi)[rows]
        ft = margin_at(t[:, None], rows)[:, 0]
        up = ft > 0
        s_rows = side[rows]
        flo[rows] = torch.where(up & (s_rows > 0), flo[rows] / 2, flo[rows])
        fhi[rows] = torch.where(~up & (s_rows < 0), fhi[rows] / 2, fhi[rows])
        hi[rows] = torch.where(up, t, hi[rows])
        fhi[rows] = torch.where(up, ft, fhi[rows])
        f_at_hi[rows] = torch.where(up, ft, f_at_hi[rows])
        lo[rows] = torch.where(up, lo[rows], t)
        flo[rows] = torch.where(up, flo[rows], ft)
        side[rows] = torch.where(up, 1.0, -1.0)
    return hi, f_at_hi
