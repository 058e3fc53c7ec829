"""Progress lines for the main job, read from ``asv run``'s output.

``asv run ... 2>&1 | python -m hdbench.reports.progress`` passes asv's lines through unchanged
and, after each benchmark asv reports finished, prints ``bench: [k/N] <benchmark> <status>
(N-k left, elapsed)``; N comes from asv's "Running N total benchmarks" line. Where asv announces
a timing round before it runs (``Running (name--)``), it names the benchmark about to run. (asv
writes a finished benchmark's line only when it is done: it cannot name the one running in
other cases.)
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator

TOTAL = re.compile(r"Running (\d+) total benchmarks")
# asv cuts a long name's head to fit its column: "...ddles.TrackRandomMatrix.track_p_minimum_low"
NAME = r"(?:\.{3,4})?[A-Za-z_]\w*(?:\.\w+)+"
DONE = re.compile(rf"^\[\s*[\d.]+%\] ·+ (?P<name>{NAME})\s{{2,}}(?P<status>\S.*?)\s*$")
STARTING = re.compile(rf"^\[\s*[\d.]+%\] ·+ Running \((?P<name>{NAME})--\)")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def progress(lines: Iterable[str], start: float | None = None) -> Iterator[str]:
    """asv's `lines` (newline-stripped), each followed by a progress line where one is due.

    Args:
        lines: ``asv run``'s output, one line at a time.
        start: the job's start time (``time.monotonic()``); default now.

    Yields:
        Every input line, and after each finished benchmark its progress line.
    """
    start = time.monotonic() if start is None else start
    total, done = 0, 0
    for line in lines:
        yield line
        if m := TOTAL.search(line):
            total = int(m.group(1))
            continue
        if m := STARTING.match(line):
            yield f"bench: running {m.group('name')}"
            continue
        if m := DONE.match(line):
            done += 1
            left = f"{max(total - done, 0)} left, " if total else ""
            count = f"{done}/{total}" if total else str(done)
            elapsed = _clock(time.monotonic() - start)
            yield f"bench: [{count}] {m.group('name')} {m.group('status')} ({left}{elapsed})"


def main() -> int:
    """Filter stdin to stdout, flushing each line so progress shows while asv runs."""
    for line in progress(raw.rstrip("\n") for raw in sys.stdin):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
