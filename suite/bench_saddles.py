"""Saddle-point statistics (SCIENCE.md, E3) as asv ``track_`` benchmarks.

- ``TrackRandomMatrix`` (model x d): P(minimum) of random Hessians with its Wilson 95% interval,
  the mean index fraction; ``TRIALS`` Hessians per d in one ``setup_cache`` Monte Carlo (d to 12
  on the CPU, to 24 on a GPU). ``TrackRandomMatrixExact``: the exact P(minimum) where known.
- ``TrackDecayRate`` (model): the fitted theta of P(minimum) ~ exp(-theta d^p), p = 1 for
  independent signs (exact: ln 2) and p = 2 for the GOE (asymptotically ln 3 / 4).
- ``TrackTorusFinder`` (d): the critical-point finder on f = sum_i sin(a_i x_i + phi_i): points
  found against the exact count, starts rejected (gradient norm above the threshold), and the
  fraction of minima found against the exact 2^-d.
- ``TrackGaussianField`` (d): P(minimum) with its Wilson interval and the mean index fraction of
  the critical points of a Gaussian random field found in a box (d to 6 on the CPU, to 10 on a
  GPU); ``TrackGaussianFieldSearch``: points found, starts rejected, the gradient threshold;
  ``TrackGaussianFieldDecayRate`` (power 1, 2): theta of P(minimum) ~ exp(-theta d^power), to
  set beside ln 2 (signs) and the GOE's fitted theta.
- ``TrackMLPCritical`` (n_params): for a tanh MLP's MSE loss, P(minimum) by Lanczos with its
  interval, the mean index fraction, the mean loss at the points, and the agreement of Lanczos
  with the dense eigendecomposition; ``TrackMLPIndexLoss``: Spearman's rho of index fraction
  against loss; ``TrackMLPSearch``: points kept, starts rejected (gradient norm above
  ``mlp_landscape.GRAD_THRESHOLD``), the threshold. Up to 259 parameters on the CPU, 4099 on a
  GPU.

Three ``setup_cache`` functions (random matrices, fields, MLPs) are module-level and shared by
the classes that name them: asv keys a cache by its function's module and line, so each runs
once. Their ``timeout`` attribute is the cache's limit (asv takes the largest of it and the
classes' ``timeout``).

Every number comes from the run; the exact values are tracked beside them, never in their place.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from hdbench.suite import common, provenance
from hdbench.suite.experiments import analysis as A
from hdbench.suite.experiments import landscape as L
from hdbench.suite.experiments import mlp_landscape as ML

DS = tuple(range(1, 25))
CPU_MAX_D = 12
TRIALS = 100_000
TORUS_DS = (1, 2, 3, 4, 5)
TORUS_STARTS_PER_POINT = 40
# Gaussian fields: d to 6 on the CPU, to 10 on a GPU; a box of FIELD_VOLUME correlation volumes
# (side FIELD_VOLUME^(1/d) ell) explored from FIELD_STARTS uniform starts
FIELD_DS = tuple(range(1, 11))
CPU_MAX_FIELD_D = 6
FIELD_VOLUME = {"cpu": 800.0, "cuda": 40_000.0}
FIELD_STARTS = {"cpu": 3000, "cuda": 200_000}
FIELD_FEATURES = 512
FIELD_POWERS = (1, 2)
# MLPs D_IN -> width -> CLASSES, named by parameter count: widths 2, 8, 32, 128, 512
MLP_SIZES = tuple(ML.parameter_count(w) for w in (2, 8, 32, 128, 512))
CPU_MAX_MLP = 259
MLP_STARTS = {"cpu": 12, "cuda": 48}
MLP_TRAIN_STEPS = 3000
MLP_NEWTON_STEPS = 300


def _ds(dev: str) -> tuple[int, ...]:
    return tuple(d for d in DS if dev == "cuda" or d <= CPU_MAX_D)


def random_matrix_cache() -> dict[tuple[str, int], dict[str, float]]:
    """The Monte Carlo shared by ``TrackRandomMatrix`` and ``TrackDecayRate``: asv keys a
    ``setup_cache`` by its function's module and line, so both classes naming this one function
    run it once."""
    return random_matrix_stats(common.device())


random_matrix_cache.timeout = 600  # asv reads a setup_cache's own timeout before the class's


def random_matrix_stats(dev: str) -> dict[tuple[str, int], dict[str, float]]:
    """{(model, d): p_min, low, high, mean_index_fraction} for this device's d."""
    out = {}
    for model in L.MODELS:
        for d in _ds(dev):
            trials = TRIALS // 20 if common.smoke() else TRIALS
            idx = L.sample_indices(model, d, trials, seed=1000 * d + len(model), device=dev)
            p = L.p_minimum(idx)
            out[(model, d)] = {
                "p_min": p.value,
                "low": p.low,
                "high": p.high,
                "mean_index_fraction": float(idx.double().mean()) / d,
                "index_distribution": L.index_distribution(idx, d).tolist(),
            }
    return out


@common.tracks(
    {
        "p_minimum": ("p_min", "probability"),
        "p_minimum_low": ("low", "probability"),
        "p_minimum_high": ("high", "probability"),
        "mean_index_fraction": ("mean_index_fraction", "fraction"),
    }
)
class TrackRandomMatrix:
    """P(minimum) and the index of random-matrix Hessians against dimension."""

    params = (list(L.MODELS), list(DS))
    param_names = ("model", "d")
    version = "saddles-random-matrix-1"
    timeout = 600
    setup_cache = staticmethod(random_matrix_cache)

    def setup(self, stats: dict, model: str, d: int) -> None:
        if (model, d) not in stats:
            common.skip(f"d {d} is run on a GPU only (CPU runs d <= {CPU_MAX_D})")
        self.s = stats[(model, d)]


class TrackIndexDistribution:
    """The index distribution of random-matrix Hessians: P(index = k) for k = 0 .. d (k > d is
    skipped), from the Monte Carlo of ``TrackRandomMatrix``."""

    params = (list(L.MODELS), list(DS), list(range(max(DS) + 1)))
    param_names = ("model", "d", "index")
    version = "saddles-index-distribution-1"
    timeout = 600
    setup_cache = staticmethod(random_matrix_cache)

    def setup(self, stats: dict, model: str, d: int, index: int) -> None:
        if (model, d) not in stats:
            common.skip(f"d {d} is run on a GPU only (CPU runs d <= {CPU_MAX_D})")
        if index > d:
            common.skip(f"index {index} > d = {d}")
        self.p = stats[(model, d)]["index_distribution"][index]

    def track_probability(self, stats: dict, model: str, d: int, index: int) -> float:
        return self.p

    track_probability.unit = "probability"


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
    setup_cache = staticmethod(random_matrix_cache)

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


@common.tracks(
    {
        "found": ("found", "points"),
        "exact_count": ("exact", "points"),
        "rejected": ("rejected", "starts"),
        "p_minimum": ("p_min", "probability"),
    }
)
class TrackTorusFinder:
    """The critical-point finder on a torus landscape whose critical points are known."""

    params = (list(TORUS_DS),)
    param_names = ("d",)
    version = "saddles-torus-1"
    timeout = 600

    def setup_cache(self) -> dict[int, dict[str, Any]]:
        return torus_stats()

    def setup(self, stats: dict, d: int) -> None:
        self.s = stats[d]


@contextlib.contextmanager
def _cpu_threads(dev: str, n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` torch threads on the CPU: the field and MLP searches are many
    small operations, where a second OpenMP thread adds only synchronisation (40 times slower
    at P = 19 on 2 shared cores)."""
    before = torch.get_num_threads()
    if dev == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- Gaussian random fields --------------------------------------------------------------------


def field_ds(dev: str) -> tuple[int, ...]:
    return tuple(d for d in FIELD_DS if dev == "cuda" or d <= CPU_MAX_FIELD_D)


def field_cache() -> dict[Any, dict[str, Any]]:
    """{d: census numbers} for this device's d, and {("decay", power): theta}; shared by
    ``TrackGaussianField`` and ``TrackGaussianFieldDecayRate`` (one computation)."""
    dev = common.device()
    with _cpu_threads(dev):
        return _field_stats(dev)


field_cache.timeout = 900


def _field_stats(dev: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for d in field_ds(dev):
        f = L.gaussian_field(d, features=FIELD_FEATURES, seed=d, device=dev)
        box = FIELD_VOLUME[dev] ** (1 / d)
        starts = FIELD_STARTS[dev] // 10 if common.smoke() else FIELD_STARTS[dev]
        census = L.field_census(f, starts, box=box, seed=d, device=dev)
        index = census.points.index.cpu()
        n = index.numel()
        p = L.p_minimum(index) if n else None
        out[d] = {
            "found": n,
            "rejected": census.points.rejected,
            "rejected_flat_share": A.median_or_nan(census.points.flat_share),
            "outside": census.outside,
            "threshold": census.points.threshold,
            "p_min": p.value if p else math.nan,
            "low": p.low if p else math.nan,
            "high": p.high if p else math.nan,
            "mean_index_fraction": float(index.double().mean()) / d if n else math.nan,
        }
    ds = field_ds(dev)
    for power in FIELD_POWERS:
        rate = L.decay_rate(ds, [out[d]["p_min"] if out[d]["found"] else 0.0 for d in ds], power)
        out[("decay", power)] = {"rate": rate}
    return out


@common.tracks(
    {
        "p_minimum": ("p_min", "probability"),
        "p_minimum_low": ("low", "probability"),
        "p_minimum_high": ("high", "probability"),
        "mean_index_fraction": ("mean_index_fraction", "fraction"),
    }
)
class TrackGaussianField:
    """Critical points of a Gaussian random field (random Fourier features, correlation length 1)
    in a box of ``FIELD_VOLUME`` correlation volumes: P(minimum) among those found, with its
    Wilson 95% interval, and the mean index fraction (index / d)."""

    params = (list(FIELD_DS),)
    param_names = ("d",)
    version = "saddles-gaussian-field-1"
    timeout = 900
    setup_cache = staticmethod(field_cache)

    def setup(self, stats: dict, d: int) -> None:
        _require_field_d(stats, d)
        self.s = stats[d]
        if not self.s["found"]:
            common.skip(f"no critical point was found in the box at d = {d}")


@common.tracks(
    {
        "found": ("found", "points"),
        "rejected": ("rejected", "starts"),
        "grad_threshold": ("threshold", "gradient norm"),
    }
)
class TrackGaussianFieldSearch:
    """The search behind ``TrackGaussianField``: distinct critical points found in the box, starts
    rejected (gradient norm above the threshold at the end), the threshold, and the median share
    of a rejected start's final gradient along near-flat Hessian directions (near 1: stalled in
    a gradient-flat region; near 0: not converged)."""

    params = (list(FIELD_DS),)
    param_names = ("d",)
    version = "saddles-gaussian-field-search-2"
    timeout = 900
    setup_cache = staticmethod(field_cache)

    def setup(self, stats: dict, d: int) -> None:
        _require_field_d(stats, d)
        self.s = stats[d]

    def track_rejected_flat_share(self, stats: dict, d: int) -> float:
        if not self.s["rejected"]:
            common.skip_in_benchmark("no start was rejected")
        return self.s["rejected_flat_share"]

    track_rejected_flat_share.unit = "fraction"


def _require_field_d(stats: dict, d: int) -> None:
    if d not in stats:
        common.skip(f"d {d} is run on a GPU only (CPU runs d <= {CPU_MAX_FIELD_D})")


class TrackGaussianFieldDecayRate:
    """theta of P(minimum) ~ exp(-theta d^p) for the Gaussian fields over this machine's d, for
    p = 1 (compare independent signs: ln 2) and p = 2 (compare the GOE: ln 3 / 4)."""

    params = (list(FIELD_POWERS),)
    param_names = ("power",)
    version = "saddles-gaussian-field-decay-1"
    timeout = 900
    setup_cache = staticmethod(field_cache)

    def track_decay_rate(self, stats: dict, power: int) -> float:
        rate = stats[("decay", power)]["rate"]
        if math.isnan(rate):
            raise RuntimeError("fewer than two d with any minimum among the field's points")
        return rate

    track_decay_rate.unit = "per d^power"


# --- MLP losses --------------------------------------------------------------------------------


def mlp_sizes(dev: str) -> tuple[int, ...]:
    cap = MLP_SIZES[1] if common.smoke() else CPU_MAX_MLP
    return tuple(p for p in MLP_SIZES if dev == "cuda" or p <= cap)


def mlp_cache() -> dict[int, dict[str, float]]:
    """{parameter count: the critical-point statistics of that MLP's loss} on this device."""
    dev = common.device()
    with _cpu_threads(dev):
        return {n_params: _mlp_stats(n_params, dev) for n_params in mlp_sizes(dev)}


mlp_cache.timeout = 900


def _mlp_stats(n_params: int, dev: str) -> dict[str, float]:
    """The critical-point statistics of the MLP with ``n_params`` parameters on ``dev``."""
    run = ML.mlp_critical_points(
        ML.width_for(n_params),
        starts=MLP_STARTS[dev],
        train_steps=MLP_TRAIN_STEPS,
        newton_steps=MLP_NEWTON_STEPS,
        seed=n_params,
        device=dev,
    )
    n = run.loss.numel()
    p = L.wilson(int(run.is_minimum.sum()), n) if n else None
    dense_min = run.dense_index == 0
    return {
        "found": n,
        "rejected": run.rejected,
        "rejected_flat_share": A.median_or_nan(run.rejected_flat_share),
        "threshold": run.threshold,
        "p_min": p.value if p else math.nan,
        "low": p.low if p else math.nan,
        "high": p.high if p else math.nan,
        "mean_index_fraction": float(run.index_fraction.mean()) if n else math.nan,
        "index_loss_correlation": ML.rank_correlation(run.loss, run.index_fraction),
        "agreement": float((dense_min == run.is_minimum).double().mean()) if n else math.nan,
        "mean_loss": float(run.loss.mean()) if n else math.nan,
    }


@common.tracks(
    {
        "p_minimum": ("p_min", "probability"),
        "p_minimum_low": ("low", "probability"),
        "p_minimum_high": ("high", "probability"),
        "mean_index_fraction": ("mean_index_fraction", "fraction"),
        "mean_loss": ("mean_loss", "loss"),
        "lanczos_dense_agreement": ("agreement", "fraction"),
    }
)
class TrackMLPCritical:
    """Critical points of a tanh MLP's MSE loss on a seeded Gaussian mixture, by parameter count:
    P(minimum) (Lanczos: smallest Ritz value >= -tol) with its Wilson interval, the mean index
    fraction (SLQ), the mean loss at the points, and the share of points where Lanczos and the
    dense eigendecomposition agree on being a minimum. Skipped where no start reached a critical
    point (``TrackMLPSearch`` still says how many were rejected)."""

    params = (list(MLP_SIZES),)
    param_names = ("n_params",)
    version = "saddles-mlp-1"
    timeout = 900
    setup_cache = staticmethod(mlp_cache)

    def setup(self, stats: dict, n_params: int) -> None:
        _require_mlp_size(stats, n_params)
        self.s = stats[n_params]
        if not self.s["found"]:
            common.skip(f"no start reached a critical point at {n_params} parameters")


class TrackMLPIndexLoss:
    """Spearman's rank correlation of the index fraction with the loss over an MLP's critical
    points (positive: higher critical points have more descent directions). Skipped with fewer
    than three points or no spread in either."""

    params = (list(MLP_SIZES),)
    param_names = ("n_params",)
    version = "saddles-mlp-index-loss-1"
    timeout = 900
    setup_cache = staticmethod(mlp_cache)

    def setup(self, stats: dict, n_params: int) -> None:
        _require_mlp_size(stats, n_params)
        self.rho = stats[n_params]["index_loss_correlation"]
        if math.isnan(self.rho):
            common.skip("fewer than three critical points, or no spread in loss or index")

    def track_index_loss_correlation(self, stats: dict, n_params: int) -> float:
        return self.rho

    track_index_loss_correlation.unit = "Spearman rho"


@common.tracks(
    {
        "found": ("found", "points"),
        "rejected": ("rejected", "starts"),
        "grad_threshold": ("threshold", "gradient norm"),
    }
)
class TrackMLPSearch:
    """The search behind ``TrackMLPCritical``: distinct critical points kept, starts rejected
    (gradient norm above the threshold: flat regions or no convergence), the threshold, and the
    median share of a rejected start's final gradient along near-flat Hessian directions (near
    1: stalled in a gradient-flat region; near 0: not converged)."""

    params = (list(MLP_SIZES),)
    param_names = ("n_params",)
    version = "saddles-mlp-search-2"
    timeout = 900
    setup_cache = staticmethod(mlp_cache)

    def setup(self, stats: dict, n_params: int) -> None:
        _require_mlp_size(stats, n_params)
        self.s = stats[n_params]

    def track_rejected_flat_share(self, stats: dict, n_params: int) -> float:
        if not self.s["rejected"]:
            common.skip_in_benchmark("no start was rejected")
        return self.s["rejected_flat_share"]

    track_rejected_flat_share.unit = "fraction"


def _require_mlp_size(stats: dict, n_params: int) -> None:
    if n_params not in stats:
        common.skip(f"{n_params} parameters are run on a GPU only (CPU: <= {CPU_MAX_MLP})")


# every benchmark above records the sizes and seeds behind its numbers (suite.provenance)
provenance.record(globals())
