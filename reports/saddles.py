"""The saddles page (SCIENCE.md, E3) from ``bench_saddles``'s track_ benchmarks.

Sections: P(minimum) of random-matrix Hessians against d with Wilson 95% bars, the exact values
and the reference curves, and the mean index fraction; the fitted decay rates; the index
distribution beside Binomial(d, 1/2); the critical-point finder on the torus landscape against its
exact answer; P(minimum) of Gaussian random fields against d and of MLP losses against parameter
count, with the searches' kept and rejected counts; then every class of the module as generic
sections (tables for the classes drawn here, plots and tables for any other).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from hdbench.reports.build import benchmark_sections
from hdbench.reports.figures import figure_png, html_table, plain_number, plot_item
from hdbench.reports.provenance import figure_note
from hdbench.reports.results import ResultSet
from hdbench.reports.science import elsewhere_text, get, interval, long_rows, missing_item, wide

MODULE = "bench_saddles"
MODEL_COLORS = {"signs": "C0", "goe": "C3"}
GOE_D2 = (2 - math.sqrt(2)) / 4  # exact P(minimum) of the 2x2 GOE
GOE_THETA = math.log(3) / 4
THETA = {"signs": ("ln 2 (exact)", math.log(2)), "goe": ("ln 3 / 4 (asymptotic)", GOE_THETA)}
CLASSES = frozenset(
    {
        "TrackRandomMatrix",
        "TrackRandomMatrixExact",
        "TrackDecayRate",
        "TrackTorusFinder",
        "TrackIndexDistribution",
        "TrackGaussianField",
        "TrackGaussianFieldSearch",
        "TrackGaussianFieldDecayRate",
        "TrackMLPCritical",
        "TrackMLPSearch",
        "TrackMLPIndexLoss",
    }
)
SHOWN_DS = (2, 4, 8, 12, 24)  # the dimensions whose index distribution is drawn


def reference(model: str, d: np.ndarray) -> np.ndarray:
    """The reference curve: 2^-d (independent signs); for the GOE exp(-ln(3)/4 d^2) anchored at
    the exact d = 2 value (2 - sqrt 2)/4."""
    if model == "goe":
        return GOE_D2 * np.exp(-GOE_THETA * (d**2 - 4.0))
    return 2.0**-d


def _pmin_points(
    ax: plt.Axes, x: np.ndarray, p: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str
) -> list[float]:
    """P(minimum) with its interval as error bars, a hollow triangle at the upper end where no
    minimum was among the points; returns the positive values that bound the y axis."""
    pos = p > 0
    ax.errorbar(
        x[pos],
        p[pos],
        yerr=[p[pos] - lo[pos], hi[pos] - p[pos]],
        fmt="o",
        ms=4,
        color=color,
        capsize=2,
        lw=1,
    )
    ax.plot(x[~pos], hi[~pos], "v", color=color, mfc="none", ms=6)
    return [v for v in (*lo[pos], *hi[~pos], *p[pos]) if v > 0]


def pmin_figure(data: pd.DataFrame, exact: pd.DataFrame, title: str) -> str:
    """P(minimum) (log) and the mean index fraction against d, one row per machine."""
    machines = sorted(data["machine"].unique())
    models = [m for m in MODEL_COLORS if m in set(data["model"])]
    models += sorted(set(data["model"]) - set(models))
    fig, axes = plt.subplots(
        len(machines),
        2,
        squeeze=False,
        layout="constrained",
        figsize=(11, 3.4 * len(machines) + 0.9),
    )
    for row, machine in zip(axes, machines, strict=True):
        ax, ax2 = row
        sub = data[data["machine"] == machine]
        ds_all = np.arange(1, int(sub["d"].max()) + 1, dtype=float)
        floor = []
        for model in models:
            color = MODEL_COLORS.get(model, "C2")
            m = sub[sub["model"] == model].sort_values("d")
            d = m["d"].to_numpy(float)
            p, lo, hi = (
                get(m, k).to_numpy(float) for k in ("p_minimum", "p_minimum_low", "p_minimum_high")
            )
            floor += _pmin_points(ax, d, p, lo, hi, color)
            ref_d = ds_all[ds_all >= (2 if model == "goe" else 1)]
            ax.plot(ref_d, reference(model, ref_d), color=color, ls="--", lw=1)
            ex = (
                exact[(exact["machine"] == machine) & (exact["model"] == model)]
                if len(exact)
                else exact
            )
            if len(ex):
                ax.plot(
                    ex["d"].astype(float),
                    ex["p_minimum_exact"],
                    "o",
                    mfc="none",
                    mec="k",
                    ms=8,
                    mew=1,
                )
            if "mean_index_fraction" in m:
                ax2.plot(d, m["mean_index_fraction"], "o-", color=color, ms=4, lw=1.2)
        ax.set_yscale("log")
        if floor:
            ax.set_ylim(bottom=max(min(floor) / 5, 1e-12), top=1.5)
        ax.set_title(f"{machine} · P(minimum)", fontsize=9)
        ax.set_xlabel("dimension d", fontsize=8)
        ax.set_ylabel("P(minimum)", fontsize=8)
        ax2.axhline(0.5, color="k", lw=0.8, ls=":")
        ax2.set_ylim(0, 1)
        ax2.set_title(f"{machine} · mean index / d", fontsize=9)
        ax2.set_xlabel("dimension d", fontsize=8)
        ax2.set_ylabel("index / d", fontsize=8)
        for a in row:
            a.tick_params(labelsize=8)
            a.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=MODEL_COLORS.get(m, "C2"), marker="o", label=m) for m in models]
    handles += [
        Line2D(
            [],
            [],
            color="0.3",
            ls="--",
            label="reference: 2^-d (signs); (2-√2)/4·exp(-ln3/4·(d²-4)) (GOE)",
        ),
        Line2D([], [], color="k", marker="o", mfc="none", ls="", label="exact"),
        Line2D(
            [],
            [],
            color="0.3",
            marker="v",
            mfc="none",
            ls="",
            label="no minimum found: 95% upper bound",
        ),
        Line2D([], [], color="k", ls=":", label="index / d = 1/2 (symmetry)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def random_matrix_section(results: ResultSet) -> dict:
    """P(minimum) and the index against d, with the exact values and the reference curves."""
    section = {
        "id": "random-matrix",
        "title": "Random-matrix Hessians: P(minimum) against d",
        "notes": [],
        "text": "Monte Carlo P(minimum) (all eigenvalues positive) of a random Hessian of "
        "dimension d with Wilson 95% intervals, for independent eigenvalue signs "
        "and the GOE, beside the exact values (circles) and the reference curves. "
        "Right: the mean index (negative eigenvalues) as a fraction of d; the "
        "whole index distribution is in the next section.",
    }
    data = wide(results, MODULE, "TrackRandomMatrix")
    exact = wide(results, MODULE, "TrackRandomMatrixExact")
    if data.empty:
        items = [missing_item(results, MODULE, "TrackRandomMatrix")]
        return section | {"items": items}
    items = []
    if exact.empty:
        items.append(missing_item(results, MODULE, "TrackRandomMatrixExact", "Exact values: "))
    title = "P(minimum) and mean index fraction against dimension d"
    both = pd.concat([long_rows(results, data), long_rows(results, exact)])
    items.append(
        plot_item(
            title,
            pmin_figure(data, exact, title),
            shown=True,
            note=figure_note(results, both),
        )
    )
    table = data.assign(
        **{
            "P(minimum) [95%]": [
                interval(*v)
                for v in zip(
                    get(data, "p_minimum"),
                    get(data, "p_minimum_low"),
                    get(data, "p_minimum_high"),
                    strict=True,
                )
            ],
            "reference": [
                float(reference(m, np.array(float(d))))
                for m, d in zip(data["model"], data["d"], strict=True)
            ],
        }
    )
    if len(exact):
        table = table.merge(
            exact[["machine", "model", "d", "p_minimum_exact"]],
            how="left",
            on=["machine", "model", "d"],
        )
    cols = [
        "machine",
        "model",
        "d",
        "P(minimum) [95%]",
        "p_minimum_exact",
        "reference",
        "mean_index_fraction",
    ]
    table = table[[c for c in cols if c in table]].rename(
        columns={"p_minimum_exact": "exact", "mean_index_fraction": "mean index / d"}
    )
    items.append(
        {"kind": "details", "caption": f"Table ({len(table)} rows)", "html": html_table(table)}
    )
    rate = wide(results, MODULE, "TrackDecayRate")
    if rate.empty:
        items.append(missing_item(results, MODULE, "TrackDecayRate", "Decay rates: "))
    else:
        rates = pd.DataFrame(
            {
                "machine": rate["machine"],
                "model": rate["model"],
                "fit": [
                    "P ~ C exp(-theta d)" if m == "signs" else "P ~ C exp(-theta d²)"
                    for m in rate["model"]
                ],
                "fitted theta": get(rate, "decay_rate"),
                "reference": [THETA.get(m, ("–", math.nan))[0] for m in rate["model"]],
                "reference theta": [THETA.get(m, ("–", math.nan))[1] for m in rate["model"]],
            }
        )
        items.append(
            {
                "kind": "table",
                "html": html_table(rates),
                "note": figure_note(results, long_rows(results, rate)),
            }
        )
    return section | {"items": items}


def index_figure(data: pd.DataFrame, title: str) -> str:
    """P(index = k) against k / d for a few d, one panel per machine and model; Binomial(d, 1/2)
    (exact for independent signs) as the reference line."""
    panels = sorted({(m, model) for m, model in zip(data["machine"], data["model"], strict=True)})
    fig, axes = plt.subplots(
        1, len(panels), squeeze=False, layout="constrained", figsize=(5.2 * len(panels), 3.6)
    )
    for ax, (machine, model) in zip(axes[0], panels, strict=True):
        sub = data[(data["machine"] == machine) & (data["model"] == model)]
        ds = [d for d in SHOWN_DS if d in set(sub["d"])]
        for i, d in enumerate(ds):
            m = sub[sub["d"] == d].sort_values("index")
            k = m["index"].to_numpy(float)
            ax.plot(
                k / d,
                get(m, "probability").to_numpy(float),
                "o",
                ms=3,
                color=f"C{i}",
                label=f"d = {d}",
            )
            kk = np.arange(d + 1)
            binom = np.array([math.comb(d, int(j)) for j in kk], float) / 2.0**d
            ax.plot(kk / d, binom, "-", lw=0.8, color=f"C{i}", alpha=0.6)
        ax.set_yscale("log")
        ax.set_xlabel("index / d (fraction of negative eigenvalues)")
        ax.set_ylabel("P(index)")
        ax.set_title(f"{model} · {machine}", fontsize=10)
    # one legend for all panels (the colours are the same d in each), below them
    labels = dict(zip(*reversed(axes[0][0].get_legend_handles_labels()), strict=True))
    fig.legend(
        list(labels.values()),
        list(labels),
        loc="outside lower center",
        fontsize=8,
        ncols=len(labels),
        title="points: measured; lines: Binomial(d, 1/2)",
        title_fontsize=8,
    )
    fig.suptitle(title, fontsize=11)
    return figure_png(fig)


def index_section(results: ResultSet) -> dict:
    """The index distribution against d: the signs model follows Binomial(d, 1/2) exactly; the
    GOE's concentrates on index d / 2 faster (its extreme indices are exponentially rarer)."""
    section = {
        "id": "index-distribution",
        "title": "Index distribution against d",
        "notes": [],
        "text": "P(index = k) of random-matrix Hessians (Monte Carlo) against k / d for "
        "several d; lines: Binomial(d, 1/2), exact for independent signs. Index 0 "
        "is a minimum, index d a maximum; zero probabilities are not drawn on the "
        "log axis.",
    }
    data = wide(results, MODULE, "TrackIndexDistribution")
    if data.empty:
        items = [missing_item(results, MODULE, "TrackIndexDistribution")]
        return section | {"items": items}
    title = "Index distribution of random Hessians"
    items = [
        plot_item(
            title,
            index_figure(data, title),
            shown=True,
            note=figure_note(results, long_rows(results, data)),
        )
    ]
    return section | {"items": items}


def torus_section(results: ResultSet) -> dict:
    """The critical-point finder on the torus landscape, whose answer is known exactly."""
    section = {
        "id": "torus",
        "title": "Critical-point finder on the torus landscape",
        "notes": [],
        "text": "f(x) = sum_i sin(a_i x_i + phi_i): its critical points are known, and "
        "its index is Binomial(d, 1/2), so P(minimum) = 2^-d. Found: distinct "
        "critical points found; rejected: starts whose gradient norm stayed above "
        "the threshold (flat regions, not critical points).",
    }
    t = wide(results, MODULE, "TrackTorusFinder")
    if t.empty:
        return section | {"items": [missing_item(results, MODULE, "TrackTorusFinder")]}
    found, exact = get(t, "found"), get(t, "exact_count")
    table = pd.DataFrame(
        {
            "machine": t["machine"],
            "d": t["d"],
            "found": found,
            "exact count": exact,
            "found / exact": found / exact,
            "rejected starts": get(t, "rejected"),
            "P(minimum) found": get(t, "p_minimum"),
            "exact 2^-d": [2.0 ** -float(d) for d in t["d"]],
        }
    )
    items = [
        {
            "kind": "table",
            "html": html_table(table),
            "note": figure_note(results, long_rows(results, t)),
        }
    ]
    other = elsewhere_text(results, MODULE, "TrackTorusFinder", set(t["machine"]))
    return section | {"items": ([{"kind": "text", "text": other}] if other else []) + items}


def landscapes_figure(
    field: pd.DataFrame, rate: pd.DataFrame, mlp: pd.DataFrame, mlp_search: pd.DataFrame, title: str
) -> str:
    """Per machine: the Gaussian field's P(minimum) against d beside 2^-d, the GOE reference
    and its fitted exp(-theta d); the MLP loss's P(minimum) against parameter count, each point
    labelled with the critical points kept and the starts rejected (a cross on the axis where
    every start was rejected)."""
    machines = sorted(set(field["machine"]) | set(mlp_search["machine"]) | set(mlp["machine"]))
    fig, axes = plt.subplots(
        len(machines),
        2,
        squeeze=False,
        layout="constrained",
        figsize=(11, 3.6 * len(machines) + 0.9),
    )
    for (ax, ax2), machine in zip(axes, machines, strict=True):
        f = field[field["machine"] == machine].sort_values("d")
        bounds: list[float] = []
        if len(f):
            d = f["d"].to_numpy(float)
            bounds += _pmin_points(
                ax,
                d,
                *(
                    get(f, k).to_numpy(float)
                    for k in ("p_minimum", "p_minimum_low", "p_minimum_high")
                ),
                color="C2",
            )
            ds = np.arange(1, d.max() + 1)
            ax.plot(ds, reference("signs", ds), color=MODEL_COLORS["signs"], ls="--", lw=1)
            goe_d = ds[ds >= 2]
            ax.plot(goe_d, reference("goe", goe_d), color=MODEL_COLORS["goe"], ls="--", lw=1)
            r = rate[(rate["machine"] == machine) & (rate["power"] == 1)] if len(rate) else rate
            theta = float(get(r, "decay_rate").iloc[0]) if len(r) else math.nan
            pos = get(f, "p_minimum").to_numpy(float) > 0
            if not math.isnan(theta) and pos.any():
                # the fit's own anchor is not recorded: draw its slope through the points' centre
                logs = np.log(get(f, "p_minimum").to_numpy(float)[pos]) + theta * d[pos]
                c = np.exp(np.mean(logs))
                ax.plot(ds, c * np.exp(-theta * ds), color="C2", ls=":", lw=1.2)
            ax.set_xticks(ds)
        ax.set_yscale("log")
        if bounds:
            ax.set_ylim(bottom=min(bounds) / 3, top=1.5)
        ax.set_title(f"{machine} · Gaussian random field", fontsize=9)
        ax.set_xlabel("dimension d", fontsize=8)
        ax.set_ylabel("P(minimum) among critical points", fontsize=8)
        m = mlp[mlp["machine"] == machine].sort_values("n_params")
        srch = mlp_search[mlp_search["machine"] == machine].sort_values("n_params")
        bounds = []
        if len(m):
            bounds += _pmin_points(
                ax2,
                m["n_params"].to_numpy(float),
                *(
                    get(m, k).to_numpy(float)
                    for k in ("p_minimum", "p_minimum_low", "p_minimum_high")
                ),
                color="C4",
            )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        bottom = min([0.05, *bounds]) / 3
        ax2.set_ylim(bottom=bottom, top=1.5)
        # each label beside its marker: the point, the upper bound, or the cross on the axis
        at = {
            n: (p if p > 0 else hi)
            for n, p, hi in zip(
                m["n_params"], get(m, "p_minimum"), get(m, "p_minimum_high"), strict=True
            )
        }
        for n, kept, rej in zip(
            srch["n_params"], get(srch, "found"), get(srch, "rejected"), strict=True
        ):
            y = at.get(n, math.nan)
            if math.isnan(y):
                if kept == 0:
                    ax2.plot([n], [bottom * 1.3], "x", color="C4", ms=7, mew=1.5)
                y = bottom * 1.3
            ax2.annotate(
                f"{kept:.0f} kept\n{rej:.0f} rejected",
                (n, y),
                fontsize=7,
                textcoords="offset points",
                xytext=(6, 4),
            )
        ns = sorted(set(srch["n_params"]) | set(m["n_params"]))
        if ns:
            ax2.set_xticks(ns)
            ax2.set_xticklabels([str(int(n)) for n in ns])
            ax2.set_xlim(min(ns) / 1.6, max(ns) * 2.5)
        ax2.xaxis.set_minor_formatter(NullFormatter())
        ax2.yaxis.set_major_formatter(FuncFormatter(plain_number))
        ax2.yaxis.set_minor_formatter(NullFormatter())
        ax2.set_title(f"{machine} · MLP loss (tanh, MSE)", fontsize=9)
        ax2.set_xlabel("parameter count", fontsize=8)
        ax2.set_ylabel("P(minimum) among critical points", fontsize=8)
        for a in (ax, ax2):
            a.tick_params(labelsize=8)
            a.grid(True, which="both", alpha=0.25)
    handles = [
        Line2D([], [], color="C2", marker="o", label="Gaussian field (Wilson 95%)"),
        Line2D([], [], color="C2", ls=":", label="field: fitted exp(-theta d)"),
        Line2D([], [], color=MODEL_COLORS["signs"], ls="--", label="2^-d (independent signs)"),
        Line2D([], [], color=MODEL_COLORS["goe"], ls="--", label="GOE reference"),
        Line2D([], [], color="C4", marker="o", label="MLP loss (Wilson 95%)"),
        Line2D(
            [], [], color="C4", marker="x", ls="", label="MLP: no start reached a critical point"
        ),
        Line2D(
            [],
            [],
            color="0.3",
            marker="v",
            mfc="none",
            ls="",
            label="no minimum among the points: 95% upper bound",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def landscapes_section(results: ResultSet) -> dict:
    """Gaussian random fields against d and MLP losses against parameter count: P(minimum), the
    points kept and the starts rejected by the gradient-norm threshold."""
    section = {
        "id": "landscapes",
        "title": "Gaussian random fields and MLP losses",
        "notes": [],
        "text": "Critical points found by minimising ||grad f||² from many starts, kept "
        "only where the gradient norm is below the threshold (the table gives it "
        "and the starts rejected), classified by the Hessian's index. Left: "
        "random Fourier-feature fields in d dimensions beside 2^-d and the GOE. "
        "Right: the loss of a tanh MLP on fixed data against its parameter count; "
        "index by Lanczos on the HVP kernel, checked against the dense "
        "eigendecomposition.",
    }
    field = wide(results, MODULE, "TrackGaussianField")
    field_search = wide(results, MODULE, "TrackGaussianFieldSearch")
    rate = wide(results, MODULE, "TrackGaussianFieldDecayRate")
    mlp = wide(results, MODULE, "TrackMLPCritical")
    mlp_search = wide(results, MODULE, "TrackMLPSearch")
    index_loss = wide(results, MODULE, "TrackMLPIndexLoss")
    items: list[dict] = []
    for frame, klass in ((field, "TrackGaussianField"), (mlp_search, "TrackMLPSearch")):
        if frame.empty:
            items.append(missing_item(results, MODULE, klass))
    if field.empty and mlp_search.empty:
        return section | {"items": items}
    frames = [f for f in (field, field_search, rate, mlp, mlp_search, index_loss) if len(f)]
    long = pd.concat([long_rows(results, f) for f in frames])
    title = "P(minimum) among critical points: Gaussian fields and MLP losses"
    items.append(
        plot_item(
            title,
            landscapes_figure(field, rate, mlp, mlp_search, title),
            shown=True,
            note=figure_note(results, long),
        )
    )
    rows = []
    for kind, dim, pts, srch in (
        ("Gaussian field", "d", field, field_search),
        ("MLP loss", "n_params", mlp, mlp_search),
    ):
        if srch.empty:
            continue
        t = srch.merge(pts, how="left", on=["machine", dim], suffixes=("", "_p"))
        if kind == "MLP loss" and len(index_loss):
            t = t.merge(
                index_loss[["machine", dim, "index_loss_correlation"]],
                how="left",
                on=["machine", dim],
            )
        rows.append(
            pd.DataFrame(
                {
                    "machine": t["machine"],
                    "landscape": kind,
                    "dimension": [f"{dim} = {v:g}" for v in t[dim]],
                    "kept": get(t, "found"),
                    "rejected starts": get(t, "rejected"),
                    "rejected: gradient in flat directions": get(t, "rejected_flat_share"),
                    "threshold ||grad||": get(t, "grad_threshold"),
                    "P(minimum) [95%]": [
                        interval(*v)
                        for v in zip(
                            get(t, "p_minimum"),
                            get(t, "p_minimum_low"),
                            get(t, "p_minimum_high"),
                            strict=True,
                        )
                    ],
                    "mean index / d": get(t, "mean_index_fraction"),
                    "mean loss": get(t, "mean_loss"),
                    "rho(index, loss)": get(t, "index_loss_correlation"),
                    "Lanczos = dense": get(t, "lanczos_dense_agreement"),
                }
            )
        )
    if rows:
        table = pd.concat(rows, ignore_index=True).dropna(axis=1, how="all")
        items.append(
            {
                "kind": "table",
                "html": html_table(table),
                "note": "kept: distinct critical points; rejected: starts whose gradient "
                "norm stayed above the threshold; gradient in flat directions: the "
                "median share of a rejected start's final gradient along Hessian "
                "eigenvectors of curvature below 1e-3 of the largest (near 1: "
                "stalled in a gradient-flat region, where Newton steps cannot "
                "remove it; near 0: not converged); rho: Spearman's rank "
                "correlation over the points.",
            }
        )
    if len(rate):
        rates = pd.DataFrame(
            {
                "machine": rate["machine"],
                "fit": [
                    "P ~ C exp(-theta d)" if p == 1 else "P ~ C exp(-theta d²)"
                    for p in rate["power"]
                ],
                "fitted theta (field)": get(rate, "decay_rate"),
                "reference": [
                    "ln 2 (independent signs)" if p == 1 else "ln 3 / 4 (GOE, asymptotic)"
                    for p in rate["power"]
                ],
                "reference theta": [THETA["signs" if p == 1 else "goe"][1] for p in rate["power"]],
            }
        )
        items.append({"kind": "table", "html": html_table(rates)})
    return section | {"items": items}


def sections(results: ResultSet, modules: tuple[str, ...]) -> list[dict]:
    """Every section of the saddles page, then the module's classes (generic sections)."""
    out = [
        random_matrix_section(results),
        index_section(results),
        torus_section(results),
        landscapes_section(results),
    ]
    return out + benchmark_sections(results, modules, tables_only=CLASSES)
