"""Speed of the Hessian-vector products (``kernels/hvp.py``) and of the Lanczos index built on them.

The model: an MLP of ``depth`` tanh hidden layers of ``width`` units on ``width`` inputs, 10
classes, cross-entropy over a ``batch`` of samples; k vectors at once. A CPU runs depth 2, widths
64 and 256, batch 256, k 1 and 8; a GPU the whole grid (depth 2 and 4, widths to 1024, batches
256 and 2048, k to 32, fp32 and bf16).

Implementations (``impl``) of H V for V (k, P):
- ``triton``: ``kernels.mlp_hvp`` (the R-operator in fused dual-GEMM kernels; GPU only);
- ``torch_compile``: the same op with ``backend="torch"`` (the R-operator reference, compiled);
- ``eager``: the R-operator reference, eager;
- ``torch_func``: ``vmap`` over the k vectors of ``jvp(grad(loss))`` (forward-over-reverse);
- ``double_backward``: PyHessian's way: the gradient with ``create_graph=True``, then one
  ``autograd.grad`` of <g, v> per vector;
- ``double_backward_compile``: the same function through ``torch.compile``.

Useful work: ``FLOPS_PER_WEIGHT * N * (weights) * k``: an R-operator HVP runs six products of a
layer's size per vector (two in the R-forward pass, two for R(delta), two for the weight block),
each 2 N d_in d_out flops; every implementation is scored against that count.

``TimeLanczosIndex``: the index of a ~10k-parameter MLP's Hessian by stochastic Lanczos
quadrature, ``PROBES`` probes of ``STEPS`` steps: hdbench (all probes batched, no host
synchronisation per step) against a PyHessian-style loop (one probe at a time, double backward,
``.item()`` per step). Both run the same probes and steps, so they give the same estimate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import grad, jvp, vmap

from hdbench import kernels
from hdbench.kernels.reference import hvp as ref
from hdbench.suite import common, provenance, timing
from hdbench.suite.experiments import spectral

IMPLS = (
    "triton",
    "torch_compile",
    "eager",
    "torch_func",
    "double_backward",
    "double_backward_compile",
)
DEPTHS = (2, 4)
WIDTHS = (64, 256, 1024)
BATCHES = (256, 2048)
KS = (1, 8, 32)
GPU_DTYPES = ("fp32", "bf16")
CLASSES = 10
CPU_GRID = {"depth": (2,), "width": (64, 256), "batch": (256,), "k": (1, 8)}
FLOPS_PER_WEIGHT = 12  # six products of 2 flops per weight and sample

# the Lanczos comparison: about 10k parameters
LANCZOS_DIMS = (48, 96, 48, CLASSES)
LANCZOS_SAMPLES = 256
STEPS = 32
PROBES = 8
LANCZOS_IMPLS = ("hdbench", "pyhessian_loop")


def make_problem(
    dev: str, dtype: torch.dtype, depth: int, width: int, n: int, dims=None
) -> dict[str, Any]:
    """Seeded MLP parameters (a list of (W, b)), inputs x (n, d_0) and labels y (n,)."""
    gen = common.generator(dev)
    dims = dims or (width,) * (depth + 1) + (CLASSES,)
    params = []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        w = torch.randn(d_out, d_in, generator=gen, device=dev) / math.sqrt(d_in)
        b = 0.1 * torch.randn(d_out, generator=gen, device=dev)
        params.append((w.to(dtype), b.to(dtype)))
    x = torch.randn(n, dims[0], generator=gen, device=dev).to(dtype)
    y = torch.randint(0, dims[-1], (n,), generator=gen, device=dev)
    return {"params": params, "x": x, "y": y, "dims": dims}


def flops(problem: dict[str, Any], k: int) -> float:
    weights = sum(w.numel() for w, _ in problem["params"])
    return FLOPS_PER_WEIGHT * problem["x"].shape[0] * weights * k


def _loss_of_flat(problem: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    params, x, y = problem["params"], problem["x"], problem["y"]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        pairs = [(w[0], b[0]) for w, b in ref.split(theta[None], params)]
        return ref.loss_value(ref.forward(pairs, x, "tanh")[0], y, "ce")

    return loss


def double_backward_hvp(problem: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """PyHessian's product: the gradient with create_graph, then one autograd.grad per vector."""
    loss = _loss_of_flat(problem)
    theta0 = spectral.flat(problem["params"])

    def hvp(v: torch.Tensor) -> torch.Tensor:
        theta = theta0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(theta), theta, create_graph=True)
        rows = [
            torch.autograd.grad(g, theta, grad_outputs=v[i], retain_graph=i < len(v) - 1)[0]
            for i in range(len(v))
        ]
        return torch.stack(rows)

    return hvp


def hvp_call(impl: str, problem: dict[str, Any], v: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A zero-argument H v by `impl` (see the module docstring)."""
    params, x, y = problem["params"], problem["x"], problem["y"]
    if impl in ("triton", "torch_compile"):
        backend = "triton" if impl == "triton" else "torch"
        return lambda: kernels.mlp_hvp(params, x, y, v, backend=backend)
    if impl == "eager":
        return lambda: ref.mlp_hvp(params, x, y, v)
    if impl == "torch_func":
        loss = _loss_of_flat(problem)
        theta = spectral.flat(params)
        one = lambda u: jvp(grad(loss), (theta,), (u,))[1]  # noqa: E731
        batched = vmap(one)
        return lambda: batched(v)
    if impl == "double_backward":
        fn = double_backward_hvp(problem)
        return lambda: fn(v)
    if impl == "double_backward_compile":
        compiled = torch.compile(double_backward_hvp(problem))

        def call() -> torch.Tensor:
            try:
                return compiled(v)
            except Exception as exc:  # dynamo splits the graph at autograd.grad and loses it
                common.skip(
                    f"torch.compile cannot run the double backward: "
                    f"{type(exc).__name__}: {str(exc)[:200]}"
                )

        return call
    raise ValueError(f"hvp_call: expected impl in {IMPLS}, got {impl!r}")


_CALLS: dict[tuple[Any, ...], Callable[[], Any]] = {}


def _warm_hvp(impl: str, dev: str, depth: int, width: int, batch: int, k: int):
    key = (impl, dev, depth, width, batch, k)
    if key not in _CALLS:
        _CALLS.clear()
        problem = make_problem(dev, torch.float32, depth, width, batch)
        p = ref.flat_size(problem["params"])
        v = torch.randn(k, p, generator=common.generator(dev), device=dev)
        _CALLS[key] = timing.warm(hvp_call(impl, problem, v), dev)
    return _CALLS[key]


def _require_size(dev: str, **size: int) -> None:
    if dev == "cuda":
        return
    for name, value in size.items():
        if value not in CPU_GRID[name]:
            common.skip(f"{name} {value} is not run on {dev} (runs {name} in {CPU_GRID[name]})")


class TimeHVP:
    """Host wall clock of one batched HVP (k vectors), fp32, on this machine's device."""

    params = (list(IMPLS), list(DEPTHS), list(WIDTHS), list(BATCHES), list(KS))
    param_names = ("impl", "depth", "width", "batch", "k")
    version = "hvp-time-1"
    rounds = 1
    number = 1
    repeat = (5, 20, 1.0)
    warmup_time = 0.0
    timeout = 240

    def setup(self, impl: str, depth: int, width: int, batch: int, k: int) -> None:
        self.dev = common.device()
        common.require_impl(impl, self.dev)
        _require_size(self.dev, depth=depth, width=width, batch=batch, k=k)
        self.fn = _warm_hvp(impl, self.dev, depth, width, batch, k)

    def time_hvp(self, impl: str, depth: int, width: int, batch: int, k: int) -> None:
        self.fn()
        timing.sync(self.dev)


def _gpu_call(impl: str, problem: dict[str, Any], v: torch.Tensor) -> Callable[[], Any]:
    common.require_impl(impl, "cuda")
    return hvp_call(impl, problem, v)


def measure_gpu_hvp(
    *,
    dtypes: Sequence[str] = GPU_DTYPES,
    shapes: Sequence[tuple[int, int, int]] | None = None,
    ks: Sequence[int] = KS,
    impls: Sequence[str] = IMPLS,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every (impl, dtype, depth, width, batch, k) on this GPU: ms, TFLOP/s, % of the matmul
    peak, memory; or the part of that grid named by `dtypes`, `shapes` ((depth, width, batch)
    triples), `ks` and `impls`."""
    import torch._dynamo.config as dynamo_config

    common.seed_all()
    dynamo_config.recompile_limit = max(64, dynamo_config.recompile_limit)
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    if shapes is None:
        shapes = list(itertools.product(DEPTHS, WIDTHS, BATCHES))
    for dtype_name in dtypes:
        dtype = common.DTYPES[dtype_name]
        timing.matmul_peak_tflops(dtype)
        for depth, width, batch in shapes:
            problem = make_problem("cuda", dtype, depth, width, batch)
            p = ref.flat_size(problem["params"])
            for k in ks:
                v = torch.randn(k, p, generator=common.generator("cuda"), device="cuda").to(dtype)
                work = flops(problem, k)
                for impl in impls:
                    results[(impl, dtype_name, depth, width, batch, k)] = timing.measured(
                        lambda impl=impl, p=problem, v=v: _gpu_call(impl, p, v),
                        lambda fn, f=work, d=dtype: timing.measure_gpu_flops(fn, f, d),
                    )
    return results


class TrackHVPGPU(timing.GPUMatmulTracks):
    """GPU time (do_bench median), TFLOP/s and % of the measured matmul peak of one batched HVP."""

    params = (list(IMPLS), list(GPU_DTYPES), list(DEPTHS), list(WIDTHS), list(BATCHES), list(KS))
    param_names = ("impl", "dtype", "depth", "width", "batch", "k")
    version = "hvp-gpu-1"

    def measure(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        return measure_gpu_hvp()


# --- the Lanczos index -------------------------------------------------------------------------


def pyhessian_slq(problem: dict[str, Any], probes: torch.Tensor, steps: int) -> float:
    """PyHessian's stochastic Lanczos quadrature, one probe at a time: a double-backward product
    per step, scalars brought to the host with ``.item()``, full reorthogonalisation. Returns the
    estimated fraction of negative eigenvalues."""
    hvp = double_backward_hvp(problem)
    fractions = []
    for probe in probes:
        q = probe / probe.norm()
        basis, alphas, betas = [q], [], []
        w = hvp(q[None])[0]
        for j in range(steps):
            if j > 0:
                w = hvp(q[None])[0]
            alpha = float(torch.dot(w, q).item())
            alphas.append(alpha)
            w = w - alpha * q - (betas[-1] * basis[-2] if betas else 0)
            for b in basis:  # full reorthogonalisation
                w = w - torch.dot(w, b) * b
            if j == steps - 1:
                break
            beta = float(w.norm().item())
            betas.append(beta)
            q = w / beta
            basis.append(q)
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        theta, vecs = torch.linalg.eigh(t)
        fractions.append(float((vecs[0] ** 2 * (theta < 0)).sum()))
    return sum(fractions) / len(fractions)


def lanczos_call(impl: str, dev: str) -> Callable[[], float]:
    problem = make_problem(dev, torch.float32, 0, 0, LANCZOS_SAMPLES, dims=LANCZOS_DIMS)
    p = ref.flat_size(problem["params"])
    probes = spectral.rademacher(PROBES, p, torch.float32, dev)
    if impl == "hdbench":
        op = spectral.mlp_operator(problem["params"], problem["x"], problem["y"])

        def ours() -> float:
            run = spectral.lanczos(op, probes, STEPS)
            return float((run.weights * (run.theta < 0)).sum(dim=1).mean())

        return ours
    if impl == "pyhessian_loop":
        return lambda: pyhessian_slq(problem, probes, STEPS)
    raise ValueError(f"lanczos_call: expected impl in {LANCZOS_IMPLS}, got {impl!r}")


_LANCZOS: dict[tuple[str, str], Callable[[], float]] = {}


class TimeLanczosIndex:
    """Host wall clock of an SLQ index estimate (8 probes x 32 steps) of a 9.9k-parameter MLP."""

    params = (list(LANCZOS_IMPLS),)
    param_names = ("impl",)
    version = "lanczos-index-time-1"
    rounds = 1
    number = 1
    repeat = (3, 10, 2.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, impl: str) -> None:
        self.dev = common.device()
        key = (impl, self.dev)
        if key not in _LANCZOS:
            _LANCZOS.clear()
            _LANCZOS[key] = timing.warm(lanczos_call(impl, self.dev), self.dev)
        self.fn = _LANCZOS[key]

    def time_index(self, impl: str) -> None:
        self.fn()
        timing.sync(self.dev)


# every benchmark above records the sizes and seeds behind its numbers (suite.provenance)
provenance.record(globals())
