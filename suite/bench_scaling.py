"""Perturbation-norm scaling across resolutions (SCIENCE.md, E1, E2) as asv ``track_`` benchmarks.

One run of ``suite.experiments.scaling`` (in a ``setup_cache`` shared by every class here: asv
keys the cache by the function, so the experiment runs once per ``asv run``) feeds:

- ``TrackScaling`` (family x model x regime x side): median and mean minimal pixel L2, median
  area-normalised L2 and L-inf, success rates, clean accuracy, points attacked, training samples,
  input-gradient norms, the finest pyramid level's share of the perturbation's energy, the
  fraction of pixels carrying 90% of it, and E2's m, margin and eps * m * N;
- ``TrackScalingSlope`` (family x model x regime x reading): log-log slope with its bootstrap 95%
  interval under each reading of O(1/sqrt(n)), and the verdict (1 agrees, 0 inconclusive,
  -1 disagrees) of the fixed rule in ``suite.experiments.analysis``;
- ``TrackGoodfellow`` (family x model x regime x quantity): E2's slopes against N, and the
  prediction (-1, -1/2, 0) nearest the smallest L-inf epsilon's slope;
- ``TrackControl`` (norm): the uniform-cube control, measured, beside its known slope;
- ``TrackScalingRun`` (quantity): the size of the run (test points, training steps and batch,
  bootstrap resamples, control samples, largest side), its wall time and the cells read back
  from a cell folder, for the report's provenance lines.

Sizes: the CPU default (sides 8 to 128, linear and MLP) or the GPU size (to 1024, the CNN too),
by device; ``HDBENCH_SCALING_SIZE=cpu|gpu`` overrides. With ``HDBENCH_SCALING_CELLS=DIR``, the
run reads the cells that folder holds (``suite.experiments.cells``: the GPU size run in pieces
beforehand) and adds those it computes. Parameter lists are the same everywhere;
what a machine does not run is skipped in ``setup`` with the reason. A model that did not learn
is skipped for every attack number, its clean accuracy still tracked.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

from hdbench.results.cells import CellRecord
from hdbench.results.vocabulary import READINGS as VOCABULARY_READINGS
from hdbench.results.vocabulary import VERDICT_CODES
from hdbench.suite import common, provenance
from hdbench.suite.experiments import models as M
from hdbench.suite.experiments import scaling as S
from hdbench.suite.experiments.cells import store_from_env
from hdbench.suite.experiments.data import FAMILIES

SIDES = tuple(sorted({s for c in S.SIZES.values() for s in c.sides}))
READINGS = tuple(VOCABULARY_READINGS)
QUANTITIES = ("linf", "m", "margin", "eps_m_n")
NORMS = ("l2", "linf")
# the CPU default runs in under 2 minutes; the GPU size's cells measured on an H200 (the natural
# family: linear and MLP to side 1024 in 140 s, the CNN to side 256 in 90 s, its side 512 over
# 150 s) put the whole GPU size near an hour, so the shared run may take four
TIMEOUT = 4 * 3600
SEED = 0  # scenes, training and bootstrap; the sizes are in suite.experiments.scaling.SIZES


def scaling_results() -> dict[str, Any]:
    """The experiment at this machine's size (the shared ``setup_cache`` of every class here)."""
    dev = common.device()
    cfg = dataclasses.replace(S.config(dev), seed=SEED)
    return S.run(
        cfg, dev, log=lambda msg: print(msg, file=sys.stderr, flush=True), store=store_from_env()
    )


scaling_results.timeout = TIMEOUT


def _point(results: dict, family: str, model: str, regime: str, side: int) -> CellRecord:
    cfg = results["config"]
    key = (family, model, regime, side)
    if key not in results["points"]:
        size = f"{cfg['name']} size (sides {cfg['sides']}, models {cfg['models']})"
        common.skip(f"{family}/{model}/{regime} at side {side} is not in the {size}")
    return results["points"][key]


# TrackScaling's numbers: {name: (the point's key, unit)}; those of the cell's training
POINT_TRACKS = {
    "clean_accuracy": ("clean_accuracy", "fraction"),
    "train_samples": ("train_samples", "samples"),
    "attacked": ("attacked", "points"),
}
# and those of its attack (skipped where the model was not attacked)
ATTACK_TRACKS = {
    "median_l2": ("median_l2", "pixel L2"),
    "mean_l2": ("mean_l2", "pixel L2"),
    "median_l2_area": ("median_l2_area", "area L2"),
    "median_linf": ("median_linf", "L-inf"),
    "success_rate": ("success_rate", "fraction"),
    "success_rate_linf": ("success_rate_linf", "fraction"),
    "grad_l2": ("grad_l2", "norm"),
    "grad_l1": ("grad_l1", "norm"),
    "finest_share": ("finest_share", "fraction"),
    "pixels_90": ("pixels_90", "fraction"),
    "mean_abs_grad": ("median_m", "m"),
    "margin": ("median_margin", "logit"),
    "eps_m_n": ("median_eps_m_n", "eps*m*n"),
}


@common.tracks(POINT_TRACKS, via="_value")
@common.tracks(ATTACK_TRACKS, via="_attack")
class TrackScaling:
    """Minimal perturbations and their diagnostics per data family, model, regime and side."""

    params = (list(FAMILIES), list(M.MODELS), list(M.REGIMES), list(SIDES))
    param_names = ("family", "model", "regime", "side")
    version = "scaling-points-2"
    timeout = TIMEOUT
    setup_cache = staticmethod(scaling_results)

    def setup(self, results: dict, family: str, model: str, regime: str, side: int) -> None:
        self.p = _point(results, family, model, regime, side)
        if not self.p.trained:  # e.g. beyond the regime's side cap
            common.skip(self.p.skipped)

    def _value(self, key: str) -> Any:
        return getattr(self.p, key)

    def _attack(self, key: str) -> float:
        if self.p.skipped is not None:
            common.skip_in_benchmark(self.p.skipped)
        return float(getattr(self.p, key))


def _slopes(results: dict, family: str, model: str, regime: str) -> dict[str, Any]:
    cfg = results["config"]
    key = (family, model, regime)
    if key not in results["slopes"]:
        common.skip(f"{family}/{model}/{regime} is not in the {cfg['name']} size")
    s = results["slopes"][key]
    if "why" in s:
        common.skip(f"no slope for {family}/{model}/{regime}: {s['why']}")
    return s


@common.tracks(
    {
        "slope": ("value", "slope"),
        "slope_low": ("low", "slope"),
        "slope_high": ("high", "slope"),
    }
)
class _SlopeTracks:
    """The slope, and its bootstrap 95% interval, of the fit ``setup`` leaves in ``self.s``."""

    s: dict[str, Any]


class TrackScalingSlope(_SlopeTracks):
    """Log-log slope of the minimal L2 norm under each reading, its interval and the verdict."""

    params = (list(FAMILIES), list(M.MODELS), list(M.REGIMES), list(READINGS))
    param_names = ("family", "model", "regime", "reading")
    version = "scaling-slopes-2"
    timeout = TIMEOUT
    setup_cache = staticmethod(scaling_results)

    def setup(self, results: dict, family: str, model: str, regime: str, reading: str) -> None:
        self.s = _slopes(results, family, model, regime)[reading]

    def track_verdict(self, *_: Any) -> int:
        return VERDICT_CODES[self.s["verdict"]]

    track_verdict.unit = "verdict"


@common.tracks(
    {
        "match": ("match", "slope"),
    }
)
class TrackGoodfellow(_SlopeTracks):
    """E2: slopes against N of the smallest L-inf epsilon, m, the margin and eps * m * N."""

    params = (list(FAMILIES), list(M.MODELS), list(M.REGIMES), list(QUANTITIES))
    param_names = ("family", "model", "regime", "quantity")
    version = "scaling-goodfellow-1"
    timeout = TIMEOUT
    setup_cache = staticmethod(scaling_results)

    def setup(self, results: dict, family: str, model: str, regime: str, quantity: str) -> None:
        slopes = _slopes(results, family, model, regime)
        if f"e2_{quantity}" not in slopes:
            common.skip(f"{quantity} is not positive at {S.MIN_SIDES} sides or more")
        self.s = slopes[f"e2_{quantity}"]
        self.linf = slopes.get("e2_linf")

    def track_match_in_interval(self, *_: Any) -> int:
        return int(self.s["match_in_interval"])

    track_match_in_interval.unit = "bool"


@common.tracks(
    {
        "expected_slope": ("expected_slope", "slope"),
    }
)
class TrackControl(_SlopeTracks):
    """The uniform-cube control: distances to a random hyperplane, whose slopes are known."""

    params = (list(NORMS),)
    param_names = ("norm",)
    version = "scaling-control-1"
    timeout = TIMEOUT
    setup_cache = staticmethod(scaling_results)

    def setup(self, results: dict, norm: str) -> None:
        self.s = results["control"][norm]

    def track_mean_distance_ratio(self, *_: Any) -> float:
        ratio = self.s["mean_ratio"]
        if not math.isfinite(ratio):
            raise RuntimeError(f"control mean distance ratio is {ratio}")
        return ratio

    track_mean_distance_ratio.unit = "ratio"


# what the run covered, as the experiment reports it (the size depends on the device and on
# HDBENCH_SCALING_SIZE / HDBENCH_SMOKE, so the report reads it from here)
RUN_SIZE = {
    "test_points": lambda r: r["config"]["test_points"],
    "train_steps": lambda r: r["config"]["training"]["steps"],
    "train_batch": lambda r: r["config"]["training"]["batch"],
    "bootstrap_resamples": lambda r: r["config"]["n_boot"],
    "control_samples": lambda r: r["config"]["control_samples"],
    "largest_side": lambda r: max(r["config"]["sides"]),
    "seconds": lambda r: round(r["seconds"], 1),
    "cells_read": lambda r: r.get("cells_read", 0),  # from HDBENCH_SCALING_CELLS, not computed
}


class TrackScalingRun:
    """The size of the run behind every scaling number: test points per side, training steps
    and batch, bootstrap resamples, control samples, the largest side, its wall time, and the
    cells it read back from a cell folder rather than computed."""

    params = (list(RUN_SIZE),)
    param_names = ("quantity",)
    version = "scaling-run-1"
    timeout = TIMEOUT
    setup_cache = staticmethod(scaling_results)

    def track_value(self, results: dict, quantity: str) -> float:
        return float(RUN_SIZE[quantity](results))

    track_value.unit = "count (seconds for seconds)"


# every benchmark above records the sizes and seeds behind its numbers (suite.provenance)
provenance.record(globals())
