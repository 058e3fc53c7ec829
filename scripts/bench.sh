#!/usr/bin/env bash
# The main job (run through `make bench`, which sets up .venv first):
#   1. register this machine with asv (named after its GPU model, or cpu-<host>);
#   2. run the asv suite on the default backend, results saved under reports/asv/results/;
#   3. publish asv's own site to reports/asv/html/;
#   4. build the self-contained HTML report under reports/html/ and print its path.
# While asv runs, a progress line follows each finished benchmark: "bench: [k/N] name status
# (N-k left, elapsed)" (reports/progress.py reads asv's output).
# Extra arguments go to `asv run`, e.g. `make bench ASV_ARGS="--bench bench_attack --quick"`.
# A failing benchmark does not stop the report: it shows what failed, and the job exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

# not realpath: that resolves the venv's symlink to the base interpreter, which lacks the packages
PY="$PWD/${HDBENCH_VENV:-.venv}/bin/python"
ASV=("$PY" -m asv)

machine=$("$PY" -m hdbench.suite.machine) || { echo "bench: could not register the asv machine" >&2; exit 1; }
commit=$(git rev-parse HEAD) || { echo "bench: needs a git checkout with a commit" >&2; exit 1; }
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "bench: warning: the working tree has uncommitted changes; asv files these results" \
         "under HEAD ($commit) all the same" >&2
fi

echo "bench: running the asv suite on machine '$machine' at ${commit:0:8}"
# shellcheck disable=SC2086  # ASV_ARGS is a list of flags by design
# unbuffered, so that each line (and its progress line) shows as soon as asv writes it
PYTHONUNBUFFERED=1 "${ASV[@]}" run --environment "existing:$PY" --set-commit-hash "$commit" \
    --machine "$machine" ${ASV_ARGS:-} "$@" 2>&1 | "$PY" -m hdbench.reports.progress
run_status=${PIPESTATUS[0]}
[ $run_status -eq 0 ] || echo "bench: asv run exited $run_status (a benchmark failed); building the report anyway" >&2

echo "bench: publishing asv's site to reports/asv/html/"
"${ASV[@]}" publish || echo "bench: asv publish failed" >&2
echo "bench: building the report"
"$PY" -m hdbench.reports || { echo "bench: the report could not be built" >&2; exit 1; }
exit $run_status
