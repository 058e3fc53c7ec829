"""The scaling page (SCIENCE.md, E1 and E2) from ``bench_scaling``'s track_ benchmarks.

Sections: the median minimal perturbation against side per data family (pixel L2 and
area-normalised L2, one colour per model, the fitted slope with its 95% interval drawn as a band,
the paper's predicted lines anchored at the smallest side); the fitted slopes and the verdict
under each reading; the models that did not learn; Goodfellow's linear argument (E2); the control
with a known answer; then every class of the module as tables (any further class in full).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hdbench.reports.build import benchmark_sections
from hdbench.reports.figures import figure_png, html_table, plot_item
from hdbench.reports.provenance import figure_note
from hdbench.reports.results import ResultSet
from hdbench.reports.science import (
    get,
    interval,
    log_axes,
    long_rows,
    missing_item,
    verdict_text,
    wide,
)
from hdbench.results.vocabulary import PREDICTED
from hdbench.results.vocabulary import READINGS as VOCABULARY_READINGS

MODULE = "bench_scaling"
READINGS = {key: r.label for key, r in VOCABULARY_READINGS.items()}
# the norm plotted, and the reading whose slope (against the side) draws its band
NORMS = {"median_l2": ("pixel L2", "l2_R"), "median_l2_area": ("area-normalised L2", "l2_area_R")}
MODEL_COLORS = {"linear": "C0", "mlp": "C1", "cnn": "C2"}
VERDICT_COLORS = {"agrees": "#1b7f3b", "inconclusive": "#b08900", "disagrees": "#b3261e"}
MATCHES = {-1.0: "-1 (Goodfellow)", -0.5: "-1/2", 0.0: "0 (resolution-consistent)"}
E2_QUANTITIES = {
    "median_linf": "minimal L-inf eps",
    "mean_abs_grad": "m = mean |w_i|",
    "margin": "margin |f|",
    "eps_m_n": "eps * m * N",
}
CLASSES = frozenset(
    {"TrackScaling", "TrackScalingSlope", "TrackGoodfellow", "TrackControl", "TrackScalingRun"}
)


def _ordered(values: pd.Series, order: tuple[str, ...]) -> list:
    seen = list(dict.fromkeys(values.dropna()))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def _ref_lines(ax: plt.Axes, xs: np.ndarray, y0: float) -> None:
    """The paper's predictions from (smallest side, y0): n = side gives R^-1/2; n = pixel count
    gives N^-1/2 = R^-1."""
    ax.plot(xs, y0 * (xs / xs[0]) ** -0.5, color="k", ls=":", lw=1.3, zorder=1)
    ax.plot(xs, y0 * (xs / xs[0]) ** -1.0, color="0.45", ls="-.", lw=1.0, zorder=1)


def _fit_band(ax: plt.Axes, x: np.ndarray, y: np.ndarray, fit: pd.Series, color: str) -> None:
    """The fitted slope through the points' log-centroid, its 95% interval as a band."""
    s, lo, hi = (float(fit.get(k, math.nan)) for k in ("slope", "slope_low", "slope_high"))
    if math.isnan(s) or len(x) < 2:
        return
    lx, ly = np.log(x), np.log(y)
    cx, cy = lx.mean(), ly.mean()
    grid = np.linspace(lx.min(), lx.max(), 50)
    ax.plot(np.exp(grid), np.exp(cy + s * (grid - cx)), color=color, lw=1.0, ls="--", alpha=0.9)
    if not (math.isnan(lo) or math.isnan(hi)):
        a, b = cy + lo * (grid - cx), cy + hi * (grid - cx)
        ax.fill_between(
            np.exp(grid),
            np.exp(np.minimum(a, b)),
            np.exp(np.maximum(a, b)),
            color=color,
            alpha=0.15,
            lw=0,
        )


def norm_figure(data: pd.DataFrame, slopes: pd.DataFrame, title: str) -> str:
    """Median norms against side: one row of panels per family, one column per norm."""
    families = _ordered(data["family"], ("upsampled", "natural", "noisy"))
    models = _ordered(data["model"], tuple(MODEL_COLORS))
    norms = [n for n in NORMS if n in data and data[n].notna().any()]
    fig, axes = plt.subplots(
        len(families),
        len(norms),
        squeeze=False,
        layout="constrained",
        figsize=(10, 2.9 * len(families) + 1.0),
    )
    sides = sorted(data["side"].astype(float).unique())
    for r, fam in enumerate(families):
        for c, norm in enumerate(norms):
            ax = axes[r, c]
            label, reading = NORMS[norm]
            firsts = []
            for model in models:
                sub = data[(data["family"] == fam) & (data["model"] == model)]
                sub = sub[sub[norm] > 0].sort_values("side")
                if sub.empty:
                    continue
                color = MODEL_COLORS.get(model, "C4")
                x, y = sub["side"].to_numpy(float), sub[norm].to_numpy(float)
                ax.plot(x, y, color=color, marker="o", ms=4, lw=1.4)
                fit = slopes[(slopes["family"] == fam) & (slopes["model"] == model)]
                fit = fit[fit["reading"] == reading]
                if not fit.empty:
                    _fit_band(ax, x, y, fit.iloc[0], color)
                if x[0] == sides[0]:
                    firsts.append(y[0])
            if firsts:
                _ref_lines(ax, np.array(sides), float(np.exp(np.mean(np.log(firsts)))))
            log_axes(ax, sides)
            ax.set_title(f"{fam} · {label}", fontsize=9)
            ax.set_ylabel(f"median {label}", fontsize=8)
            ax.set_xlabel("side R (N = R²)", fontsize=8)
    handles = [Line2D([], [], color=MODEL_COLORS.get(m, "C4"), marker="o", label=m) for m in models]
    handles += [
        Patch(color="0.5", alpha=0.3, label="fitted slope, 95% interval (band)"),
        Line2D([], [], color="k", ls=":", label="paper, n = side: R^-1/2"),
        Line2D([], [], color="0.45", ls="-.", label="paper, n = pixels: N^-1/2 = R^-1"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def run_size_text(results: ResultSet, machines: set[str]) -> str:
    """'Run size: <machine>: 128 test points per side, ...' from ``TrackScalingRun``, for the
    `machines` given; empty when none recorded it."""
    run = wide(results, MODULE, "TrackScalingRun")
    parts = []
    for machine in sorted(machines):
        sub = run[run["machine"] == machine] if len(run) else run
        if sub.empty:
            continue
        v = dict(zip(sub["quantity"], get(sub, "value"), strict=True))

        def n(key: str, v: dict = v) -> str:
            x = v.get(key, math.nan)
            return "?" if x != x else f"{x:g}"

        parts.append(
            f"{machine}: {n('test_points')} test points per side, training "
            f"{n('train_steps')} steps of {n('train_batch')}, sides to "
            f"{n('largest_side')}, {n('bootstrap_resamples')} bootstrap resamples, "
            f"{n('control_samples')} control samples; the run took {n('seconds')} s"
            + (
                f", {n('cells_read')} of its cells read back from earlier runs"
                if v.get("cells_read", 0) > 0
                else ""
            )
        )
    return ("Run size: " + "; ".join(parts) + ".") if parts else ""


def _note(results: ResultSet, rows: pd.DataFrame) -> str:
    """``figure_note`` and the run's size on the machines of `rows`."""
    note = figure_note(results, rows)
    size = run_size_text(results, set(rows["machine"])) if len(rows) else ""
    return f"{note} {size}".strip()


def _by(df: pd.DataFrame, *cols: str) -> list[tuple[tuple, pd.DataFrame]]:
    """Groups in the order of appearance (``wide`` sorts in the suite's order)."""
    groups = df.groupby(list(cols), sort=False)
    return [((k,) if not isinstance(k, tuple) else k, g) for k, g in groups]


def norm_section(results: ResultSet) -> dict:
    """E1's figures: the measured norms against side with the fitted bands and the paper's
    lines, one figure per machine and training regime."""
    section = {
        "id": "norms",
        "title": "Perturbation norm against resolution",
        "notes": [],
        "text": "Median minimal L2 perturbation over the correctly classified test points "
        "that were attacked, against the image side R (N = R² pixels), on log-log "
        "axes. Dashed: the fitted log-log slope (bootstrap 95% interval as the "
        "band) through the points' centre. Dotted and dash-dotted: the paper's "
        "O(1/sqrt(n)) under n = side and n = pixel count, anchored at the "
        "smallest side.",
    }
    data = wide(results, MODULE, "TrackScaling")
    if data.empty:
        return section | {"items": [missing_item(results, MODULE, "TrackScaling")]}
    slopes = wide(results, MODULE, "TrackScalingSlope")
    items = []
    if not any(n in data and data[n].notna().any() for n in NORMS):
        text = "No measured norm yet (every attack skipped, failed or not run); see below."
        return section | {"items": [{"kind": "text", "text": text}]}
    for (machine, regime), grp in _by(data, "machine", "regime"):
        fits = (
            slopes[(slopes["machine"] == machine) & (slopes["regime"] == regime)]
            if len(slopes)
            else pd.DataFrame(columns=["family", "model", "reading"])
        )
        title = f"{machine}: training regime '{regime}' (samples {_regime(regime)})"
        data_png = norm_figure(grp, fits, title)
        note = _note(results, long_rows(results, grp))
        items.append(plot_item(title, data_png, shown=not items, note=note))
    if slopes.empty:
        items.insert(
            0, missing_item(results, MODULE, "TrackScalingSlope", "No fitted slopes (bands): ")
        )
    return section | {"items": items}


def _regime(regime: str) -> str:
    return {"more": "= 2 x pixels", "fewer": "= pixels / 8, at least 16"}.get(regime, regime)


def slope_figure(slopes: pd.DataFrame, title: str) -> str:
    """Fitted slopes with their 95% intervals, one panel per reading, coloured by verdict."""
    readings = [r for r in READINGS if r in set(slopes["reading"])]
    keys = slopes[["family", "model", "regime"]].drop_duplicates().astype(str)
    labels = [" / ".join(k) for k in keys.itertuples(index=False)]
    fig, axes = plt.subplots(
        1,
        len(readings),
        squeeze=False,
        sharey=True,
        layout="constrained",
        figsize=(11, 0.24 * len(labels) + 1.6),
    )
    for ax, reading in zip(axes[0], readings, strict=True):
        sub = slopes[slopes["reading"] == reading]
        for y, key in enumerate(keys.itertuples(index=False)):
            row = sub[
                (sub["family"].astype(str) == key[0])
                & (sub["model"].astype(str) == key[1])
                & (sub["regime"].astype(str) == key[2])
            ]
            if row.empty:
                continue
            row = row.iloc[0]
            color = VERDICT_COLORS.get(verdict_text(row.get("verdict", math.nan)), "0.5")
            s, lo, hi = row.get("slope"), row.get("slope_low"), row.get("slope_high")
            ax.errorbar([s], [y], xerr=[[s - lo], [hi - s]], fmt="o", color=color, ms=4, capsize=2)
        ax.axvline(PREDICTED, color="k", lw=1)
        ax.axvspan(-10, 0.8 * PREDICTED, color=VERDICT_COLORS["agrees"], alpha=0.05)
        ax.axvline(0.8 * PREDICTED, color="0.5", ls="--", lw=0.8)
        ax.axvline(0.6 * PREDICTED, color="0.5", ls=":", lw=0.8)
        ax.set_xlim(
            min(-1.2, np.nanmin(sub["slope_low"]) - 0.1) if len(sub) else -1.2,
            max(0.3, np.nanmax(sub["slope_high"]) + 0.1) if len(sub) else 0.3,
        )
        ax.set_title(READINGS[reading], fontsize=9)
        ax.set_xlabel("log-log slope", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, axis="x", alpha=0.25)
    axes[0, 0].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[0, 0].invert_yaxis()
    handles = [
        Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLORS.items()
    ]
    handles += [
        Line2D([], [], color="k", label="predicted -1/2"),
        Line2D([], [], color="0.5", ls="--", label="agrees if high <= -0.4"),
        Line2D([], [], color="0.5", ls=":", label="disagrees if low > -0.3"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=6, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def slope_section(results: ResultSet) -> dict:
    """The fitted slopes with intervals and the verdict under each reading."""
    section = {
        "id": "slopes",
        "title": "Fitted slopes and verdicts",
        "notes": [],
        "text": "Log-log slope of the median norm against the reading's variable (pixel "
        "count N or side R), bootstrap 95% interval, and the verdict fixed in the "
        "suite: agrees when the interval's upper end is at or below -0.4, "
        "disagrees when its lower end is above -0.3, inconclusive otherwise. The "
        "paper predicts -1/2 under every reading.",
    }
    slopes = wide(results, MODULE, "TrackScalingSlope")
    if slopes.empty:
        return section | {"items": [missing_item(results, MODULE, "TrackScalingSlope")]}
    slopes = slopes.assign(verdict_word=get(slopes, "verdict").map(verdict_text))
    items = []
    counts = slopes.pivot_table(
        index=["machine", "reading"],
        columns="verdict_word",
        values="family",
        aggfunc="count",
        fill_value=0,
    )
    counts = counts.reindex(columns=[v for v in (*VERDICT_COLORS, "–") if v in counts.columns])
    counts = counts.reset_index()
    counts["reading"] = counts["reading"].map(lambda r: READINGS.get(r, r))
    counts.columns.name = None
    items.append(
        {
            "kind": "table",
            "html": html_table(counts),
            "note": "Verdicts per reading: number of (family, model, regime) cases.",
        }
    )
    for (machine,), grp in _by(slopes, "machine"):
        title = f"{machine}: fitted slopes, 95% intervals, verdicts"
        items.append(
            plot_item(
                title,
                slope_figure(grp, title),
                shown=len(items) < 2,
                note=_note(results, long_rows(results, grp)),
            )
        )
    index = ["machine", "family", "model", "regime"]
    slopes["cell"] = [
        interval(s, lo, hi)
        for s, lo, hi in zip(
            get(slopes, "slope"), get(slopes, "slope_low"), get(slopes, "slope_high"), strict=True
        )
    ]
    table = slopes.pivot_table(
        index=index, columns="reading", values=["cell", "verdict_word"], aggfunc="first", sort=False
    )
    cols = [(v, r) for r in READINGS for v in ("cell", "verdict_word") if (v, r) in table.columns]
    table = table[cols]
    table.columns = [
        f"{READINGS[r]}: {'slope [95%]' if v == 'cell' else 'verdict'}" for v, r in cols
    ]
    html = html_table(table.reset_index())
    for word in VERDICT_COLORS:
        html = html.replace(f"<td>{word}</td>", f'<td class="{word}">{word}</td>')
    items.append(
        {"kind": "table", "html": html, "note": _note(results, long_rows(results, slopes))}
    )
    return section | {"items": items}


def skipped_section(results: ResultSet) -> dict:
    """Models that did not learn: attack numbers skipped while clean accuracy was measured."""
    section = {
        "id": "skipped",
        "title": "Models that did not learn",
        "notes": [],
        "text": "A model whose clean accuracy stays below the suite's threshold is not "
        "attacked (asv records its attack numbers as skipped); it is left out of "
        "the figures and fits above.",
    }
    t = results.table
    t = t[(t["module"] == MODULE) & (t["klass"] == "TrackScaling") & t["latest"] & ~t["stale"]]
    keys = ["machine", "family", "model", "regime", "side"]
    if t.empty or not set(keys) <= set(t.columns):
        return section | {"items": [missing_item(results, MODULE, "TrackScaling")]}
    attack = t[t["method"] == "track_median_l2"].set_index(keys)["status"]
    acc = t[t["method"] == "track_clean_accuracy"].set_index(keys)
    both = acc.join(attack.rename("attack"), how="inner")
    skipped = both[(both["status"] == "ok") & (both["attack"] == "skipped")].reset_index()
    if skipped.empty:
        return section | {
            "items": [
                {
                    "kind": "text",
                    "text": "None: every model that was trained learned and was attacked.",
                }
            ]
        }
    grouped = skipped.groupby(keys[:-1], sort=False).agg(
        sides=("side", lambda s: ", ".join(map(str, s))),
        clean_accuracy=("value", lambda v: ", ".join(f"{x:.3f}" for x in v)),
    )
    return section | {
        "items": [
            {
                "kind": "table",
                "html": html_table(grouped.reset_index()),
                "note": _note(results, skipped),
            }
        ]
    }


def goodfellow_section(results: ResultSet) -> dict:
    """E2: the slopes against N of the minimal L-inf eps, m, the margin and eps*m*N, and which
    prediction the eps slope matches."""
    section = {
        "id": "goodfellow",
        "title": "Goodfellow's linear argument (E2)",
        "notes": [],
        "text": "Log-log slopes against the pixel count N with 95% intervals. Goodfellow "
        "predicts the minimal L-inf eps to fall like 1/N (slope -1), the "
        "resolution-consistent view predicts it constant (0, with m falling like "
        "1/N and eps*m*N constant); 'matches' is the prediction nearest the "
        "measured slope, 'in interval' whether it lies in the 95% "
        "interval.",
    }
    g = wide(results, MODULE, "TrackGoodfellow")
    items = []
    if g.empty:
        items.append(missing_item(results, MODULE, "TrackGoodfellow"))
    else:
        g["cell"] = [
            interval(s, lo, hi)
            for s, lo, hi in zip(
                get(g, "slope"), get(g, "slope_low"), get(g, "slope_high"), strict=True
            )
        ]
        index = ["machine", "family", "model", "regime"]
        table = g.pivot_table(
            index=index, columns="quantity", values="cell", aggfunc="first", sort=False
        )
        order = ["linf", "m", "margin", "eps_m_n"]
        table = table[[q for q in order if q in table] + [q for q in table if q not in order]]
        table.columns = [f"slope of {q} [95%]" for q in table.columns]
        eps = g[g["quantity"] == "linf"].set_index(index)
        table["eps slope matches"] = get(eps, "match").map(
            lambda v: "–" if math.isnan(v) else MATCHES.get(float(v), f"{v:g}")
        )
        table["in interval"] = get(eps, "match_in_interval").map(
            lambda v: "–" if math.isnan(v) else ("yes" if v >= 0.5 else "no")
        )
        items.append(
            {
                "kind": "table",
                "html": html_table(table.reset_index()),
                "note": _note(results, long_rows(results, g)),
            }
        )
    data = wide(results, MODULE, "TrackScaling")
    quantities = [q for q in E2_QUANTITIES if q in data]
    for (machine, regime), grp in _by(data, "machine", "regime") if quantities else []:
        title = f"{machine}: E2 quantities against side, regime '{regime}'"
        png = _quantity_figure(grp, quantities, title)
        items.append(
            plot_item(title, png, shown=False, note=_note(results, long_rows(results, grp)))
        )
    return section | {"items": items}


def _quantity_figure(data: pd.DataFrame, quantities: list[str], title: str) -> str:
    families = _ordered(data["family"], ("upsampled", "natural", "noisy"))
    models = _ordered(data["model"], tuple(MODEL_COLORS))
    fig, axes = plt.subplots(
        len(families),
        len(quantities),
        squeeze=False,
        layout="constrained",
        figsize=(11, 2.4 * len(families) + 0.9),
    )
    sides = sorted(data["side"].astype(float).unique())
    for r, fam in enumerate(families):
        for c, q in enumerate(quantities):
            ax = axes[r, c]
            for model in models:
                sub = data[(data["family"] == fam) & (data["model"] == model)]
                sub = sub[sub[q] > 0].sort_values("side")
                ax.plot(
                    sub["side"].astype(float),
                    sub[q],
                    marker="o",
                    ms=3,
                    color=MODEL_COLORS.get(model, "C4"),
                )
            log_axes(ax, sides)
            ax.set_title(f"{fam} · {E2_QUANTITIES[q]}", fontsize=8)
            if r == len(families) - 1:
                ax.set_xlabel("side R", fontsize=8)
    handles = [Line2D([], [], color=MODEL_COLORS.get(m, "C4"), marker="o", label=m) for m in models]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def control_section(results: ResultSet) -> dict:
    """The control with a known answer: uniform cube, random hyperplane through the centre."""
    section = {
        "id": "control",
        "title": "Control with a known answer",
        "notes": [],
        "text": "x uniform in [0,1]^n and a random dense hyperplane through the centre: "
        "the expected L2 distance is constant in n (slope 0) and the L-inf "
        "distance falls like n^-1/2. A slope interval that misses the known "
        "answer points at the measurement, not at the paper; a 95% interval "
        "misses it by chance alone in about one run in 20.",
    }
    c = wide(results, MODULE, "TrackControl")
    if c.empty:
        return section | {"items": [missing_item(results, MODULE, "TrackControl")]}
    lo, hi, exp = get(c, "slope_low"), get(c, "slope_high"), get(c, "expected_slope")
    table = pd.DataFrame(
        {
            "machine": c["machine"],
            "norm": c["norm"],
            "slope [95%]": [interval(*v) for v in zip(get(c, "slope"), lo, hi, strict=True)],
            "known slope": exp,
            "known slope in interval": [
                "–" if math.isnan(e) else ("yes" if a <= e <= b else "no")
                for a, b, e in zip(lo, hi, exp, strict=True)
            ],
            "mean distance / exact": get(c, "mean_distance_ratio"),
        }
    )
    return section | {
        "items": [
            {
                "kind": "table",
                "html": html_table(table),
                "note": _note(results, long_rows(results, c)),
            }
        ]
    }


def sections(results: ResultSet, modules: tuple[str, ...]) -> list[dict]:
    """Every section of the scaling page, then the module's classes as tables."""
    out = [
        norm_section(results),
        slope_section(results),
        skipped_section(results),
        goodfellow_section(results),
        control_section(results),
    ]
    return out + benchmark_sections(results, modules, tables_only=CLASSES)
