"""The scaling experiment's cells as stored results: the record, its folder, its export, its fit.

A cell is one (family, model, regime, side) of the scaling experiment: a model trained and
attacked. ``CellRecord`` is its stored form (``SCHEMA`` names the layout): the cell, the
experiment's point (per-sample norms and diagnostics, medians, accuracy, seconds), and what its
numbers depend on (``made_of``). ``CellFolder`` keeps one JSON file per cell, written
atomically. ``write_points`` / ``read_points`` move records to and from the JSON-lines files
committed under ``reports/measurements/`` (``scaling_*points.jsonl[.gz]``), and ``ScalingFit``
is the experiment's fit of a folder of such files (slopes, verdicts, the cells not yet run),
computed by ``hdbench.suite.experiments.cells fit`` and stored beside them, so the report draws
the slopes without fitting them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hdbench.results.atomic import write_atomic

SCHEMA = "scaling-cell-1"  # bumped when the record's layout changes
KEYS = ("family", "model", "regime", "side")  # what names a cell
PER_SAMPLE = ("l2", "l2_area", "linf", "m", "margin", "eps_m_n")  # a point's per-sample arrays

Cell = tuple[str, str, str, int]  # (family, model, regime, side)


def _samples() -> np.ndarray:
    return np.empty(0)


@dataclasses.dataclass(eq=False)
class CellRecord:
    """One cell of the scaling experiment, as the run computes it and as it is stored.

    Per-sample fields are float arrays here and lists in the file. A cell that was not trained
    (outside the size: ``clean_accuracy`` NaN) or not attacked (``skipped`` says why) has them
    empty and its medians NaN.
    """

    family: str
    model: str
    regime: str
    side: int
    clean_accuracy: float = math.nan
    attacked: int = 0
    skipped: str | None = None
    success_rate: float = math.nan
    success_rate_linf: float = math.nan
    l2: np.ndarray = dataclasses.field(default_factory=_samples)
    l2_area: np.ndarray = dataclasses.field(default_factory=_samples)
    linf: np.ndarray = dataclasses.field(default_factory=_samples)
    m: np.ndarray = dataclasses.field(default_factory=_samples)
    margin: np.ndarray = dataclasses.field(default_factory=_samples)
    eps_m_n: np.ndarray = dataclasses.field(default_factory=_samples)
    grad_l2: float = math.nan
    grad_l1: float = math.nan
    level_shares: list[float] = dataclasses.field(default_factory=list)
    finest_share: float = math.nan
    pixels_90: float = math.nan
    median_l2: float = math.nan
    median_l2_area: float = math.nan
    median_linf: float = math.nan
    median_m: float = math.nan
    median_margin: float = math.nan
    median_eps_m_n: float = math.nan
    mean_l2: float = math.nan
    train_samples: int | None = None
    train_accuracy: float | None = None
    train_s: float | None = None
    attack_s: float | None = None
    elapsed_s: float | None = None
    max_mem_gib: float | None = None
    name: str | None = None  # the file stem in a ``CellFolder``
    made_of: dict[str, Any] | None = None  # what the numbers depend on
    torch: str | None = None  # the torch version that computed it
    stored: str | None = None  # when, ISO 8601 UTC
    schema: str = SCHEMA
    # in memory only, never written: read back from a store rather than computed in this run
    read_back: bool = dataclasses.field(default=False, repr=False)

    def __post_init__(self) -> None:
        for k in PER_SAMPLE:
            setattr(self, k, np.asarray(getattr(self, k), dtype=float).ravel())

    @property
    def cell(self) -> Cell:
        return (self.family, self.model, self.regime, self.side)

    @property
    def trained(self) -> bool:
        """False for a cell outside the run's size, which has no model at all."""
        return not math.isnan(self.clean_accuracy)

    @classmethod
    def from_dict(cls, data: object, where: str = "") -> CellRecord:
        """A record from its JSON object.

        Raises:
            ValueError: not an object, a key that names the cell missing, a field of the wrong
                kind, or a key no record has, naming `where`.
        """
        at = f" in {where}" if where else ""
        if not isinstance(data, dict):
            raise ValueError(f"CellRecord: expected a JSON object{at}, got {type(data).__name__}")
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise ValueError(f"no family, model, regime and side{at} (missing {missing})")
        known = {f.name for f in dataclasses.fields(cls)} - {"read_back"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"CellRecord: expected only a cell's keys{at}, got {unknown}")
        for k in PER_SAMPLE:
            if not isinstance(data.get(k, []), list | np.ndarray):
                raise ValueError(f"CellRecord: expected {k} a list{at}, got {data[k]!r:.40}")
        if not isinstance(data["side"], int) or isinstance(data["side"], bool):
            raise ValueError(f"CellRecord: expected an int side{at}, got {data['side']!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file: every field but ``read_back``, arrays as lists."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del out["read_back"]
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}

    def point(self) -> dict[str, Any]:
        """The measurement as a dict (for tables and figures): the fields that describe it (not
        the cell's name, provenance or schema) and hold a value (``skipped`` only where the cell
        was not attacked, seconds and memory only where they were recorded)."""
        drop = {"name", "made_of", "torch", "stored", "schema", "read_back"}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in drop and getattr(self, f.name) is not None
        }


def read_record(path: Path) -> CellRecord:
    """The record in one cell file.

    Raises:
        ValueError: not JSON or not a cell, naming the file.
    """
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"CellStore: expected a cell's JSON in {path}, got {exc}") from exc
    try:
        return CellRecord.from_dict(data, str(path))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"CellStore: expected a cell's JSON in {path}, got {exc}") from exc


class CellFolder:
    """A folder of cell records, one ``<name>.json`` each, and the side files of unfinished
    cells (``<name>.train.pt``, kept by the suite)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"CellStore: expected a folder, got the file {self.folder}")

    def path(self, name: str, suffix: str = ".json") -> Path:
        return self.folder / f"{name}{suffix}"

    def read(self, name: str) -> CellRecord | None:
        """The record stored as `name`, or None."""
        path = self.path(name)
        return read_record(path) if path.exists() else None

    def write(self, record: CellRecord) -> None:
        """Keep `record` as ``<record.name>.json``, atomically."""
        if not record.name:
            raise ValueError("CellFolder.write: expected a record with a name, got none")
        write_atomic(self.path(record.name), json.dumps(record.to_dict()))

    def records(self) -> Iterator[CellRecord]:
        """Every stored cell, by file name.

        Raises:
            ValueError: two cells with the same (family, model, regime, side), i.e. of two
                runs that differ in what the cells depend on (``made_of``), naming both files.
        """
        seen: dict[Cell, Path] = {}
        for path in sorted(self.folder.glob("*.json")):
            rec = read_record(path)
            if rec.cell in seen:
                raise ValueError(
                    f"CellStore.records: expected one cell {rec.cell} in {self.folder}, got "
                    f"{seen[rec.cell].name} and {path.name}, of two runs that differ (see their "
                    "made_of): keep a folder per run"
                )
            seen[rec.cell] = path
            yield rec


# --- exported files: one record per line ---------------------------------------------------------
def points_files(folder: Path) -> list[Path]:
    """Every ``*/scaling_*points.jsonl[.gz]`` file below `folder`, by path."""
    if not folder.is_dir():
        return []
    found = folder.glob("*/scaling_*points.jsonl*")
    return sorted(p for p in found if p.suffix in (".jsonl", ".gz"))


def write_points(path: Path, records: Iterable[CellRecord]) -> None:
    """Every record as a line of `path` (gzip-compressed when it ends in ``.gz``), atomically."""
    lines = "".join(json.dumps(r.to_dict()) + "\n" for r in records)
    write_atomic(path, gzip.compress(lines.encode()) if path.suffix == ".gz" else lines)


def read_points(path: Path, op: str = "read_points") -> list[CellRecord]:
    """The records of one exported file, each with every per-sample list.

    Raises:
        ValueError: a line that is not a cell record, naming `op`, the file and the line.
    """
    out = []
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{op}: expected a JSON cell, got {exc} at {path}:{i}") from exc
            missing = [
                k for k in (*KEYS, *PER_SAMPLE) if not isinstance(data, dict) or k not in data
            ]
            if missing:
                raise ValueError(f"{op}: expected a cell with {missing} at {path}:{i}")
            try:
                out.append(CellRecord.from_dict(data, f"{path}:{i}"))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{op}: expected a JSON cell, got {exc} at {path}:{i}") from exc
    return out


# --- the stored fit ------------------------------------------------------------------------------
FIT_SCHEMA = "scaling-fit-1"


@dataclasses.dataclass
class SlopeRow:
    """One fitted reading of one (family, model, regime): the slope, its bootstrap 95%
    interval, the verdict code (``vocabulary.VERDICT_CODES``) and the sides fitted."""

    family: str
    model: str
    regime: str
    reading: str
    slope: float
    slope_low: float
    slope_high: float
    verdict: int
    sides: list[int]

    @property
    def sides_text(self) -> str:
        """``"8–128 (5)"``: the smallest and largest side fitted, and how many."""
        return f"{self.sides[0]}–{self.sides[-1]} ({len(self.sides)})"


FIT_FILE = "scaling_fit.json"  # beside a folder's points files


@dataclasses.dataclass
class ScalingFit:
    """The experiment's fit of the cells of one folder's points files, stored beside them as
    ``scaling_fit.json``: the slopes, and per (family, model, regime) of the size, the sides no
    record holds (``not_run``: ``"natural / cnn / fewer: 512, 1024"``)."""

    size: str
    sources: list[str]
    slopes: list[SlopeRow]
    not_run: list[str]
    schema: str = FIT_SCHEMA

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> ScalingFit:
        """The fit stored at `path`.

        Raises:
            ValueError: not JSON, another schema, or rows that are not slope rows.
        """
        try:
            data = json.loads(path.read_text())
            if data.get("schema") != FIT_SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, not {FIT_SCHEMA!r}")
            slopes = [SlopeRow(**row) for row in data.pop("slopes")]
            return cls(slopes=slopes, **data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(
                f"ScalingFit.read: expected a stored fit in {path}, got {exc}"
            ) from exc
