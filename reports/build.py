"""Build the self-contained HTML report from a ``ResultSet``.

Pages: ``index.html`` (machines, pages, runs, what is missing) and one page per entry of
``PAGES``: ``kernels.html`` always, an experiment page (scaling, saddles) only once its benchmark
module is in ``benchmarks.json``, and a generic page for any other module. Every page is a list
of sections, one per benchmark class, built from asv's metadata alone: x axis = the size
parameter (``side``...), one panel row per ``op``, one column per machine, colour = ``impl``,
line style and marker = the remaining parameters. A page that needs more (an experiment's own
figures) gets its own ``sections`` function in ``PAGES``: that is the extension point.

Plots are inline PNG (matplotlib, Agg) and the pages load nothing: they open from the file
system. Pages are rendered in memory, then each file is written to a temporary name and
``os.replace``-d, so a failed build leaves the previous report whole.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402

from hdbench.reports.figures import (  # noqa: E402
    COLOR,
    FACET,
    X_PARAMS,
    column_label,
    display,
    grid_plot,
    html_table,
    impl_rank,
    param_orders,
    plot_item,
    sorted_rows,
    speedups,
)
from hdbench.reports.provenance import figure_note  # noqa: E402
from hdbench.reports.results import ResultSet, split_name  # noqa: E402
from hdbench.results.atomic import write_atomic  # noqa: E402

TEMPLATES = Path(__file__).parent / "templates"
ROOT = Path(__file__).resolve().parents[1]  # the repository
MACHINE_COLUMNS = (
    "machine",
    "gpu",
    "gpu_count",
    "gpu_memory",
    "cuda",
    "torch",
    "triton",
    "cpu",
    "num_cpu",
    "ram",
)


@dataclass(frozen=True)
class Page:
    """One report page: the benchmark modules it shows and how it turns them into sections."""

    file: str
    title: str
    modules: tuple[str, ...]
    intro: str
    always: bool = False  # built even when benchmarks.json has none of its modules
    sections: Callable[[ResultSet, tuple[str, ...]], list[dict]] | None = None  # default: generic
    # committed measurements that the page shows after asv's results: ``reports.<measured>``,
    # whose ``files()`` finds them under reports/measurements/ and ``sections()`` draws them; the
    # page is built when either exists, and its index line counts both
    measured: str | None = None
    measured_what: str = "file(s)"  # what the index line calls the files
    measured_title: str = ""  # the heading put before each of their sections

    def measured_files(self) -> list[Path]:
        return _page_module(self.measured).files() if self.measured else []

    def all_sections(self, results: ResultSet) -> list[dict]:
        """asv's sections (``sections``, or the generic ones) with the measurements' after the
        page's own figures: before the generic per-class sections where the page has figures of
        its own (an experiment page), else last."""
        out = (self.sections or benchmark_sections)(results, self.modules)
        if not self.measured_files():
            return out
        measured = [
            s | {"id": f"measured-{s['id']}", "title": f"{self.measured_title}: {s['title']}"}
            for s in _page_module(self.measured).sections()
        ]
        own = next((i for i, s in enumerate(out) if s.get("generic")), len(out))
        at = own if own > 0 else len(out)
        return out[:at] + measured + out[at:]


def _page_module(name: str):
    """``reports.<name>``, imported when used, not at the top: the page modules build on this
    one's helpers."""
    return importlib.import_module(f"hdbench.reports.{name}")


def repo_name(path: Path) -> str:
    """`path` relative to the repository's root where it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


PAGES = [
    Page(
        "kernels.html",
        "Kernel performance",
        ("bench_attack", "bench_pyramid", "bench_hvp"),
        "Time per call against image side: hdbench's implementations against their baselines. "
        "time_ benchmarks are host wall clock (synchronised on a GPU); GPU track_ benchmarks "
        "are CUDA-event medians (triton.testing.do_bench). Below them, the GPU snapshots kept "
        "under reports/measurements/: timed, reduced runs of the GPU benchmarks (python -m "
        "hdbench.suite.gpu_snapshot) for GPUs the whole asv suite has not run on, each device's "
        "measured ceilings, then every measured combination, devices side by side (minimal-L2 "
        "searches: one wall-clock call each).",
        always=True,
        measured="snapshots",
        measured_what="GPU snapshot(s)",
        measured_title="GPU snapshots",
    ),
    Page(
        "scaling.html",
        "Scaling with resolution",
        ("bench_scaling",),
        "E1 and E2: the minimal adversarial perturbation's norm against image resolution, the "
        "fitted log-log slopes against the paper's predicted -1/2 under each reading, "
        "Goodfellow's linear argument and a control with a known answer. Below them, the "
        "cells of the experiment's GPU size (sides to 1024, the CNN included) run a family at a "
        "time outside asv and kept under reports/measurements/, with the experiment's own fit "
        "and verdicts, and the cells not yet run.",
        sections=lambda r, m: _experiment("scaling", r, m),
        measured="gpu_scaling",
        measured_what="file(s) of GPU-size cells",
        measured_title="GPU size",
    ),
    Page(
        "saddles.html",
        "Saddles and critical points",
        ("bench_saddles",),
        "E3: how rare minima are among critical points: random-matrix Hessians, landscapes "
        "with known answers, and every further landscape the suite measures.",
        sections=lambda r, m: _experiment("saddles", r, m),
    ),
]


def _experiment(name: str, results: ResultSet, modules: tuple[str, ...]) -> list[dict]:
    """The sections of an experiment page (``reports/<name>.py``)."""
    return _page_module(name).sections(results, modules)


def why_empty(results: ResultSet, names: list[str], machines: set[str] = frozenset()) -> str:
    """Why `names` have no current result on any machine (or on those not in `machines`)."""
    t = results.table
    rows = t[t["benchmark"].isin(names) & t["latest"] & ~t["machine"].isin(machines)]
    if rows.empty:
        return "" if machines else "not run on any machine yet"
    parts = []
    for machine, grp in rows.groupby("machine"):
        what = "stale" if grp["stale"].all() else " or ".join(sorted(set(grp["status"])))
        parts.append(f"{what} on {machine}")
    why = " (skipped: its setup raised NotImplementedError, e.g. no GPU there)"
    return "; ".join(parts) + (why if (rows["status"] == "skipped").any() else "")


@dataclass
class _Class:
    """The current rows of one benchmark class, in display units, and how to draw them."""

    names: list[str]  # its benchmarks, the ones to plot first
    rows: pd.DataFrame  # current rows with ``shown`` (display units) and ``column`` (header)
    params: list[str]
    orders: dict[str, list]
    x: str | None  # the numeric parameter on the x axis
    split: str | None  # one figure per value of this parameter (dtype): 12 lines are too many
    styles: list[str]  # the other parameters (not x, op, impl): line style and marker
    timed: list[str]  # benchmarks that are times (shown in ms)
    note: Callable[[pd.DataFrame], str]  # provenance line for the rows behind a figure

    def figures(self, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        """`rows` cut into one figure per value of ``split``: (title suffix, rows)."""
        if self.split is None:
            return [("", rows)]
        values = [v for v in self.orders[self.split] if v in set(rows[self.split])]
        return [(f", {self.split}={v}", rows[rows[self.split] == v]) for v in values]


def _prepare(results: ResultSet, names: list[str], rows: pd.DataFrame) -> _Class:
    bench = results.benchmarks.get(names[0], {})
    params = [p for p in bench.get("param_names", []) if p in rows.columns]
    shown = {n: display(u) for n, u in rows.groupby("benchmark")["unit"].first().items()}
    timed = [n for n in names if n in shown and shown[n][1] == "ms"]
    pct = [n for n in names if n in shown and shown[n][1] == "%"]
    first = list(dict.fromkeys(timed + pct + names))
    labels = {n: column_label(split_name(n)[2], shown[n][1], len(timed)) for n in shown}
    rows = rows.assign(
        shown=[v * shown[b][0] for v, b in zip(rows["value"], rows["benchmark"], strict=True)],
        unit_shown=rows["benchmark"].map(lambda b: shown[b][1]),
        column=rows["benchmark"].map(labels),
    )
    # a numeric x with one value makes a plot of dots: the table says it better
    x = next((p for p in X_PARAMS if p in params and rows[p].nunique() > 1), None)
    styles = [p for p in params if p not in (x, FACET, COLOR)]
    # parameters that vary get the line styles and markers first; constant ones need none
    styles = sorted(styles, key=lambda p: rows[p].nunique() <= 1)
    split = styles[0] if len(styles) > 1 and rows[styles[0]].nunique() > 1 else None
    styles = styles[1:] if split else styles
    orders = param_orders(results, names, rows)
    note = lambda sub: figure_note(results, sub)  # noqa: E731
    return _Class(first, rows, params, orders, x, split, styles, timed, note)


def _plot_items(c: _Class) -> list[dict]:
    """Time (and % of peak) against x; every benchmark when the class has neither. Only the
    first time figure is open; the rest are folded."""
    units = c.rows.groupby("benchmark")["unit_shown"].first()
    wanted = [n for n in c.names if units.get(n) in ("ms", "%")] or c.names
    items = []
    color = COLOR if COLOR in c.params else None
    for name in wanted if c.x else []:
        sub = c.rows[c.rows["benchmark"] == name]
        unit = units.get(name, "")
        for suffix, rows in c.figures(sub):
            title = f"{split_name(name)[2]} ({unit}){suffix}"
            data = grid_plot(rows, c.x, color, c.styles, c.orders, unit, title, unit != "%")
            items.append(plot_item(title, data, shown=not items, note=c.note(rows)))
    return items


def _speedup_items(c: _Class) -> list[dict]:
    """Speed-up of hdbench's fastest implementation over each baseline: a plot and a table."""
    if COLOR not in c.params or not c.timed:
        return []
    sp = speedups(c.rows[c.rows["benchmark"] == c.timed[0]], c.params)
    if sp.empty:
        return []
    items = []
    ours = ", ".join(sorted(set(sp["hdbench"]), key=impl_rank))
    for suffix, rows in c.figures(sp.assign(shown=sp["speed-up"])) if c.x else []:
        title = (
            f"{split_name(c.timed[0])[2]}{suffix}: speed-up of hdbench's fastest ({ours}) over "
            "each baseline; above 1: hdbench is faster"
        )
        data = grid_plot(rows, c.x, "baseline", c.styles, c.orders, "speed-up (x)", title, ref=1)
        items.append(plot_item(title, data, shown=not items, note=c.note(c.rows)))
    index = [col for col in sp.columns if col not in ("baseline", "speed-up")]
    wide = sp.pivot_table(
        index=index, columns="baseline", values="speed-up", aggfunc="first", sort=False
    )
    wide = sorted_rows(wide.add_prefix("over ").reset_index(), ["machine", *index[1:]], c.orders)
    fmts = {col: (lambda v: f"{v:.2f}x") for col in wide.columns if col.startswith("over ")}
    items.append({"kind": "details", "caption": "Speed-up table", "html": html_table(wide, fmts)})
    return items


def _table_items(c: _Class) -> list[dict]:
    """One table per machine (one for all when the class has no parameters): the parameters,
    then one column per benchmark of the class."""
    labels = c.rows.groupby("benchmark")["column"].first()
    columns = list(dict.fromkeys(labels[n] for n in c.names if n in labels))
    index = c.params or ["machine"]
    groups = c.rows.groupby("machine") if c.params else [("all machines", c.rows)]
    items = []
    for machine, grp in groups:
        wide = grp.pivot_table(
            index=index, columns="column", values="shown", aggfunc="first", sort=False
        )
        wide = sorted_rows(wide.reset_index(), index, c.orders)
        wide = wide[[*index, *[col for col in columns if col in wide.columns]]]
        caption = f"Table: {machine} ({len(wide)} row{'s' if len(wide) > 1 else ''})"
        items.append(
            {"kind": "details", "caption": caption, "html": html_table(wide), "note": c.note(grp)}
        )
    return items


def _side_by_side_items(c: _Class) -> list[dict]:
    """Every machine's numbers in one table, machines (GPU models) side by side, for classes
    measured on more than one machine."""
    machines = sorted(c.rows["machine"].unique())
    if len(machines) < 2 or not c.params:
        return []
    labels = c.rows.groupby("benchmark")["column"].first()
    columns = list(dict.fromkeys(labels[n] for n in c.names if n in labels))
    wide = c.rows.pivot_table(
        index=c.params, columns=["column", "machine"], values="shown", aggfunc="first", sort=False
    )
    order = [(col, m) for col in columns for m in machines if (col, m) in wide.columns]
    wide = wide[order]
    wide.columns = [f"{col}: {m}" for col, m in order]
    wide = sorted_rows(wide.reset_index(), c.params, c.orders)
    return [
        {
            "kind": "details",
            "caption": f"Table: machines side by side ({', '.join(machines)})",
            "html": html_table(wide),
            "note": c.note(c.rows),
        }
    ]


def class_section(results: ResultSet, names: list[str], plots: bool = True) -> dict:
    """One section for the benchmarks of one class: plots, speed-ups, tables per machine and
    side by side; with `plots` False (a page drew its own figures), the tables only."""
    module, klass, method = split_name(names[0])
    title = f"{module}.{klass or method}"
    benches = [results.benchmarks.get(n, {}) for n in names]
    units = ", ".join(
        f"{split_name(n)[2]} ({b.get('unit', '?')})" for n, b in zip(names, benches, strict=True)
    )
    section = {
        "id": title,
        "title": title,
        "text": f"{units}; version {benches[0].get('version', '?')}",
        "notes": [n for n in results.notes if any(f" {name}:" in n for name in names)],
        "generic": True,  # drawn from asv's metadata alone (see ``Page.all_sections``)
    }
    current = results.current()
    rows = current[current["benchmark"].isin(names)]
    if rows.empty:
        why = f"No results yet: {why_empty(results, names)}."
        return section | {"items": [{"kind": "text", "text": why}]}
    c = _prepare(results, names, rows)
    items = (_plot_items(c) + _speedup_items(c)) if plots else []
    items += _side_by_side_items(c) + _table_items(c)
    elsewhere = why_empty(results, names, set(rows["machine"]))
    if elsewhere:  # machines that ran the class but have nothing current to show
        items.insert(0, {"kind": "text", "text": f"No current result: {elsewhere}."})
    return section | {"items": items}


def benchmark_sections(
    results: ResultSet, modules: tuple[str, ...], tables_only: frozenset[str] = frozenset()
) -> list[dict]:
    """The generic sections of a page: one per benchmark class of `modules`; classes named in
    `tables_only` (drawn by the page's own figures) get their tables only."""
    fresh = results.table["benchmark"][~results.table["stale"]]
    groups: dict[tuple[str, str], list[str]] = {}
    for name in sorted(set(results.benchmarks) | set(fresh)):
        module, klass, method = split_name(name)
        if module in modules:
            groups.setdefault((module, klass or method), []).append(name)
    return [
        class_section(results, g, plots=split_name(g[0])[1] not in tables_only)
        for g in groups.values()
    ]


def pages_for(results: ResultSet) -> list[Page]:
    """Pages with something to show: kernels always, others once their module exists or their
    measurements do."""
    present = set(results.modules())
    pages = [p for p in PAGES if p.always or present & set(p.modules) or p.measured_files()]
    claimed = {m for p in PAGES for m in p.modules}
    pages += [Page(f"{m}.html", m, (m,), f"Benchmarks of {m}.") for m in sorted(present - claimed)]
    return pages


def index_context(results: ResultSet, pages: list[Page], out: Path, asv_html: Path | None) -> dict:
    """What index.html shows: machines, pages, runs, notes, asv's site."""
    m = results.machines.copy()
    if "ram" in m:
        # asv records bytes; a non-breaking space keeps "24 GiB" on one line
        m["ram"] = [f"{int(r) / 2**30:.0f}\u00a0GiB" if str(r).isdigit() else r for r in m["ram"]]
    first = [c for c in MACHINE_COLUMNS if c in m]
    m = m[first + [c for c in m if c not in first and c != "commit"] + ["commit"]]
    runs = results.runs.copy()
    for col in ("date", "ran_at"):
        runs[col] = [t.strftime("%Y-%m-%d %H:%M") if pd.notna(t) else "–" for t in runs[col]]
    runs["latest"] = ["yes" if v else "" for v in runs["latest"]]
    runs = runs.drop(columns="file").rename(columns={"date": "commit date", "ran_at": "ran at"})
    cur = results.current()
    listed = []
    for p in pages:
        names = [n for n in results.benchmarks if split_name(n)[0] in p.modules]
        have = cur[cur["module"].isin(p.modules)]["benchmark"].nunique()
        count = f"{have} of {len(names)} benchmarks with current results"
        measured = p.measured_files()
        if measured:
            count += f"; {len(measured)} {p.measured_what} in reports/measurements/"
        listed.append({"file": p.file, "title": p.title, "intro": p.intro, "count": count})
    asv = None
    if asv_html is not None and (asv_html / "index.html").is_file():
        asv = os.path.relpath(asv_html.resolve() / "index.html", out.resolve())
    return {
        "machines": html_table(m),
        "runs": html_table(runs),
        "pages": listed,
        "notes": results.notes,
        "asv": asv,
    }


def build(results: ResultSet, out: str | Path, asv_html: str | Path | None = None) -> Path:
    """Render every page, then write them all; returns the path of index.html.

    Args:
        results: the merged results (``reports.results.load``).
        out: folder for the HTML files (created if missing).
        asv_html: asv publish's site, linked from index.html when it exists.
    """
    out = Path(out)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    pages = pages_for(results)
    common = {
        "nav": [("index.html", "Overview")] + [(p.file, p.title) for p in pages],
        "sources": [str(s) for s in results.sources],
        "built": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    index = index_context(results, pages, out, Path(asv_html) if asv_html else None)
    html = {
        "index.html": env.get_template("index.html").render(
            title="hdbench benchmark report", current="index.html", **common, **index
        )
    }
    for p in pages:
        sections = p.all_sections(results)
        html[p.file] = env.get_template("page.html").render(
            title=p.title, intro=p.intro, sections=sections, current=p.file, **common
        )
    for name, text in html.items():  # all rendered: a failure above wrote nothing
        write_atomic(out / name, text)
    return out / "index.html"
