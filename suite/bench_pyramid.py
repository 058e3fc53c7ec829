"""Speed and memory of the resolution-pyramid ops (``kernels/pyramid.py``) against baselines.

Ops (``LEVELS`` = 5 levels where a pyramid is built), on a (batch, 3, side, side) fp32 image:
``pyr_down``; ``pyr_up`` (from side / 2 to side); ``gaussian`` and ``laplacian`` pyramids;
``reconstruct`` (from the Laplacian pyramid); ``level_energy``.

Implementations (``impl``):
- ``triton``: the kernels, OpenCV-like sizes (the default); ``triton_kornia``: the same kernels
  with kornia's convention, computing exactly what ``kornia`` computes (GPU only, both);
- ``torch_compile``: the public op with ``backend="torch"`` (the reference, compiled);
- ``eager``: ``kernels.reference.pyramid``, plain eager PyTorch;
- ``kornia``: ``kornia.geometry.transform`` ``pyrdown`` / ``pyrup`` / ``build_pyramid`` /
  ``build_laplacian_pyramid`` (no reconstruction or energy there: skipped);
- ``avg_pool``: a chain of ``F.avg_pool2d(2)`` (``pyr_down`` and ``gaussian`` only): the cheapest
  pyramid anyone builds, a floor for the time of a 2x reduction.

Compulsory bytes (element size s, N elements of the input image, levels of N / 4^l elements):
``pyr_down`` reads N, writes N / 4; ``pyr_up`` reads N / 4, writes N; ``gaussian`` reads N and
writes the 4 coarser levels; ``laplacian`` reads N and writes all 5 levels; ``reconstruct`` reads
5 levels and writes N; ``level_energy`` reads N. Level sizes follow each convention exactly.

Benchmarks: ``TimePyramidOps`` (host wall clock on this machine's device, fp32) and
``TrackPyramidOpsGPU`` (GPU only: do_bench ms, GB/s, % of measured copy bandwidth, peak memory,
fp32 and bf16).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from hdbench import kernels
from hdbench.kernels.reference import pyramid as ref
from hdbench.suite import common, provenance, timing

OPS = ("pyr_down", "pyr_up", "gaussian", "laplacian", "reconstruct", "level_energy")
IMPLS = ("triton", "triton_kornia", "torch_compile", "eager", "kornia", "avg_pool")
GPU_DTYPES = ("fp32", "bf16")
LEVELS = 5
KORNIA_OPS = ("pyr_down", "pyr_up", "gaussian", "laplacian")
AVG_POOL_OPS = ("pyr_down", "gaussian")


def convention_of(impl: str) -> str:
    return "kornia" if "kornia" in impl else "opencv"


def min_bytes(op: str, batch: int, side: int, dtype: torch.dtype, convention: str) -> int:
    """Compulsory bytes of `op` on a (batch, 3, side, side) image (see the module docstring)."""
    sizes = kernels.pyramid_sizes(side, side, LEVELS, convention)
    area = [h * w for h, w in sizes]
    n = {
        "pyr_down": area[0] + area[1],
        "pyr_up": area[0] + kernels.pyramid_sizes(side, side, 2, convention)[1][0] ** 2,
        "gaussian": sum(area),
        "laplacian": area[0] + sum(area),
        "reconstruct": sum(area) + area[0],
        "level_energy": area[0],
    }[op]
    return n * batch * common.CHANNELS * torch.empty((), dtype=dtype).element_size()


def make_inputs(dev: str, dtype: torch.dtype, batch: int, side: int, convention: str) -> dict:
    """A seeded image, its half-side version (pyr_up's input) and its Laplacian pyramid."""
    gen = common.generator(dev)
    x = torch.rand((batch, common.CHANNELS, side, side), generator=gen, device=dev).to(dtype)
    half = kernels.pyramid_sizes(side, side, 2, convention)[1]
    small = torch.rand((batch, common.CHANNELS, *half), generator=gen, device=dev).to(dtype)
    return {"x": x, "small": small, "laplacian": ref.laplacian_pyramid(x, LEVELS, convention)}


def _avg_pool_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    out = [x]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2, ceil_mode=True))
    return out


def op_call(op: str, impl: str, t: dict[str, Any]) -> Callable[[], Any]:
    """A zero-argument call of `op` by `impl` on inputs `t` (from ``make_inputs``)."""
    if op not in OPS:
        raise ValueError(f"op_call: expected op in {OPS}, got {op!r}")
    if impl not in IMPLS:
        raise ValueError(f"op_call: expected impl in {IMPLS}, got {impl!r}")
    x, small, lap = t["x"], t["small"], t["laplacian"]
    side = x.shape[-2:]
    if impl == "kornia":
        if op not in KORNIA_OPS:
            common.skip(f"kornia has no {op}")
        k = common.require_module("kornia.geometry.transform")
        return {
            "pyr_down": lambda: k.pyrdown(x),
            "pyr_up": lambda: k.pyrup(small),
            "gaussian": lambda: k.build_pyramid(x, LEVELS),
            "laplacian": lambda: k.build_laplacian_pyramid(x, LEVELS),
        }[op]
    if impl == "avg_pool":
        if op not in AVG_POOL_OPS:
            common.skip(f"avg_pool2d builds no {op}")
        if op == "pyr_down":
            return lambda: F.avg_pool2d(x, 2, ceil_mode=True)
        return lambda: _avg_pool_pyramid(x, LEVELS)
    conv = convention_of(impl)
    if impl == "eager":
        return {
            "pyr_down": lambda: ref.pyr_down(x, conv),
            "pyr_up": lambda: ref.pyr_up(small, side, conv),
            "gaussian": lambda: ref.gaussian_pyramid(x, LEVELS, conv),
            "laplacian": lambda: ref.laplacian_pyramid(x, LEVELS, conv),
            "reconstruct": lambda: ref.reconstruct(lap, conv),
            "level_energy": lambda: ref.level_energy(x, LEVELS, conv),
        }[op]
    kw = {"convention": conv, "backend": "torch" if impl == "torch_compile" else "triton"}
    return {
        "pyr_down": lambda: kernels.pyr_down(x, **kw),
        "pyr_up": lambda: kernels.pyr_up(small, side, **kw),
        "gaussian": lambda: kernels.gaussian_pyramid(x, LEVELS, **kw),
        "laplacian": lambda: kernels.laplacian_pyramid(x, LEVELS, **kw),
        "reconstruct": lambda: kernels.reconstruct(lap, **kw),
        "level_energy": lambda: kernels.level_energy(x, LEVELS, **kw),
    }[op]


_CALLS: dict[tuple[Any, ...], Callable[[], Any]] = {}


def _warm_op(op: str, impl: str, dev: str, side: int) -> Callable[[], Any]:
    key = (op, impl, dev, side)
    if key not in _CALLS:
        _CALLS.clear()
        inputs = make_inputs(dev, torch.float32, common.BATCH[dev], side, convention_of(impl))
        _CALLS[key] = timing.warm(op_call(op, impl, inputs), dev)
    return _CALLS[key]


class TimePyramidOps:
    """Host wall clock of one op call on the device's batch (8 on a CPU, 16 on a GPU), fp32."""

    params = (list(OPS), list(IMPLS), list(common.SIDES))
    param_names = ("op", "impl", "side")
    version = "pyramid-ops-time-1"
    rounds = 1
    number = 1
    repeat = (5, 20, 1.0)
    warmup_time = 0.0
    timeout = 180

    def setup(self, op: str, impl: str, side: int) -> None:
        self.dev = common.device()
        common.require_impl(impl, self.dev)
        common.require_side(side, self.dev)
        self.fn = _warm_op(op, impl, self.dev, side)

    def time_op(self, op: str, impl: str, side: int) -> None:
        self.fn()
        timing.sync(self.dev)


def _gpu_call(op: str, impl: str, inputs: dict) -> Callable[[], Any]:
    common.require_impl(impl, "cuda")
    return op_call(op, impl, inputs)


def measure_gpu_ops(
    *,
    dtypes: Sequence[str] = GPU_DTYPES,
    sides: Sequence[int] | None = None,
    impls: Sequence[str] = IMPLS,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Measure every (op, impl, dtype, side) on this GPU at batch 16 (CUDA only), or the part of
    that grid named by `dtypes`, `sides` and `impls`."""
    import torch._dynamo.config as dynamo_config

    common.seed_all()
    dynamo_config.recompile_limit = max(64, dynamo_config.recompile_limit)
    timing.copy_bandwidth_gbps()
    batch = common.BATCH["cuda"]
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    for dtype_name in dtypes:
        dtype = common.DTYPES[dtype_name]
        for side in common.sides_for("cuda") if sides is None else sides:
            for conv in ("opencv", "kornia"):
                of_conv = [i for i in impls if convention_of(i) == conv]
                if not of_conv:
                    continue
                try:
                    inputs = make_inputs("cuda", dtype, batch, side, conv)
                except Exception as exc:
                    for op in OPS:
                        for impl in of_conv:
                            results[(op, impl, dtype_name, side)] = timing.failure(exc)
                    continue
                for op in OPS:
                    nbytes = min_bytes(op, batch, side, dtype, conv)
                    for impl in of_conv:
                        results[(op, impl, dtype_name, side)] = timing.measured(
                            lambda op=op, impl=impl, t=inputs: _gpu_call(op, impl, t),
                            lambda fn, n=nbytes: timing.measure_gpu(fn, n),
                        )
                del inputs
                torch.cuda.empty_cache()
    return results


class TrackPyramidOpsGPU(timing.GPUOpTracks):
    """GPU speed (do_bench median), effective bandwidth and memory of one op call, batch 16."""

    params = (list(OPS), list(IMPLS), list(GPU_DTYPES), list(common.SIDES))
    param_names = ("op", "impl", "dtype", "side")
    version = "pyramid-ops-gpu-1"

    def measure(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        return measure_gpu_ops()

    def setup(self, results: dict, op: str, impl: str, dtype: str, side: int) -> None:
        common.require_cuda()
        common.require_side(side, "cuda")
        super().setup(results, op, impl, dtype, side)


# every benchmark above records the sizes and seeds behind its numbers (suite.provenance)
provenance.record(globals())
