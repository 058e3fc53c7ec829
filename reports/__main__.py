"""``python -m hdbench.reports``: build the self-contained HTML report from asv's results.

Usage::

    python -m hdbench.reports [--results DIR]... [--out reports/html] [--asv-html reports/asv/html]

``--results`` defaults to ``reports/asv/results`` and may be repeated to merge hosts: machines
come from every directory, ``benchmarks.json`` from the newest, and a run found in two
directories keeps the copy that ran last (see ``reports.results``). The last line printed is the
path of ``index.html``. Exit status 1 when there is nothing to report (run ``asv run`` first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hdbench.reports.build import build
from hdbench.reports.results import ResultsError, load

DEFAULT_RESULTS = Path("reports/asv/results")


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, read the results, write the report; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m hdbench.reports",
        description="Build hdbench's self-contained HTML report from asv results directories.",
    )
    parser.add_argument(
        "--results",
        action="append",
        type=Path,
        metavar="DIR",
        help=f"asv results directory; repeat to merge hosts (default: {DEFAULT_RESULTS})",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports/html"), help="output folder (reports/html)"
    )
    parser.add_argument(
        "--asv-html",
        type=Path,
        default=Path("reports/asv/html"),
        help="asv publish's site, linked from index.html when present (reports/asv/html)",
    )
    args = parser.parse_args(argv)
    dirs = args.results or [DEFAULT_RESULTS]
    print(f"report: reading {', '.join(map(str, dirs))}", file=sys.stderr)
    try:
        results = load(dirs)
    except ResultsError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    for note in results.notes:
        print(f"report: note: {note}", file=sys.stderr)
    index = build(results, args.out, args.asv_html)
    print(index.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
