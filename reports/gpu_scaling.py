"""The GPU scaling page: cells of the scaling experiment's GPU size run outside asv, kept under
``reports/measurements/`` as ``*/scaling_*points.jsonl[.gz]``.

A GPU session of minutes cannot hold the whole GPU size (near an hour on an H200), so it runs
in pieces (``suite.experiments.cells``), and each finished (family, model, regime, side) cell is
one JSON object per line: the experiment's point for that cell (per-sample norms,
medians, accuracy) with its training and attack seconds and peak GPU memory. This page fits every
(family, model, regime) with the experiment's own fit (``scaling.fit_slopes``: the GPU size's
bootstrap, seed and verdict rule), draws the norms and slopes as the scaling page does, and names
the GPU size's cells that no file holds. A folder is one device and day; its name labels it.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from reports import scaling as page
from reports.build import ROOT, _plot, html_table, repo_name
from reports.science import interval, verdict_text

MEASUREMENTS = ROOT / "reports" / "measurements"
KEYS = ("family", "model", "regime", "side")  # what names a cell
# (folder, family, model, regime) -> {side: point}
Cells = dict[tuple[str, str, str, str], dict[int, dict[str, Any]]]


def files(folder: Path | None = None) -> list[Path]:
    """Every scaling points file below `folder` (default ``reports/measurements``), by path."""
    folder = MEASUREMENTS if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*/scaling_*points.jsonl*") if p.suffix in (".jsonl",
                  ".gz"))  # fmt: skip


def load(paths: list[Path]) -> Cells:
    """The cells in `paths` (``grouped``).

    Raises:
        ValueError: a line that is not a cell (not JSON, or without the keys that name a cell
            and the per-sample norms the fit reads), naming its file and line.
    """
    from suite.experiments.cells import PER_SAMPLE

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        for path in paths:
            with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"gpu_scaling.load: expected a JSON cell, got {exc} at "
                                         f"{path}:{i}") from exc  # fmt: skip
                    missing = [k for k in (*KEYS, *PER_SAMPLE) if not isinstance(rec, dict)
                               or k not in rec]  # fmt: skip
                    if missing:
                        raise ValueError(f"gpu_scaling.load: expected a cell with {missing} at "
                                         f"{path}:{i}")  # fmt: skip
                    yield path.parent.name, rec

    return grouped(records())


def grouped(records: Iterable[tuple[str, dict[str, Any]]]) -> Cells:
    """The cells of (folder, record) pairs, a record as ``suite.experiments.cells`` writes it,
    per-sample lists as arrays (``cells.as_point``); a cell given twice in a folder keeps the
    last."""
    from suite.experiments.cells import as_point

    cells: Cells = defaultdict(dict)
    for folder, rec in records:
        key = (folder, rec["family"], rec["model"], rec["regime"])
        cells[key][int(rec["side"])] = as_point(rec)
    return dict(cells)


def fits(cells: Cells) -> pd.DataFrame:
    """One row per (folder, family, model, regime, reading): the slope, its interval, the
    verdict and the sides fitted, by the experiment's own fit at the GPU size."""
    from suite.experiments import analysis, scaling

    cfg, rows = scaling.SIZES["gpu"], []
    for (folder, family, model, regime), by_side in cells.items():
        fitted = scaling.fit_slopes(cfg, by_side, e2=False)  # the page shows the readings
        if "why" in fitted:
            continue
        sides = fitted["sides"]
        for reading in page.READINGS:
            f = fitted[reading]
            rows.append({"folder": folder, "family": family, "model": model, "regime": regime,
                         "sides": f"{sides[0]}–{sides[-1]} ({len(sides)})", "reading": reading,
                         "slope": f["value"], "slope_low": f["low"], "slope_high": f["high"],
                         "verdict": analysis.VERDICT_CODES[f["verdict"]]})  # fmt: skip
    return pd.DataFrame(rows)


def not_run(cells: Cells) -> dict[str, list[str]]:
    """Per folder, the GPU size's cells no file holds, one string per (family, model, regime)
    with its missing sides: ``{folder: ["natural / cnn / fewer: 512, 1024", ...]}``."""
    from suite.experiments import scaling

    cfg, out = scaling.SIZES["gpu"], {}
    for folder in sorted({k[0] for k in cells}):
        gaps = []
        for family in cfg.families:
            for model in cfg.models:
                for regime in cfg.regimes:
                    top = cfg.more_max_side if regime == "more" else max(cfg.sides)
                    have = cells.get((folder, family, model, regime), {})
                    miss = [s for s in cfg.sides if s <= top and s not in have]
                    if miss:
                        gaps.append(f"{family} / {model} / {regime}: "
                                    + ", ".join(map(str, miss)))  # fmt: skip
        out[folder] = gaps
    return out


def runs_table(cells: Cells) -> str:
    """Per folder and family: the cells, models, sides, seconds spent and peak GPU memory."""
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for (folder, family, model, _), by_side in cells.items():
        by[(folder, family)] += [p | {"model": model} for p in by_side.values()]
    rows = [{"folder": folder, "family": family, "cells": len(points),
             "models": ", ".join(dict.fromkeys(p["model"] for p in points)),
             "sides": f"{min(p['side'] for p in points)}–{max(p['side'] for p in points)}",
             "training (s)": round(sum(p.get("train_s", 0.0) for p in points), 1),
             "attacks (s)": round(sum(p.get("attack_s", 0.0) for p in points), 1),
             "peak GPU memory (GiB)": round(max(p.get("max_mem_gib", 0.0) for p in points), 1)}
            for (folder, family), points in by.items()]  # fmt: skip
    return html_table(pd.DataFrame(rows))


def slopes_table(slopes: pd.DataFrame) -> str:
    """One row per (folder, family, model, regime), one column per reading: slope [interval]
    and verdict; no folder column when there is one folder (the runs table names it)."""
    slopes = slopes.assign(cell=[f"{interval(s, lo, hi)} {verdict_text(v)}" for s, lo, hi, v in
                                 zip(slopes["slope"], slopes["slope_low"], slopes["slope_high"],
                                     slopes["verdict"], strict=True)])  # fmt: skip
    keys = ["family", "model", "regime", "sides"]
    wide = slopes.pivot_table(
        index=keys if slopes["folder"].nunique() == 1 else ["folder", *keys],
        columns="reading",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    wide.columns = [page.READINGS[c] for c in wide.columns]
    return html_table(wide.reset_index())


def sections(paths: list[Path] | None = None) -> list[dict]:
    """The page's sections: the runs and the cells not yet run; the fitted slopes and verdicts;
    the norms against side, one figure per folder and regime."""
    paths = files() if paths is None else paths
    cells = load(paths)
    if not cells:
        return []
    gaps = not_run(cells)
    runs = {"id": "runs", "title": "Runs", "notes": [repo_name(p) for p in paths],
            "text": "What each folder's files hold, per data family, and the time it took. The "
                    "GPU size: 512 test points, 600 training steps of 256, sides 8 to 1024 (the "
                    "'more' regime to 256). The verdicts below are over the cells present, not "
                    "the whole experiment's.",
            "items": [{"kind": "table", "html": runs_table(cells)}]}  # fmt: skip
    for folder, missing in gaps.items():
        text = (f"{folder}: not yet run: " + "; ".join(missing) + ".") if missing else (
            f"{folder}: every cell of the GPU size.")  # fmt: skip
        runs["items"].append({"kind": "text", "text": text})
    out = [runs]
    slopes = fits(cells)
    if slopes.empty:
        return out
    items = [{"kind": "table", "html": slopes_table(slopes)}]
    for folder, grp in slopes.groupby("folder", sort=False):
        title = f"{folder}: fitted slopes"
        items.append(_plot(title, page.slope_figure(grp, title), shown=len(items) == 1))
    out.append({"id": "slopes", "title": "Fitted slopes and verdicts", "notes": [],
                "text": "The scaling page's slopes, readings and fixed verdict rule, fitted to "
                        "these cells: agrees when the interval's upper end is at or below -0.4, "
                        "disagrees when its lower end is above -0.3. The paper predicts -1/2 "
                        "under every reading.",
                "items": items})  # fmt: skip
    data = pd.DataFrame([
        {"folder": k[0], "family": k[1], "model": k[2], "regime": k[3], "side": side,
         "median_l2": p.get("median_l2"), "median_l2_area": p.get("median_l2_area")}
        for k, by_side in cells.items() for side, p in by_side.items()
    ])  # fmt: skip
    figures = []
    for (folder, regime), grp in data.groupby(["folder", "regime"], sort=False):
        fit = slopes[(slopes["folder"] == folder) & (slopes["regime"] == regime)]
        title = f"{folder}: training regime '{regime}'"
        figures.append(_plot(title, page.norm_figure(grp, fit, title), shown=not figures))
    out.append({"id": "norms", "title": "Perturbation norm against resolution", "notes": [],
                "text": "Median minimal L2 perturbation against the image side, as on the "
                        "scaling page: the fitted slope (band: its 95% interval) and the paper's "
                        "O(1/sqrt(n)) under n = side and n = pixel count.",
                "items": figures})  # fmt: skip
    return out
