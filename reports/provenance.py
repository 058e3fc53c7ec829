"""What stands behind a figure: the machines and versions, the sizes measured, and the seeds.

``figure_note`` writes the line printed under every figure and table of the report. Machines,
versions and commits come from the results (``machine.json`` and the result files); the sizes
are the parameter values that were measured; the suite's size constants and seeds are those the
suite recorded with its benchmarks when it ran (``hdbench.suite.provenance``: each benchmark's
``provenance`` in ``benchmarks.json``), never read from the checkout that builds the report.
"""

from __future__ import annotations

import pandas as pd

from hdbench.reports.results import COLUMNS, ResultSet

# the table's own columns and those the pages add: not parameters
SKIP_COLUMNS = {*COLUMNS, "shown", "unit_shown", "column"}


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, tuple) and bool(value) and all(_numeric(v) for v in value)


def recorded(results: ResultSet, names: list[str]) -> tuple[list[str], list[str]]:
    """The size constants and seeds the suite recorded for the benchmarks `names`, each once,
    in order: (["TRIALS=100000", ...], ["seed=1000 * d + len(model)", ...]); empty for
    benchmarks recorded without them."""
    consts: list[str] = []
    seeds: list[str] = []
    for name in names:
        prov = results.benchmarks.get(name, {}).get("provenance")
        if not isinstance(prov, dict):
            continue
        consts += [str(c) for c in prov.get("constants", []) if str(c) not in consts]
        seeds += [str(s) for s in prov.get("seeds", []) if str(s) not in seeds]
    return consts, seeds


def measured_sizes(rows: pd.DataFrame) -> str:
    """The parameter values present in `rows`: ``side 8..128 (5); model linear, mlp``."""
    parts = []
    for col in rows.columns:
        if col in SKIP_COLUMNS:
            continue
        vals = [v for v in rows[col].dropna().unique() if v is not None]
        if not vals:
            continue
        if all(_numeric(v) for v in vals) and len(vals) > 4:
            nums = sorted(vals)
            parts.append(f"{col} {nums[0]:g}..{nums[-1]:g} ({len(nums)})")
        else:
            parts.append(f"{col} {', '.join(map(str, vals))}")
    return "; ".join(parts)


def machine_line(results: ResultSet, machine: str) -> str:
    """``gpu-b: NVIDIA H100, CUDA 12.4, torch 2.5.0, triton 3.1.0``."""
    m = results.machines
    if m.empty or machine not in set(m["machine"]):
        return machine
    info = m[m["machine"] == machine].iloc[0]

    def get(key: str) -> str:
        v = info.get(key)
        return "" if v is None or (isinstance(v, float) and pd.isna(v)) or v == "" else str(v)

    device = get("gpu") if get("gpu") not in ("", "none") else (get("cpu") or "CPU")
    parts = [device]
    parts += [
        f"{label} {get(k)}"
        for k, label in (("cuda", "CUDA"), ("torch", "torch"), ("triton", "triton"))
        if get(k)
    ]
    return f"{machine}: {', '.join(parts)}"


def figure_note(results: ResultSet, rows: pd.DataFrame) -> str:
    """The provenance line under a figure or table drawn from `rows`.

    Args:
        results: the results the rows come from (for the machines' fields).
        rows: the rows drawn (``machine``, ``commit``, ``benchmark``, ``version`` and the
            parameter columns).

    Returns:
        One paragraph: machines and versions; runs and benchmark versions; sizes; seeds.
    """
    if rows.empty:
        return ""
    parts = []
    for machine, grp in rows.groupby("machine", sort=True):
        commits = ", ".join(sorted({str(c)[:8] for c in grp["commit"]}))
        parts.append(f"{machine_line(results, machine)} (commit {commits})")
    text = "Ran on " + "; ".join(parts) + "."
    versions = sorted({str(v) for v in rows["version"].dropna()})
    if versions:
        text += f" Benchmark version {', '.join(versions)}."
    sizes = measured_sizes(rows)
    if sizes:
        text += f" Measured: {sizes}."
    consts, seeds = recorded(results, sorted(set(rows["benchmark"])))
    if consts:
        text += f" Suite sizes: {', '.join(consts)}."
    if seeds:
        text += f" Seeds: {'; '.join(seeds)}."
    return text
