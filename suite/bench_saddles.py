"""Saddle-point statistics (SCIENCE.md, E3) as asv ``track_`` benchmarks.

- ``TrackRandomMatrix`` (model x d): P(minimum) of random Hessians with its Wilson 95% interval,
  the mean index fraction; ``TRIALS`` Hessians per d in one ``setup_cache`` Monte Carlo (d to 12
  on the CPU, to 24 on a GPU). ``TrackRandomMatrixExact``: the exact P(minimum) where known.
- ``TrackDecayRate`` (model): the fitted theta of P(minimum) ~ exp(-theta d^p), p = 1 for
  independent signs (exact: ln 2) and p = 2 for the GOE (asymptotically ln 3 / 4).
- ``TrackTorusFinder`` (d): the critical-point finder on f = sum_i sin(a_i x_i + phi_i): points
  found against the exact count, starts rejected (gradient norm above the threshold), and the
  fraction of minima found against the exact 2^-d.

Every number comes from the run; the exact values are tracked beside them, never in their place.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from suite import common
from suite.experiments import landscape as L

DS = tuple(range(1, 25))
CPU_MAX_D = 12
TRIALS = 100_000
TORUS_DS = (1, 2, 3, 4, 5)
TORUS_STARTS_PER_POINT = 40


def _ds(dev: str) -> tuple[int, ...]:
    return tuple(d for d in DS if dev == "cuda" or d <= CPU_MAX_D)


def random_matrix_stats(dev: str) -> dict[tuple[str, int], dict[str, float]]:
    """{(model, d): p_min, low, high, mean_index_fraction} for this device's d."""
    out = {}
    for model in L.MODELS:
        for d in _ds(dev):
            idx = L.sample_indices(model, d, TRIALS, seed=1000 * d + len(model), device=dev)
            p = L.p_minimum(idx)
            out[(model, d)] = {
                "p_min": p.value,
                "low": p.low,
                "high": p.high,
                "mean_index_fraction": float(idx.double().mean()) / d,
            }
    return out


class TrackRandomMatrix:
    """P(minimum) and the index of random-matrix Hessians against dimension."""

    params = (list(L.MODELS), list(DS))
    param_names = ("model", "d")
    version = "saddles-random-matrix-1"
    timeout = 600

    def setup_cache(self) -> dict[tuple[str, int], dict[str, float]]:
        return random_matrix_stats(common.device())

    def setup(self, stats: dict, model: str, d: int) -> None:
        if (model, d) not in stats:
            common.skip(f"d {d} is run on a GPU only (CPU runs d <= {CPU_MAX_D})")
        self.s = stats[(model, d)]

    def track_p_minimum(self, stats: dict, model: str, d: int) -> float:
        return self.s["p_min"]

    track_p_minimum.unit = "probability"

    def track_p_minimum_low(self, stats: dict, model: str, d: int) -> float:
        return self.s["low"]

    track_p_minimum_low.unit = "probability"

    def track_p_minimum_high(self, stats: dict, model: str, d: int) -> float:
        return self.s["high"]

    track_p_minimum_high.unit = "probability"

    def track_mean_index_fraction(self, stats: dict, model: str, d: int) -> float:
        return self.s["mean_index_fraction"]

    track_mean_index_fraction.unit = "fraction"


class TrackRandomMatrixExact:
    """The exact P(minimum), beside the measured one, where it is known (signs: every d; GOE:
    d = 1, 2); skipped elsewhere."""

    params = (list(L.MODELS), list(DS))
    param_names = ("model", "d")
    version = "saddles-random-matrix-exact-1"

    def setup(self, model: str, d: int) -> None:
        self.exact = L.exact_p_minimum(model, d)
        if self.exact is None:
            common.skip(f"no exact P(minimum) is known for {model} at d = {d}")

    def track_p_minimum_exact(self, model: str, d: int) -> float:
        return self.exact

    track_p_minimum_exact.unit = "probability"


class TrackDecayRate:
    """theta of P(minimum) ~ exp(-theta d^p) fitted over this machine's d (p = 1 signs, 2 GOE)."""

    params = (list(L.MODELS),)
    param_names = ("model",)
    version = "saddles-decay-rate-1"
    timeout = 600

    def setup_cache(self) -> dict[tuple[str, int], dict[str, float]]:
        return random_matrix_stats(common.device())

    def track_decay_rate(self, stats: dict, model: str) -> float:
        ds = sorted(d for m, d in stats if m == model)
        rate = L.decay_rate(
            ds, [stats[(model, d)]["p_min"] for d in ds], 1 if model == "signs" else 2
        )
        if math.isnan(rate):
            raise RuntimeError(f"fewer than two d with any minimum for {model}")
        return rate

    track_decay_rate.unit = "per d (signs) or per d^2 (goe)"


def torus_problem(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies 1, 2, 1, 2, ... and seeded phases: 2^d * prod(a) critical points."""
    a = torch.tensor([1 + i % 2 for i in range(d)])
    phi = torch.rand(d, generator=torch.Generator().manual_seed(d), dtype=torch.float64) * 6.0
    return a, phi


def torus_stats() -> dict[int, dict[str, Any]]:
    out = {}
    for d in TORUS_DS:
        a, phi = torus_problem(d)
        exact, exact_index = L.torus_critical_points(a, phi)
        gen = torch.Generator().manual_seed(d)
        n = TORUS_STARTS_PER_POINT * exact.shape[0]
        starts = torch.rand(n, d, generator=gen, dtype=torch.float64) * 2 * math.pi
        found = L.find_critical_points(L.torus(a, phi), starts)
        out[d] = {
            "found": found.points.shape[0],
            "exact": exact.shape[0],
            "rejected": found.rejected,
            "p_min": float((found.index == 0).double().mean()) if found.points.shape[0] else 0.0,
            "p_min_exact": float((exact_index == 0).double().mean()),
        }
    return out


class TrackTorusFinder:
    """The critical-point finder on a torus landscape whose critical points are known."""

    params = (list(TORUS_DS),)
    param_names = ("d",)
    version = "saddles-torus-1"
    timeout = 600

    def setup_cache(self) -> dict[int, dict[str, Any]]:
        return torus_stats()

    def track_found(self, stats: dict, d: int) -> int:
        return stats[d]["found"]

    track_found.unit = "points"

    def track_exact_count(self, stats: dict, d: int) -> int:
        return stats[d]["exact"]

    track_exact_count.unit = "points"

    def track_rejected(self, stats: dict, d: int) -> int:
        return stats[d]["rejected"]

    track_rejected.unit = "starts"

    def track_p_minimum(self, stats: dict, d: int) -> float:
        return stats[d]["p_min"]

    track_p_minimum.unit = "probability"
