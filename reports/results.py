"""Read asv results directories into a tidy pandas table.

asv keeps one folder per machine under its results directory (``<machine>/machine.json`` plus one
``<commit>-<env>.json`` per run) and describes the current benchmarks in ``benchmarks.json``.
Results from several hosts merge by reading several results directories, or by copying each host's
``<machine>/`` folder into one directory: a machine found twice keeps its newer runs.

The table has one row per (machine, run, benchmark, parameter combination) with the columns
``machine, commit, date, env, benchmark, module, klass, method, kind, params, value, unit,
version, status, stale, latest`` and one column per parameter name. ``status`` is ``ok``,
``skipped`` (asv stores NaN: the combination cannot run on that machine) or ``failed`` (None);
``stale`` marks a result whose benchmark version differs from the current ``benchmarks.json``
(or whose benchmark no longer exists); ``latest`` marks each machine's newest run. Figures use
only ``latest & ~stale & status == "ok"`` rows; the rest is reported in ``notes``.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from asv.results import Results

COLUMNS = ["machine", "commit", "date", "env", "benchmark", "module", "klass", "method", "kind",
           "params", "value", "unit", "version", "status", "stale", "latest"]  # fmt: skip


class ResultsError(ValueError):
    """A results directory that cannot be read at all."""


@dataclass
class ResultSet:
    table: pd.DataFrame
    machines: pd.DataFrame
    benchmarks: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    def current(self) -> pd.DataFrame:
        """Rows fit to plot: each machine's newest run, current versions, measured values."""
        t = self.table
        return t[t["latest"] & ~t["stale"] & (t["status"] == "ok")]


def _param_value(text: str) -> object:
    """asv stores parameter values as their repr: "'fgsm'" -> 'fgsm', '64' -> 64."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _status(value: object) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    return "ok"


def _read_benchmarks(dirs: list[Path]) -> dict[str, dict]:
    """benchmarks.json of the newest directory that has one (later arguments win on ties)."""
    found = [d / "benchmarks.json" for d in dirs if (d / "benchmarks.json").is_file()]
    if not found:
        return {}
    newest = max(found, key=lambda p: p.stat().st_mtime)
    data = json.loads(newest.read_text())
    return {k: v for k, v in data.items() if isinstance(v, dict) and "name" in v}


def _machine_dirs(dirs: list[Path]) -> dict[str, list[Path]]:
    """Machine name -> its folders across all results directories."""
    machines: dict[str, list[Path]] = {}
    for d in dirs:
        for sub in sorted(p for p in d.iterdir() if (p / "machine.json").is_file()):
            machines.setdefault(sub.name, []).append(sub)
    return machines


def _rows(res: Results, machine: str, benchmarks: dict[str, dict]) -> list[dict]:
    rows = []
    for key in res.get_all_result_keys():
        params = res.get_result_params(key)
        combos = list(itertools.product(*params)) if params else [()]
        values = res.get_result_value(key, params)
        if not params:
            values = [values]
        version = res.benchmark_version.get(key)
        bench = benchmarks.get(key)
        stale = bench is None or (version is not None and version != bench.get("version"))
        names = (bench or {}).get("param_names") or [f"param{i}" for i in range(len(params))]
        parts = key.split(".")
        module, method = parts[0], parts[-1]
        klass = parts[1] if len(parts) == 3 else ""
        for combo, value in zip(combos, values, strict=True):
            row = {
                "machine": machine, "commit": res.commit_hash, "env": res.env_name,
                "date": pd.to_datetime(res.date, unit="ms", utc=True) if res.date else pd.NaT,
                "benchmark": key, "module": module, "klass": klass, "method": method,
                "kind": method.split("_")[0], "value": value if _status(value) == "ok" else None,
                "unit": (bench or {}).get("unit", ""), "version": version,
                "status": _status(value), "stale": stale,
            }  # fmt: skip
            named = {n: _param_value(v) for n, v in zip(names, combo, strict=False)}
            row["params"] = ", ".join(f"{n}={v}" for n, v in named.items())
            row.update(named)
            rows.append(row)
    return rows


def load(dirs: list[str | Path]) -> ResultSet:
    """Read and merge asv results directories.

    Raises:
        ResultsError: no directory exists or none holds any machine's results.
    """
    paths = [Path(d) for d in dirs]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise ResultsError(
            f"load_results: expected asv results directories, got missing "
            f"{missing}; run `make bench` (asv run) first"
        )
    benchmarks = _read_benchmarks(paths)
    machine_dirs = _machine_dirs(paths)
    if not machine_dirs:
        raise ResultsError(
            f"load_results: expected machine folders with results in "
            f"{[str(p) for p in paths]}, got none; run `make bench` first"
        )
    rows, machines, notes = [], [], []
    for machine, folders in sorted(machine_dirs.items()):
        info = json.loads(
            max((f / "machine.json" for f in folders), key=lambda p: p.stat().st_mtime).read_text()
        )
        runs: dict[tuple[str, str], Results] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                if path.name == "machine.json":
                    continue
                try:
                    res = Results.load(str(path), machine_name=machine)
                except Exception as exc:  # a corrupt file must not hide the others
                    notes.append(f"{machine}: unreadable result file {path.name} ({exc})")
                    continue
                key = (res.commit_hash, res.env_name)
                if key not in runs or (res.date or 0) >= (runs[key].date or 0):
                    runs[key] = res  # the same run in two directories: keep the newer
        if not runs:
            notes.append(f"{machine}: no result files")
            continue
        latest = max(
            runs.values(), key=lambda r: (max(r.started_at.values(), default=0), r.date or 0)
        )
        for res in runs.values():
            for row in _rows(res, machine, benchmarks):
                row["latest"] = res is latest
                rows.append(row)
        machines.append(
            {
                "machine": machine,
                "commit": latest.commit_hash[:8],
                **{k: v for k, v in info.items() if k not in ("version", "machine")},
            }
        )
    table = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in table:
            table[col] = pd.Series(dtype=object)
    notes += _notes(table, benchmarks)
    return ResultSet(table, pd.DataFrame(machines), benchmarks, notes)


def _notes(table: pd.DataFrame, benchmarks: dict[str, dict]) -> list[str]:
    """What a reader must know is not in the figures: missing, failed and stale results."""
    notes = []
    latest = table[table["latest"]]
    for machine, rows in latest.groupby("machine"):
        for name in sorted(set(benchmarks) - set(rows["benchmark"])):
            notes.append(f"{machine}: no result for {name}")
        for name, grp in rows[rows["status"] == "failed"].groupby("benchmark"):
            notes.append(
                f"{machine}: {name} failed for {len(grp)} combination(s): "
                + "; ".join(grp["params"].head(3))
                + ("; ..." if len(grp) > 3 else "")
            )
        for name, grp in rows[rows["stale"]].groupby("benchmark"):
            why = (
                "no longer exists"
                if name not in benchmarks
                else (
                    f"version {grp['version'].iloc[0]!r}, now {benchmarks[name].get('version')!r}"
                )
            )
            notes.append(f"{machine}: stale result for {name} ({why}): not plotted")
    return notes
