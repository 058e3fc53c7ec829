"""Shared fixtures. Runs before any test module imports triton.

Without a CUDA device the Triton kernels run in Triton's CPU interpreter, which must be switched on
before ``triton`` is first imported.
"""

from __future__ import annotations

import os
import sys

import torch

if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton was imported before TRITON_INTERPRET=1 could be set")
    os.environ["TRITON_INTERPRET"] = "1"
# eager torch backend by default: compiling every variant would dominate the run; the compiled
# path has its own tests, which switch this back on
os.environ.setdefault("HDBENCH_TORCH_COMPILE", "0")
os.environ.pop("HDBENCH_BACKEND", None)

import pytest  # noqa: E402

from tests.tolerances import TOLERANCES  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# bf16 arithmetic in the interpreter (numpy has no bf16) is not trustworthy: GPU only
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture(params=["triton", "torch"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tol():
    """tol(dtype) -> dict(atol=..., rtol=...) from the one tolerance table."""
    return lambda dtype: dict(TOLERANCES[dtype])
