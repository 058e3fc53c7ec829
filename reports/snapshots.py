"""The kernels page's GPU snapshot sections: ``suite.gpu_snapshot`` files kept under
``reports/measurements/``.

A snapshot is a timed, reduced run of the GPU benchmarks on one device (see
``suite/gpu_snapshot.py``); every ``*/gpu_snapshot.json`` below the measurements folder is read.
Sections: the devices and their measured ceilings side by side; then one table per group, one
row per combination and one column per (device, implementation): ms, with % of the device's copy
bandwidth (bandwidth-bound ops) or % of its matmul peak (HVPs), and hdbench's speed-up over eager
PyTorch where both ran. A combination that failed or was skipped shows its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hdbench.reports.build import repo_name
from hdbench.reports.figures import html_table

# committed GPU measurements: in a checkout (an installed wheel carries none)
MEASUREMENTS = Path(__file__).resolve().parent / "measurements"
NUMBERS = (
    "ms",
    "gbps",
    "pct_copy",
    "peak_memory",
    "bytes",
    "tflops",
    "pct_peak",
    "flops",
    "points",
    "success_rate",
    "median_l2",
    "error",
    "skip",
)
# the share of a ceiling a group reports, where it has one: of the copy bandwidth or matmul peak
SHARE = ("pct_copy", "pct_peak")


def files(folder: Path | None = None) -> list[Path]:
    """Every snapshot below `folder` (default ``reports/measurements``), oldest folder first."""
    folder = MEASUREMENTS if folder is None else folder
    return sorted(folder.glob("*/gpu_snapshot.json")) if folder.is_dir() else []


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The snapshots at `paths`, each with its ``label`` (device and date) and ``file``.

    Raises:
        ValueError: a file that is not a snapshot (no device or groups), naming it.
    """
    out = []
    for path in paths:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "device" not in data or "groups" not in data:
            raise ValueError(f"snapshots.load: expected a gpu_snapshot file, got {path}")
        label = f"{data['device']} ({str(data.get('date', '?'))[:10]})"
        out.append(data | {"label": label, "file": repo_name(path)})
    return out


def devices_table(snaps: list[dict[str, Any]]) -> str:
    """The devices side by side: memory, software, measured ceilings, the snapshot's budget."""
    rows = []
    for s in snaps:
        v, peak = s.get("versions", {}), s.get("matmul_peak_tflops", {})
        rows.append(
            {
                "device": s["label"],
                "memory (GiB)": s.get("memory_gib"),
                "torch": v.get("torch"),
                "triton": v.get("triton"),
                "cuda": s.get("cuda"),
                "copy (GB/s)": s.get("copy_gbps"),
                "fp32 matmul (TFLOP/s)": peak.get("fp32"),
                "bf16 matmul (TFLOP/s)": peak.get("bf16"),
                "budget (s)": s.get("budget_s"),
            }
        )
    return html_table(pd.DataFrame(rows))


def _present(row: dict[str, Any], key: str) -> bool:
    v = row.get(key)
    return v is not None and not (isinstance(v, float) and v != v)  # NaN: no number


def _cell(row: dict[str, Any], share: str | None) -> str:
    """A combination's cell: ms with its share of the ceiling (and a search's median L2 and
    success rate), or why it has none."""
    if _present(row, "error"):
        return ("skipped: " if row.get("skip") is True else "failed: ") + str(row["error"])
    text = f"{row['ms']:.4g} ms"
    if share and _present(row, share):
        text += f" ({row[share]:.0f}%)"
    if _present(row, "median_l2"):
        text += f", median L2 {row['median_l2']:.4g}, success {row['success_rate']:.3g}"
    return text


def group_table(snaps: list[dict[str, Any]], group: str) -> str | None:
    """One row per combination of `group`, one column per (device, impl); None when no snapshot
    has rows for it. A column "<ours> over <baseline>" gives hdbench's speed-up (the baseline's
    ms over hdbench's) where both ran."""
    records = []
    for s in snaps:
        for row in s["groups"].get(group, {}).get("rows", []):
            records.append({"device": s["label"], **row})
    if not records:
        return None
    df = pd.DataFrame(records)
    params = [c for c in df.columns if c not in NUMBERS and c not in ("device", "impl")]
    share = next((c for c in SHARE if c in df.columns), None)
    df["cell"] = [_cell(r, share) for r in records]
    cols = ["device", "impl"] if "impl" in df.columns else ["device"]
    table = df.pivot_table(index=params, columns=cols, values="cell", aggfunc="first", sort=False)
    multi = len(snaps) > 1
    table.columns = [
        " ".join(map(str, c if multi or len(c) == 1 else c[1:]))
        for c in (c if isinstance(c, tuple) else (c,) for c in table.columns)
    ]
    if "impl" in df.columns:
        ok = df[[not _present(r, "error") for r in records]]
        ms = ok.pivot_table(index=params, columns=cols, values="ms", aggfunc="first", sort=False)
        for s in snaps:
            label = s["label"]
            ours = next(
                (
                    i
                    for i in ("triton", "hdbench_triton", "hdbench_deepfool_refined")
                    if (label, i) in ms.columns
                ),
                None,
            )
            base = next(
                (
                    i
                    for i in ("eager", "hdbench_eager", "torchattacks_deepfool")
                    if (label, i) in ms.columns
                ),
                None,
            )
            if ours and base:
                name = f"{label} {ours} over {base}" if multi else f"{ours} over {base}"
                table[name] = (ms[(label, base)] / ms[(label, ours)]).map(
                    lambda v: "–" if pd.isna(v) else f"{v:.2f}x"
                )
    return html_table(table.reset_index().fillna("–"))


def sections(snaps: list[dict[str, Any]] | None = None) -> list[dict]:
    """The page's sections: the devices, then one table per group in the snapshots."""
    snaps = load(files()) if snaps is None else snaps
    if not snaps:
        return []
    out = [
        {
            "id": "devices",
            "title": "Devices",
            "text": "Each snapshot's device and the "
            "ceilings it measured first: device-to-device copy bandwidth and dense matmul rates.",
            "notes": [s["file"] for s in snaps],
            "items": [{"kind": "table", "html": devices_table(snaps)}],
        }
    ]
    groups: dict[str, str] = {}
    for s in snaps:
        for name, g in s["groups"].items():
            groups.setdefault(name, g.get("what", name))
    for name, what in groups.items():
        html = group_table(snaps, name)
        unrun = []
        for s in snaps:
            g = s["groups"].get(name, {"rows": []})
            if "rows" not in g:
                unrun.append(f"{s['label']}: {g.get('skipped') or g.get('error')}")
        items = [{"kind": "table", "html": html}] if html else []
        items += [{"kind": "text", "text": f"Not measured on {u}."} for u in unrun]
        out.append({"id": name, "title": name, "text": what, "notes": [], "items": items})
    return out
