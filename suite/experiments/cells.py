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

    python -m suite.experiments.cells run DIR --families natural --models cnn --min-side 512 \\
        --budget 540           # exit status 3: the budget stopped it; the same command resumes
    python -m suite.experiments.cells export DIR scaling_natural_points.jsonl.gz
    python -m suite.experiments.cells fit DIR

``run`` takes the device's size (``scaling.config``) restricted to the families, models,
regimes and sides given, and computes each cell the store lacks; with ``--budget`` it stops
before a training step or an attack that the budget would not see finished (an attack's
seconds are predicted from the same model's smaller sides, by pixels; one predicted to take
longer than the whole budget starts all the same, since waiting cannot help it). The budget is
soft: the first side of a model has no prediction, and a new process compiles the search (some
15 s on a CPU), so leave room for one attack beyond it. ``export`` writes every finished cell as
a line of the JSON-lines file that the report's "Scaling on a GPU" page reads from
``reports/measurements/``; ``fit`` prints the experiment's slopes and verdicts over them.
``asv run`` with ``HDBENCH_SCALING_CELLS=DIR`` (an absolute path) reads and fills the same store.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.common import write_atomic

# bumped whenever a change to the code changes a cell's numbers: cells of other versions are
# not read back
CELL_VERSION = "1"
CELLS_ENV = "HDBENCH_SCALING_CELLS"
PER_SAMPLE = ("l2", "l2_area", "linf", "m", "margin", "eps_m_n")  # a point's per-sample arrays
STOPPED = 3  # ``run``'s exit status when its budget stopped it


Cell = tuple[str, str, str, int]  # (family, model, regime, side)


class CellStore:
    """Finished cells, and the training checkpoints of unfinished ones, in `folder`. A cell is
    addressed by the run's ``scaling.Config``, the cell and the device."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"CellStore: expected a folder, got the file {self.folder}")

    @staticmethod
    def made_of(cfg: Any, cell: Cell, device: str) -> dict[str, Any]:
        """What the numbers of `cell` in the run `cfg` on `device` depend on."""
        return {
            "version": CELL_VERSION, "cell": list(cell), "largest_side": max(cfg.sides),
            "seed": cfg.seed, "classes": cfg.classes, "contrast": cfg.contrast,
            "test_points": cfg.test_points, "training": dataclasses.asdict(cfg.training),
            "batch_pixels": cfg.batch_pixels, "device": torch.device(device).type,
        }  # fmt: skip

    @classmethod
    def name(cls, cfg: Any, cell: Cell, device: str) -> str:
        """The file stem of `cell`: the cell, then a digest of ``made_of``."""
        made_of = json.dumps(cls.made_of(cfg, cell, device), sort_keys=True)
        return "-".join(map(str, cell)) + "-" + hashlib.sha256(made_of.encode()).hexdigest()[:12]

    def checkpoint(self, cfg: Any, cell: Cell, device: str) -> Path:
        """Where the cell's training keeps its state until the cell is stored."""
        return self.folder / f"{self.name(cfg, cell, device)}.train.pt"

    def load(self, cfg: Any, cell: Cell, device: str) -> dict[str, Any] | None:
        """The stored point of the cell (per-sample lists as arrays), or None."""
        path = self.folder / f"{self.name(cfg, cell, device)}.json"
        return as_point(_read(path)) if path.exists() else None

    def store(self, cfg: Any, cell: Cell, device: str, point: dict[str, Any]) -> None:
        """Keep `point` (as ``scaling._point`` returns it) as the cell's, with what it depends
        on, and drop its training checkpoint."""
        family, model, regime, side = cell
        name = self.name(cfg, cell, device)
        record = {"family": family, "model": model, "regime": regime, "side": side,
                  "name": name, "made_of": self.made_of(cfg, cell, device),
                  "torch": torch.__version__,
                  "stored": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  **{k: v.tolist() if isinstance(v, np.ndarray) else v
                     for k, v in point.items()}}  # fmt: skip
        for k in PER_SAMPLE:  # a cell not attacked (see "skipped") has none
            record.setdefault(k, [])
        write_atomic(self.folder / f"{name}.json", json.dumps(record))
        self.checkpoint(cfg, cell, device).unlink(missing_ok=True)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every stored cell as written (per-sample lists), by file name.

        Raises:
            ValueError: two cells with the same (family, model, regime, side), i.e. of two
                runs that differ in what the cells depend on (``made_of``), naming both files.
        """
        seen: dict[tuple, Path] = {}
        for path in sorted(self.folder.glob("*.json")):
            rec = _read(path)
            cell = tuple(rec[k] for k in ("family", "model", "regime", "side"))
            if cell in seen:
                raise ValueError(f"CellStore.records: expected one cell {cell} in {self.folder}, "
                                 f"got {seen[cell].name} and {path.name}, of two runs that "
                                 f"differ (see their made_of): keep a folder per run")  # fmt: skip
            seen[cell] = path
            yield rec

    def attack_seconds(self, cfg: Any, cell: Cell, device: str) -> dict[int, float]:
        """{side: attack seconds} of the stored cells of the same run, family, model and regime
        at the sides of `cfg` below the cell's, those attacked only (a cell that did not learn
        was not attacked)."""
        family, model, regime, side = cell
        out = {}
        for s in (s for s in cfg.sides if s < side):
            p = self.load(cfg, (family, model, regime, s), device)
            if p is not None and "skipped" not in p and "attack_s" in p:
                out[s] = p["attack_s"]
        return out


def _read(path: Path) -> dict[str, Any]:
    try:
        rec = json.loads(path.read_text())
        if not all(k in rec for k in ("family", "model", "regime", "side")):
            raise ValueError("no family, model, regime and side")
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"CellStore: expected a cell's JSON in {path}, got {exc}") from exc
    return rec


def as_point(record: dict[str, Any]) -> dict[str, Any]:
    """A stored cell's record as the experiment's point: per-sample lists as arrays."""
    return {k: np.asarray(v, dtype=float) if k in PER_SAMPLE else v for k, v in record.items()}


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
        raise ValueError(f"{CELLS_ENV}: expected an absolute path (asv runs benchmarks in a "
                         f"temporary folder), got {folder!r}")  # fmt: skip
    return CellStore(folder)


def _selected(args: argparse.Namespace, device: str):
    from suite.experiments import scaling as S

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
        raise ValueError(f"cells: expected sides of {cfg.sides} between {args.min_side} and "
                         f"{args.max_side}, got none")  # fmt: skip
    return dataclasses.replace(
        cfg, sides=sides, **{f: tuple(c) for f, c in pick.items() if c is not None}
    )


def main(argv: list[str] | None = None) -> int:
    from suite.experiments import models as M
    from suite.experiments import scaling as S

    ap = argparse.ArgumentParser(prog="python -m suite.experiments.cells",
                                 description=__doc__.split("\n")[0])  # fmt: skip
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
    sub.add_parser("fit", help="the experiment's slopes over the stored cells").add_argument(
        "folder")  # fmt: skip
    args = ap.parse_args(argv)
    store = CellStore(args.folder)
    if args.command == "run":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        deadline = None if args.budget is None else time.monotonic() + args.budget
        cfg = _selected(args, device)
        try:
            S.run_cells(cfg, device, store=store, deadline=deadline,
                        log=lambda m: print(m, flush=True))  # fmt: skip
        except M.DeadlineReached as exc:
            print(f"stopped: {exc}; the same command resumes", flush=True)
            return STOPPED
        return 0
    records = list(store.records())
    if not records:
        raise ValueError(f"cells {args.command}: expected a folder of cells, got none in "
                         f"{store.folder}")  # fmt: skip
    if args.command == "export":
        lines = "".join(json.dumps(r) + "\n" for r in records)
        out = Path(args.out)
        write_atomic(out, gzip.compress(lines.encode()) if out.suffix == ".gz" else lines)
        return 0
    from reports import gpu_scaling  # the page's own fit, as the report makes it
    from reports.science import verdict_text

    cells = gpu_scaling.grouped((args.folder, rec) for rec in records)
    for r in gpu_scaling.fits(cells).itertuples():
        print(
            f"{r.family}/{r.model}/{r.regime} sides {r.sides} {r.reading:10s} "
            f"{r.slope:+.3f} [{r.slope_low:+.3f}, {r.slope_high:+.3f}] {verdict_text(r.verdict)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
