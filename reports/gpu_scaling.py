"""The scaling page's GPU-size sections: cells of the scaling experiment's GPU size run outside
asv, kept under ``reports/measurements/`` as ``*/scaling_*points.jsonl[.gz]``, with the
experiment's fit of each folder stored beside them (``scaling_fit.json``).

A GPU session of minutes cannot hold the whole GPU size (near an hour on an H200), so it runs
in pieces (``hdbench.suite.experiments.cells``), and each finished (family, model, regime, side)
cell is one JSON object per line (``hdbench.results.cells.CellRecord``): the experiment's point
for that cell (per-sample norms, medians, accuracy) with its training and attack seconds and
peak GPU memory. The slopes, verdicts and the GPU size's cells that no file holds come from the
folder's stored fit, made by ``cells fit FILES --out FOLDER/scaling_fit.json``; nothing is
fitted here. The norms and slopes are drawn as the asv sections of the scaling page draw them. A
folder is one device and day; its name labels it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from hdbench.reports import scaling as page
from hdbench.reports.build import repo_name
from hdbench.reports.figures import html_table, plot_item
from hdbench.reports.science import interval, verdict_text
from hdbench.results.cells import FIT_FILE, CellRecord, ScalingFit, points_files, read_points

# committed GPU measurements: in a checkout (an installed wheel carries none)
MEASUREMENTS = Path(__file__).resolve().parent / "measurements"
# (folder, family, model, regime) -> {side: point}
Cells = dict[tuple[str, str, str, str], dict[int, dict[str, Any]]]


def files(folder: Path | None = None) -> list[Path]:
    """Every scaling points file below `folder` (default ``reports/measurements``), by path."""
    return points_files(MEASUREMENTS if folder is None else folder)


def load(paths: list[Path]) -> Cells:
    """The cells in `paths` (``grouped``).

    Raises:
        ValueError: a line that is not a cell (not JSON, or without the keys that name a cell
            and the per-sample norms), naming its file and line.
    """
    return grouped(
        (p.parent.name, rec) for p in paths for rec in read_points(p, "gpu_scaling.load")
    )


def grouped(records: Iterable[tuple[str, CellRecord]]) -> Cells:
    """The cells of (folder, record) pairs, per-sample lists as arrays; a cell given twice in a
    folder keeps the last."""
    cells: Cells = defaultdict(dict)
    for folder, rec in records:
        cells[(folder, rec.family, rec.model, rec.regime)][rec.side] = rec.point()
    return dict(cells)


def stored_fits(paths: list[Path]) -> dict[str, ScalingFit | None]:
    """Per folder of `paths`, its stored fit (``scaling_fit.json``), or None where it has none.

    Raises:
        ValueError: a fit file that does not read, naming it.
    """
    out = {}
    for folder in dict.fromkeys(p.parent for p in paths):
        path = folder / FIT_FILE
        out[folder.name] = ScalingFit.read(path) if path.exists() else None
    return out


def fits(stored: dict[str, ScalingFit | None]) -> pd.DataFrame:
    """One row per (folder, family, model, regime, reading) of the stored fits: the slope, its
    interval, the verdict code and the sides fitted."""
    rows = [
        {
            "folder": folder,
            "family": r.family,
            "model": r.model,
            "regime": r.regime,
            "sides": r.sides_text,
            "reading": r.reading,
            "slope": r.slope,
            "slope_low": r.slope_low,
            "slope_high": r.slope_high,
            "verdict": r.verdict,
        }
        for folder, fit in stored.items()
        if fit is not None
        for r in fit.slopes
    ]
    return pd.DataFrame(rows)


def not_run(stored: dict[str, ScalingFit | None]) -> dict[str, list[str] | None]:
    """Per folder, the GPU size's cells no file holds (from its stored fit), one string per
    (family, model, regime) with its missing sides: ``{folder: ["natural / cnn / fewer: 512,
    1024", ...]}``; None for a folder without a stored fit."""
    return {folder: None if fit is None else fit.not_run for folder, fit in stored.items()}


def runs_table(cells: Cells) -> str:
    """Per folder and family: the cells, models, sides, seconds spent and peak GPU memory."""
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for (folder, family, model, _), by_side in cells.items():
        by[(folder, family)] += [p | {"model": model} for p in by_side.values()]
    rows = [
        {
            "folder": folder,
            "family": family,
            "cells": len(points),
            "models": ", ".join(dict.fromkeys(p["model"] for p in points)),
            "sides": f"{min(p['side'] for p in points)}–{max(p['side'] for p in points)}",
            "training (s)": round(sum(p.get("train_s", 0.0) for p in points), 1),
            "attacks (s)": round(sum(p.get("attack_s", 0.0) for p in points), 1),
            "peak GPU memory (GiB)": round(max(p.get("max_mem_gib", 0.0) for p in points), 1),
        }
        for (folder, family), points in by.items()
    ]
    return html_table(pd.DataFrame(rows))


def slopes_table(slopes: pd.DataFrame) -> str:
    """One row per (folder, family, model, regime), one column per reading: slope [interval]
    and verdict; no folder column when there is one folder (the runs table names it)."""
    slopes = slopes.assign(
        cell=[
            f"{interval(s, lo, hi)} {verdict_text(v)}"
            for s, lo, hi, v in zip(
                slopes["slope"],
                slopes["slope_low"],
                slopes["slope_high"],
                slopes["verdict"],
                strict=True,
            )
        ]
    )
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
    stored = stored_fits(paths)
    gaps = not_run(stored)
    runs = {
        "id": "runs",
        "title": "Runs",
        "notes": [repo_name(p) for p in paths],
        "text": "What each folder's files hold, per data family, and the time it took. The "
        "GPU size: 512 test points, 600 training steps of 256, sides 8 to 1024 (the "
        "'more' regime to 256). The verdicts below are over the cells present, not "
        "the whole experiment's.",
        "items": [{"kind": "table", "html": runs_table(cells)}],
    }
    for folder, missing in gaps.items():
        if missing is None:
            text = (
                f"{folder}: no stored fit ({FIT_FILE}): make it with python -m "
                f"hdbench.suite.experiments.cells fit {folder}/scaling_*points.jsonl.gz "
                f"--out {folder}/{FIT_FILE}."
            )
        elif missing:
            text = f"{folder}: not yet run: " + "; ".join(missing) + "."
        else:
            text = f"{folder}: every cell of the GPU size."
        runs["items"].append({"kind": "text", "text": text})
    out = [runs]
    slopes = fits(stored)
    if slopes.empty:
        return out
    items = [{"kind": "table", "html": slopes_table(slopes)}]
    for folder, grp in slopes.groupby("folder", sort=False):
        title = f"{folder}: fitted slopes"
        items.append(plot_item(title, page.slope_figure(grp, title), shown=len(items) == 1))
    out.append(
        {
            "id": "slopes",
            "title": "Fitted slopes and verdicts",
            "notes": [],
            "text": "The scaling page's slopes, readings and fixed verdict rule, fitted to "
            "these cells by the experiment (the folder's stored fit): agrees when the "
            "interval's upper end is at or below -0.4, disagrees when its lower end "
            "is above -0.3. The paper predicts -1/2 under every reading.",
            "items": items,
        }
    )
    data = pd.DataFrame(
        [
            {
                "folder": k[0],
                "family": k[1],
                "model": k[2],
                "regime": k[3],
                "side": side,
                "median_l2": p.get("median_l2"),
                "median_l2_area": p.get("median_l2_area"),
            }
            for k, by_side in cells.items()
            for side, p in by_side.items()
        ]
    )
    figures = []
    for (folder, regime), grp in data.groupby(["folder", "regime"], sort=False):
        fit = slopes[(slopes["folder"] == folder) & (slopes["regime"] == regime)]
        title = f"{folder}: training regime '{regime}'"
        figures.append(plot_item(title, page.norm_figure(grp, fit, title), shown=not figures))
    out.append(
        {
            "id": "norms",
            "title": "Perturbation norm against resolution",
            "notes": [],
            "text": "Median minimal L2 perturbation against the image side, as on the "
            "scaling page: the fitted slope (band: its 95% interval) and the paper's "
            "O(1/sqrt(n)) under n = side and n = pixel count.",
            "items": figures,
        }
    )
    return out
