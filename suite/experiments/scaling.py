"""The scaling experiment (SCIENCE.md, E1 and E2), end to end: train, attack, diagnose, fit.

For every data family, model family and training regime, a classifier is trained at each side;
the correctly classified test points (the same seeded test scenes at every side) are attacked;
per-sample norms and diagnostics are kept, summarised per side (one ``results.cells.CellRecord``
per cell) and fitted across sides:

- norms: minimal pixel L2 and area-normalised L2 (exact for linear models, DeepFool with
  bisection for networks), smallest L-inf epsilon (exact for linear models, PGD bisection for
  networks), success rates; a model below ``models.learned_threshold`` is not attacked;
- mechanism: ||grad_x f||_2 and ||grad_x f||_1, the share of the L2 perturbation's energy in each
  Laplacian level (finest first), the fraction of pixels carrying 90% of its energy;
- E2: m = mean |df/dx_i|, the margin |f| and eps * m * N for the smallest L-inf epsilon;
- slopes with bootstrap intervals under each reading, the verdict, E2's nearest prediction, and
  the uniform-cube control.

``SIZES`` holds the CPU default (sides 8 to 128, linear and MLP) and the GPU size (sides to 1024,
the CNN included); ``config()`` picks one by device, overridable by ``HDBENCH_SCALING_SIZE``.
Every pass of a model carries at most ``Config.batch_pixels`` pixels: the attacked points go in
slices (the searches are per sample, so slices change no result), and so do training minibatches.
``run_cells`` computes the cells alone, and with a ``cells.CellStore`` keeps each as it finishes
and reads back those already kept, so that a run stopped by a deadline resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hdbench import kernels
from hdbench.results.cells import CellRecord
from hdbench.results.vocabulary import READINGS
from hdbench.suite import common
from hdbench.suite.experiments import analysis as A
from hdbench.suite.experiments import attacks
from hdbench.suite.experiments import models as M
from hdbench.suite.experiments.cells import CellStore, predicted_attack_s
from hdbench.suite.experiments.data import FAMILIES, Scenes

SIZE_ENV = "HDBENCH_SCALING_SIZE"
MIN_ATTACKED = 8  # fewer correctly classified test points than this: no norm is reported
MIN_SIDES = 3  # resolutions a slope needs


@dataclasses.dataclass(frozen=True)
class Config:
    """What one run of the experiment covers; every number of it is reported with the results."""

    name: str
    sides: tuple[int, ...]
    models: tuple[str, ...]
    test_points: int
    more_max_side: int  # the "more" regime (2 N samples) is trained up to this side
    training: M.Training
    families: tuple[str, ...] = FAMILIES
    regimes: tuple[str, ...] = M.REGIMES
    classes: int = 2
    contrast: float = 1.0  # class signal: the class pattern's weight in the scenes
    seed: int = 0
    control_samples: int = 512
    n_boot: int = 2000
    batch_pixels: int = M.BATCH_PIXELS  # the most pixels one pass of a model carries

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["training"] = dataclasses.asdict(self.training)
        return d


SIZES = {
    "cpu": Config(
        name="cpu",
        sides=(8, 16, 32, 64, 128),
        models=("linear", "mlp"),
        test_points=128,
        more_max_side=128,
        training=M.Training(steps=150, batch=128),
    ),
    # the suite's smoke test (HDBENCH_SMOKE=1): every code path, in seconds; no number to keep
    "smoke": Config(
        name="smoke",
        sides=(8, 16, 32),
        models=("linear", "mlp"),
        test_points=32,
        more_max_side=16,
        training=M.Training(steps=30, batch=32),
        n_boot=200,
        control_samples=128,
    ),
    "gpu": Config(
        name="gpu",
        sides=(8, 16, 32, 64, 128, 256, 512, 1024),
        models=("linear", "mlp", "cnn"),
        test_points=512,
        more_max_side=256,
        training=M.Training(steps=600, batch=256),
    ),
}


def config(device: str) -> Config:
    """The size for `device` ("cuda" -> gpu, else cpu), or "smoke" under HDBENCH_SMOKE=1, or the
    one named by HDBENCH_SCALING_SIZE."""
    default = "gpu" if device == "cuda" else "cpu"
    name = os.environ.get(SIZE_ENV) or ("smoke" if common.smoke() else default)
    if name not in SIZES:
        raise ValueError(f"{SIZE_ENV}: expected one of {tuple(SIZES)}, got {name!r}")
    return SIZES[name]


def _attack(
    model: torch.nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, backend: str | None
) -> dict[str, torch.Tensor]:
    """Norms, success flags, L2 perturbations (of the successes) and gradient diagnostics of
    correctly classified points x (B, ...), y (B,); (B,) tensors but ``delta``."""
    lin = attacks.linearise(model, x, y)
    out = attacks.diagnostics(lin)._asdict()
    if name == "linear":
        l2, linf = attacks.linear_distances(*model.affine(), x, y)
        ok = torch.ones_like(y, dtype=torch.bool)
        # the L2-minimal direction of a linear model; level shares are scale-free, so its length
        # is irrelevant
        return {
            **out,
            "l2": l2,
            "l2_area": l2 / math.sqrt(x[0].numel()),
            "linf": linf,
            "ok_l2": ok,
            "ok_linf": ok,
            "delta": lin.grad,
        }
    df = attacks.deepfool(model, x, y, backend=backend)
    pgd = attacks.min_linf(model, x, y, method="pgd", backend=backend)
    return {
        **out,
        "l2": df.norms.l2,
        "l2_area": df.norms.l2_area,
        "linf": pgd.norms.linf,
        "ok_l2": df.success,
        "ok_linf": pgd.success,
        "delta": (df.x_adv - x)[df.success],
    }


def _point(
    model: torch.nn.Module,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    backend: str | None,
    learned: float,
    batch_pixels: int = M.BATCH_PIXELS,
) -> dict[str, Any]:
    """Attack the correctly classified test points of one trained model, `batch_pixels` pixels
    at a time; per-sample arrays and per-side summaries. A model below the test accuracy
    `learned`, or with fewer than ``MIN_ATTACKED`` such points, is not attacked: its record says
    why ("skipped")."""
    keep = M.accuracy(model, x, y, batch_pixels)
    xa, ya = x[keep], y[keep]
    out: dict[str, Any] = {"clean_accuracy": float(keep.double().mean()), "attacked": len(ya)}
    if out["clean_accuracy"] < learned:
        out["attacked"] = 0
        out["skipped"] = f"did not learn: test accuracy {out['clean_accuracy']:.3f} < {learned:.2f}"
        return out
    if len(ya) < MIN_ATTACKED:
        out["attacked"] = 0
        out["skipped"] = f"{len(ya)} correctly classified points, fewer than {MIN_ATTACKED}"
        return out
    pixels = xa[0].numel()
    rows = M.rows_per_pass(batch_pixels, pixels)
    parts = [
        _attack(model, name, xa[i : i + rows], ya[i : i + rows], backend)
        for i in range(0, len(ya), rows)
    ]
    res = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    diag = attacks.Diagnostics(*(res[k] for k in attacks.Diagnostics._fields))
    l2, l2_area, linf = res["l2"], res["l2_area"], res["linf"]
    ok_l2, ok_linf, delta = res["ok_l2"], res["ok_linf"], res["delta"]
    side = x.shape[-1]
    levels = kernels.max_levels(side, side)
    shares = kernels.level_energy(delta, levels) if len(delta) else torch.empty(0, levels)
    both = ok_l2 & ok_linf
    out.update(
        success_rate=float(ok_l2.double().mean()),
        success_rate_linf=float(ok_linf.double().mean()),
        l2=l2[ok_l2].double().cpu().numpy(),
        l2_area=l2_area[ok_l2].double().cpu().numpy(),
        linf=linf[ok_linf].double().cpu().numpy(),
        m=diag.mean_abs_grad.double().cpu().numpy(),
        margin=diag.margin.double().cpu().numpy(),
        eps_m_n=(linf * diag.mean_abs_grad * pixels)[both].double().cpu().numpy(),
        grad_l2=A.median_or_nan(diag.grad_l2),
        grad_l1=A.median_or_nan(diag.grad_l1),
        level_shares=[A.median_or_nan(shares[:, i]) for i in range(levels)],
        finest_share=A.median_or_nan(shares[:, 0]) if len(shares) else math.nan,
        pixels_90=A.median_or_nan(attacks.energy_concentration(delta)) if len(delta) else math.nan,
    )
    for key in ("l2", "l2_area", "linf", "m", "margin", "eps_m_n"):
        a = out[key]
        out[f"median_{key}"] = float(np.median(a)) if a.size else math.nan
    out["mean_l2"] = float(out["l2"].mean()) if out["l2"].size else math.nan
    return out


def fit_slopes(cfg: Config, points: dict[int, CellRecord], *, e2: bool = True) -> dict[str, Any]:
    """Readings' slopes and verdicts, and (with `e2`) E2's slopes against N, over the sides with
    norms, of one (family, model, regime): `points` {side: its record, the per-sample arrays
    ``l2``, ``l2_area`` and for E2 ``linf``, ``m``, ``margin``, ``eps_m_n`` used}, fitted with
    `cfg`'s bootstrap and seed. Returns {"sides": [...], reading or "e2_<qty>": {...}} or, with
    fewer than ``MIN_SIDES`` sides, {"sides", "why"}."""
    sides = [s for s in sorted(points) if points[s].l2.size]
    out: dict[str, Any] = {"sides": sides}
    if len(sides) < MIN_SIDES:
        out["why"] = f"norms at {len(sides)} sides, fewer than {MIN_SIDES}"
        return out
    for reading, (norm, _, _) in READINGS.items():
        xs = [A.against(reading, s) for s in sides]
        sl = A.loglog_slope(
            xs, [getattr(points[s], norm) for s in sides], n_boot=cfg.n_boot, seed=cfg.seed
        )
        out[reading] = {**sl._asdict(), "verdict": A.verdict(sl.low, sl.high)}
    for qty in ("linf", "m", "margin", "eps_m_n") if e2 else ():
        values = {s: getattr(points[s], qty) for s in sides}
        usable = [s for s in sides if values[s].size and (values[s] > 0).all()]
        if len(usable) < MIN_SIDES:
            continue
        xs = [A.against("l2_N", s) for s in usable]
        sl = A.loglog_slope(xs, [values[s] for s in usable], n_boot=cfg.n_boot, seed=cfg.seed)
        match, inside = A.nearest_prediction(sl)
        out[f"e2_{qty}"] = {**sl._asdict(), "match": match, "match_in_interval": inside}
    return out


def control(cfg: Config, device: str) -> dict[str, Any]:
    """The uniform-cube control at the experiment's pixel counts: slopes and mean/expected ratio."""
    ns = [s * s for s in cfg.sides]
    dist = [A.control_distances(n, cfg.control_samples, seed=cfg.seed, device=device) for n in ns]
    out = {}
    for i, norm in enumerate(("l2", "linf")):
        samples = [d[i].cpu().numpy() for d in dist]
        sl = A.loglog_slope(ns, samples, statistic="mean", n_boot=cfg.n_boot, seed=cfg.seed)
        expected = A.control_expected(ns[-1])[i]
        out[norm] = {
            **sl._asdict(),
            "expected_slope": 0.0 if norm == "l2" else -0.5,
            "mean_ratio": float(samples[-1].mean()) / expected,
        }
    return out


def run_cells(
    cfg: Config,
    device: str = "cpu",
    *,
    backend: str | None = None,
    log: Callable[[str], None] | None = None,
    store: CellStore | None = None,
    deadline: float | None = None,
) -> dict[tuple, dict[str, Any]]:
    """Train and attack every (family, model, regime, side) cell of `cfg` on `device`.

    With a `store`, cells it holds are read back, not run again, and each cell is stored as it
    finishes. With a `deadline` too (a ``time.monotonic()`` value), training stops before a
    step past it (its state kept in the store), and an attack that the same model's stored
    smaller sides predict to end past it is not started (unless it would not fit in the whole
    time this call was given either: then waiting cannot help, and it starts): both raise
    ``models.DeadlineReached``, and the same call later resumes.

    Returns:
        ``{(family, model, regime, side): CellRecord}``: what ``_point`` measured, with the
        training samples, training accuracy and seconds (``train_s``, ``attack_s``), and
        ``read_back`` where it came from the store; for a cell outside the size, an untrained
        record (``trained`` False) whose ``skipped`` says why.
    """
    if deadline is not None and store is None:
        raise ValueError("run_cells: expected a store with a deadline, got none")
    t0, given = time.perf_counter(), None if deadline is None else deadline - time.monotonic()
    say = log or (lambda _msg: None)
    points: dict[tuple, dict[str, Any]] = {}
    for family in cfg.families:
        scenes = Scenes(
            family, cfg.sides, seed=cfg.seed, classes=cfg.classes, contrast=cfg.contrast
        )
        test: dict = {}  # the test scenes, rendered once a cell of the family needs them
        for model_name in cfg.models:
            for regime in cfg.regimes:
                for side in cfg.sides:
                    key = (family, model_name, regime, side)
                    if regime == "more" and side > cfg.more_max_side:
                        points[key] = CellRecord(
                            *key,
                            skipped=f"the 'more' regime runs to side "
                            f"{cfg.more_max_side} in the {cfg.name} size",
                        )
                        continue
                    p = store.load(cfg, key, device) if store is not None else None
                    if p is not None:
                        p.read_back = True
                    else:
                        test = test or M.test_set(scenes, cfg.test_points, device)
                        p = _cell(
                            cfg,
                            scenes,
                            key,
                            test[side],
                            device,
                            backend,
                            store,
                            deadline,
                            given,
                            say,
                        )
                    points[key] = p
                    say(
                        f"scaling: {family}/{model_name}/{regime} side {side}: accuracy "
                        f"{p.clean_accuracy:.3f}, median L2 {p.median_l2:.4g}"
                        f" ({time.perf_counter() - t0:.0f} s)"
                    )
    return points


def _cell(
    cfg: Config,
    scenes: Scenes,
    cell: tuple,
    test: tuple[torch.Tensor, torch.Tensor],
    device: str,
    backend: str | None,
    store: CellStore | None,
    deadline: float | None,
    given: float | None,
    say: Callable[[str], None],
) -> CellRecord:
    """One cell of ``run_cells``: train, attack the `test` points (x, y), store. `given`: the
    seconds from the call's start to `deadline`."""
    family, model_name, regime, side = cell
    trained = M.train(
        model_name,
        scenes,
        side,
        regime,
        training=cfg.training,
        seed=cfg.seed + side,
        device=device,
        batch_pixels=cfg.batch_pixels,
        checkpoint=store.checkpoint(cfg, cell, device) if store else None,
        deadline=deadline,
    )
    if deadline is not None and store is not None:
        ahead = predicted_attack_s(store.attack_seconds(cfg, cell, device), side)
        what = f"the attack of {family}/{model_name}/{regime} at side {side} (about {ahead:.0f} s)"
        if ahead > given:
            say(f"scaling: {what} is longer than the {given:.0f} s given; starting it all the same")
        elif time.monotonic() + ahead > deadline:
            raise M.DeadlineReached(
                f"run_cells: {what} would end past the deadline; its trained model is kept"
            )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    a0 = time.perf_counter()
    measured = _point(
        trained.model,
        model_name,
        *test,
        backend,
        M.learned_threshold(cfg.classes),
        cfg.batch_pixels,
    )
    p = CellRecord(
        *cell,
        **measured,
        train_samples=trained.train_samples,
        train_accuracy=trained.train_accuracy,
        train_s=trained.seconds,
        attack_s=time.perf_counter() - a0,
    )
    if device == "cuda":
        p.max_mem_gib = torch.cuda.max_memory_allocated() / 2**30
    if store is not None:
        store.store(cfg, cell, device, p)
    return p


def run(
    cfg: Config,
    device: str = "cpu",
    *,
    backend: str | None = None,
    log: Callable[[str], None] | None = None,
    store: CellStore | None = None,
) -> dict[str, Any]:
    """Run the whole experiment of `cfg` on `device`: ``run_cells`` (reading and filling
    `store` where given), the slopes of every (family, model, regime) and the control.

    Returns:
        ``{"config": ..., "device": ..., "seconds": ..., "points": {(family, model, regime, side):
        CellRecord}, "slopes": {(family, model, regime): {...}}, "control": ...,
        "cells_read": cells read back from `store`, not computed in this run}``.
    """
    t0 = time.perf_counter()
    points = run_cells(cfg, device, backend=backend, log=log, store=store)
    by_cell: dict[tuple, dict[int, CellRecord]] = {}
    for (family, model_name, regime, side), p in points.items():
        kept = by_cell.setdefault((family, model_name, regime), {})
        if p.skipped is None:
            kept[side] = p
    return {
        "config": cfg.as_dict(),
        "device": device,
        "points": points,
        "slopes": {k: fit_slopes(cfg, by_side) for k, by_side in by_cell.items()},
        "control": control(cfg, device),
        "seconds": time.perf_counter() - t0,
        "cells_read": sum(p.read_back for p in points.values()),
    }
