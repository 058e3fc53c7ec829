#!/usr/bin/env bash
# Idempotent set-up: a virtual environment (default .venv) holding hdbench, its test tools and the
# peer libraries the benchmarks compare with. Safe to run again; the second run installs nothing.
#
# torch comes first, chosen by the machine: with an NVIDIA driver, PyPI's default (CUDA) build and
# the Triton it pins; without one, a CPU build (PyTorch's CPU index, or a local wheel that pip's
# own configuration points at), so the CPU machine never downloads gigabytes of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${HDBENCH_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
# pinned for the CPU install: an unpinned request can fall through to another index's newer CUDA
# build when the CPU index is out of reach
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: NVIDIA GPU found: installing the CUDA build of torch"
        "${pip[@]}" install -q torch
    else
        echo "setup: no GPU: installing a CPU build of torch"
        # --no-deps: that index serves torch; its small pure-Python needs come from PyPI below
        "${pip[@]}" install -q --no-deps "torch==$TORCH_CPU_VERSION" --index-url "$TORCH_CPU_INDEX" \
            --retries 1 --timeout 15
    fi
fi

# installed torch satisfies the project's range, so this adds its dependencies and nothing heavier
"${pip[@]}" install -q -e ".[bench,report,peers,test]"

# torchattacks requires torchvision, whose wheels would replace a CPU torch with a CUDA build; it
# imports and runs without it for the attacks benchmarked here
if ! "$VENV/bin/python" -c "import torchattacks" 2>/dev/null; then
    "${pip[@]}" install -q --no-deps "torchattacks==3.5.1" || echo "setup: torchattacks unavailable"
fi
"$VENV/bin/python" - <<'PY'
import torch
try:
    import triton
    tv = triton.__version__
except ImportError:
    tv = "not installed (the torch backend serves every op)"
print(f"setup: torch {torch.__version__} (CUDA {torch.cuda.is_available()}), triton {tv}")
if torch.version.cuda and not torch.cuda.is_available():
    print("setup: warning: a CUDA build of torch on a machine without a usable GPU")
PY
