"""Backend resolution: which implementation serves a call, ``"triton"`` or ``"torch"``.

Order of precedence:
1. an explicit ``backend=`` argument;
2. the environment variable ``HDBENCH_BACKEND``;
3. automatic: a CUDA tensor with Triton importable -> ``"triton"``; a CPU tensor while
   ``TRITON_INTERPRET=1`` -> ``"triton"`` (interpreted); anything else -> ``"torch"``.

An automatic choice falls back quietly; an explicit request (1 or 2) that cannot be served raises a
``ValueError`` naming the op. ``TRITON_INTERPRET=1`` must be set before ``triton`` is imported.

The torch backend runs the eager reference through ``torch.compile`` where it compiles (set
``HDBENCH_TORCH_COMPILE=0`` to force eager, or ``eager()`` for a block); a function that fails to
compile falls back to eager once, with a ``CompileFallbackWarning``, and stays eager.
``compiled``, ``eager`` and ``CompileFallbackWarning`` are public as ``hdbench.kernels.*``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

BACKENDS = ("triton", "torch")


class CompileFallbackWarning(RuntimeWarning):
    """A ``compiled`` function failed to compile and runs eager from now on: its timings are
    eager PyTorch's, not ``torch.compile``'s."""


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported (Linux wheels only)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _can_serve_triton(x: torch.Tensor) -> str | None:
    """None when Triton can run on `x`'s device, else the reason it cannot."""
    if not triton_available():
        return "triton is not installed"
    if x.device.type == "cuda":
        return None
    if x.device.type == "cpu" and interpreting():
        return None
    return f"a {x.device.type} tensor needs CUDA or TRITON_INTERPRET=1"


def resolve(op: str, x: torch.Tensor, backend: str | None = None) -> str:
    """Pick the backend for `op` on data `x` (see module docstring)."""
    requested, source = backend, "backend="
    if requested is None and os.environ.get("HDBENCH_BACKEND"):
        requested, source = os.environ["HDBENCH_BACKEND"], "HDBENCH_BACKEND="
    if requested is None:
        return "triton" if _can_serve_triton(x) is None else "torch"
    if requested not in BACKENDS:
        raise ValueError(f"{op}: expected {source} one of {BACKENDS}, got {requested!r}")
    if requested == "triton":
        reason = _can_serve_triton(x)
        if reason is not None:
            raise ValueError(
                f"{op}: expected a device Triton can serve for {source}'triton', "
                f"got {x.device} ({reason})"
            )
    return requested


_EAGER = contextvars.ContextVar("hdbench_eager", default=False)


def compile_enabled() -> bool:
    return not _EAGER.get() and os.environ.get("HDBENCH_TORCH_COMPILE", "1") != "0"


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run the block with every ``compiled`` function eager, as ``HDBENCH_TORCH_COMPILE=0`` does
    for a whole run: for timing compiled code against eager in one process."""
    token = _EAGER.set(True)
    try:
        yield
    finally:
        _EAGER.reset(token)


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` through ``torch.compile(dynamic=True)``, falling back to eager if compiling fails.

    Per-sample scalars travel as tensors, so new eps or step values never trigger a recompile.
    """
    state: dict[str, Any] = {"fn": None}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not compile_enabled():
            return fn(*args, **kwargs)
        if state["fn"] is None:
            state["fn"] = torch.compile(fn, dynamic=True)
        if state["fn"] is fn:
            return fn(*args, **kwargs)
        try:
            return state["fn"](*args, **kwargs)
        except Exception as exc:  # compiler failures come in many types; the eager path is exact
            warnings.warn(
                f"{fn.__qualname__}: torch.compile failed ({type(exc).__name__}: "
                f"{exc}); using eager PyTorch",
                CompileFallbackWarning,
                stacklevel=2,
            )
            state["fn"] = fn
            return fn(*args, **kwargs)

    wrapper.eager = fn  # type: ignore[attr-defined]
    return wrapper
