"""Register this machine with asv without a prompt: ``python -m hdbench.suite.machine`` prints
its name.

Without ``~/.asv-machine.json`` (or with no entry for the name asked for), ``asv run`` asks
questions at the console and stops in a non-interactive shell. This writes the entry from code
with ``asv.machine.MachineCollection.save``; ``asv run --machine NAME`` then reads it and copies
every field, the extra ones included, into ``results/NAME/machine.json`` where they travel with
the results and become filters in asv's HTML. Running it again rewrites the same entry.

The name is the GPU model (``nvidia-h100-80gb-hbm3``) or ``cpu-<hostname>``: results from the same
GPU model on different hosts share a name, and so a graph.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys

import torch

from hdbench.suite.common import cuda_available, gpu_name, machine_name


def dist_version(dist: str) -> str:
    """Installed version of distribution `dist` without importing it, or ``"none"``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def machine_info() -> dict[str, str]:
    """asv's machine fields (machine, os, arch, cpu, num_cpu, ram) plus GPU and software versions.

    Every value is a string, as asv expects. No ``python`` field: asv's environment parameters
    carry one and would overwrite it in every result.
    """
    from asv.machine import Machine

    info = {k: str(v) for k, v in Machine.get_defaults().items()}
    gpu, gpu_memory = "none", "0 GiB"
    if cuda_available():
        props = torch.cuda.get_device_properties(0)
        gpu, gpu_memory = gpu_name() or props.name, f"{props.total_memory / 2**30:.1f} GiB"
    info.update(
        machine=machine_name(),
        gpu=gpu,
        gpu_memory=gpu_memory,
        gpu_count=str(torch.cuda.device_count() if cuda_available() else 0),
        cuda=str(torch.version.cuda or "none"),
        torch=torch.__version__,
        triton=dist_version("triton"),
    )
    return info


def register(path: str | None = None) -> str:
    """Write this machine's entry into ``~/.asv-machine.json`` (or `path`); return its name."""
    from asv.machine import MachineCollection

    info = machine_info()
    MachineCollection.save(info["machine"], info, _path=path)
    return info["machine"]


def main(argv: list[str] | None = None) -> int:
    """CLI: register the machine and print its name alone on stdout (for ``--machine "$(...)"``)."""
    doc = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m hdbench.suite.machine", description=doc)
    parser.add_argument("--path", help="machine file to write (default: ~/.asv-machine.json)")
    parser.add_argument("--name-only", action="store_true", help="print the name, write nothing")
    args = parser.parse_args(argv)
    if args.name_only:
        print(machine_name())
        return 0
    name = register(args.path)
    path = args.path or os.path.expanduser("~/.asv-machine.json")
    print(f"suite.machine: registered {name!r} in {path}", file=sys.stderr)
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
