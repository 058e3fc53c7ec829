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

import pytest
from asv.benchmarks import Benchmarks
from asv.machine import Machine
from asv.results import Results
from asv.runner import BenchmarkResult

from reports import build as build_mod
from reports.__main__ import main
from reports.build import build, speedups
from reports.results import ResultsError, load

NAN = float("nan")


def bench(name: str, params: dict[str, list], unit: str, version: str) -> dict:
    """A benchmarks.json entry as asv writes it: parameter values stored as their repr."""
    return {"name": name, "param_names": list(params), "unit": unit, "version": version,
            "params": [[repr(v) for v in vals] for vals in params.values()],
            "type": name.split(".")[-1].split("_")[0]}  # fmt: skip


OPS = bench("bench_attack.TimeAttackOps.time_op",
            {"op": ["fgsm", "pgd_linf"], "impl": ["triton", "torch_compile", "eager"],
             "side": [64, 128]}, "seconds", "ops-2")  # fmt: skip
GPU_PARAMS = {"op": ["fgsm"], "impl": ["triton", "eager"], "dtype": ["fp32"], "side": [64, 128]}
GPU_MS = bench("bench_attack.TrackAttackOpsGPU.track_ms", GPU_PARAMS, "ms", "gpu-1")
GPU_GBPS = bench("bench_attack.TrackAttackOpsGPU.track_gbps", GPU_PARAMS, "GB/s", "gpu-1")
ATTACK = bench("bench_attack.TimeWholeAttack.time_attack",
               {"impl": ["hdbench_torch_compile", "torchattacks"], "side": [64]},
               "seconds", "attack-1")  # fmt: skip
IMPORT = bench("bench_attack.time_import", {}, "seconds", "import-1")  # unparameterised
PYRAMID = bench("bench_pyramid.TimePyramid.time_pyramid", {"side": [64]}, "seconds", "pyr-1")
SCALING = bench("bench_scaling.TrackScaling.track_exponent", {}, "unitless", "sc-1")
ALL = [OPS, GPU_MS, GPU_GBPS, ATTACK, IMPORT, PYRAMID, SCALING]
DAY = 86_400_000  # ms


def write_benchmarks(root: Path, benchmarks: list[dict]) -> None:
    conf = SimpleNamespace(results_dir=str(root), benchmark_dir="suite")
    Benchmarks(conf, benchmarks).save()


def write_run(root: Path, machine: str, commit: str, date: int, values: list[tuple[dict, list]],
              *, versions: dict | None = None, ran: int = 0) -> None:  # fmt: skip
    """One machine folder and one result file; `values`: (benchmark, result list) pairs."""
    info = {"machine": machine, "os": "Linux", "arch": "x86_64", "cpu": "Xeon", "num_cpu": "8",
            "ram": str(64 * 2**30), "gpu": "none" if machine.startswith("cpu") else "NVIDIA H100",
            "cuda": "12.4", "torch": "2.5.0", "triton": "3.1.0"}  # fmt: skip
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
    write_run(root, "cpu-a", "b" * 40, 1_700_000_000_000,
              [(OPS, ops_a), (GPU_MS, [NAN] * 4), (GPU_GBPS, [NAN] * 4),
               (ATTACK, [0.05, 0.08]), (IMPORT, [0.4])])  # fmt: skip
    ops_b = [1e-4, 2e-4, 3e-4, 6e-4, 9e-4, 2e-3, 1e-4, 3e-4, 4e-4, 8e-4, 1e-3, 3e-3]
    write_run(root, "gpu-b", "c" * 40, 1_700_000_100_000,
              [(OPS, ops_b), (GPU_MS, [0.01, 0.04, 0.03, 0.1]),
               (GPU_GBPS, [900.0, 1000, 300, 400]), (ATTACK, [0.01, 0.02])],
              versions={ATTACK["name"]: "attack-0"})  # fmt: skip
    return root


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_results(tmp_path_factory.mktemp("results"))


def test_table_values_units_statuses(results_dir):
    rs = load([results_dir])
    t = rs.table
    assert list(t.columns[:9]) == ["machine", "commit", "date", "env", "benchmark", "module",
                                   "klass", "method", "kind"]  # fmt: skip
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
    assert f"cpu-a: {OPS['name']}: failed or did not run for 1 of 12 combination(s): " \
           "op=pgd_linf, impl=torch_compile, side=128" in notes  # fmt: skip
    assert f"gpu-b: {ATTACK['name']}: stale result (version attack-0, the suite has attack-1)" \
        in notes  # fmt: skip
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

    rows = pd.DataFrame({"machine": ["m"] * 4, "side": [64, 64, 128, 128],
                         "impl": ["triton", "eager", "torch_compile", "eager"],
                         "value": [1.0, 3.0, 2.0, 8.0]})  # fmt: skip
    sp = speedups(rows, ["impl", "side"]).set_index("side")
    assert sp.loc[64, "hdbench"] == "triton" and sp.loc[64, "speed-up"] == 3.0
    # no Triton (a CPU): hdbench's torch backend stands in
    assert sp.loc[128, "hdbench"] == "torch_compile" and sp.loc[128, "speed-up"] == 4.0


def test_html_is_self_contained_with_plots_and_tables(tmp_path, results_dir):
    rs = load([results_dir])
    index = build(rs, tmp_path / "html")
    pages = {p.name: p.read_text() for p in (tmp_path / "html").glob("*.html")}
    # kernels always; scaling because bench_scaling is in benchmarks.json; no saddles page
    assert index.name == "index.html" and set(pages) == {"index.html", "kernels.html",
                                                          "scaling.html"}  # fmt: skip
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
    for text in ("NVIDIA H100", "gpu-b", "cpu-a", "64\u00a0GiB", "kernels.html", "scaling.html",
                 "failed or did not run", "stale result", "asv preview"):  # fmt: skip
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
