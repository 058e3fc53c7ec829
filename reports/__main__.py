"""``python -m reports``: build the HTML report from asv's results and print its path.

Several ``--results`` directories merge (one per host, say); a machine found in more than one
keeps its newer runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.build import build
from reports.results import ResultsError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument(
        "--results",
        action="append",
        type=Path,
        help="asv results directory; repeat to merge hosts (default: reports/asv/results)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/html"),
        help="output folder (default: reports/html)",
    )
    parser.add_argument(
        "--asv-html",
        type=Path,
        default=Path("reports/asv/html"),
        help="asv publish's site, linked when present",
    )
    args = parser.parse_args(argv)
    dirs = args.results or [Path("reports/asv/results")]
    print(f"report: reading {', '.join(map(str, dirs))}", flush=True)
    try:
        results = load(dirs)
    except ResultsError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    for note in results.notes:
        print(f"report: note: {note}")
    index = build(results, args.out, [str(d) for d in dirs], args.asv_html)
    print(f"report: written {index.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
