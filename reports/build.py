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

import base64
import datetime as dt
import importlib
import io
import math
import numbers
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from reports.provenance import figure_note  # noqa: E402
from reports.results import ResultSet, param_value, split_name  # noqa: E402
from suite.common import write_atomic  # noqa: E402

TEMPLATES = Path(__file__).parent / "templates"
ROOT = Path(__file__).resolve().parents[1]  # the repository
X_PARAMS = ("side", "size", "resolution", "width", "dim", "d", "n")  # x axis, first found
FACET = "op"  # one panel row per value
COLOR = "impl"  # one colour per value
# an implementation keeps its colour on every figure and page: Triton blue, torch.compile green,
# eager orange, peer libraries after; the legend lists hdbench's own first
IMPL_COLORS = {"triton": "C0", "hdbench": "C0", "hdbench_triton": "C0", "torch_compile": "C2",
               "hdbench_torch_compile": "C2", "eager": "C1", "hdbench_eager": "C1",
               "torchattacks": "C3", "foolbox": "C4", "kornia": "C5", "triton_kornia": "C9",
               "avg_pool": "C7", "torch_func": "C4", "double_backward": "C3",
               "double_backward_compile": "C8", "pyhessian_loop": "C3"}  # fmt: skip
IMPL_ORDER = ("triton", "triton_kornia", "hdbench", "hdbench_triton", "hdbench_torch_compile",
              "hdbench_eager", "torch_compile", "eager", "torchattacks", "foolbox", "kornia",
              "avg_pool", "torch_func", "double_backward", "double_backward_compile",
              "pyhessian_loop")  # fmt: skip
# the torch backend is hdbench's path where Triton cannot run (CPU): it stands in for hdbench there
HDBENCH_FALLBACK = "torch_compile"
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
TIME_SCALE = {"seconds": 1e3, "s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}  # to ms
MACHINE_COLUMNS = ("machine", "gpu", "gpu_count", "gpu_memory", "cuda", "torch", "triton", "cpu",
                   "num_cpu", "ram")  # fmt: skip


@dataclass(frozen=True)
class Page:
    """One report page: the benchmark modules it shows and how it turns them into sections."""

    file: str
    title: str
    modules: tuple[str, ...]
    intro: str
    always: bool = False  # built even when benchmarks.json has none of its modules
    sections: Callable[[ResultSet, tuple[str, ...]], list[dict]] | None = None  # default: generic
    # a page fed by something other than asv's results: built when `shown()` says so (instead
    # of by its modules), its line on the index saying `count()` (instead of benchmark counts)
    shown: Callable[[], bool] | None = None
    count: Callable[[], str] | None = None


def _page_module(name: str):
    """``reports.<name>``, imported when used, not at the top: the page modules build on this
    one's helpers."""
    return importlib.import_module(f"reports.{name}")


def _measurement_page(file: str, title: str, name: str, what: str, intro: str) -> Page:
    """A page of ``reports.<name>``, fed by the files its ``files()`` finds under
    reports/measurements/ rather than by asv: built when there is one, its ``sections()`` the
    page, its index line counting the files as `what`."""
    return Page(file, title, (), intro,
                sections=lambda r, m: _page_module(name).sections(),
                shown=lambda: bool(_page_module(name).files()),
                count=lambda: f"{len(_page_module(name).files())} {what} in "
                              "reports/measurements/")  # fmt: skip


def repo_name(path: Path) -> str:
    """`path` relative to the repository's root where it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


PAGES = [
    Page("kernels.html", "Kernel performance", ("bench_attack", "bench_pyramid", "bench_hvp"),
         "Time per call against image side: hdbench's implementations against their baselines. "
         "time_ benchmarks are host wall clock (synchronised on a GPU); GPU track_ benchmarks "
         "are CUDA-event medians (triton.testing.do_bench).", always=True),
    Page("scaling.html", "Scaling with resolution", ("bench_scaling",),
         "E1 and E2: the minimal adversarial perturbation's norm against image resolution, the "
         "fitted log-log slopes against the paper's predicted -1/2 under each reading, "
         "Goodfellow's linear argument and a control with a known answer.",
         sections=lambda r, m: _experiment("scaling", r, m)),
    Page("saddles.html", "Saddles and critical points", ("bench_saddles",),
         "E3: how rare minima are among critical points: random-matrix Hessians, landscapes "
         "with known answers, and every further landscape the suite measures.",
         sections=lambda r, m: _experiment("saddles", r, m)),
    _measurement_page(
        "gpu.html", "GPU snapshots", "snapshots", "snapshot(s)",
        "Timed, reduced runs of the GPU benchmarks (python -m suite.gpu_snapshot) kept under "
        "reports/measurements/, for GPUs the whole asv suite has not run on: each device's "
        "measured ceilings, then every measured combination, devices side by side. CUDA-event "
        "medians (triton.testing.do_bench); minimal-L2 searches: one wall-clock call each."),
    _measurement_page(
        "gpu_scaling.html", "Scaling on a GPU", "gpu_scaling", "file(s)",
        "Cells of the scaling experiment's GPU size (sides to 1024, the CNN included) run a "
        "family at a time outside asv and kept under reports/measurements/, with the "
        "experiment's own fit and verdicts, and the cells not yet run."),
]  # fmt: skip


def _experiment(name: str, results: ResultSet, modules: tuple[str, ...]) -> list[dict]:
    """The sections of an experiment page (``reports/<name>.py``)."""
    return _page_module(name).sections(results, modules)


def is_hdbench(impl: object) -> bool:
    """hdbench's own implementations: Triton kernels (``triton``, ``triton_<convention>``) and the
    hdbench_* loops."""
    return str(impl).startswith(("triton", "hdbench"))


def display(unit: str) -> tuple[float, str]:
    """Scale and unit to show: times in ms, bytes in MiB, the rest as recorded."""
    if unit in TIME_SCALE:
        return TIME_SCALE[unit], "ms"
    if unit == "bytes":
        return 1 / 2**20, "MiB"
    return 1.0, unit


def column_label(method: str, unit: str, n_times: int) -> str:
    """Table header for one method: ``time_op`` -> "time (ms)", ``track_gbps`` -> "GB/s"."""
    rest = method.partition("_")[2].replace("_", " ") or method
    if unit == "ms" and n_times == 1:
        return "time (ms)"
    if rest.lower() in (unit.lower(), unit.lower().replace("/", "p")):
        return unit
    if rest.startswith("pct ") and unit == "%":
        return f"% of {rest[4:]}"
    return f"{rest} ({unit})"


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _orders(results: ResultSet, names: list[str], rows: pd.DataFrame) -> dict[str, list]:
    """Each parameter's values in the suite's order (benchmarks.json), then any others seen."""
    orders: dict[str, list] = {}
    for name in names:
        bench = results.benchmarks.get(name, {})
        pairs = zip(bench.get("param_names", []), bench.get("params", []), strict=False)
        for pname, values in pairs:
            orders.setdefault(pname, [param_value(v) for v in values])
    for pname in orders:
        seen = rows[pname].dropna().unique() if pname in rows else []
        orders[pname] += sorted((v for v in seen if v not in orders[pname]), key=str)
    return orders


def _sorted(rows: pd.DataFrame, params: list[str], orders: dict[str, list]) -> pd.DataFrame:
    """`rows` in the suite's parameter order (fgsm before pgd, 64 before 128)."""

    def key(col: pd.Series) -> pd.Series:
        order = orders.get(col.name)
        return col.map(lambda v: order.index(v) if v in order else len(order)) if order else col

    return rows.sort_values(params, key=key) if params else rows


def _plain(v: float, _pos: object = None) -> str:
    return f"{v:g}"


def _impl_rank(v: object) -> tuple[int, str]:
    return (IMPL_ORDER.index(v) if v in IMPL_ORDER else len(IMPL_ORDER), str(v))


def grid_plot(
    rows: pd.DataFrame,
    x: str,
    color: str | None,
    styles: list[str],
    orders: dict[str, list],
    ylabel: str,
    title: str,
    log_y: bool = True,
    ref: float | None = None,
) -> str:
    """Column ``shown`` against `x`, one panel per ``op`` (rows) and machine (columns).

    Args:
        rows: the values to draw, with ``machine``, `x`, `color` and `styles` columns.
        x: the numeric parameter on the (log 2) x axis.
        color: the parameter whose values get one colour each (``impl``), or None.
        styles: further parameters: the first sets the line style, the second the marker.
        orders: each parameter's values in the suite's order.
        ylabel, title: axis label and figure title.
        log_y: log y axis, when the values span at least 3x.
        ref: a horizontal reference line (1 for speed-ups).

    Returns:
        The figure as base64 PNG.
    """
    facets = [v for v in orders.get(FACET, []) if FACET in rows and v in set(rows[FACET])]
    facets = facets or [None]
    machines = sorted(rows["machine"].unique())
    panels = [(f, m) for f in facets for m in machines]
    # machines side by side; a single machine wraps its panels three to a row
    ncols = len(machines) if len(machines) > 1 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = min(11.5, max(6.0, 3.9 * ncols))  # a lone panel still needs room for the legend
    fig, axes = plt.subplots(
        nrows,
        ncols,
        squeeze=False,
        layout="constrained",
        sharex=True,
        sharey="row" if len(machines) > 1 else False,  # machines compare on one scale
        figsize=(width, 2.5 * nrows + 0.9),
    )
    colors = sorted(rows[color].unique(), key=_impl_rank) if color else []
    others = iter(plt.cm.Dark2.colors)  # implementations with no fixed colour
    cmap = {v: IMPL_COLORS.get(v) or next(others) for v in colors}
    style_vals = [[v for v in orders.get(s, []) if v in set(rows[s])] for s in styles]
    lo, hi = rows["shown"].min(), rows["shown"].max()
    # a log axis over less than ~3x shows one tick label or none: linear reads better there
    log_y = log_y and lo > 0 and hi / lo >= 3
    keys = ([color] if color else []) + styles
    for ax, (fv, machine) in zip(axes.flat, panels, strict=False):
        sub = rows[rows["machine"] == machine]
        sub = sub[sub[FACET] == fv] if fv is not None else sub
        for key, grp in sub.groupby(keys, sort=False) if keys else [((), sub)]:
            c = cmap[key[0]] if color else "C0"
            st = key[1:] if color else key
            ls = STYLES[style_vals[0].index(st[0]) % len(STYLES)] if styles else "-"
            mk = MARKERS[style_vals[1].index(st[1]) % len(MARKERS)] if len(styles) > 1 else "o"
            grp = grp.sort_values(x, key=lambda s: s.astype(float))
            ax.plot(grp[x].astype(float), grp["shown"], color=c, ls=ls, marker=mk, ms=4, lw=1.4)
        if ref is not None:
            ax.axhline(ref, color="0.4", lw=0.8, zorder=0)
        ax.set_title(machine if fv is None else f"{fv} · {machine}", fontsize=9)
        _axes_style(ax, sorted(rows[x].astype(float).unique()), log_y)
    for n, ax in enumerate(axes.flat):
        if n >= len(panels):
            ax.set_visible(False)
        elif n + ncols >= len(panels):  # nothing drawn below: this panel carries the x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(x)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    handles = [Line2D([], [], color=cmap[v], lw=2, label=str(v)) for v in colors]
    for i, (s, vals) in enumerate(zip(styles[:2], style_vals, strict=False)):
        for j, v in enumerate(vals):
            ls = STYLES[j % len(STYLES)] if i == 0 else ""
            mk = MARKERS[j % len(MARKERS)] if i == 1 else None
            handles.append(Line2D([], [], color="0.3", ls=ls, marker=mk, label=f"{s}={v}"))
    if handles:  # below the panels: above them it would collide with the title
        ncol = min(len(handles), 6)
        fig.legend(handles=handles, loc="outside lower center", ncols=ncol, fontsize=8)
    fig.suptitle(textwrap.fill(title, int(width * 13)), fontsize=10)
    return _png(fig)


def _axes_style(ax: plt.Axes, xs: list[float], log_y: bool) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(which="both", labelsize=8)
    ax.grid(True, which="both", alpha=0.25)
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        # under three powers of ten in view, label the 2s and 5s as well
        lo, hi = ax.get_ylim()
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        ax.yaxis.set_minor_formatter(FuncFormatter(_plain) if decades < 3 else NullFormatter())


def speedups(rows: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Time of each baseline over hdbench's fastest implementation, per machine and parameters.

    hdbench's implementations are Triton and the hdbench_* loops; where none ran (a CPU), the
    torch backend (``torch_compile``) is hdbench's and the rest are baselines.

    Returns:
        Columns: machine, the parameters other than ``impl``, ``hdbench`` (the implementation
        used), ``baseline``, ``speed-up`` (above 1: hdbench is faster).
    """
    index = ["machine", *[p for p in params if p != COLOR]]
    out = []
    for key, grp in rows.groupby(index, sort=False):
        t = dict(zip(grp[COLOR], grp["value"], strict=True))
        ours = {i: v for i, v in t.items() if is_hdbench(i)}
        if not ours and HDBENCH_FALLBACK in t:
            ours = {HDBENCH_FALLBACK: t[HDBENCH_FALLBACK]}
        if not ours:
            continue
        best = min(ours, key=ours.get)
        base = dict(zip(index, key, strict=True), hdbench=best)
        out += [
            {**base, "baseline": impl, "speed-up": v / ours[best]}
            for impl, v in t.items()
            if impl not in ours
        ]
    return pd.DataFrame(out)


def html_table(df: pd.DataFrame, formatters: dict | None = None) -> str:
    """A plain HTML table: numbers right-aligned (class ``num``) to 4 significant digits."""
    formatters = formatters or {}

    def cell(col: str, v: object) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return '<td class="num">–</td>'
        if col in formatters:
            return f'<td class="num">{escape(formatters[col](v))}</td>'
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return f"<td>{escape(str(v))}</td>"
        text = str(v) if isinstance(v, numbers.Integral) else f"{v:.4g}"
        return f'<td class="num">{text}</td>'

    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = "\n".join(
        "<tr>" + "".join(cell(c, v) for c, v in zip(df.columns, row, strict=True)) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _why_empty(results: ResultSet, names: list[str], machines: set[str] = frozenset()) -> str:
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
    orders = _orders(results, names, rows)
    module = split_name(names[0])[0]
    note = lambda sub: figure_note(results, sub, module)  # noqa: E731
    return _Class(first, rows, params, orders, x, split, styles, timed, note)


def _plot(alt: str, data: str, shown: bool, note: str = "") -> dict:
    """A figure item: shown, or folded under its title (secondary figures keep pages short);
    `note` (what ran where, sizes, seeds) is printed under it."""
    return {"kind": "plot", "alt": alt, "data": data, "folded": not shown, "note": note}


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
            items.append(_plot(title, data, shown=not items, note=c.note(rows)))
    return items


def _speedup_items(c: _Class) -> list[dict]:
    """Speed-up of hdbench's fastest implementation over each baseline: a plot and a table."""
    if COLOR not in c.params or not c.timed:
        return []
    sp = speedups(c.rows[c.rows["benchmark"] == c.timed[0]], c.params)
    if sp.empty:
        return []
    items = []
    ours = ", ".join(sorted(set(sp["hdbench"]), key=_impl_rank))
    for suffix, rows in c.figures(sp.assign(shown=sp["speed-up"])) if c.x else []:
        title = (
            f"{split_name(c.timed[0])[2]}{suffix}: speed-up of hdbench's fastest ({ours}) over "
            "each baseline; above 1: hdbench is faster"
        )
        data = grid_plot(rows, c.x, "baseline", c.styles, c.orders, "speed-up (x)", title, ref=1)
        items.append(_plot(title, data, shown=not items, note=c.note(c.rows)))
    index = [col for col in sp.columns if col not in ("baseline", "speed-up")]
    wide = sp.pivot_table(
        index=index, columns="baseline", values="speed-up", aggfunc="first", sort=False
    )
    wide = _sorted(wide.add_prefix("over ").reset_index(), ["machine", *index[1:]], c.orders)
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
        wide = _sorted(wide.reset_index(), index, c.orders)
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
    wide = _sorted(wide.reset_index(), c.params, c.orders)
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
    }
    current = results.current()
    rows = current[current["benchmark"].isin(names)]
    if rows.empty:
        why = f"No results yet: {_why_empty(results, names)}."
        return section | {"items": [{"kind": "text", "text": why}]}
    c = _prepare(results, names, rows)
    items = (_plot_items(c) + _speedup_items(c)) if plots else []
    items += _side_by_side_items(c) + _table_items(c)
    elsewhere = _why_empty(results, names, set(rows["machine"]))
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
    """Pages with something to show: kernels always, others once their module exists (or their
    `shown()` says so)."""
    present = set(results.modules())
    pages = [p for p in PAGES
             if (p.shown() if p.shown else p.always or present & set(p.modules))]  # fmt: skip
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
        count = p.count() if p.count else f"{have} of {len(names)} benchmarks with current results"
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
        sections = (p.sections or benchmark_sections)(results, p.modules)
        html[p.file] = env.get_template("page.html").render(
            title=p.title, intro=p.intro, sections=sections, current=p.file, **common
        )
    for name, text in html.items():  # all rendered: a failure above wrote nothing
        write_atomic(out / name, text)
    return out / "index.html"
