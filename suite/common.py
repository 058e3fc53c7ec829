"""Shared pieces of the benchmark suite: devices, sizes, seeds, skips and the science classes'
track tables. Timing and GPU measurement live in ``suite.timing``.

Parameter lists are constants, identical on every machine: asv drops a benchmark skipped at
discovery from every machine's graphs, so a combination this machine cannot run is skipped in
``setup`` by raising ``NotImplementedError`` (the ``require_*`` helpers below).

Nothing here touches CUDA or imports triton at import time (see ``suite/__init__.py``): device
queries are lazy and cached per process, and triton is imported inside the GPU helpers only.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import socket
from collections.abc import Callable
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


def tracks(table: dict[str, tuple[str, str]], *, attr: str = "s", via: str | None = None):
    """A class decorator that declares one asv ``track_<name>`` method per row of `table`
    (``{name: (key, unit)}``): the method returns ``self.<attr>[key]``, or ``self.<via>(key)``
    where `via` is given, and its unit is `unit`. For the science classes, whose numbers are
    one shared run's, read in ``setup`` (``self.s = stats[...]``).

    Raises:
        ValueError: a name the class already defines.
    """

    def method(name: str, key: str, unit: str) -> Callable[..., Any]:
        def track(self: Any, *_: Any) -> Any:
            return getattr(self, via)(key) if via else getattr(self, attr)[key]

        track.__name__ = track.__qualname__ = f"track_{name}"
        track.unit = unit  # type: ignore[attr-defined]
        return track

    def decorate(cls: type) -> type:
        for name, (key, unit) in table.items():
            if hasattr(cls, f"track_{name}"):
                raise ValueError(f"tracks: expected a new name in {cls.__name__}, got {name!r}")
            setattr(cls, f"track_{name}", method(name, key, unit))
        return cls

    return decorate


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
