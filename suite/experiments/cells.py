"""The scaling experiment a cell at a time, kept in a folder, so that a run can stop and resume.

A cell is one (family, model, regime, side) of ``suite.experiments.scaling``: a model trained
and attacked. ``CellStore`` keeps each finished cell as one JSON file (the experiment's point:
per-sample norms, medians, accuracy, with its training and attack seconds), written atomically,
and the training state of a cell stopped halfway (``models.train``'s checkpoint: saved when a
deadline stops it, and every minute, so a process killed outright loses at most a minute of
training and the attack it was in). A cell's file name carries a digest of everything its
numbers depend on (``CellStore.made_of``: the settings, its largest side, the device type,
``CELL_VERSION``), so a store is only read back by runs that would compute the same cell; a cell
computed on one GPU model is read back on another (they differ by rounding only). A folder holds
one run's cells: ``export`` and ``fit`` refuse two cells of the same (family, model, regime,
side) from different runs.

The GPU size is near an hour on an H200, its CNN cells at sides 512 and 1024 minutes each, so
this is how it runs in pieces::

    python -m hdbench.suite.experiments.cells run DIR --families natural --models cnn \\
        --min-side 512 --budget 540    # exit status 3: the budget stopped it; run it again
    python -m hdbench.suite.experiments.cells export DIR OUT/scaling_natural_points.jsonl.gz
    python -m hdbench.suite.experiments.cells fit OUT/scaling_*points.jsonl.gz \\
        --out OUT/scaling_fit.json     # the experiment's fit, which the report shows

``run`` takes the device's size (``scaling.config``) restricted to the families, models,
regimes and sides given, and computes each cell the store lacks; with ``--budget`` it stops
before a training step or an attack that the budget would not see finished (an attack's
seconds are predicted from the same model's smaller sides, by pixels; one predicted to take
longer than the whole budget starts all the same, since waiting cannot help it). The budget is
soft: the first side of a model has no prediction, and a new process compiles the search (some
15 s on a CPU), so leave room for one attack beyond it. ``export`` writes every finished cell as
a line of the JSON-lines file that the report's scaling page (its GPU-size sections) reads from
``reports/measurements/``; ``fit`` prints the experiment's slopes and verdicts over them.
``asv run`` with ``HDBENCH_SCALING_CELLS=DIR`` (an absolute path) reads and fills the same store.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hdbench.results.cells import (
    FIT_FILE,
    Cell,
    CellFolder,
    CellRecord,
    ScalingFit,
    SlopeRow,
    read_points,
    write_points,
)
from hdbench.results.vocabulary import READINGS, VERDICT_CODES, VERDICTS

# bumped whenever a change to the code changes a cell's numbers: cells of other versions are
# not read back
CELL_VERSION = "1"
CELLS_ENV = "HDBENCH_SCALING_CELLS"
STOPPED = 3  # ``run``'s exit status when its budget stopped it


class CellStore(CellFolder):
    """Finished cells, and the training checkpoints of unfinished ones, in `folder`. A cell is
    addressed by the run's ``scaling.Config``, the cell and the device."""

    @staticmethod
    def made_of(cfg: Any, cell: Cell, device: str) -> dict[str, Any]:
        """What the numbers of `cell` in the run `cfg` on `device` depend on."""
        return {
            "version": CELL_VERSION,
            "cell": list(cell),
            "largest_side": max(cfg.sides),
            "seed": cfg.seed,
            "classes": cfg.classes,
            "contrast": cfg.contrast,
            "test_points": cfg.test_points,
            "training": dataclasses.asdict(cfg.training),
            "batch_pixels": cfg.batch_pixels,
            "device": torch.device(device).type,
        }

    @classmethod
    def name(cls, cfg: Any, cell: Cell, device: str) -> str:
        """The file stem of `cell`: the cell, then a digest of ``made_of``."""
        made_of = json.dumps(cls.made_of(cfg, cell, device), sort_keys=True)
        return "-".join(map(str, cell)) + "-" + hashlib.sha256(made_of.encode()).hexdigest()[:12]

    def checkpoint(self, cfg: Any, cell: Cell, device: str) -> Path:
        """Where the cell's training keeps its state until the cell is stored."""
        return self.path(self.name(cfg, cell, device), ".train.pt")

    def load(self, cfg: Any, cell: Cell, device: str) -> CellRecord | None:
        """The stored record of the cell, or None."""
        return self.read(self.name(cfg, cell, device))

    def store(self, cfg: Any, cell: Cell, device: str, record: CellRecord | dict) -> None:
        """Keep `record` (or the fields of one, as ``scaling._point`` measures them) as the
        cell's, named and with what it depends on (set on it), and drop its training
        checkpoint."""
        if isinstance(record, dict):
            record = CellRecord(*cell, **record)
        if record.cell != tuple(cell):
            raise ValueError(f"CellStore.store: expected a record of {cell}, got {record.cell}")
        record.name = self.name(cfg, cell, device)
        record.made_of = self.made_of(cfg, cell, device)
        record.torch = torch.__version__
        record.stored = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.write(record)
        self.checkpoint(cfg, cell, device).unlink(missing_ok=True)

    def attack_seconds(self, cfg: Any, cell: Cell, device: str) -> dict[int, float]:
        """{side: attack seconds} of the stored cells of the same run, family, model and regime
        at the sides of `cfg` below the cell's, those attacked only (a cell that did not learn
        was not attacked)."""
        family, model, regime, side = cell
        out = {}
        for s in (s for s in cfg.sides if s < side):
            p = self.load(cfg, (family, model, regime, s), device)
            if p is not None and p.skipped is None and p.attack_s is not None:
                out[s] = p.attack_s
        return out


def predicted_attack_s(seconds: dict[int, float], side: int) -> float:
    """An attack's seconds at `side` from those at smaller sides (`seconds` {side: s}): the
    largest such side's, scaled by pixels; 0 where none is known."""
    smaller = [s for s in seconds if s < side]
    if not smaller:
        return 0.0
    s = max(smaller)
    return seconds[s] * (side / s) ** 2


def store_from_env() -> CellStore | None:
    """The store named by ``HDBENCH_SCALING_CELLS`` (an absolute path: asv runs a benchmark's
    setup in a temporary folder), or None where it is unset."""
    folder = os.environ.get(CELLS_ENV)
    if not folder:
        return None
    if not Path(folder).is_absolute():
        raise ValueError(
            f"{CELLS_ENV}: expected an absolute path (asv runs benchmarks in a "
            f"temporary folder), got {folder!r}"
        )
    return CellStore(folder)


def _selected(args: argparse.Namespace, device: str):
    from hdbench.suite.experiments import scaling as S

    cfg = S.config(device)
    sides = tuple(s for s in cfg.sides if args.min_side <= s <= args.max_side)
    pick = {"families": args.families, "models": args.models, "regimes": args.regimes}
    for field, chosen in pick.items():
        if chosen is None:
            continue
        unknown = [c for c in chosen if c not in getattr(cfg, field)]
        if unknown:
            raise ValueError(f"cells: expected {field} among {getattr(cfg, field)}, got {unknown}")
    if not sides:
        raise ValueError(
            f"cells: expected sides of {cfg.sides} between {args.min_side} and "
            f"{args.max_side}, got none"
        )
    return dataclasses.replace(
        cfg, sides=sides, **{f: tuple(c) for f, c in pick.items() if c is not None}
    )


def main(argv: list[str] | None = None) -> int:
    from hdbench.suite.experiments import models as M
    from hdbench.suite.experiments import scaling as S

    ap = argparse.ArgumentParser(
        prog="python -m hdbench.suite.experiments.cells", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compute the cells the store lacks")
    r.add_argument("folder")
    listed = {"type": lambda v: v.split(","), "default": None}
    r.add_argument("--families", **listed, help="comma-separated; default: every family")
    r.add_argument("--models", **listed, help="comma-separated; default: the size's models")
    r.add_argument("--regimes", **listed, help="comma-separated; default: both")
    r.add_argument("--min-side", type=int, default=0)
    r.add_argument("--max-side", type=int, default=math.inf)
    r.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds: no training step or predicted attack starts past them",
    )
    e = sub.add_parser("export", help="every stored cell, one JSON line each")
    e.add_argument("folder")
    e.add_argument("out", help="a .jsonl or .jsonl.gz file")
    f = sub.add_parser("fit", help="the experiment's slopes over stored or exported cells")
    f.add_argument("sources", nargs="+", help="cell folders or exported .jsonl[.gz] files")
    f.add_argument("--size", default="gpu", help="the size whose fit and grid apply (gpu)")
    f.add_argument("--out", default=None, help=f"write the fit here (beside points: {FIT_FILE})")
    args = ap.parse_args(argv)
    if args.command == "fit":
        return _fit_command(args)
    store = CellStore(args.folder)
    if args.command == "run":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        deadline = None if args.budget is None else time.monotonic() + args.budget
        cfg = _selected(args, device)
        try:
            S.run_cells(
                cfg, device, store=store, deadline=deadline, log=lambda m: print(m, flush=True)
            )
        except M.DeadlineReached as exc:
            print(f"stopped: {exc}; the same command resumes", flush=True)
            return STOPPED
        return 0
    records = list(store.records())
    if not records:
        raise ValueError(
            f"cells {args.command}: expected a folder of cells, got none in {store.folder}"
        )
    write_points(Path(args.out), records)
    return 0


def grouped(records: list[CellRecord]) -> dict[tuple[str, str, str], dict[int, CellRecord]]:
    """{(family, model, regime): {side: record}} of `records`; a cell given twice keeps the
    last."""
    out: dict[tuple[str, str, str], dict[int, CellRecord]] = {}
    for rec in records:
        out.setdefault((rec.family, rec.model, rec.regime), {})[rec.side] = rec
    return out


def fit(records: list[CellRecord], size: str = "gpu", sources: list[str] = ()) -> ScalingFit:
    """The experiment's fit (``scaling.fit_slopes`` at `size`: its bootstrap, seed and verdict
    rule) of every (family, model, regime) in `records`, with the size's cells they lack."""
    from hdbench.suite.experiments import scaling

    cfg, rows = scaling.SIZES[size], []
    by_cell = grouped(records)
    for (family, model, regime), by_side in by_cell.items():
        fitted = scaling.fit_slopes(cfg, by_side, e2=False)  # the page shows the readings
        if "why" in fitted:
            continue
        for reading in READINGS:
            f = fitted[reading]
            rows.append(
                SlopeRow(
                    family,
                    model,
                    regime,
                    reading,
                    f["value"],
                    f["low"],
                    f["high"],
                    VERDICT_CODES[f["verdict"]],
                    list(fitted["sides"]),
                )
            )
    return ScalingFit(size, list(sources), rows, not_run(by_cell, size))


def not_run(by_cell: dict[tuple[str, str, str], dict[int, Any]], size: str = "gpu") -> list[str]:
    """The cells of `size` that `by_cell` lacks, one string per (family, model, regime) with its
    missing sides: ``["natural / cnn / fewer: 512, 1024", ...]``."""
    from hdbench.suite.experiments import scaling

    cfg, gaps = scaling.SIZES[size], []
    for family in cfg.families:
        for model in cfg.models:
            for regime in cfg.regimes:
                top = cfg.more_max_side if regime == "more" else max(cfg.sides)
                have = by_cell.get((family, model, regime), {})
                miss = [s for s in cfg.sides if s <= top and s not in have]
                if miss:
                    gaps.append(f"{family} / {model} / {regime}: " + ", ".join(map(str, miss)))
    return gaps


def _fit_command(args: argparse.Namespace) -> int:
    """``fit SOURCE...``: cell folders or exported points files; prints the slopes and, with
    ``--out``, writes the stored fit (``ScalingFit``)."""
    records: list[CellRecord] = []
    for source in map(Path, args.sources):
        records += (
            read_points(source, "cells fit") if source.is_file() else CellStore(source).records()
        )
    if not records:
        raise ValueError(f"cells fit: expected a folder of cells, got none in {args.sources[0]}")
    result = fit(records, args.size, [Path(s).name for s in args.sources])
    for r in result.slopes:
        print(
            f"{r.family}/{r.model}/{r.regime} sides {r.sides_text} {r.reading:10s} "
            f"{r.slope:+.3f} [{r.slope_low:+.3f}, {r.slope_high:+.3f}] {VERDICTS[r.verdict]}"
        )
    if args.out is not None:
        result.write(Path(args.out))
        print(f"cells fit: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
