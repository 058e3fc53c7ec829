"""The report: reading asv results (missing, failed, skipped, stale), merging hosts, the HTML."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from asv import util
from asv.results import Results
from asv.runner import BenchmarkResult

from reports.__main__ import main
from reports.build import build
from reports.results import ResultsError, load

OPS = {
    "name": "bench_attack.TimeAttackOps.time_op",
    "params": [["'fgsm'", "'pgd_linf'"], ["'triton'", "'torch_compile'", "'eager'"], ["64", "128"]],
    "param_names": ["op", "impl", "side"],
    "unit": "seconds",
    "version": "ops-2",
    "type": "time",
}
ATTACK = {
    "name": "bench_attack.TimeWholeAttack.time_attack",
    "params": [["'hdbench_torch_compile'", "'torchattacks'"], ["64"]],
    "param_names": ["impl", "side"],
    "unit": "seconds",
    "version": "attack-1",
    "type": "time",
}
GPU = {
    "name": "bench_attack.TrackAttackOpsGPU.track_ms",
    "params": [["'fgsm'"], ["'triton'"], ["256"]],
    "param_names": ["op", "impl", "side"],
    "unit": "ms",
    "version": "gpu-1",
    "type": "track",
}

NEVER_RUN = {
    "name": "bench_pyramid.TimePyramid.time_pyramid",
    "params": [["64"]],
    "param_names": ["side"],
    "unit": "seconds",
    "version": "pyr-1",
    "type": "time",
}


def write_machine(results_dir: Path, name: str, date: int, values: list, versions=None) -> None:
    """One machine's folder and one run, written by asv's own classes."""
    info = {"machine": name, "gpu": "none" if name.startswith("cpu") else name, "torch": "2.13"}
    util.write_json(str(results_dir / name / "machine.json"), info, api_version=1)
    res = Results(info, {}, f"{date:040x}", date, "3.11", "existing-py", {})
    for bench, result in values:
        bench = dict(bench, version=(versions or {}).get(bench["name"], bench["version"]))
        n = len(result)
        samples = [[v] if v is not None and not math.isnan(v) else None for v in result]
        res.add_result(bench, BenchmarkResult(result, samples, [1] * n, 0, "", None))
    res.save(str(results_dir))


def fixture_results(root: Path, *, benchmarks=(OPS, ATTACK, GPU, NEVER_RUN)) -> Path:
    util.write_json(
        str(root / "benchmarks.json"), {b["name"]: b for b in benchmarks}, api_version=2
    )
    nan = float("nan")
    # cpu-a: triton skipped (NaN), one failure (None); no result at all for the GPU benchmark
    ops_a = [nan, nan, 1e-3, 4e-3, 2e-3, 8e-3, nan, nan, 1.5e-3, None, 3e-3, 12e-3]
    write_machine(root, "cpu-a", 1_700_000_000_000, [(OPS, ops_a), (ATTACK, [0.05, 0.08])])
    # gpu-b: an older version of the attack benchmark (stale) and a GPU result
    ops_b = [1e-4, 2e-4, 3e-4, 6e-4, 9e-4, 2e-3, 1e-4, 3e-4, 4e-4, 8e-4, 1e-3, 3e-3]
    write_machine(
        root,
        "gpu-b",
        1_700_000_100_000,
        [(OPS, ops_b), (ATTACK, [0.01, 0.02]), (GPU, [0.05])],
        versions={ATTACK["name"]: "attack-0"},
    )
    return root


def test_reader_table_statuses_and_notes(tmp_path):
    rs = load([fixture_results(tmp_path)])
    t = rs.table
    assert set(t["machine"]) == {"cpu-a", "gpu-b"}
    ops = t[(t["benchmark"] == OPS["name"]) & (t["machine"] == "cpu-a")]
    assert len(ops) == 12
    row = ops[(ops["op"] == "fgsm") & (ops["impl"] == "eager") & (ops["side"] == 128)]
    assert row["value"].item() == pytest.approx(8e-3) and row["unit"].item() == "seconds"
    assert (ops[ops["impl"] == "triton"]["status"] == "skipped").all()
    failed = ops[ops["status"] == "failed"]
    assert failed[["op", "impl", "side"]].values.tolist() == [["pgd_linf", "torch_compile", 128]]
    stale = t[t["stale"]]
    assert set(stale["machine"]) == {"gpu-b"} and set(stale["benchmark"]) == {ATTACK["name"]}
    current = rs.current()
    assert not current["stale"].any() and (current["status"] == "ok").all()
    assert not math.isnan(current["value"].astype(float).sum())
    notes = "\n".join(rs.notes)
    assert f"cpu-a: no result for {GPU['name']}" in notes
    assert f"cpu-a: {OPS['name']} failed for 1 combination(s): op=pgd_linf" in notes
    assert f"gpu-b: stale result for {ATTACK['name']} (version 'attack-0', now 'attack-1')" in notes
    assert set(rs.machines["machine"]) == {"cpu-a", "gpu-b"}


def test_reader_errors_name_the_path(tmp_path):
    with pytest.raises(ResultsError, match=r"expected asv results directories.*run `make bench`"):
        load([tmp_path / "nowhere"])
    with pytest.raises(ResultsError, match=r"expected machine folders with results"):
        load([tmp_path])
    assert main(["--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1


def test_merge_two_hosts(tmp_path):
    a = tmp_path / "host-a"
    b = tmp_path / "host-b"
    fixture_results(a)
    util.write_json(str(b / "benchmarks.json"), {OPS["name"]: OPS}, api_version=2)
    write_machine(b, "gpu-c", 1_700_000_200_000, [(OPS, [2e-4] * 12)])
    rs = load([a, b])
    assert set(rs.table["machine"]) == {"cpu-a", "gpu-b", "gpu-c"}
    # the same machine in two directories keeps its newer run as the latest
    c = tmp_path / "host-c"
    util.write_json(str(c / "benchmarks.json"), {OPS["name"]: OPS}, api_version=2)
    write_machine(c, "cpu-a", 1_700_000_300_000, [(OPS, [5e-3] * 12)])
    latest = load([a, c]).current()
    assert set(latest[latest["machine"] == "cpu-a"]["value"]) == {5e-3}


def test_html_is_self_contained_with_plots_and_tables(tmp_path):
    rs = load([fixture_results(tmp_path / "results")])
    index = build(rs, tmp_path / "html", ["results"])
    pages = {p.name: p.read_text() for p in (tmp_path / "html").glob("*.html")}
    assert index.name == "index.html" and set(pages) == {"index.html", "kernels.html"}
    for html in pages.values():
        # no scripts, stylesheets, images or fonts from anywhere else
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert "<script" not in html and "@import" not in html
    kernels = pages["kernels.html"]
    assert kernels.count('src="data:image/png;base64,') == 3  # ops, whole attack, GPU track
    assert kernels.count("<table") == 5  # three tables, two speed-up tables (the GPU one has none)
    assert "Speed-up over each baseline" in kernels
    assert "No results yet: no current results." in kernels  # bench_pyramid never ran
    index_html = pages["index.html"]
    assert "cpu-a" in index_html and "gpu-b" in index_html
    assert "stale result for" in index_html and "failed for 1 combination" in index_html


def test_cli_prints_the_report_path(tmp_path, capsys):
    fixture_results(tmp_path / "r")
    assert main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert f"report: written {(tmp_path / 'h' / 'index.html').resolve()}" in out


def test_speedup_table_keeps_integer_params():
    """Merged benchmarks widen integer params to float; tables must still show 64, not 64.00x."""
    import pandas as pd

    from reports.build import _integral_params, speedup_html

    rows = pd.DataFrame(
        {
            "machine": ["m", "m"],
            "impl": ["torch_compile", "eager"],
            "side": [64.0, 64.0],
            "value": [1.0, 3.0],
            "unit": ["seconds"] * 2,
        }
    )
    html = speedup_html(_integral_params(rows, ["impl", "side"]), ["impl", "side"])
    assert "<td>64</td>" in html and "<td>3.00x</td>" in html and "64.00x" not in html
