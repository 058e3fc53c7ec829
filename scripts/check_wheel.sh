#!/usr/bin/env bash
# The built wheel works on its own: build it, install it into a fresh virtual environment with
# the report's extra alone (no torch), and build a report there from a small results fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/${HDBENCH_VENV:-.venv}/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf build  # setuptools' own scratch folder: a stale copy would slip into the wheel
"$PY" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log"; echo "wheel-check: the wheel did not build" >&2; exit 1; }
wheel=$(ls "$work"/dist/hdbench-*.whl)
echo "wheel-check: built $(basename "$wheel")"

python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check -q)
# the report's extra as pyproject.toml lists it, and hdbench without its core dependencies
# (torch, triton): the report must build without them
# (tomllib from Python 3.11; pip's own copy of tomli on 3.10)
mapfile -t report < <("$PY" - <<'PYCODE'
try:
    import tomllib
except ImportError:
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["report"]))
PYCODE
)
"${pip[@]}" install "${report[@]}"
"${pip[@]}" install --no-deps "$wheel"

# a results fixture, written by the tests' own helper
"$PY" -c "import sys; from pathlib import Path; from tests.test_reports import fixture_results; fixture_results(Path(sys.argv[1]))" "$work/results"
cd "$work"  # away from the checkout: only the installed wheel can be imported
"$work/venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
    || { echo "wheel-check: torch is installed in the fresh venv" >&2; exit 1; }
"$work/venv/bin/python" -m hdbench.reports --results "$work/results" --out "$work/html" --asv-html "$work/none"
for page in index.html kernels.html; do
    [ -s "$work/html/$page" ] || { echo "wheel-check: the report has no $page" >&2; exit 1; }
done
echo "wheel-check: the installed wheel built a report ($(ls "$work/html" | wc -l) files) without torch"
