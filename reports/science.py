"""Helpers shared by the experiment pages (``reports.scaling``, ``reports.saddles``).

They read one benchmark class's current rows into a wide table (one column per ``track_``
method), say why a class has nothing to show, and format intervals and verdicts.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from hdbench.reports.build import why_empty
from hdbench.reports.figures import param_orders, plain_number, sorted_rows
from hdbench.reports.results import ResultSet, split_name
from hdbench.results.vocabulary import VERDICTS

MIN_RATIO = 10.0  # log y axes span at least this factor (``log_axes``)


def class_names(results: ResultSet, module: str, klass: str) -> list[str]:
    """The benchmarks of `module`.`klass`: in benchmarks.json, or with results."""
    names = set(results.benchmarks) | set(results.table["benchmark"])
    return sorted(n for n in names if split_name(n)[:2] == (module, klass))


def wide(
    results: ResultSet, module: str, klass: str, params: list[str] | None = None
) -> pd.DataFrame:
    """Current rows of one class, one row per (machine, parameters), one column per method
    (``track_`` prefix dropped), plus ``commit``, ``version`` and ``benchmark`` of the first.

    Args:
        results: the merged results.
        module, klass: the benchmark class (``bench_scaling``, ``TrackScaling``).
        params: its parameter names; default: those of its first benchmark in benchmarks.json.

    Returns:
        The wide table; empty (no columns beyond the index) when nothing is current.
    """
    cur = results.current()
    rows = cur[(cur["module"] == module) & (cur["klass"] == klass)]
    if params is None:
        names = class_names(results, module, klass)
        bench = next((results.benchmarks[n] for n in names if n in results.benchmarks), {})
        params = [p for p in bench.get("param_names", []) if p in rows.columns]
    index = ["machine", *params]
    if rows.empty:
        return pd.DataFrame(columns=index)
    rows = rows.assign(what=rows["method"].str.replace(r"^track_", "", regex=True))
    out = rows.pivot_table(index=index, columns="what", values="value", aggfunc="first")
    meta = rows.groupby(index)[["commit", "version", "benchmark"]].first()
    out = out.join(meta).reset_index()
    out.columns.name = None
    # the suite's parameter order (more before fewer, 8 before 16), machines by name
    names = sorted(set(rows["benchmark"]))
    return sorted_rows(out, index, param_orders(results, names, rows)).reset_index(drop=True)


def missing_text(results: ResultSet, module: str, klass: str) -> str:
    """Why `klass` has nothing to show: not in the suite, not run, skipped, failed or stale."""
    names = class_names(results, module, klass)
    if not names:
        return f"{klass}: not in this suite's benchmarks.json and no results."
    return f"{klass}: no results yet: {why_empty(results, names)}."


def missing_item(results: ResultSet, module: str, klass: str, lead: str = "") -> dict:
    """A text item of a page saying why `klass` has nothing to show (``missing_text``), after
    `lead`."""
    return {"kind": "text", "text": lead + missing_text(results, module, klass)}


def long_rows(results: ResultSet, wide_rows: pd.DataFrame) -> pd.DataFrame:
    """The current long rows behind a ``wide`` table (for its provenance line)."""
    cur = results.current()
    return cur[
        cur["benchmark"].isin(set(wide_rows["benchmark"]))
        & cur["machine"].isin(wide_rows["machine"])
    ]


def elsewhere_text(results: ResultSet, module: str, klass: str, shown: set[str]) -> str:
    """Machines that ran `klass` but have nothing current to show (failed, skipped, stale)."""
    why = why_empty(results, class_names(results, module, klass), shown)
    return f"{klass}: no current result: {why}." if why else ""


def interval(v: float, low: float, high: float) -> str:
    """``-0.48 [-0.55, -0.41]``; a dash for a missing number."""

    def f(x: float) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"

    return f"{f(v)} [{f(low)}, {f(high)}]"


def verdict_text(code: float) -> str:
    """The suite's verdict code (1, 0, -1) in words; a dash when missing."""
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return "–"
    return VERDICTS.get(int(round(code)), f"code {code:g}")


def verdict_of(low: float, high: float, predicted: float = -0.5) -> str:
    """The verdict rule of SCIENCE.md for a predicted slope < 0: agrees when high <= 0.8 s,
    disagrees when low > 0.6 s, inconclusive otherwise."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    if high <= 0.8 * predicted:
        return "agrees"
    if low > 0.6 * predicted:
        return "disagrees"
    return "inconclusive"


def get(df: pd.DataFrame, col: str) -> pd.Series:
    """Column `col`, or NaN everywhere when the class has no such method."""
    return df[col] if col in df else pd.Series(math.nan, index=df.index, dtype=float)


def log_axes(ax: plt.Axes, xs: list[float], base: int = 2) -> None:
    """Log-log axes with plain tick labels at the measured `xs`, the y axis at least a decade
    (``MIN_RATIO``) tall. Call it after plotting: it reads the data's y limits."""
    ax.set_xscale("log", base=base)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < MIN_RATIO:
        # a near-constant quantity on a narrow axis looks like a trend: show at least a decade
        # about the data's geometric centre
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(MIN_RATIO), mid * math.sqrt(MIN_RATIO)
        ax.set_ylim(lo, hi)
    few = lo > 0 and math.log10(hi / lo) < 2.5  # few decades: label the 2s and 5s as well
    ax.yaxis.set_minor_formatter(FuncFormatter(plain_number) if few else NullFormatter())
    ax.tick_params(which="both", labelsize=8)
    ax.grid(True, which="both", alpha=0.25)
