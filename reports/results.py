"""Read asv results directories into one tidy pandas table.

asv 0.6 lays a results directory out as ``benchmarks.json`` (every benchmark the suite defines:
name, params, param_names, unit, version, type) plus one folder per machine holding
``machine.json`` (the machine's fields, hdbench's extra ones included: gpu, cuda, torch, triton)
and one ``<commit[:8]>-<env>.json`` per run. The files are read through asv's own classes
(``asv.results.iter_results_paths``, ``Results.load``, ``asv.benchmarks.Benchmarks.load``).

Merging hosts: each GPU host runs ``make bench`` and keeps its results under
``reports/asv/results/<machine>/``. Either copy every host's ``<machine>/`` folder into one
results directory (``benchmarks.json`` from the host with the newest suite), or leave them where
they are and pass every directory::

    python -m hdbench.reports --results hostA/reports/asv/results \
        --results hostB/reports/asv/results

Machines come from all directories and ``benchmarks.json`` from the newest one (by file time). A
machine found in several directories has its runs pooled; a run present in more than one (same
commit and environment) keeps the copy that ran last.

The table (``ResultSet.table``) has one row per (machine, run, benchmark, parameter combination)
with the columns ``machine, commit, date, env, benchmark, module, klass, method, kind``, one
column per parameter name (values as Python objects: ``'fgsm'`` -> ``fgsm``, ``'64'`` -> 64),
then ``params, value, unit, version, stale, status, latest``. ``status`` is ``ok``, ``skipped``
(asv stores NaN: ``setup`` raised NotImplementedError) or ``failed`` (asv stores None: the
benchmark raised, timed out, or did not run). ``stale`` marks a result whose benchmark version
differs from the current ``benchmarks.json`` or whose benchmark is gone; ``latest`` marks each
machine's newest run (by commit date, then run time). Figures use ``ResultSet.current()`` only;
``ResultSet.notes`` lists in words what is missing, failed or stale.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from asv import util
from asv.benchmarks import Benchmarks
from asv.machine import Machine
from asv.results import Results, iter_results_paths

COLUMNS = [
    "machine",
    "commit",
    "date",
    "env",
    "benchmark",
    "module",
    "klass",
    "method",
    "kind",
    "params",
    "value",
    "unit",
    "version",
    "stale",
    "status",
    "latest",
]
# asv's own units when benchmarks.json does not say (it is missing or the benchmark is gone)
DEFAULT_UNITS = {"time": "seconds", "peakmem": "bytes", "mem": "bytes", "timeraw": "seconds"}


class ResultsError(ValueError):
    """A results directory that holds nothing to report."""


@dataclass
class ResultSet:
    """Everything the report shows, read from one or more asv results directories.

    Attributes:
        table: one row per (machine, run, benchmark, parameter combination); see the module doc.
        machines: one row per machine: its machine.json fields and its latest run.
        runs: one row per run (result file) with its counts of ok / skipped / failed results.
        benchmarks: the current benchmarks.json, name -> asv's description.
        notes: what is missing, failed, partial or stale, one sentence each.
        sources: the results directories read.
    """

    table: pd.DataFrame
    machines: pd.DataFrame
    runs: pd.DataFrame
    benchmarks: dict[str, dict]
    notes: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    def current(self) -> pd.DataFrame:
        """Rows fit to plot: each machine's latest run, current benchmark versions, measured."""
        t = self.table
        return t[t["latest"] & ~t["stale"] & (t["status"] == "ok")]

    def modules(self) -> list[str]:
        """Benchmark modules the current suite defines, or that have current-version results."""
        fresh = self.table.loc[~self.table["stale"], "module"]
        names = set(fresh) | {split_name(n)[0] for n in self.benchmarks}
        return sorted(names)


def split_name(name: str) -> tuple[str, str, str]:
    """``bench_attack.TimeAttackOps.time_op`` -> (module, class, method); no class -> ''."""
    parts = name.split(".")
    if len(parts) == 1:
        return "", "", name
    if len(parts) == 2:
        return parts[0], "", parts[1]
    return ".".join(parts[:-2]), parts[-2], parts[-1]


def param_value(text: str) -> Any:
    """asv stores parameter values as their repr: ``"'fgsm'"`` -> ``fgsm``, ``'64'`` -> 64."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError):
        return text  # e.g. "<function f>": keep asv's text


def status_of(value: Any) -> str:
    """asv's encoding: None failed (or did not run), NaN skipped, a number measured."""
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    return "ok"


def load_benchmarks(dirs: list[Path]) -> tuple[dict[str, dict], Path | None]:
    """The newest ``benchmarks.json`` among `dirs` (later directories win ties), and its path."""
    found = [d for d in dirs if (d / "benchmarks.json").is_file()]
    if not found:
        return {}, None
    newest = max(reversed(found), key=lambda d: (d / "benchmarks.json").stat().st_mtime)
    conf = SimpleNamespace(results_dir=str(newest), benchmark_dir="")
    try:
        return dict(Benchmarks.load(conf)), newest / "benchmarks.json"
    except util.UserError as exc:
        raise ResultsError(f"load: unreadable {newest / 'benchmarks.json'}: {exc}") from exc


@dataclass
class _Run:
    res: Results
    path: Path
    info: dict

    @property
    def ran_at(self) -> int:
        return max((t for t in self.res.started_at.values() if t), default=0)


def _collect_runs(dirs: list[Path], notes: list[str]) -> dict[str, list[_Run]]:
    """Machine name -> its runs across `dirs`; a run found twice keeps the copy that ran last."""
    runs: dict[str, dict[tuple[str, str], _Run]] = {}
    for d in dirs:
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if not (sub / "machine.json").is_file():
                continue
            try:
                info = util.load_json(str(sub / "machine.json"), api_version=Machine.api_version)
            except util.UserError as exc:
                notes.append(f"{sub.name}: unreadable machine.json ({exc})")
                continue
            name = str(info.get("machine", sub.name))
            found = runs.setdefault(name, {})
            for root, filename, machine in iter_results_paths(str(sub)):
                path = Path(root) / filename
                try:
                    res = Results.load(str(path), machine_name=machine)
                except (util.UserError, ValueError, KeyError) as exc:  # one bad file, not all
                    notes.append(f"{name}: unreadable result file {path} ({exc})")
                    continue
                run = _Run(res, path, info)
                key = (res.commit_hash, res.env_name)
                if key not in found or run.ran_at >= found[key].ran_at:
                    found[key] = run
    return {m: list(r.values()) for m, r in runs.items()}


def _rows(res: Results, machine: str, benchmarks: dict[str, dict], checked: bool) -> list[dict]:
    """One row per parameter combination of every benchmark in one result file."""
    rows = []
    date = pd.to_datetime(res.date, unit="ms", utc=True) if res.date else pd.NaT
    for key in sorted(res.get_all_result_keys()):
        params = res.get_result_params(key) or []
        # asv returns a list for every benchmark: one value per combination, [v] unparameterised
        values = res.get_result_value(key, params)
        version = res.benchmark_version.get(key)
        bench = benchmarks.get(key)
        stale = checked and (bench is None or (version is not None and version != bench["version"]))
        module, klass, method = split_name(key)
        kind = method.split("_")[0]
        names = list((bench or {}).get("param_names") or [])
        if len(names) != len(params):  # the suite's parameters changed since this (stale) run
            names = [f"param{i + 1}" for i in range(len(params))]
        unit = (bench or {}).get("unit") or DEFAULT_UNITS.get(kind, "")
        for combo, value in zip(itertools.product(*params), values, strict=False):
            status = status_of(value)
            named = {n: param_value(v) for n, v in zip(names, combo, strict=False)}
            rows.append(
                {
                    "machine": machine,
                    "commit": res.commit_hash,
                    "date": date,
                    "env": res.env_name,
                    "benchmark": key,
                    "module": module,
                    "klass": klass,
                    "method": method,
                    "kind": kind,
                    **named,
                    "params": ", ".join(f"{n}={v}" for n, v in named.items()),
                    "value": float(value) if status == "ok" else math.nan,
                    "unit": unit,
                    "version": version,
                    "stale": stale,
                    "status": status,
                }
            )
    return rows


def load(dirs: list[str | Path]) -> ResultSet:
    """Read and merge asv results directories.

    Args:
        dirs: results directories (asv's ``results_dir``), one per host or all in one.

    Returns:
        The merged ``ResultSet``.

    Raises:
        ResultsError: a directory is missing, or none holds a machine folder with results.
    """
    paths = [Path(d) for d in dirs]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise ResultsError(
            f"load: expected asv results directories, got missing {', '.join(missing)}; "
            "run the benchmarks first (`make bench`, i.e. `asv run`)"
        )
    notes: list[str] = []
    benchmarks, bench_file = load_benchmarks(paths)
    if bench_file is None:
        notes.append("no benchmarks.json found: benchmark versions are not checked")
    machine_runs = _collect_runs(paths, notes)
    if not any(machine_runs.values()):
        where = ", ".join(str(p) for p in paths)
        raise ResultsError(
            f"load: expected <machine>/machine.json and result files in {where}, got "
            f"{'machine folders without results' if machine_runs else 'no machine folder'}; "
            "run the benchmarks first (`make bench`, i.e. `asv run`)"
        )
    rows, machines, runs = [], [], []
    for machine, found in sorted(machine_runs.items()):
        if not found:
            notes.append(f"{machine}: no result files")
            continue
        latest = max(found, key=lambda r: (r.res.date or 0, r.ran_at))
        for run in sorted(found, key=lambda r: (r.res.date or 0, r.ran_at)):
            new = _rows(run.res, machine, benchmarks, checked=bench_file is not None)
            for row in new:
                row["latest"] = run is latest
            rows += new
            counts = pd.Series([r["status"] for r in new], dtype=object).value_counts()
            runs.append(
                {
                    "machine": machine,
                    "commit": run.res.commit_hash[:8],
                    "date": pd.to_datetime(run.res.date, unit="ms", utc=True),
                    "ran_at": pd.to_datetime(run.ran_at or None, unit="ms", utc=True),
                    "env": run.res.env_name,
                    **{s: int(counts.get(s, 0)) for s in ("ok", "skipped", "failed")},
                    "stale": sum(r["stale"] for r in new),
                    "latest": run is latest,
                    "file": str(run.path),
                }
            )
        info = {k: v for k, v in latest.info.items() if k not in ("version", "machine")}
        machines.append({"machine": machine, **info, "commit": latest.res.commit_hash[:8]})
    table = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in table:
            table[col] = pd.Series(dtype=object)
    table = _object_params(table, rows)
    notes += _notes(table, benchmarks)
    return ResultSet(table, pd.DataFrame(machines), pd.DataFrame(runs), benchmarks, notes, paths)


def _object_params(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Parameter columns as Python objects, None where a benchmark lacks the parameter: pandas
    would turn an int column with gaps into floats, and side 64 would print as 64.0."""
    fixed = {
        col: pd.Series([r.get(col) for r in rows], index=table.index, dtype=object)
        for col in table.columns.difference(COLUMNS)
    }
    # the suite's parameter names in order of appearance, then the generic ones of stale runs
    seen = list(table.columns)
    params = sorted(fixed, key=lambda c: (re.fullmatch(r"param\d+", c) is not None, seen.index(c)))
    order = [*COLUMNS[:9], *params, *COLUMNS[9:]]
    return table.assign(**fixed)[order]


def _combos(rows: pd.DataFrame, limit: int = 3) -> str:
    shown = "; ".join(rows["params"].head(limit))
    return shown + ("; ..." if len(rows) > limit else "")


def _notes(table: pd.DataFrame, benchmarks: dict[str, dict]) -> list[str]:
    """What a reader must know is not in the figures: missing, failed, partial, stale."""
    notes = []
    latest = table[table["latest"]]
    for machine, rows in latest.groupby("machine", sort=True):
        have = set(rows["benchmark"])
        for name in sorted(set(benchmarks) - have):
            notes.append(f"{machine}: {name}: no result in the latest run")
        skipped = rows.groupby("benchmark")["status"].agg(lambda s: (s == "skipped").all())
        if skipped.any():
            notes.append(
                f"{machine}: every combination skipped (cannot run there, e.g. GPU only): "
                + ", ".join(skipped.index[skipped])
            )
        for name, grp in rows[rows["status"] == "failed"].groupby("benchmark"):
            notes.append(
                f"{machine}: {name}: failed or did not run for {len(grp)} of "
                f"{len(rows[rows['benchmark'] == name])} combination(s): {_combos(grp)}"
            )
        for name, grp in rows[rows["stale"]].groupby("benchmark"):
            now = benchmarks.get(name, {}).get("version")
            why = (
                "no longer in the suite"
                if now is None
                else (f"version {grp['version'].iloc[0]}, the suite has {now}")
            )
            notes.append(f"{machine}: {name}: stale result ({why}); not plotted")
        for name, grp in rows[~rows["stale"]].groupby("benchmark"):
            bench = benchmarks.get(name)
            if not bench or not bench.get("params"):
                continue
            expected = math.prod(len(p) for p in bench["params"])
            if len(grp) < expected:
                notes.append(
                    f"{machine}: {name}: partial result, {len(grp)} of {expected} combinations "
                    "(the suite's parameters changed since the run)"
                )
    return notes
