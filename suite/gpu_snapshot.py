"""A timed snapshot of the GPU benchmarks, for a GPU session too short for the whole asv suite.

``python -m hdbench.suite.gpu_snapshot OUT.json [--budget SECONDS]`` measures a reduced grid with
the GPU tracks' own code (``do_bench`` medians, % of the measured copy bandwidth or matmul peak,
peak memory), in priority order: the fused kernels against eager PyTorch at the largest sides first,
then the peers, then ``torch.compile`` (whose compiles take most of a short session). A group
starts only while the budget lasts; OUT.json is rewritten atomically after every group, so a run
cut short keeps what it measured. Each entry is what ``timing.measured`` returned: the numbers,
or the error that stopped that combination.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from hdbench.results.atomic import write_atomic
from hdbench.suite import bench_attack, bench_hvp, bench_pyramid, common, timing
from hdbench.suite.machine import dist_version


def _whole_attacks(impls: tuple[str, ...], side: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``TrackWholeAttackGPU``'s number (10-step PGD, batch 16, fp32) for `impls` at `side`."""
    batch = common.BATCH["cuda"]
    return {
        (impl, side): timing.measured(
            lambda impl=impl: bench_attack.attack_call(impl, "cuda", batch, side),
            lambda fn: {"ms": timing.bench_ms(fn)},
        )
        for impl in impls
    }


def _minimal_l2(impls: tuple[str, ...], side: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """One call of each minimal-L2 search on ``TimeMinimalL2``'s GPU problem (1024 points):
    wall-clock ms, success rate and median pixel L2."""
    problem = bench_attack.minimal_problem("cuda", side)
    out = {}
    for impl in impls:
        try:
            search = bench_attack.minimal_search(impl, problem)
            search()  # warm-up: kernels compiled, caches filled
            timing.sync("cuda")
            t0 = time.perf_counter()
            adv = search()
            timing.sync("cuda")
            seconds = time.perf_counter() - t0
            ok, norms = bench_attack.minimal_outcome(problem, adv)
            out[(impl, side)] = {
                "ms": 1e3 * seconds,
                "points": len(ok),
                "success_rate": float(ok.double().mean()),
                "median_l2": float(norms[ok].median()) if ok.any() else float("nan"),
            }
        except Exception as exc:
            out[(impl, side)] = timing.failure(exc)
        finally:
            torch.cuda.empty_cache()
    return out


# (name, what it measures, params' names, zero-argument measurement) in priority order
GROUPS: list[tuple[str, str, tuple[str, ...], Callable[[], dict]]] = [
    (
        "attack_ops",
        "TrackAttackOpsGPU: triton vs eager, batch 16 at sides 2048 and 1024, batch 1",
        ("op", "impl", "dtype", "batch", "side"),
        lambda: bench_attack.measure_gpu_ops(
            sizes=[(16, 2048), (16, 1024), (1, 1024)], impls=("triton", "eager")
        ),
    ),
    (
        "pyramid_ops",
        "TrackPyramidOpsGPU: every impl but torch_compile, batch 16, side 2048",
        ("op", "impl", "dtype", "side"),
        lambda: bench_pyramid.measure_gpu_ops(
            sides=[2048], impls=[i for i in bench_pyramid.IMPLS if i != "torch_compile"]
        ),
    ),
    (
        "hvp",
        "TrackHVPGPU: every eager impl, widths 256 and 1024, batch 2048, k 1 and 32",
        ("impl", "dtype", "depth", "width", "batch", "k"),
        lambda: bench_hvp.measure_gpu_hvp(
            shapes=[(2, 1024, 2048), (4, 1024, 2048), (2, 256, 2048)],
            ks=(1, 32),
            impls=("triton", "eager", "torch_func", "double_backward"),
        ),
    ),
    (
        "whole_attack",
        "TrackWholeAttackGPU: 10-step PGD at side 1024, batch 16",
        ("impl", "side"),
        lambda: _whole_attacks(("hdbench_triton", "hdbench_eager", "torchattacks"), 1024),
    ),
    (
        "compile_ops",
        "torch_compile of the attack and pyramid ops, fp32, batch 16, side 2048",
        ("family", "op", "impl", "dtype", "side"),
        lambda: (
            {
                ("attack", op, impl, dt, s): v
                for (op, impl, dt, _, s), v in bench_attack.measure_gpu_ops(
                    dtypes=("fp32",), sizes=[(16, 2048)], impls=("torch_compile",)
                ).items()
            }
            | {
                ("pyramid", *k): v
                for k, v in bench_pyramid.measure_gpu_ops(
                    dtypes=("fp32",), sides=[2048], impls=("torch_compile",)
                ).items()
            }
        ),
    ),
    (
        "minimal_l2",
        "TimeMinimalL2 on the GPU: one call per search, 1024 points, side 128",
        ("impl", "side"),
        lambda: _minimal_l2(
            (
                "hdbench_deepfool_refined",
                "hdbench_deepfool",
                "torchattacks_deepfool",
                "foolbox_deepfool",
            ),
            128,
        ),
    ),
]


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write `data` to `path` atomically (a snapshot is one of the report's inputs)."""
    write_atomic(path, json.dumps(data, indent=1, default=float))


def header(budget: float) -> dict[str, Any]:
    """The device, software versions and ceilings (copy bandwidth, matmul peaks) of a snapshot;
    the ceilings are measured first, on an unfragmented GPU."""
    common.require_cuda()
    props = torch.cuda.get_device_properties(0)
    return {
        "device": common.gpu_name(),
        "machine": common.machine_name(),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            d: dist_version(d) for d in ("torch", "triton", "torchattacks", "foolbox", "kornia")
        },
        "cuda": torch.version.cuda,
        "budget_s": budget,
        "copy_gbps": timing.copy_bandwidth_gbps(),
        "matmul_peak_tflops": {
            name: timing.matmul_peak_tflops(common.DTYPES[name]) for name in ("fp32", "bf16")
        },
        "groups": {},
    }


def snapshot(
    out: str,
    budget: float,
    log: Callable[[str], None] = print,
    groups: list[tuple[str, str, tuple[str, ...], Callable[[], dict]]] = GROUPS,
) -> dict[str, Any]:
    """Run `groups` in order while `budget` seconds last; write `out` after each one. A group's
    entry holds its rows (one per combination: params and numbers or error), or the error that
    stopped the whole group, or why it did not start."""
    t0 = time.perf_counter()
    data = header(budget)
    for name, what, names, measure in groups:
        spent = time.perf_counter() - t0
        if spent >= budget:
            data["groups"][name] = {"what": what, "skipped": f"budget spent ({spent:.0f} s)"}
            write_json(out, data)
            continue
        log(f"gpu_snapshot: {name} ({spent:.0f} s of {budget:.0f})")
        g0 = time.perf_counter()
        try:
            entries = measure()
            rows = [
                {**dict(zip(names, key, strict=True)), **value} for key, value in entries.items()
            ]
            data["groups"][name] = {"what": what, "rows": rows}
        except Exception as exc:  # one group's failure must not lose the others
            data["groups"][name] = {"what": what, **timing.failure(exc)}
        data["groups"][name]["seconds"] = time.perf_counter() - g0
        write_json(out, data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hdbench.suite.gpu_snapshot", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("out", help="JSON file to write")
    parser.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="seconds after which no further group starts (default 300)",
    )
    args = parser.parse_args(argv)
    if not common.cuda_available():
        print("gpu_snapshot: needs a CUDA device; none is usable here", file=sys.stderr)
        return 2
    snapshot(args.out, args.budget, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
