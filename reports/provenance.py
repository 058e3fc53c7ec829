"""What stands behind a figure: the machines and versions, the sizes measured, and the seeds.

``figure_note`` writes the line printed under every figure and table of the report. Machines,
versions and commits come from the results (``machine.json`` and the result files); the sizes are
the parameter values that were measured; the seeds and the suite's size constants are read from
the benchmark module's source (``suite/<module>.py``, by ``ast``, without importing it: the report
must build where torch is absent), so they describe the checkout that builds the report.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pandas as pd

from hdbench.reports.results import COLUMNS, ResultSet

SUITE = Path(__file__).resolve().parent.parent / "suite"
SEED_CALLS = ("manual_seed", "seed_all", "generator", "seed")  # calls that take a seed
# the table's own columns and those the pages add: not parameters
SKIP_COLUMNS = {*COLUMNS, "shown", "unit_shown", "column"}


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, tuple) and bool(value) and all(_numeric(v) for v in value)


@functools.cache
def suite_constants(module: str, suite: Path = SUITE) -> tuple[list[str], list[str]]:
    """Numeric upper-case constants and seed expressions of ``suite/<module>.py``.

    Args:
        module: the benchmark module's name (``bench_saddles``).
        suite: the suite's folder.

    Returns:
        (["TRIALS=100000", ...], ["seed=1000 * d + len(model)", ...]); both empty when the file
        is missing or does not parse.
    """
    path = suite / f"{module.replace('.', '/')}.py"
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return [], []
    consts = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            value = _literal(node.value)
            if isinstance(target, ast.Name) and target.id.isupper() and _numeric(value):
                consts.append(f"{target.id}={_short(value)}")
    seeds: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        texts = [
            f"seed={ast.get_source_segment(source, k.value)}"
            for k in node.keywords
            if k.arg == "seed"
        ]
        pos = 1 if name == "generator" else 0  # common.generator(dev, seed)
        if name in SEED_CALLS and len(node.args) > pos:
            texts.append(f"{name}({ast.get_source_segment(source, node.args[pos])})")
        seeds += [t for t in texts if t not in seeds]
    uses_common = any(t in source for t in ("common.SEED", "common.seed_all(", "common.generator("))
    if module != "common" and uses_common:
        common = dict(c.split("=", 1) for c in suite_constants("common", suite)[0])
        if "SEED" in common:
            seeds.append(f"common.SEED={common['SEED']}")
    return consts, seeds


def _short(value: object) -> str:
    """``(8, 16, 32, 64, 128)`` -> ``8..128 (5 values)`` for a long numeric tuple."""
    if isinstance(value, tuple) and len(value) > 4:
        return f"{value[0]}..{value[-1]} ({len(value)} values)"
    return repr(value).replace(" ", "")


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


def figure_note(results: ResultSet, rows: pd.DataFrame, module: str = "") -> str:
    """The provenance line under a figure or table drawn from `rows`.

    Args:
        results: the results the rows come from (for the machines' fields).
        rows: the rows drawn (``machine``, ``commit``, ``benchmark``, ``version`` and the
            parameter columns).
        module: the benchmark module, for the suite's seeds and size constants.

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
    consts, seeds = suite_constants(module) if module else ([], [])
    if consts:
        text += f" Suite sizes: {', '.join(consts)}."
    if seeds:
        text += f" Seeds: {'; '.join(seeds)}."
    return text
