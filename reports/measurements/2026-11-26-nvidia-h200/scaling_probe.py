"""Part of the scaling experiment's GPU size, one cell at a time, and its slopes.

    python scaling_probe.py run POINTS.jsonl FAMILY MODELS [REGIMES] [--min-side S] [--max-side S]
    python scaling_probe.py fit POINTS.jsonl[.gz]
    python scaling_probe.py control OUT.json

(e.g. run points.jsonl natural linear,mlp,cnn more,fewer; run from the repository's root with
it on PYTHONPATH.)

``run`` is ``suite.experiments.scaling.run`` on the GPU size restricted to one family, the given
models and regimes, and the sides between the two S. It appends every finished (model, regime,
side) cell to POINTS.jsonl as it completes (per-sample norms, the point's summary, training and
attack seconds, peak GPU memory), so a run stopped early keeps its cells. While the largest side
stays 1024, a cell's data do not depend on which other sides run (natural scenes are drawn at the
largest side, the other families' at side 8, each side's noise from its own generator), so the
GPU size can be completed a few cells at a time, e.g. ``natural cnn fewer --min-side 512``.

``fit`` fits the experiment's log-log slopes with bootstrap intervals and its fixed verdict rule
to the cells present (three sides at least), per family, model and regime, as the report does.

``control`` is the experiment's uniform-cube control (``scaling.control``) at the GPU size's
pixel counts, written to OUT.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from suite.experiments import models as M
from suite.experiments import scaling as S


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run(
    out: str, family: str, models: tuple[str, ...], regimes: tuple[str, ...],
    sides: tuple[int, int],
) -> None:  # fmt: skip
    dev, gpu = _device(), S.SIZES["gpu"]
    sides = tuple(s for s in gpu.sides if sides[0] <= s <= sides[1])
    cfg = dataclasses.replace(gpu, families=(family,), models=models, regimes=regimes, sides=sides)
    print("config", json.dumps(cfg.as_dict()), flush=True)
    t0, current = time.perf_counter(), {}
    train, point = M.train, S._point

    def timed_train(name, scenes, side, regime, **kw):
        c0 = time.perf_counter()
        trained = train(name, scenes, side, regime, **kw)
        current.update(regime=regime, train_s=time.perf_counter() - c0)
        return trained

    def recorded_point(model, name, x, y, *args, **kw):
        c0 = time.perf_counter()
        p = point(model, name, x, y, *args, **kw)
        mem = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0
        rec = {"family": family, "model": name, "side": int(x.shape[-1]), **current,
               "attack_s": time.perf_counter() - c0, "elapsed_s": time.perf_counter() - t0,
               "max_mem_gib": mem}  # fmt: skip
        for k, v in p.items():
            if isinstance(v, np.ndarray):
                rec[k] = v.tolist()
            elif isinstance(v, (int, float, str, list)):
                rec[k] = v
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return p

    S.M.train, S._point = timed_train, recorded_point
    res = S.run(cfg, dev, log=lambda m: print(m, flush=True))
    print(f"done in {res['seconds']:.1f} s", flush=True)


def fit(points: str) -> None:
    """The experiment's own fit of the cells in `points`, per family, model and regime, as the
    report's "Scaling on a GPU" page makes it (``reports.gpu_scaling.fits``)."""
    from reports import gpu_scaling
    from reports.science import verdict_text

    slopes = gpu_scaling.fits(gpu_scaling.load([Path(points)]))
    for (family, model, regime, sides), rows in slopes.groupby(
        ["family", "model", "regime", "sides"], sort=False
    ):
        print(f"{family}/{model}/{regime}, sides {sides}")
        for r in rows.itertuples():
            print(f"  {r.reading:10s} {r.slope:+.3f} [{r.slope_low:+.3f}, {r.slope_high:+.3f}] "
                  f"{verdict_text(r.verdict)}")  # fmt: skip


def control(out: str) -> None:
    """The GPU size's control case, timed, as JSON."""
    dev, c0 = _device(), time.perf_counter()
    res = S.control(S.SIZES["gpu"], dev)
    res["seconds"], res["device"] = time.perf_counter() - c0, dev
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("points")
    r.add_argument("family")
    r.add_argument("models", type=lambda v: tuple(v.split(",")))
    r.add_argument("regimes", nargs="?", type=lambda v: tuple(v.split(",")), default=M.REGIMES)
    r.add_argument("--min-side", type=int, default=min(S.SIZES["gpu"].sides))
    r.add_argument("--max-side", type=int, default=max(S.SIZES["gpu"].sides))
    sub.add_parser("fit").add_argument("points")
    sub.add_parser("control").add_argument("out")
    a = ap.parse_args()
    if a.command == "run":
        run(a.points, a.family, a.models, a.regimes, (a.min_side, a.max_side))
    elif a.command == "fit":
        fit(a.points)
    else:
        control(a.out)
