"""Shared pieces of the benchmark suite: devices, sizes, seeds, skips and GPU measurement helpers.

Parameter lists are constants, identical on every machine: asv drops a benchmark skipped at
discovery from every machine's graphs, so a combination this machine cannot run is skipped in
``setup`` by raising ``NotImplementedError`` (the ``require_*`` helpers below).

Nothing here touches CUDA or imports triton at import time (see ``suite/__init__.py``): device
queries are lazy and cached per process, and triton is imported inside the GPU helpers only.
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.util
import os
import re
import socket
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch

SEED = 0

# Image sides (H = W) of the kernel benchmarks. One list on every machine; each device runs its
# part. The CPU part stays small so that the whole CPU suite runs in minutes on 2 cores.
SIDES_CPU: tuple[int, ...] = (64, 128, 256)
SIDES_GPU: tuple[int, ...] = (256, 512, 1024, 2048)
SIDES: tuple[int, ...] = tuple(sorted(set(SIDES_CPU) | set(SIDES_GPU)))
CHANNELS = 3
# Images per batch: 8 keeps the slowest eager CPU op near 0.1 s at side 256; 16 images of
# 2048^2 fp32 are 0.8 GB per tensor, enough to reach a GPU's bandwidth ceiling.
BATCH = {"cpu": 8, "cuda": 16}
# The op benchmarks also run single images (launch- and latency-bound) beside that batch; one
# list for every machine, each device skipping the batch meant for the other.
BATCHES: tuple[int, ...] = (1, 8, 16)
# HDBENCH_CPU_MAX_SIDE lifts (or lowers) the CPU cap of 256 without changing any param list.
CPU_MAX_SIDE_ENV = "HDBENCH_CPU_MAX_SIDE"

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


SMOKE_ENV = "HDBENCH_SMOKE"


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` through a temporary file in the same folder and
    ``os.replace``: a reader, or a run stopped halfway, sees the old file or the new one whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves no empty file
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are results, for reading
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def smoke() -> bool:
    """True under ``HDBENCH_SMOKE=1``: the science benchmarks run a small size, to check that the
    suite runs end to end (CI's ``asv run --dry-run``, which keeps no numbers), not to measure."""
    return os.environ.get(SMOKE_ENV) == "1"


def skip(reason: str) -> NoReturn:
    """Skip the current combination: asv records it as skipped (n/a), not failed."""
    raise NotImplementedError(reason)


def skip_in_benchmark(reason: str) -> NoReturn:
    """Skip from inside a benchmark method (where ``skip`` would count as a failure): for one
    number of a class whose other numbers exist, e.g. the norms of a model that did not learn."""
    from asv_runner.benchmarks.mark import SkipNotImplemented  # asv's runner, imported lazily

    raise SkipNotImplemented(reason)


@functools.cache
def cuda_available() -> bool:
    """True when a CUDA device is usable (cached: asked once per benchmark process)."""
    return torch.cuda.is_available()


def device() -> str:
    """This machine's benchmark device: ``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    return "cuda" if cuda_available() else "cpu"


@functools.cache
def triton_available() -> bool:
    """True when ``triton`` imports (no wheel on some platforms; the suite must still import)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton")
    except Exception:  # a broken install is as good as none for benchmarking
        return False
    return True


@functools.cache
def gpu_name() -> str | None:
    """The CUDA device's model name (e.g. ``"NVIDIA H100 80GB HBM3"``), or None without one."""
    return torch.cuda.get_device_name(0) if cuda_available() else None


def slug(text: str) -> str:
    """Lowercase, spaces to dashes, nothing but ``[a-z0-9._-]``: a safe machine/file name."""
    text = re.sub(r"\s+", "-", text.strip().lower())
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9._-]", "", text)).strip("-")


def machine_name() -> str:
    """The asv machine name: the GPU model (``nvidia-h100-80gb-hbm3``) or ``cpu-<hostname>``."""
    name = gpu_name()
    if name:
        return slug(name)
    return slug(f"cpu-{socket.gethostname().split('.')[0]}")


def sides_for(dev: str) -> tuple[int, ...]:
    """The part of ``SIDES`` that `dev` runs: ``SIDES_GPU``, or ``SIDES_CPU`` (env-capped)."""
    if dev == "cuda":
        return SIDES_GPU
    cap = int(os.environ.get(CPU_MAX_SIDE_ENV, max(SIDES_CPU)))
    return tuple(s for s in SIDES if s <= cap)


def batches_for(dev: str) -> tuple[int, ...]:
    """The op benchmarks' batch sizes on device `dev`: one image and the device's batch."""
    return (1, BATCH[dev])


def require_batch(batch: int, dev: str) -> None:
    """Skip a batch size meant for the other device."""
    if batch not in batches_for(dev):
        skip(f"batch {batch} is not run on {dev} (runs {batches_for(dev)})")


def seed_all(seed: int = SEED) -> None:
    """Seed torch's CPU and CUDA generators: every benchmark starts from the same inputs."""
    torch.manual_seed(seed)


def generator(dev: str, seed: int = SEED) -> torch.Generator:
    """A seeded generator on `dev`: inputs are drawn where they live, never copied over."""
    return torch.Generator(device=dev).manual_seed(seed)


# --- skips -------------------------------------------------------------------------------------


def require_cuda() -> None:
    """Skip unless a CUDA device is usable."""
    if not cuda_available():
        skip("no CUDA device")


def require_triton() -> None:
    """Skip unless triton imports."""
    if not triton_available():
        skip("triton is not installed")


def require_module(name: str) -> Any:
    """Import and return peer library `name`, or skip when it is missing or fails to import."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a peer broken by a missing optional dependency
        skip(f"{name} is not importable ({type(exc).__name__}: {exc})")


def require_side(side: int, dev: str | None = None) -> None:
    """Skip a side that is not in this device's part of ``SIDES``."""
    dev = dev or device()
    if side not in sides_for(dev):
        skip(f"side {side} is not run on {dev} (runs {sides_for(dev)})")


def require_impl(impl: str, dev: str | None = None) -> None:
    """Skip an implementation this machine cannot serve: ``triton``-ish ones need CUDA + triton."""
    if "triton" in impl:
        if (dev or device()) != "cuda":
            skip(f"{impl} needs a CUDA device")
        require_triton()


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
    require_cuda()
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
    for w in caught:
        if "torch.compile failed" in str(w.message):
            skip(f"torch.compile failed, the op runs eager: {w.message}")
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
        raise ValueError(f"interleaved_ms: expected rounds >= 3 and some fns, got {rounds}, "
                         f"{list(fns)}")  # fmt: skip
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
        return self.measure() if cuda_available() else {}

    setup_cache.timeout = 2400  # type: ignore[attr-defined]  # every combination, compiles too

    def setup(self, results: dict[tuple[Any, ...], dict[str, Any]], *params: Any) -> None:
        require_cuda()
        entry = results.get(tuple(params))
        if entry is None:
            skip("not measured on this GPU")
        if "error" in entry:
            if entry["skip"]:
                skip(entry["error"])
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
    require_cuda()
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
