"""Scaling laws from per-sample measurements (SCIENCE.md, reporting rules; E1, E2).

- ``loglog_slope``: the slope of log(statistic) against log(x) over resolutions, with a bootstrap
  95% interval that resamples each resolution's samples with replacement (percentile method,
  all bootstrap replicates fitted at once by least squares).
- ``verdict``: the rule fixed before any run, for a predicted slope s < 0: "agrees" when the
  interval's upper end is at or below 0.8 s, "disagrees" when its lower end is above 0.6 s,
  "inconclusive" otherwise.
- ``against``: the abscissa of a reading (``results.vocabulary.READINGS``: n the pixel count N
  or the side R, for the pixel L2 and the area-normalised L2 norm; the paper's prediction is
  -1/2 against the reading's variable).
- ``nearest_prediction``: which of E2's predictions for the minimal L-inf epsilon (-1 Goodfellow,
  -1/2, 0 resolution-consistent) the measured slope matches.
- ``control_distances``: E2's control with a known answer, x uniform in [0, 1]^n and a random
  dense hyperplane through the cube's centre: E[L2 distance] = E|N(0, 1/12)| for every n, and the
  L-inf distance falls like n^-1/2 (about 1 / sqrt(12 n)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from hdbench.results.vocabulary import PREDICTED, READINGS

GOODFELLOW_PREDICTIONS = (-1.0, -0.5, 0.0)


class Slope(NamedTuple):
    """A fitted log-log slope with its bootstrap 95% interval."""

    value: float
    low: float
    high: float


def median_or_nan(t: torch.Tensor) -> float:
    """The median of the values of `t` as a float; NaN when it is empty."""
    return float(t.double().median()) if t.numel() else math.nan


def _statistic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "median":
        return lambda a: np.median(a, axis=-1)
    if name == "mean":
        return lambda a: np.mean(a, axis=-1)
    raise ValueError(f"loglog_slope: expected statistic 'median' or 'mean', got {name!r}")


def _fit(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Least-squares slopes of logy (..., R) against logx (R,)."""
    xc = logx - logx.mean()
    return ((logy - logy.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc * xc).sum()


def loglog_slope(
    xs: Sequence[float],
    samples: Sequence[Sequence[float]],
    *,
    statistic: str = "median",
    n_boot: int = 2000,
    seed: int = 0,
) -> Slope:
    """Slope of log(statistic(samples[i])) against log(xs[i]) with a bootstrap 95% interval.

    Args:
        xs: (R,) positive abscissae (pixel counts or sides), at least two distinct.
        samples: R arrays of positive per-sample values (lengths may differ, none empty).
        statistic: ``"median"`` or ``"mean"``.
        n_boot: bootstrap replicates; seed: their generator's seed.

    Returns:
        ``Slope(value, low, high)``.

    Raises:
        ValueError: too few resolutions, an empty or non-positive sample, mismatched lengths.
    """
    op = "loglog_slope"
    stat = _statistic(statistic)
    x = np.asarray(xs, dtype=np.float64)
    if x.ndim != 1 or len(samples) != x.size or np.unique(x).size < 2 or (x <= 0).any():
        raise ValueError(
            f"{op}: expected >= 2 distinct positive xs and one sample array per x, "
            f"got xs={list(xs)} and {len(samples)} arrays"
        )
    arrays = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    for xi, a in zip(x, arrays, strict=True):
        if a.size == 0 or not np.isfinite(a).all() or (a <= 0).any():
            raise ValueError(
                f"{op}: expected finite positive samples at x = {xi:g}, got "
                f"{a.size} values (min {a.min() if a.size else 'n/a'})"
            )
    logx = np.log(x)
    value = float(_fit(logx, np.log([stat(a) for a in arrays])))
    rng = np.random.default_rng(seed)
    boot = np.stack([stat(a[rng.integers(0, a.size, size=(n_boot, a.size))]) for a in arrays], 1)
    slopes = _fit(logx, np.log(boot))
    low, high = np.percentile(slopes, [2.5, 97.5])
    return Slope(value, float(low), float(high))


def verdict(low: float, high: float, predicted: float = PREDICTED) -> str:
    """The fixed rule for a predicted slope s < 0: "agrees" (high <= 0.8 s), "disagrees"
    (low > 0.6 s) or "inconclusive"."""
    if not predicted < 0:
        raise ValueError(f"verdict: expected a negative predicted slope, got {predicted!r}")
    if not low <= high:
        raise ValueError(f"verdict: expected low <= high, got {low!r}, {high!r}")
    if high <= 0.8 * predicted:
        return "agrees"
    if low > 0.6 * predicted:
        return "disagrees"
    return "inconclusive"


def against(reading: str, side: int, channels: int = 1) -> float:
    """The abscissa of `reading` at `side`: the pixel count N = channels * side^2, or R = side."""
    if reading not in READINGS:
        raise ValueError(f"against: expected reading in {tuple(READINGS)}, got {reading!r}")
    return float(side) if READINGS[reading].variable == "R" else float(channels * side * side)


def nearest_prediction(slope: Slope) -> tuple[float, bool]:
    """(the E2 prediction nearest the measured slope, whether it lies in the 95% interval)."""
    best = min(GOODFELLOW_PREDICTIONS, key=lambda p: abs(p - slope.value))
    return best, bool(slope.low <= best <= slope.high)


def control_distances(
    n: int, samples: int, *, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L2, L-inf) distances of `samples` points uniform in [0, 1]^n, each to its own random dense
    hyperplane w . (x - 1/2) = 0, w ~ N(0, I_n) (the expectation is over both): float64
    (samples,) each, computed exactly."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"control_distances: expected n a positive int, got {n!r}")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + n)
    w = torch.randn(samples, n, generator=gen, dtype=torch.float64).to(device)
    x = torch.rand(samples, n, generator=gen, dtype=torch.float64).to(device)
    f = ((x - 0.5) * w).sum(dim=1).abs()
    return f / w.norm(dim=1), f / w.abs().sum(dim=1)


def control_expected(n: int) -> tuple[float, float]:
    """Large-n expectations of the control's (L2, L-inf) distances: E|N(0, 1/12)| = 1/sqrt(6 pi)
    and 1 / sqrt(12 n) (||w||_2 / ||w||_1 -> sqrt(pi / 2) / sqrt(n))."""
    return 1.0 / math.sqrt(6 * math.pi), 1.0 / math.sqrt(12 * n)
