"""Build the self-contained HTML report from a ``ResultSet``.

Pages: ``index.html`` (machines, what is missing, links) and ``kernels.html`` (one section per
kernel benchmark: plots with machines side by side, a table, speed-ups over the baselines). Plots
are inline PNG; nothing is loaded over the network. Every page is rendered in memory first and
each file is replaced atomically, so a failed build leaves the previous report whole.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402

from reports.results import ResultSet  # noqa: E402

KERNEL_MODULES = ("bench_attack", "bench_pyramid", "bench_hvp")
# hdbench's own implementations, best first: the speed-up table measures the others against them
OURS = ("triton", "hdbench_triton", "torch_compile", "hdbench_torch_compile")
X_PARAMS = ("side", "size", "width", "dim", "d", "n")
TEMPLATES = Path(__file__).parent / "templates"


def display(rows: pd.DataFrame) -> tuple[pd.Series, str]:
    """Values in a readable unit: asv time_ benchmarks are seconds, shown in ms."""
    unit = rows["unit"].iloc[0] if len(rows) else ""
    if unit == "seconds":
        return rows["value"].astype(float) * 1e3, "ms"
    return rows["value"].astype(float), unit


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _param_names(bench: dict, rows: pd.DataFrame) -> list[str]:
    names = bench.get("param_names") or []
    return [n for n in names if n in rows.columns]


def _integral_params(rows: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Integer parameters back to int: the merged table widens them to float beside NaN."""
    fixed = {
        p: rows[p].astype(int)
        for p in params
        if pd.api.types.is_float_dtype(rows[p]) and (rows[p] == rows[p].round()).all()
    }
    return rows.assign(**fixed)


def plot_benchmark(name: str, rows: pd.DataFrame, params: list[str]) -> str | None:
    """Value against the size parameter; one line per impl (and other params), one panel per op
    (rows) and machine (columns). None when there is no numeric x parameter."""
    x = next((p for p in X_PARAMS if p in params), None)
    if x is None:
        return None
    values, unit = display(rows)
    rows = rows.assign(_v=values.values)
    facet = "op" if "op" in params else None
    line_params = [p for p in params if p not in (x, facet, "machine")]
    machines = sorted(rows["machine"].unique())
    facets = sorted(rows[facet].unique()) if facet else [None]
    panels = [(fv, m) for fv in facets for m in machines]
    # machines side by side; a single machine wraps its panels three to a row
    ncols = len(machines) if len(machines) > 1 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, squeeze=False, layout="constrained", figsize=(4.2 * ncols, 2.9 * nrows + 0.4)
    )
    for n, ax in enumerate(axes.flat):
        if n >= len(panels):
            ax.set_visible(False)
            continue
        fv, machine = panels[n]
        sub = rows[(rows["machine"] == machine) & ((rows[facet] == fv) if facet else True)]
        groups = sub.groupby(line_params) if line_params else [((), sub)]
        for key, grp in groups:
            grp = grp.sort_values(x)
            keys = key if isinstance(key, tuple) else (key,)
            label = ", ".join(
                str(k) if n == "impl" else f"{n}={k}"
                for n, k in zip(line_params, keys, strict=False)
            )
            ax.plot(grp[x], grp["_v"], marker="o", label=label or name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{fv} · {machine}" if facet else machine, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel(unit)
        ax.set_xlabel(x)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(name, fontsize=10)
    return _png(fig)


def table_html(rows: pd.DataFrame, params: list[str]) -> str:
    """Machine and parameters down, impl across (when there is one), values in display units."""
    values, unit = display(rows)
    t = rows.assign(value=values.values)
    if "impl" in params and t["impl"].nunique() > 1:
        index = ["machine"] + [p for p in params if p != "impl"]
        t = t.pivot_table(index=index, columns="impl", values="value", aggfunc="first")
        t.columns = [f"{c} ({unit})" for c in t.columns]
        t = t.reset_index()
    else:
        t = t[["machine", *params, "value"]].rename(columns={"value": f"value ({unit})"})
    return t.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}", border=0)


def speedup_html(rows: pd.DataFrame, params: list[str]) -> str | None:
    """Time of each baseline divided by hdbench's best available implementation, per group."""
    if "impl" not in params or rows["unit"].iloc[0] not in ("seconds", "ms"):
        return None
    index = ["machine"] + [p for p in params if p != "impl"]
    wide = rows.pivot_table(index=index, columns="impl", values="value", aggfunc="first")
    out = []
    for key, row in wide.iterrows():
        ours = next((i for i in OURS if i in row and pd.notna(row[i])), None)
        if ours is None:
            continue
        for impl, value in row.items():
            if impl != ours and pd.notna(value):
                out.append(
                    {
                        **dict(zip(index, key, strict=True)),
                        "hdbench": ours,
                        "baseline": impl,
                        "speed-up": value / row[ours],
                    }
                )
    if not out:
        return None
    return pd.DataFrame(out).to_html(
        index=False, border=0, formatters={"speed-up": lambda v: f"{v:.2f}x"}
    )


def kernel_sections(results: ResultSet) -> list[dict]:
    sections = []
    current = results.current()
    names = sorted(n for n in results.benchmarks if n.split(".")[0] in KERNEL_MODULES)
    for name in names:
        bench = results.benchmarks[name]
        rows = current[current["benchmark"] == name]
        section = {
            "id": name,
            "title": name,
            "items": [],
            "text": (bench.get("docstring") or "").strip().split("\n")[0],
        }
        if rows.empty:
            all_rows = results.table[results.table["benchmark"] == name]
            why = (
                "every combination was skipped on the machines here (e.g. GPU-only)"
                if len(all_rows) and (all_rows["status"] == "skipped").all()
                else "no current results"
            )
            section["items"].append({"kind": "text", "text": f"No results yet: {why}."})
            sections.append(section)
            continue
        params = _param_names(bench, rows)
        rows = _integral_params(rows, params)
        plot = plot_benchmark(name, rows, params)
        if plot:
            section["items"].append({"kind": "plot", "data": plot, "alt": name})
        speed = speedup_html(rows, params)
        if speed:
            section["items"].append(
                {"kind": "details", "caption": "Speed-up over each baseline", "html": speed}
            )
        section["items"].append(
            {"kind": "details", "caption": "Table", "html": table_html(rows, params)}
        )
        sections.append(section)
    return sections


def index_sections(results: ResultSet, asv_html: Path | None) -> list[dict]:
    machines = results.machines.to_html(index=False, na_rep="-", border=0)
    counts = results.table[results.table["latest"]].groupby(["machine", "status"]).size()
    counts = counts.unstack(fill_value=0)
    counts.columns.name = None
    counts = counts.reset_index().to_html(index=False, border=0)
    sections = [
        {
            "id": "machines",
            "title": "Machines",
            "items": [{"kind": "table", "html": machines}],
            "text": "Each machine's newest run is shown; asv keeps one folder per machine.",
        },
        {
            "id": "coverage",
            "title": "Results per machine",
            "items": [
                {"kind": "table", "html": counts},
                {
                    "kind": "text",
                    "text": "skipped: the combination cannot run on that machine (no "
                    "GPU or Triton, a size for another device, a peer library "
                    "not installed).",
                },
            ],
        },
        {
            "id": "notes",
            "title": "Missing, failed and stale results",
            "items": [{"kind": "notes", "lines": results.notes or ["none"]}],
        },
    ]
    if asv_html is not None and (asv_html / "index.html").is_file():
        rel = os.path.relpath(asv_html / "index.html", start=Path.cwd())
        sections.append({"id": "asv", "title": "asv's own site", "items": [{"kind": "text",
            "text": f"{rel}: its pages load scripts over HTTP, view them with "
                    f"`python -m asv preview`."}]})  # fmt: skip
    return sections


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def build(results: ResultSet, out: Path, sources: list[str], asv_html: Path | None = None) -> Path:
    """Render every page, then write them; returns the path of index.html."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    page = env.get_template("page.html")
    nav = [("index.html", "Overview"), ("kernels.html", "Kernel performance")]
    common = {
        "nav": nav,
        "sources": sources,
        "built": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    pages = {
        "index.html": page.render(
            title="hdbench report",
            sections=index_sections(results, asv_html),
            intro="Benchmarks of hdbench's kernels and experiments, read from asv's results.",
            **common,
        ),  # fmt: skip
        "kernels.html": page.render(
            title="Kernel performance",
            sections=kernel_sections(results),
            intro="Time per call against image side, hdbench's implementations and "
            "their baselines; CPU machines show host wall clock, GPU machines CUDA-event "
            "medians.",
            **common,
        ),  # fmt: skip
    }
    for name, html in pages.items():
        write_atomic(out / name, html)
    return out / "index.html"
