"""The report: reading asv results (failed, skipped, stale, missing), merging hosts, the HTML.

The fixture results are written by asv's own classes (``Benchmarks.save``, ``Machine.save``,
``Results.add_result`` / ``save``), so the reader is tested against asv's real file format.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from asv.benchmarks import Benchmarks
from asv.machine import Machine
from asv.results import Results
from asv.runner import BenchmarkResult

from hdbench.reports import build as build_mod
from hdbench.reports.__main__ import main
from hdbench.reports.build import build, speedups
from hdbench.reports.results import ResultsError, load

NAN = float("nan")


@pytest.fixture(autouse=True)
def _no_snapshots(tmp_path_factory, monkeypatch):
    """The report's GPU sections read reports/measurements/; tests give them their own."""
    from hdbench.reports import gpu_scaling, snapshots

    empty = tmp_path_factory.mktemp("no-measurements")
    monkeypatch.setattr(snapshots, "MEASUREMENTS", empty)
    monkeypatch.setattr(gpu_scaling, "MEASUREMENTS", empty)


def bench(name: str, params: dict[str, list], unit: str, version: str) -> dict:
    """A benchmarks.json entry as asv writes it: parameter values stored as their repr."""
    return {
        "name": name,
        "param_names": list(params),
        "unit": unit,
        "version": version,
        "params": [[repr(v) for v in vals] for vals in params.values()],
        "type": name.split(".")[-1].split("_")[0],
    }


OPS = bench(
    "bench_attack.TimeAttackOps.time_op",
    {"op": ["fgsm", "pgd_linf"], "impl": ["triton", "torch_compile", "eager"], "side": [64, 128]},
    "seconds",
    "ops-2",
)
GPU_PARAMS = {"op": ["fgsm"], "impl": ["triton", "eager"], "dtype": ["fp32"], "side": [64, 128]}
GPU_MS = bench("bench_attack.TrackAttackOpsGPU.track_ms", GPU_PARAMS, "ms", "gpu-1")
GPU_GBPS = bench("bench_attack.TrackAttackOpsGPU.track_gbps", GPU_PARAMS, "GB/s", "gpu-1")
ATTACK = bench(
    "bench_attack.TimeWholeAttack.time_attack",
    {"impl": ["hdbench_torch_compile", "torchattacks"], "side": [64]},
    "seconds",
    "attack-1",
)
IMPORT = bench("bench_attack.time_import", {}, "seconds", "import-1")  # unparameterised
PYRAMID = bench("bench_pyramid.TimePyramid.time_pyramid", {"side": [64]}, "seconds", "pyr-1")
SCALING = bench("bench_scaling.TrackScaling.track_exponent", {}, "unitless", "sc-1")
ALL = [OPS, GPU_MS, GPU_GBPS, ATTACK, IMPORT, PYRAMID, SCALING]
DAY = 86_400_000  # ms


def write_benchmarks(root: Path, benchmarks: list[dict]) -> None:
    conf = SimpleNamespace(results_dir=str(root), benchmark_dir="suite")
    Benchmarks(conf, benchmarks).save()


def write_run(
    root: Path,
    machine: str,
    commit: str,
    date: int,
    values: list[tuple[dict, list]],
    *,
    versions: dict | None = None,
    ran: int = 0,
) -> None:
    """One machine folder and one result file; `values`: (benchmark, result list) pairs."""
    info = {
        "machine": machine,
        "os": "Linux",
        "arch": "x86_64",
        "cpu": "Xeon",
        "num_cpu": "8",
        "ram": str(64 * 2**30),
        "gpu": "none" if machine.startswith("cpu") else "NVIDIA H100",
        "cuda": "12.4",
        "torch": "2.5.0",
        "triton": "3.1.0",
    }
    m = Machine()
    m.__dict__.update(info)
    m.save(str(root))
    res = Results(info, {}, commit, date, "3.11", "existing-py", {})
    started = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=ran)
    for b, result in values:
        b = dict(b, version=(versions or {}).get(b["name"], b["version"]))
        n = len(result)
        res.add_result(b, BenchmarkResult(result, [None] * n, [None] * n, 0, "", None), started)
    res.save(str(root))


def fixture_results(root: Path) -> Path:
    """cpu-a: Triton skipped, one failure, the GPU class skipped, an older run for history.
    gpu-b: everything measured, a stale whole-attack result, no time_import result."""
    write_benchmarks(root, ALL)
    ops_a = [NAN, NAN, 1e-3, 4e-3, 2e-3, 8e-3, NAN, NAN, 1.5e-3, None, 3e-3, 12e-3]
    write_run(root, "cpu-a", "a" * 40, 1_700_000_000_000 - DAY, [(OPS, [9e-3] * 12)])
    write_run(
        root,
        "cpu-a",
        "b" * 40,
        1_700_000_000_000,
        [
            (OPS, ops_a),
            (GPU_MS, [NAN] * 4),
            (GPU_GBPS, [NAN] * 4),
            (ATTACK, [0.05, 0.08]),
            (IMPORT, [0.4]),
        ],
    )
    ops_b = [1e-4, 2e-4, 3e-4, 6e-4, 9e-4, 2e-3, 1e-4, 3e-4, 4e-4, 8e-4, 1e-3, 3e-3]
    write_run(
        root,
        "gpu-b",
        "c" * 40,
        1_700_000_100_000,
        [
            (OPS, ops_b),
            (GPU_MS, [0.01, 0.04, 0.03, 0.1]),
            (GPU_GBPS, [900.0, 1000, 300, 400]),
            (ATTACK, [0.01, 0.02]),
        ],
        versions={ATTACK["name"]: "attack-0"},
    )
    return root


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_results(tmp_path_factory.mktemp("results"))


def test_table_values_units_statuses(results_dir):
    rs = load([results_dir])
    t = rs.table
    assert list(t.columns[:9]) == [
        "machine",
        "commit",
        "date",
        "env",
        "benchmark",
        "module",
        "klass",
        "method",
        "kind",
    ]
    assert {"op", "impl", "side", "dtype", "value", "unit", "version", "stale", "status"} <= set(t)
    latest = t[t["latest"]]
    ops = latest[(latest["benchmark"] == OPS["name"]) & (latest["machine"] == "cpu-a")]
    assert (
        len(ops) == 12 and set(ops["kind"]) == {"time"} and set(ops["klass"]) == {"TimeAttackOps"}
    )
    row = ops[(ops["op"] == "fgsm") & (ops["impl"] == "eager") & (ops["side"] == 128)]
    assert row["value"].item() == pytest.approx(8e-3) and row["unit"].item() == "seconds"
    assert type(row["side"].item()) is int  # parameters keep their Python types
    assert (ops[ops["impl"] == "triton"]["status"] == "skipped").all()
    assert ops[ops["impl"] == "triton"]["value"].isna().all()
    failed = ops[ops["status"] == "failed"]
    assert failed[["op", "impl", "side"]].values.tolist() == [["pgd_linf", "torch_compile", 128]]
    gpu = latest[(latest["benchmark"] == GPU_GBPS["name"]) & (latest["machine"] == "gpu-b")]
    assert gpu["unit"].tolist() == ["GB/s"] * 4 and gpu["dtype"].tolist() == ["fp32"] * 4
    imp = latest[latest["benchmark"] == IMPORT["name"]]
    assert imp[["machine", "value", "klass", "method"]].values.tolist() == [
        ["cpu-a", 0.4, "", "time_import"]
    ]
    stale = latest[latest["stale"]]
    assert set(stale["machine"]) == {"gpu-b"} and set(stale["benchmark"]) == {ATTACK["name"]}
    # history: cpu-a's older commit is kept but not current
    assert set(t[t["machine"] == "cpu-a"]["commit"].str[0]) == {"a", "b"}
    current = rs.current()
    assert set(current["commit"].str[0]) == {"b", "c"} and (current["status"] == "ok").all()
    assert not current["stale"].any() and not current["value"].isna().any()
    m = rs.machines.set_index("machine")
    assert m.loc["gpu-b", "gpu"] == "NVIDIA H100" and m.loc["cpu-a", "triton"] == "3.1.0"
    assert rs.runs["latest"].sum() == 2 and len(rs.runs) == 3


def test_notes_list_missing_failed_stale_skipped(results_dir):
    notes = "\n".join(load([results_dir]).notes)
    assert f"gpu-b: {IMPORT['name']}: no result in the latest run" in notes
    assert f"cpu-a: {PYRAMID['name']}: no result in the latest run" in notes
    assert (
        f"cpu-a: {OPS['name']}: failed or did not run for 1 of 12 combination(s): "
        "op=pgd_linf, impl=torch_compile, side=128" in notes
    )
    assert (
        f"gpu-b: {ATTACK['name']}: stale result (version attack-0, the suite has attack-1)" in notes
    )
    assert re.search(r"cpu-a: every combination skipped .*TrackAttackOpsGPU\.track_ms", notes)


def test_errors_and_empty_machines(tmp_path):
    with pytest.raises(ResultsError, match=r"missing .*nowhere.*asv run"):
        load([tmp_path / "nowhere"])
    with pytest.raises(
        ResultsError, match=rf"in {re.escape(str(tmp_path))}, got no machine.*asv run"
    ):
        load([tmp_path])
    m = Machine()
    m.__dict__.update({"machine": "idle"})
    m.save(str(tmp_path))
    with pytest.raises(ResultsError, match="machine folders without results"):
        load([tmp_path])
    write_benchmarks(tmp_path, [OPS])
    write_run(tmp_path, "cpu-z", "d" * 40, 1_700_000_000_000, [(OPS, [1e-3] * 12)])
    assert "idle: no result files" in load([tmp_path]).notes
    assert main(["--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1


def test_merge_hosts(tmp_path, results_dir):
    b, c = tmp_path / "host-b", tmp_path / "host-c"
    write_benchmarks(b, [OPS])
    write_run(b, "gpu-c", "e" * 40, 1_700_000_200_000, [(OPS, [2e-4] * 12)])
    rs = load([results_dir, b])
    assert set(rs.machines["machine"]) == {"cpu-a", "gpu-b", "gpu-c"}
    assert set(rs.sources) == {results_dir, b}
    # cpu-a again, same commit as its latest run but run later: that copy wins
    write_benchmarks(c, ALL)
    write_run(c, "cpu-a", "b" * 40, 1_700_000_000_000, [(OPS, [5e-3] * 12)], ran=60)
    cur = load([results_dir, c]).current()
    assert set(cur[cur["machine"] == "cpu-a"]["value"]) == {5e-3}
    # ... and in the other order the same
    cur = load([c, results_dir]).current()
    assert set(cur[cur["machine"] == "cpu-a"]["value"]) == {5e-3}


def test_speedup_of_fastest_hdbench_impl():
    import pandas as pd

    rows = pd.DataFrame(
        {
            "machine": ["m"] * 4,
            "side": [64, 64, 128, 128],
            "impl": ["triton", "eager", "torch_compile", "eager"],
            "value": [1.0, 3.0, 2.0, 8.0],
        }
    )
    sp = speedups(rows, ["impl", "side"]).set_index("side")
    assert sp.loc[64, "hdbench"] == "triton" and sp.loc[64, "speed-up"] == 3.0
    # no Triton (a CPU): hdbench's torch backend stands in
    assert sp.loc[128, "hdbench"] == "torch_compile" and sp.loc[128, "speed-up"] == 4.0


def test_html_is_self_contained_with_plots_and_tables(tmp_path, results_dir):
    rs = load([results_dir])
    index = build(rs, tmp_path / "html")
    pages = {p.name: p.read_text() for p in (tmp_path / "html").glob("*.html")}
    # kernels always; scaling because bench_scaling is in benchmarks.json; no saddles page
    assert index.name == "index.html" and set(pages) == {
        "index.html",
        "kernels.html",
        "scaling.html",
    }
    for html in pages.values():
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert "<script" not in html and "@import" not in html and "<link" not in html
    kernels = pages["kernels.html"]
    # ops and GPU ops: time and speed-up; none for the whole attack, measured at one side only
    assert kernels.count('src="data:image/png;base64,') == 4
    assert "No current result: skipped on cpu-a" in kernels  # the GPU class
    for header in ("<th>time (ms)</th>", "<th>GB/s</th>", "<th>dtype</th>", "<th>over eager</th>"):
        assert header in kernels
    assert "Table: gpu-b" in kernels and "Table: cpu-a" in kernels
    assert "No results yet: not run on any machine yet" in kernels  # bench_pyramid
    assert "stale result (version attack-0" in kernels  # the section's own notes
    assert "No results yet" in pages["scaling.html"]
    index_html = pages["index.html"]
    for text in (
        "NVIDIA H100",
        "gpu-b",
        "cpu-a",
        "64\u00a0GiB",
        "kernels.html",
        "scaling.html",
        "failed or did not run",
        "stale result",
        "asv preview",
    ):
        assert text in index_html
    assert "<table" in index_html


def test_failed_build_keeps_the_previous_report(tmp_path, results_dir, monkeypatch):
    rs = load([results_dir])
    out = tmp_path / "html"
    build(rs, out)
    before = {p.name: p.read_text() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(build_mod, "grid_plot", boom)
    with pytest.raises(RuntimeError):
        build(rs, out)
    assert {p.name: p.read_text() for p in out.iterdir()} == before  # no temp files either


def test_cli_prints_the_report_path_last(tmp_path, results_dir, capsys):
    (tmp_path / "asv" / "html").mkdir(parents=True)
    (tmp_path / "asv" / "html" / "index.html").write_text("asv")
    out = tmp_path / "h"
    argv = [
        "--results",
        str(results_dir),
        "--out",
        str(out),
        "--asv-html",
        str(tmp_path / "asv/html"),
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str((out / "index.html").resolve())
    assert 'href="../asv/html/index.html"' in (out / "index.html").read_text()
    assert not math.isnan(load([results_dir]).current()["value"].sum())


# --- experiment pages: synthetic bench_scaling / bench_saddles results --------------------------

SC = {
    "family": ["upsampled", "natural", "noisy"],
    "model": ["linear", "mlp", "cnn"],
    "regime": ["more", "fewer"],
}
SIDES = [8, 16, 32, 64, 128]
SCALE = {"upsampled": 1.0, "natural": 0.7, "noisy": 0.4}
SLOPE = {"linear": -0.5, "mlp": -0.35, "cnn": -0.1}  # against the side


def values(b: dict, f) -> list:
    """Result list of benchmark `b`: ``f(**combo)`` over its parameter grid in asv's order."""
    import itertools

    grid = [[eval(v) for v in vals] for vals in b["params"]]  # noqa: S307 (own reprs)
    return [f(**dict(zip(b["param_names"], c, strict=True))) for c in itertools.product(*grid)]


def scaling_benchmarks() -> dict[str, dict]:
    out = {}
    for m, unit in [
        ("median_l2", "pixel L2"),
        ("median_l2_area", "area L2"),
        ("median_linf", "L-inf"),
        ("clean_accuracy", "fraction"),
        ("mean_abs_grad", "m"),
        ("margin", "logit"),
        ("eps_m_n", "eps*m*n"),
    ]:
        out[m] = bench(
            f"bench_scaling.TrackScaling.track_{m}", {**SC, "side": SIDES}, unit, "scaling-1"
        )
    readings = {**SC, "reading": ["l2_N", "l2_R", "l2_area_N", "l2_area_R"]}
    for m in ("slope", "slope_low", "slope_high", "verdict"):
        out[f"s_{m}"] = bench(
            f"bench_scaling.TrackScalingSlope.track_{m}",
            readings,
            "verdict" if m == "verdict" else "slope",
            "scaling-slope-1",
        )
    quant = {**SC, "quantity": ["linf", "m", "margin", "eps_m_n"]}
    for m in ("slope", "slope_low", "slope_high", "match", "match_in_interval"):
        out[f"g_{m}"] = bench(
            f"bench_scaling.TrackGoodfellow.track_{m}", quant, "slope", "scaling-goodfellow-1"
        )
    out["control"] = bench(
        "bench_scaling.TrackControl.track_slope",
        {"norm": ["l2", "linf"]},
        "slope",
        "scaling-control-1",
    )
    out["run"] = bench(
        "bench_scaling.TrackScalingRun.track_value",
        {
            "quantity": [
                "test_points",
                "train_steps",
                "train_batch",
                "bootstrap_resamples",
                "control_samples",
                "largest_side",
                "seconds",
                "cells_read",
            ]
        },
        "count",
        "scaling-run-1",
    )
    return out


def slope_of(family: str, model: str, reading: str) -> float:
    s = SLOPE[model] * (0.5 if reading.endswith("_N") else 1.0)  # N = R^2
    return s - (
        0.5 if "area" in reading and reading.endswith("_N") else 1.0 if "area" in reading else 0.0
    )


def scaling_runs(b: dict[str, dict]) -> list[tuple[dict, list]]:
    """Measured norms ~ side^slope; cnn did not learn in the 'fewer' regime (attacks skipped);
    the control has no result."""

    def norm(family, model, regime, side, area=False):
        if model == "cnn" and regime == "fewer":
            return NAN
        v = SCALE[family] * 3.0 * side ** SLOPE[model] * (1.1 if regime == "fewer" else 1.0)
        return v / side if area else v

    def slope(family, model, regime, reading, part):
        if model == "cnn" and regime == "fewer":
            return NAN
        s = slope_of(family, model, reading)
        return {"slope": s, "slope_low": s - 0.06, "slope_high": s + 0.06}.get(part)

    def verdict(**k):
        lo, hi = slope(**k, part="slope_low"), slope(**k, part="slope_high")
        return NAN if math.isnan(lo) else (1 if hi <= -0.4 else -1 if lo > -0.3 else 0)

    runs = [
        (b["median_l2"], values(b["median_l2"], norm)),
        (b["median_l2_area"], values(b["median_l2_area"], lambda **k: norm(**k, area=True))),
        (b["median_linf"], values(b["median_linf"], lambda **k: norm(**k) / k["side"])),
        (
            b["clean_accuracy"],
            values(
                b["clean_accuracy"],
                lambda **k: 0.5 if k["model"] == "cnn" and k["regime"] == "fewer" else 0.95,
            ),
        ),
        (b["mean_abs_grad"], values(b["mean_abs_grad"], lambda **k: 1.0 / k["side"] ** 2)),
        (b["margin"], values(b["margin"], lambda **k: 2.0)),
        (b["eps_m_n"], values(b["eps_m_n"], lambda **k: norm(**k) / k["side"])),
    ]
    for part in ("slope", "slope_low", "slope_high"):
        runs.append(
            (b[f"s_{part}"], values(b[f"s_{part}"], lambda part=part, **k: slope(**k, part=part)))
        )
    runs.append((b["s_verdict"], values(b["s_verdict"], verdict)))
    for part, v in {
        "slope": -0.5,
        "slope_low": -0.6,
        "slope_high": -0.4,
        "match": -0.5,
        "match_in_interval": 1.0,
    }.items():
        runs.append((b[f"g_{part}"], [v] * 72))
    runs.append((b["run"], [128, 150, 64, 2000, 512, 128, 111.5, 3]))
    return runs


SADDLE_PARAMS = {"model": ["signs", "goe"], "d": list(range(1, 13))}
MLP_PARAMS = {"n_params": [19, 67, 259]}


def saddle_benchmarks() -> dict[str, dict]:
    out = {
        m: bench(
            f"bench_saddles.TrackRandomMatrix.track_{m}",
            SADDLE_PARAMS,
            "probability",
            "saddles-random-matrix-1",
        )
        for m in ("p_minimum", "p_minimum_low", "p_minimum_high", "mean_index_fraction")
    }
    out["exact"] = bench(
        "bench_saddles.TrackRandomMatrixExact.track_p_minimum_exact",
        SADDLE_PARAMS,
        "probability",
        "saddles-random-matrix-exact-1",
    )
    out["rate"] = bench(
        "bench_saddles.TrackDecayRate.track_decay_rate",
        {"model": ["signs", "goe"]},
        "per d",
        "saddles-decay-rate-1",
    )
    for m in ("found", "exact_count", "rejected", "p_minimum"):
        out[f"t_{m}"] = bench(
            f"bench_saddles.TrackTorusFinder.track_{m}",
            {"d": [1, 2, 3, 4, 5]},
            "points",
            "saddles-torus-1",
        )
    out["index"] = bench(
        "bench_saddles.TrackIndexDistribution.track_probability",
        {"model": ["signs", "goe"], "d": [2, 4], "index": [0, 1, 2, 3, 4]},
        "probability",
        "saddles-index-distribution-1",
    )
    for m in ("p_minimum", "p_minimum_low", "p_minimum_high", "mean_index_fraction"):
        out[f"f_{m}"] = bench(
            f"bench_saddles.TrackGaussianField.track_{m}",
            {"d": [1, 2, 3]},
            "probability",
            "saddles-gaussian-field-1",
        )
        out[f"m_{m}"] = bench(
            f"bench_saddles.TrackMLPCritical.track_{m}", MLP_PARAMS, "probability", "saddles-mlp-1"
        )
    for m in ("found", "rejected", "grad_threshold", "rejected_flat_share"):
        out[f"fs_{m}"] = bench(
            f"bench_saddles.TrackGaussianFieldSearch.track_{m}",
            {"d": [1, 2, 3]},
            "points",
            "saddles-field-search-1",
        )
        out[f"ms_{m}"] = bench(
            f"bench_saddles.TrackMLPSearch.track_{m}", MLP_PARAMS, "points", "saddles-mlp-search-1"
        )
    out["f_rate"] = bench(
        "bench_saddles.TrackGaussianFieldDecayRate.track_decay_rate",
        {"power": [1, 2]},
        "per d^power",
        "saddles-field-decay-1",
    )
    # a class the page has no figure for: it still gets the generic section
    out["new"] = bench(
        "bench_saddles.TrackNewLandscape.track_fraction_minima",
        {"d": [1, 2, 3, 4]},
        "fraction",
        "saddles-new-1",
    )
    # the sizes and seeds a run of this checkout's suite records with each benchmark
    recorded = saddle_provenance()
    return {k: b | {"provenance": recorded} for k, b in out.items()}


def saddle_provenance() -> dict[str, list[str]]:
    from hdbench.suite import bench_saddles
    from hdbench.suite.provenance import module_provenance

    return module_provenance(bench_saddles.__file__)


def saddle_runs(b: dict[str, dict]) -> list[tuple[dict, list]]:
    def p(model, d):
        exact = 2.0**-d if model == "signs" else 0.146 * math.exp(-math.log(3) / 4 * (d * d - 4))
        return exact if exact > 2e-5 else 0.0

    def wilson(model, d, side):
        n, q = 100_000, p(model, d)
        centre = (q + 1.92 / n) / (1 + 3.84 / n)
        half = 1.96 * math.sqrt(q * (1 - q) / n + 0.96 / n**2) / (1 + 3.84 / n)
        return max(centre + side * half, 0.0)

    exact = values(
        b["exact"],
        lambda model, d: 2.0**-d if model == "signs" else {1: 0.5, 2: 0.1464}.get(d, NAN),
    )
    return [
        (b["p_minimum"], values(b["p_minimum"], p)),
        (b["p_minimum_low"], values(b["p_minimum_low"], lambda **k: wilson(**k, side=-1))),
        (b["p_minimum_high"], values(b["p_minimum_high"], lambda **k: wilson(**k, side=1))),
        (b["mean_index_fraction"], [0.5] * 24),
        (b["exact"], exact),
        (b["rate"], [0.69, 0.31]),
        (b["t_found"], [2, 8, 48, 96, 768]),
        (b["t_exact_count"], [2, 8, 48, 96, 768]),
        (b["t_rejected"], [0, 1, 3, 7, 40]),
        (b["t_p_minimum"], [0.5, 0.25, 0.125, 0.0625, 0.03]),
        (
            b["index"],
            values(
                b["index"],
                lambda model, d, index: math.comb(d, index) / 2**d if index <= d else None,
            ),
        ),
        # fields: 3 d; MLPs: 19 params 12 points, 67 params 3 points and no minimum, 259
        # params every start rejected (its TrackMLPCritical skipped)
        (b["f_p_minimum"], [0.5, 0.24, 0.11]),
        (b["f_p_minimum_low"], [0.45, 0.2, 0.08]),
        (b["f_p_minimum_high"], [0.55, 0.29, 0.16]),
        (b["f_mean_index_fraction"], [0.5, 0.5, 0.5]),
        (b["fs_found"], [400, 300, 200]),
        (b["fs_rejected"], [250, 500, 650]),
        (b["fs_grad_threshold"], [1e-8] * 3),
        (b["f_rate"], [0.84, 0.12]),
        (b["m_p_minimum"], [0.75, 0.0, None]),
        (b["m_p_minimum_low"], [0.47, 0.0, None]),
        (b["m_p_minimum_high"], [0.91, 0.56, None]),
        (b["m_mean_index_fraction"], [0.016, 0.054, None]),
        (b["ms_found"], [12, 3, 0]),
        (b["ms_rejected"], [0, 9, 12]),
        (b["ms_grad_threshold"], [1e-6] * 3),
        (b["fs_rejected_flat_share"], [0.1, 0.2, 0.3]),
        (b["ms_rejected_flat_share"], [None, 0.6, 0.97]),
    ]


@pytest.fixture(scope="module")
def science_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two machines. cpu-a: scaling and saddles measured (the control missing, cnn 'fewer' did
    not learn, the torus class failed); gpu-b: saddles only, Goodfellow stale, a new saddle
    class measured."""
    root = tmp_path_factory.mktemp("science")
    sb, db = scaling_benchmarks(), saddle_benchmarks()
    write_benchmarks(root, ALL[:-1] + list(sb.values()) + list(db.values()))
    runs = scaling_runs(sb) + saddle_runs(db)
    a = [(b, [None] * len(v) if "TorusFinder" in b["name"] else v) for b, v in runs]
    a = [(b, v) for b, v in a if "NewLandscape" not in b["name"]]
    write_run(root, "cpu-a", "b" * 40, 1_700_000_000_000, a + [(OPS, [1e-3] * 12)])
    g = [(b, v) for b, v in runs if "Goodfellow" in b["name"] or "saddles" in b["name"]]
    write_run(
        root,
        "gpu-b",
        "c" * 40,
        1_700_000_100_000,
        g + [(db["new"], [0.5, 0.2, 0.1, 0.04])],
        versions={b["name"]: "old" for b in sb.values()},
    )
    return root


def _pages(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in out.glob("*.html")}


def _self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html and "<link" not in html


@pytest.fixture(scope="module")
def science_pages(science_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from hdbench.reports import gpu_scaling, snapshots

    out = tmp_path_factory.mktemp("science_html")
    empty = tmp_path_factory.mktemp("no-measurements")
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: before the autouse fixture
        mp.setattr(snapshots, "MEASUREMENTS", empty)
        mp.setattr(gpu_scaling, "MEASUREMENTS", empty)
        build(load([science_dir]), out)
    return _pages(out)


def test_scaling_page(science_pages):
    html = science_pages["scaling.html"]
    _self_contained(html)
    # norms: one figure per regime; slopes: one; E2 quantities: one per regime
    assert html.count('src="data:image/png;base64,') == 5
    assert html.index("regime &#39;more&#39;") < html.index("regime &#39;fewer&#39;")
    for text in (
        "Perturbation norm against resolution",
        "paper&#39;s O(1/sqrt(n))",
        "pixel L2 vs side: slope [95%]",
        "area L2 vs N: verdict",
        '<td class="agrees">agrees</td>',
        '<td class="disagrees">disagrees</td>',
        "-0.5 [-0.56, -0.44]",
        "<td>-1/2</td>",
        "slope of eps_m_n [95%]",
    ):
        assert text in html, text
    # provenance under figures: machine, versions, sizes, seeds (or the suite's constants)
    assert "Ran on cpu-a: Xeon, CUDA 12.4, torch 2.5.0, triton 3.1.0 (commit bbbbbbbb)" in html
    assert "Measured: side 8..128 (5)" in html and "Benchmark version scaling-1" in html
    assert (
        "Run size: cpu-a: 128 test points per side, training 150 steps of 64, sides to 128, "
        "2000 bootstrap resamples, 512 control samples; the run took 111.5 s, 3 of its cells "
        "read back from earlier runs"
    ) in html
    # cnn in the 'fewer' regime did not learn: listed with its accuracy, not plotted
    skipped = html[html.index('id="skipped"') : html.index('id="goodfellow"')]
    assert "cnn" in skipped and "fewer" in skipped and "0.500, 0.500" in skipped
    # the control has no result; Goodfellow is stale on gpu-b and shown for cpu-a only
    control = html[html.index('id="control"') :]
    assert "TrackControl: no results yet: not run on any machine yet" in control
    assert "stale result (version old" in html
    assert '<h2 id="bench_scaling.TrackScaling">' in html  # the numbers as tables


def test_saddles_page(science_pages):
    html = science_pages["saddles.html"]
    _self_contained(html)
    # P(minimum), index-distribution and landscapes figures (fields and MLPs: one per machine
    # set), and the generic figure of the unknown class
    assert html.count('src="data:image/png;base64,') == 4
    assert "Index distribution against d" in html
    assert "bench_saddles.TrackNewLandscape" in html and "track_fraction_minima" in html
    land = html[html.index('id="landscapes"') : html.index('id="bench_saddles.')]
    for text in (
        "Gaussian random fields and MLP losses",
        "<td>d = 3</td>",
        "<td>n_params = 259</td>",
        "0.11 [0.08, 0.16]",
        "0 [0, 0.56]",
        "ln 2 (independent signs)",
        "rejected starts",
    ):
        assert text in land, text
    # 259 parameters: every start rejected, no P(minimum), the rejection still reported
    row = land[land.index("<td>n_params = 259</td>") :].split("</tr>")[0]
    assert '<td class="num">0</td>' in row and '<td class="num">12</td>' in row
    assert '<td class="num">0.97</td>' in row  # its rejected starts stalled in flat regions
    assert "– [–, –]" in row
    recorded = saddle_provenance()  # as the run recorded them in benchmarks.json
    consts, seeds = recorded["constants"], recorded["seeds"]
    assert seeds and any(c.startswith("TRIALS=") for c in consts)
    for text in (
        "Random-matrix Hessians",
        "exact",
        "ln 3 / 4 (asymptotic)",
        "fitted theta",
        f"Seeds: {seeds[0]}",
        next(c for c in consts if c.startswith("TRIALS=")),
    ):
        assert text in html, text
    # the torus finder failed on cpu-a and ran on gpu-b: its table holds gpu-b only
    torus = html[html.index('id="torus"') : html.index('id="landscapes"')]
    assert "gpu-b" in torus and "found / exact" in torus and "<td>cpu-a</td>" not in torus
    assert "TrackTorusFinder: no current result: failed on cpu-a" in torus
    assert "failed or did not run for 5 of 5" in html


def test_the_note_under_a_figure_shows_what_the_run_recorded_not_the_checkout(tmp_path):
    """Sizes and seeds come from benchmarks.json (what the suite recorded when it ran): a
    constant the checkout does not have is shown, and none is shown where none was recorded."""
    from hdbench.reports.provenance import figure_note

    recorded = dict(PYRAMID, provenance={"constants": ["LEVELS=7"], "seeds": ["seed=42"]})
    for bench_entry, expected in ((recorded, True), (PYRAMID, False)):
        root = tmp_path / str(expected)
        write_benchmarks(root, [bench_entry])
        write_run(root, "cpu-z", "d" * 40, 1_700_000_000_000, [(bench_entry, [1e-3])])
        rs = load([root])
        note = figure_note(rs, rs.current())
        assert ("Suite sizes: LEVELS=7." in note and "Seeds: seed=42." in note) is expected
        assert expected or "Suite sizes" not in note and "Seeds" not in note


def test_experiment_pages_without_results(tmp_path):
    """Suite defines the classes, nothing ran: every section says what is missing."""
    sb, db = scaling_benchmarks(), saddle_benchmarks()
    write_benchmarks(tmp_path / "r", [OPS, *sb.values(), *db.values()])
    write_run(tmp_path / "r", "cpu-z", "d" * 40, 1_700_000_000_000, [(OPS, [1e-3] * 12)])
    build(load([tmp_path / "r"]), tmp_path / "h")
    pages = _pages(tmp_path / "h")
    assert "TrackScaling: no results yet: not run on any machine yet" in pages["scaling.html"]
    # partial: accuracy measured, every attack skipped (no model learned)
    acc = sb["clean_accuracy"]
    write_run(
        tmp_path / "r",
        "cpu-y",
        "d" * 40,
        1_700_000_000_000,
        [(acc, [0.4] * 90), (sb["median_l2"], [NAN] * 90)],
    )
    build(load([tmp_path / "r"]), tmp_path / "h")
    html = _pages(tmp_path / "h")["scaling.html"]
    assert "No measured norm yet" in html and "0.400, 0.400" in html
    assert "TrackGoodfellow: no results yet" in pages["scaling.html"]
    assert "TrackRandomMatrix: no results yet" in pages["saddles.html"]
    assert "TrackTorusFinder: no results yet" in pages["saddles.html"]


def test_two_hosts_merge_into_one_report(tmp_path):
    """Each host keeps its own results directory; the report reads both, GPU models side by
    side, with % of peak and speed-ups per machine."""
    params = {"op": ["fgsm"], "impl": ["triton", "eager"], "dtype": ["fp32"], "side": [256, 512]}
    ms = bench("bench_attack.TrackAttackOpsGPU.track_ms", params, "ms", "gpu-1")
    pct = bench("bench_attack.TrackAttackOpsGPU.track_pct_copy", params, "%", "gpu-1")
    for host, machine, scale in (("h100", "nvidia-h100", 1.0), ("h200", "nvidia-h200", 0.7)):
        root = tmp_path / host / "reports" / "asv" / "results"
        write_benchmarks(root, [ms, pct])
        write_run(
            root,
            machine,
            "f" * 40,
            1_700_000_000_000,
            [
                (ms, [0.1 * scale, 0.3 * scale, 0.4 * scale, 1.2 * scale]),
                (pct, [80 / scale, 30 / scale, 82 / scale, 31 / scale]),
            ],
        )
    dirs = [tmp_path / h / "reports" / "asv" / "results" for h in ("h100", "h200")]
    assert (
        main([a for d in dirs for a in ("--results", str(d))] + ["--out", str(tmp_path / "out")])
        == 0
    )
    kernels = (tmp_path / "out" / "kernels.html").read_text()
    index = (tmp_path / "out" / "index.html").read_text()
    assert "nvidia-h100" in index and "nvidia-h200" in index
    assert "machines side by side (nvidia-h100, nvidia-h200)" in kernels
    for header in (
        "time (ms): nvidia-h100",
        "time (ms): nvidia-h200",
        "% of copy: nvidia-h100",
        "% of copy: nvidia-h200",
        "over eager",
    ):
        assert f"<th>{header}</th>" in kernels, header
    assert "nvidia-h100: NVIDIA H100" in kernels  # provenance names each machine
    # time, % of peak and speed-up figures, each with both machines as panels
    assert kernels.count('src="data:image/png;base64,') == 3


def test_progress_lines():
    from hdbench.reports.progress import progress

    asv = [
        "· Running 5 total benchmarks (1 commits * 1 environments * 5 benchmarks)",
        "[ 0.00%] ·· Benchmarking existing-py",
        "[16.67%] ··· Running (bench_saddles.TrackTorusFinder.track_found--).",
        "[33.33%] ··· bench_attack.TimeAttackOps.time_op                     ok",
        "[33.33%] ··· === ==========",
        "[66.67%] ··· bench_saddles.TrackTorusFinder.track_found    1/5 failed",
        "[66.67%] ··· Setting up bench_saddles:61                           ok",
        # names too long for asv's column lose their head
        "[70.00%] ··· ...h_attack.TrackMinimalL2Speedup.track_speedup          ok",
        "[80.00%] ··· ....TrackRandomMatrix.track_mean_index_fraction          ok",
    ]
    out = list(progress(asv, start=0.0))
    ours = [line for line in out if line.startswith("bench:")]
    assert [line for line in out if not line.startswith("bench:")] == asv  # passed through
    assert ours[0] == "bench: running bench_saddles.TrackTorusFinder.track_found"
    assert ours[1].startswith("bench: [1/5] bench_attack.TimeAttackOps.time_op ok (4 left, ")
    assert ours[2].startswith(
        "bench: [2/5] bench_saddles.TrackTorusFinder.track_found 1/5 failed (3 left, "
    )
    assert ours[3].startswith("bench: [3/5] ...h_attack.TrackMinimalL2Speedup.track_speedup ok")
    assert ours[4].startswith("bench: [4/5] ....TrackRandomMatrix.track_mean_index_fraction ok")
    assert len(ours) == 5


def test_report_renders_in_a_browser(science_dir, tmp_path):
    """Each page opened from the file system in headless Chromium, the network refused: every
    image decodes, nothing is requested from elsewhere, nothing is logged as an error, and the
    pictures are pages, not blanks."""
    from hdbench.reports import screenshot

    try:
        screenshot.find_browser()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    pytest.importorskip("playwright")
    from matplotlib.image import imread

    build(load([science_dir]), tmp_path / "html")
    seen = screenshot.render(tmp_path / "html", tmp_path / "png", width=1000)
    assert set(seen) == {"index.html", "kernels.html", "scaling.html", "saddles.html"}
    assert seen == {name: [] for name in seen}
    for name in seen:
        img = imread(tmp_path / "png" / name.replace(".html", ".png"))
        assert img.shape[1] == 1000 and img.shape[0] > 900
        assert float(img[..., :3].std()) > 0.05  # text, tables and plots, not an empty page


def test_screenshot_errors_name_what_is_missing(tmp_path, monkeypatch):
    from hdbench.reports import screenshot

    with pytest.raises(FileNotFoundError, match=r"screenshot: expected \*\.html pages in"):
        screenshot.render(tmp_path, tmp_path / "png")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HDBENCH_CHROMIUM", raising=False)
    with pytest.raises(FileNotFoundError, match="expected a Chromium on PATH"):
        screenshot.find_browser()
    assert screenshot.main(["--html", str(tmp_path)]) == 1


# --- GPU snapshots -------------------------------------------------------------------------------


def snapshot(device: str, fgsm_ms: float, **groups) -> dict:
    """A suite.gpu_snapshot file's content: one attack-ops group unless `groups` add more."""
    rows = [
        {
            "op": "fgsm",
            "impl": "triton",
            "dtype": "fp32",
            "batch": 16,
            "side": 1024,
            "ms": fgsm_ms,
            "pct_copy": 90.0,
        },
        {
            "op": "fgsm",
            "impl": "eager",
            "dtype": "fp32",
            "batch": 16,
            "side": 1024,
            "ms": 4 * fgsm_ms,
            "pct_copy": 22.5,
        },
        {
            "op": "linear_fgsm",
            "impl": "triton",
            "dtype": "fp32",
            "batch": 16,
            "side": 1024,
            "error": "OutOfMemoryError: CUDA out of memory",
            "skip": True,
        },
        {
            "op": "linear_fgsm",
            "impl": "eager",
            "dtype": "fp32",
            "batch": 16,
            "side": 1024,
            "ms": 2.0,
            "pct_copy": 10.0,
        },
    ]
    return {
        "device": device,
        "date": "2026-11-26T01:00:00+00:00",
        "memory_gib": 80.0,
        "versions": {"torch": "2.11.0", "triton": "3.6.0"},
        "cuda": "13.0",
        "copy_gbps": 3000.0,
        "matmul_peak_tflops": {"fp32": 50.0, "bf16": 700.0},
        "budget_s": 100.0,
        "groups": {"attack_ops": {"what": "ops", "rows": rows}, **groups},
    }


def write_snapshots(folder: Path, *snaps: dict) -> None:
    import json

    for i, snap in enumerate(snaps):
        (folder / f"run{i}").mkdir(parents=True)
        (folder / f"run{i}" / "gpu_snapshot.json").write_text(json.dumps(snap))


def test_snapshot_tables_put_devices_side_by_side(tmp_path, monkeypatch):
    from hdbench.reports import snapshots

    unrun = {"what": "hvp", "skipped": "budget spent"}
    write_snapshots(tmp_path, snapshot("NVIDIA H100", 0.2), snapshot("NVIDIA H200", 0.1, hvp=unrun))
    monkeypatch.setattr(snapshots, "MEASUREMENTS", tmp_path)
    secs = {s["id"]: s for s in snapshots.sections()}
    assert list(secs) == ["devices", "attack_ops", "hvp"]
    devices = secs["devices"]["items"][0]["html"]
    assert "NVIDIA H100 (2026-11-26)" in devices and '<td class="num">3000</td>' in devices
    ops = secs["attack_ops"]["items"][0]["html"]
    for text in (
        "NVIDIA H100 (2026-11-26) triton",
        "NVIDIA H200 (2026-11-26) eager",
        "0.2 ms (90%)",
        "0.4 ms (22%)",
        "0.1 ms (90%)",
        "skipped: OutOfMemoryError: CUDA out of memory",
        "NVIDIA H200 (2026-11-26) triton over eager",
    ):
        assert text in ops
    # eager's ms over triton's: 4x on each device; none where triton has no number
    assert ops.count("<td>4.00x</td>") == 2 and ops.count("<td>–</td>") == 2
    assert secs["hvp"]["items"] == [
        {"kind": "text", "text": "Not measured on NVIDIA H200 (2026-11-26): budget spent."}
    ]


def test_snapshots_are_shown_on_the_kernels_page_only_where_there_are_some(
    tmp_path, results_dir, monkeypatch
):
    from hdbench.reports import snapshots

    rs = load([results_dir])
    build(rs, tmp_path / "none")
    assert "GPU snapshots:" not in (tmp_path / "none" / "kernels.html").read_text()
    assert not (tmp_path / "none" / "gpu.html").exists()  # no page of their own
    write_snapshots(tmp_path / "m", snapshot("NVIDIA H200", 0.1))
    monkeypatch.setattr(snapshots, "MEASUREMENTS", tmp_path / "m")
    index = build(rs, tmp_path / "html").read_text()
    page = (tmp_path / "html" / "kernels.html").read_text()
    assert "1 GPU snapshot(s) in reports/measurements/" in index
    assert not (tmp_path / "html" / "gpu.html").exists()
    assert "GPU snapshots: " in page and 'id="measured-devices"' in page
    assert "0.1 ms (90%)" in page and "<script" not in page
    (tmp_path / "m" / "run9").mkdir()
    (tmp_path / "m" / "run9" / "gpu_snapshot.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="snapshots.load: expected a gpu_snapshot file, got"):
        snapshots.sections()


# --- the scaling experiment's GPU cells ----------------------------------------------------------


def scaling_cells(family: str, model: str, regime: str, sides: tuple[int, ...], seed: int = 0):
    """Points-file lines of cells whose pixel L2 grows like side^0.5 (so the area-normalised L2,
    L2 / side, falls like side^-0.5), with 10% log-normal scatter, 64 samples per side."""
    gen = np.random.default_rng(seed)
    for side in sides:
        l2 = 0.3 * side**0.5 * np.exp(0.1 * gen.standard_normal(64))
        pos = np.exp(gen.standard_normal(64))
        yield {
            "family": family,
            "model": model,
            "regime": regime,
            "side": side,
            "train_s": 1.5,
            "attack_s": 0.5,
            "max_mem_gib": 2.0 * side / 128,
            "l2": l2.tolist(),
            "l2_area": (l2 / side).tolist(),
            "linf": pos.tolist(),
            "m": pos.tolist(),
            "margin": pos.tolist(),
            "eps_m_n": pos.tolist(),
            "median_l2": float(np.median(l2)),
            "median_l2_area": float(np.median(l2 / side)),
        }


def write_cells(path: Path, *cells: dict, gz: bool = True) -> Path:
    import gzip
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(c) + "\n" for c in cells)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_gpu_scaling_shows_the_stored_fit_and_names_the_cells_not_run(tmp_path, monkeypatch):
    """The suite fits each folder's cells (``cells fit --out``); the page shows that fit."""
    from hdbench.reports import gpu_scaling
    from hdbench.results.vocabulary import VERDICTS
    from hdbench.suite.experiments import cells as C

    write_cells(
        tmp_path / "h200" / "scaling_natural_points.jsonl.gz",
        *scaling_cells("natural", "linear", "fewer", (8, 16, 32, 64, 128)),
    )
    # two sides: too few for a slope, listed among the cells run, not fitted
    write_cells(
        tmp_path / "h100" / "scaling_noisy_points.jsonl",
        *scaling_cells("noisy", "mlp", "more", (8, 16), seed=1),
        gz=False,
    )
    monkeypatch.setattr(gpu_scaling, "MEASUREMENTS", tmp_path)
    cells = gpu_scaling.load(gpu_scaling.files())
    assert set(cells) == {("h200", "natural", "linear", "fewer"), ("h100", "noisy", "mlp", "more")}
    assert gpu_scaling.not_run(gpu_scaling.stored_fits(gpu_scaling.files())) == {
        "h200": None,
        "h100": None,
    }
    assert "no stored fit" in str(gpu_scaling.sections()[0])
    for folder in ("h200", "h100"):
        points = [str(p) for p in gpu_scaling.files() if p.parent.name == folder]
        assert C.main(["fit", *points, "--out", str(tmp_path / folder / "scaling_fit.json")]) == 0
    stored = gpu_scaling.stored_fits(gpu_scaling.files())
    slopes = gpu_scaling.fits(stored).set_index("reading")
    assert set(slopes["folder"]) == {"h200"}
    expected = {
        "l2_R": (0.5, "disagrees"),
        "l2_N": (0.25, "disagrees"),
        "l2_area_R": (-0.5, "agrees"),
        "l2_area_N": (-0.25, "disagrees"),
    }
    for reading, (slope, verdict) in expected.items():
        row = slopes.loc[reading]
        assert abs(row["slope"] - slope) < 0.03, (reading, row["slope"])
        assert row["slope_low"] < row["slope"] < row["slope_high"]
        assert VERDICTS[row["verdict"]] == verdict and row["sides"] == "8–128 (5)"
    gaps = gpu_scaling.not_run(stored)
    assert "natural / linear / fewer: 256, 512, 1024" in gaps["h200"]
    assert "natural / linear / more: 8, 16, 32, 64, 128, 256" in gaps["h200"]
    assert "noisy / mlp / more: 32, 64, 128, 256" in gaps["h100"]
    assert "upsampled / cnn / fewer: 8, 16, 32, 64, 128, 256, 512, 1024" in gaps["h100"]
    secs = {s["id"]: s for s in gpu_scaling.sections()}
    assert list(secs) == ["runs", "slopes", "norms"]
    runs = secs["runs"]["items"][0]["html"]
    assert "h100" in runs and ">7.5<" in runs and ">2.5<" in runs  # 5 cells of 1.5 s and 0.5 s
    table = secs["slopes"]["items"][0]["html"]
    assert "area L2 vs side" in table and "agrees" in table and "h100" not in table
    assert "<th>folder</th>" not in table  # one folder fitted: the runs table names it
    assert [i["kind"] for i in secs["norms"]["items"]] == ["plot", "plot"]  # one per regime
    (tmp_path / "h100" / "scaling_fit.json").write_text("{}")
    with pytest.raises(ValueError, match=r"ScalingFit.read: expected a stored fit in .*h100"):
        gpu_scaling.sections()


def test_gpu_scaling_page_is_built_only_with_cells_and_bad_lines_are_named(
    tmp_path, results_dir, monkeypatch
):
    from hdbench.reports import gpu_scaling

    rs = load([results_dir])
    build(rs, tmp_path / "none")
    assert "GPU size:" not in (tmp_path / "none" / "scaling.html").read_text()
    path = write_cells(
        tmp_path / "m" / "run1" / "scaling_natural_points.jsonl.gz",
        *scaling_cells("natural", "linear", "fewer", (8, 16, 32)),
    )
    from hdbench.suite.experiments import cells as C  # the suite fits; the page reads the fit

    assert C.main(["fit", str(path), "--out", str(path.with_name("scaling_fit.json"))]) == 0
    monkeypatch.setattr(gpu_scaling, "MEASUREMENTS", tmp_path / "m")
    index = build(rs, tmp_path / "html").read_text()
    page = (tmp_path / "html" / "scaling.html").read_text()
    assert "1 file(s) of GPU-size cells in reports/measurements/" in index
    assert not (tmp_path / "html" / "gpu_scaling.html").exists()  # on the scaling page
    assert "GPU size: Runs" in page and 'id="measured-slopes"' in page
    # after the page's own figures, before its generic per-class tables
    h2 = [page.index(f'<h2 id="{i}">') for i in ("slopes", "measured-runs")]
    assert h2[0] < h2[1] < page.index('<h2 id="bench_scaling.TrackScaling">')
    assert "run1: not yet run" in page and "<script" not in page
    bad = dict(next(scaling_cells("natural", "mlp", "fewer", (8,))))
    del bad["l2_area"]
    write_cells(path.with_name("scaling_bad_points.jsonl"), bad, gz=False)
    with pytest.raises(
        ValueError,
        match=r"gpu_scaling.load: expected a cell with \['l2_area'\] "
        r"at .*scaling_bad_points.jsonl:1",
    ):
        gpu_scaling.sections()
    path.with_name("scaling_bad_points.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"expected a JSON cell, got .* at .*jsonl:1"):
        gpu_scaling.sections()
