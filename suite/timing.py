"""Timing and GPU measurement for the benchmarks: device synchronisation, ``do_bench`` medians,
bandwidth and FLOP rates against the device's measured ceilings, peak memory, interleaved
side-by-side timing, and the bases of the GPU ``track_`` classes.

Nothing here touches CUDA or imports triton at import time (see ``suite/__init__.py``).
"""

from __future__ import annotations

import abc
import functools
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

# through the module, so that a test's monkeypatch of common reaches these too
from hdbench.suite import common


def sync(dev: str) -> None:
    """Wait for queued GPU work: a host wall clock then covers the kernels, not just launches."""
    if dev == "cuda":
        torch.cuda.synchronize()


# --- GPU measurement ---------------------------------------------------------------------------


def bench_ms(fn: Callable[[], Any], *, warmup: int = 25, rep: int = 100) -> float:
    """Median of ``triton.testing.do_bench`` in ms (CUDA events, L2 flushed before each call)."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=warmup, rep=rep, return_mode="median"))


def gbps(nbytes: float, ms: float) -> float:
    """Bandwidth in GB/s (1e9 bytes/s) of moving `nbytes` in `ms` milliseconds."""
    return nbytes / (ms * 1e-3) / 1e9


# 256 MiB per buffer: far past any GPU's L2, small enough for every GPU the suite meets
COPY_BYTES = 256 * 2**20


@functools.cache
def copy_bandwidth_gbps() -> float:
    """This GPU's measured device-to-device copy bandwidth in GB/s; measured once per process.

    ``dst.copy_(src)`` reads and writes `COPY_BYTES` each: 2 * COPY_BYTES per call. This is the
    practical ceiling of a bandwidth-bound kernel (about 90% of the datasheet figure on an H100),
    so "% of copy" reads as "how close to a memcpy".
    """
    common.require_cuda()
    ms = _copy_ms()
    torch.cuda.empty_cache()  # the buffers died with _copy_ms; hand their memory back
    return gbps(2 * COPY_BYTES, ms)


def _copy_ms() -> float:
    src = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    return bench_ms(lambda: dst.copy_(src))


def pct_of_copy(bandwidth_gbps: float) -> float:
    """`bandwidth_gbps` as a percentage of this GPU's measured copy bandwidth."""
    return 100.0 * bandwidth_gbps / copy_bandwidth_gbps()


def peak_memory_bytes(fn: Callable[[], Any]) -> int:
    """Peak GPU bytes one call of `fn` allocates beyond what was live before (result included).

    ``torch.cuda.max_memory_allocated``: asv's ``peakmem_`` would measure host RSS instead.
    """
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return int(peak)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error: a GPU too small for a size skips rather than fails."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def measure_gpu(fn: Callable[[], Any], nbytes: int) -> dict[str, Any]:
    """One warmed call's GPU numbers: ms (do_bench median), GB/s and % of copy bandwidth for
    `nbytes` compulsory bytes, peak memory."""
    ms = bench_ms(fn)
    rate = gbps(nbytes, ms)
    return {
        "ms": ms,
        "gbps": rate,
        "pct_copy": pct_of_copy(rate),
        "peak_memory": peak_memory_bytes(fn),
        "bytes": nbytes,
    }


def failure(exc: BaseException) -> dict[str, Any]:
    """The entry a failed measurement leaves: skipped (a failed compile, out of memory, a peer
    that cannot run it) or failed (anything else)."""
    skip_it = isinstance(exc, NotImplementedError) or is_oom(exc)
    return {"error": f"{type(exc).__name__}: {exc}"[:500], "skip": skip_it}


def measured(
    make_fn: Callable[[], Callable[[], Any]], measure: Callable[[Callable[[], Any]], dict]
) -> dict[str, Any]:
    """``measure`` of the warmed call ``make_fn()`` on the GPU, or its ``failure``; the GPU's
    cache is emptied after either, so one combination's buffers never crowd the next."""
    try:
        return measure(warm(make_fn(), "cuda"))
    except Exception as exc:
        return failure(exc)
    finally:
        torch.cuda.empty_cache()


def warm(fn: Callable[[], Any], dev: str) -> Callable[[], Any]:
    """Call `fn` twice (compile / JIT, then a settled call) and wait for the device; return it.

    Raises:
        NotImplementedError: torch.compile failed and the op fell back to eager (kernels'
            torch backend does so with a warning): timing it would file eager numbers under
            ``torch_compile``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
        fn()
        sync(dev)
    from hdbench.kernels import CompileFallbackWarning

    for w in caught:
        if isinstance(w.message, CompileFallbackWarning):
            common.skip(f"torch.compile failed, the op runs eager: {w.message}")
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return fn


def interleaved_ms(
    fns: dict[str, Callable[[], Any]], dev: str, *, rounds: int, budget_s: float
) -> dict[str, float]:
    """Median wall-clock ms per call of each of `fns` (warmed), timed in turn round after round,
    the order reversed every other round, for `rounds` rounds or until `budget_s` seconds have
    passed (three rounds at least).

    A shared machine's slow spells last seconds to minutes: asv times each benchmark in its own
    process, minutes apart, so a ratio of two of its times carries that drift; timed in turn,
    every function meets the same spells and their ratio holds."""
    if rounds < 3 or not fns:
        raise ValueError(
            f"interleaved_ms: expected rounds >= 3 and some fns, got {rounds}, {list(fns)}"
        )
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    start = time.perf_counter()
    for r in range(rounds):
        if r >= 3 and time.perf_counter() - start > budget_s:
            break
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            sync(dev)
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


class GPUTracks(abc.ABC):
    """Base of the GPU benchmarks: one ``setup_cache`` run measures every combination (the
    subclass's ``measure``, keyed by the parameter tuple), and the ``track_`` methods read it.

    Abstract, so asv does not collect the bases themselves; subclasses set ``params``,
    ``param_names`` and ``version``.
    """

    rounds = 1
    timeout = 120

    @abc.abstractmethod
    def measure(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        """{params: measured numbers or failure(...)} for every combination this GPU runs."""

    def setup_cache(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        return self.measure() if common.cuda_available() else {}

    setup_cache.timeout = 2400  # type: ignore[attr-defined]  # every combination, compiles too

    def setup(self, results: dict[tuple[Any, ...], dict[str, Any]], *params: Any) -> None:
        common.require_cuda()
        entry = results.get(tuple(params))
        if entry is None:
            common.skip("not measured on this GPU")
        if "error" in entry:
            if entry["skip"]:
                common.skip(entry["error"])
            raise RuntimeError(entry["error"])
        self.entry = entry

    def track_ms(self, results: dict, *params: Any) -> float:
        return self.entry["ms"]

    track_ms.unit = "ms"  # type: ignore[attr-defined]

    def track_peak_memory(self, results: dict, *params: Any) -> int:
        return self.entry["peak_memory"]

    track_peak_memory.unit = "bytes"  # type: ignore[attr-defined]


class GPUOpTracks(GPUTracks):
    """Bandwidth-bound ops: entries from ``measure_gpu``; adds GB/s and % of copy bandwidth."""

    def track_gbps(self, results: dict, *params: Any) -> float:
        return self.entry["gbps"]

    track_gbps.unit = "GB/s"  # type: ignore[attr-defined]

    def track_pct_copy(self, results: dict, *params: Any) -> float:
        return self.entry["pct_copy"]

    track_pct_copy.unit = "%"  # type: ignore[attr-defined]


class GPUMatmulTracks(GPUTracks):
    """Compute-bound ops: entries from ``measure_gpu_flops``; adds TFLOP/s and % of the measured
    matrix-multiply peak for the dtype."""

    def track_tflops(self, results: dict, *params: Any) -> float:
        return self.entry["tflops"]

    track_tflops.unit = "TFLOP/s"  # type: ignore[attr-defined]

    def track_pct_peak(self, results: dict, *params: Any) -> float:
        return self.entry["pct_peak"]

    track_pct_peak.unit = "%"  # type: ignore[attr-defined]


PEAK_MATMUL_SIDE = 8192


@functools.cache
def matmul_peak_tflops(dtype: torch.dtype) -> float:
    """This GPU's measured dense matmul rate in TFLOP/s for `dtype` (8192^3, fp32 without TF32):
    the practical ceiling that "% of peak" refers to; measured once per process and dtype."""
    common.require_cuda()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ms = _matmul_ms(dtype)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.cuda.empty_cache()
    return 2 * PEAK_MATMUL_SIDE**3 / (ms * 1e-3) / 1e12


def _matmul_ms(dtype: torch.dtype) -> float:
    a = torch.randn(PEAK_MATMUL_SIDE, PEAK_MATMUL_SIDE, device="cuda").to(dtype)
    b = torch.randn(PEAK_MATMUL_SIDE, PEAK_MATMUL_SIDE, device="cuda").to(dtype)
    return bench_ms(lambda: a @ b)


def measure_gpu_flops(fn: Callable[[], Any], flops: float, dtype: torch.dtype) -> dict[str, Any]:
    """One warmed call's GPU numbers: ms, TFLOP/s for `flops` useful operations, % of the
    measured matmul peak for `dtype`, peak memory."""
    ms = bench_ms(fn)
    rate = flops / (ms * 1e-3) / 1e12
    return {
        "ms": ms,
        "tflops": rate,
        "pct_peak": 100.0 * rate / matmul_peak_tflops(dtype),
        "peak_memory": peak_memory_bytes(fn),
        "flops": flops,
    }
