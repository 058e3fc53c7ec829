"""Figure and table helpers shared by the report's pages: units shown, parameter orders, the
grid of panels every benchmark class is drawn as, speed-ups of hdbench's implementations over the
rest, inline PNG and HTML tables.

Implementations keep one colour and legend position on every figure
(``hdbench.results.vocabulary``).
"""

from __future__ import annotations

import base64
import io
import math
import numbers
import textwrap
from html import escape

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from hdbench.reports.results import ResultSet, param_value  # noqa: E402
from hdbench.results.vocabulary import FALLBACK, IMPL_COLORS, IMPL_ORDER, role  # noqa: E402

X_PARAMS = ("side", "size", "resolution", "width", "dim", "d", "n")  # x axis, first found


FACET = "op"  # one panel row per value


COLOR = "impl"  # one colour per value


STYLES = ("-", "--", ":", "-.")


MARKERS = ("o", "s", "^", "D", "v", "P")


TIME_SCALE = {"seconds": 1e3, "s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}  # to ms


def is_hdbench(impl: object) -> bool:
    """hdbench's own implementations (role "ours" in ``hdbench.results.vocabulary``): Triton
    kernels (``triton``, ``triton_<convention>``) and the hdbench_* loops."""
    return role(impl) == "ours"


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


def figure_png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def param_orders(results: ResultSet, names: list[str], rows: pd.DataFrame) -> dict[str, list]:
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


def sorted_rows(rows: pd.DataFrame, params: list[str], orders: dict[str, list]) -> pd.DataFrame:
    """`rows` in the suite's parameter order (fgsm before pgd, 64 before 128)."""

    def key(col: pd.Series) -> pd.Series:
        order = orders.get(col.name)
        return col.map(lambda v: order.index(v) if v in order else len(order)) if order else col

    return rows.sort_values(params, key=key) if params else rows


def plain_number(v: float, _pos: object = None) -> str:
    return f"{v:g}"


def impl_rank(v: object) -> tuple[int, str]:
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
    colors = sorted(rows[color].unique(), key=impl_rank) if color else []
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
    return figure_png(fig)


def _axes_style(ax: plt.Axes, xs: list[float], log_y: bool) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(which="both", labelsize=8)
    ax.grid(True, which="both", alpha=0.25)
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
        ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        # under three powers of ten in view, label the 2s and 5s as well
        lo, hi = ax.get_ylim()
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        ax.yaxis.set_minor_formatter(
            FuncFormatter(plain_number) if decades < 3 else NullFormatter()
        )


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
        if not ours and FALLBACK in t:
            ours = {FALLBACK: t[FALLBACK]}
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


def plot_item(alt: str, data: str, shown: bool, note: str = "") -> dict:
    """A figure item: shown, or folded under its title (secondary figures keep pages short);
    `note` (what ran where, sizes, seeds) is printed under it."""
    return {"kind": "plot", "alt": alt, "data": data, "folded": not shown, "note": note}
