"""Speed and memory of the gradient-sign attack ops (``kernels/attack.py``) against baselines.

Implementations (``impl``): ``triton`` (the fused kernels, CUDA only), ``torch_compile`` (the same
public op with ``backend="torch"``: the reference through ``torch.compile(dynamic=True)``) and
``eager`` (``kernels.reference``, plain eager PyTorch: what a user writes by hand).

Op benchmarks run each image side for one image and for the device's batch (8 on the CPU, 16 on
a GPU): a single image shows launch overhead, a batch shows throughput.

Benchmarks:
- ``TimeAttackOps``: host wall clock per call on this machine's device (the CPU path on a CPU
  machine; on a GPU, synchronised, so launch overhead counts). Compiling and Triton's JIT happen in
  ``setup``, whose result is cached per process (asv-runner re-runs ``setup`` before every call).
- ``TrackAttackOpsGPU``: GPU only. One ``setup_cache`` run measures every combination with
  ``triton.testing.do_bench`` (median ms, L2 flushed) and ``torch.cuda.max_memory_allocated``;
  the ``track_`` methods read the numbers (ms, GB/s, % of measured copy bandwidth, bytes).
- ``TimeWholeAttack`` / ``TrackWholeAttackGPU``: 10 L-inf PGD steps on a linear classifier, the
  hdbench loop (autograd for the model gradient + ``pgd_step``) against ``torchattacks.PGD``.
- ``TimeMinimalL2`` / ``TrackMinimalL2``: the minimal-L2 searches (hdbench's batched DeepFool
  against torchattacks' and foolbox's) on one trained MLP: time per call, median norm, success;
  ``TrackMinimalL2Speedup``: the experiment's search against each peer, timed in turn in one
  process, as a ratio.

Minimal bytes each op must move, per image element of size s (fp32: s = 4); GB/s and % of copy
use these compulsory figures, so every implementation is scored against the same work:
- ``fgsm``: read x, grad; write out: 3 s (12 B fp32).
- ``pgd_linf``, ``pgd_linf_norms``: read x, x0, grad; write out: 4 s (16 B). Norms are (B, 4).
- ``pgd_l2``: 4 s (16 B) compulsory. The step needs ``||g||`` and the projection ``||d||`` before
  any element is written, so a streaming kernel reads the inputs twice (28 B fp32 in the Triton
  kernel): its ceiling is 16/28 = 57% of copy bandwidth.
- ``perturbation_norms``: read x, x0: 2 s (8 B).
- ``linear_fgsm``: read x, write out: 2 s, plus the (10, D) weight once. The step needs the
  logits of the whole sample first, so a streaming kernel reads x twice (3 s).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hdbench import kernels
from hdbench.kernels import reference
from hdbench.results.vocabulary import role
from hdbench.suite import common, provenance, timing

OPS = ("fgsm", "pgd_linf", "pgd_l2", "pgd_linf_norms", "perturbation_norms", "linear_fgsm")
IMPLS = ("triton", "torch_compile", "eager")
GPU_DTYPES = ("fp32", "bf16")

CLASSES = 10
EPS_LINF = 8 / 255
STEP_LINF = 2 / 255
# L2 radius per unit of sqrt(D) (area-normalised), so the projection binds at every size
EPS_L2_AREA = 0.02

# streams of size s per element that each op must move (see the module docstring)
MIN_STREAMS = {
    "fgsm": 3,
    "pgd_linf": 4,
    "pgd_l2": 4,
    "pgd_linf_norms": 4,
    "perturbation_norms": 2,
    "linear_fgsm": 2,
}


def min_bytes(op: str, batch: int, side: int, dtype: torch.dtype) -> int:
    """Compulsory bytes `op` moves on a (batch, 3, side, side) input of `dtype`."""
    d = common.CHANNELS * side * side
    size = torch.empty((), dtype=dtype).element_size()
    extra = CLASSES * d * size if op == "linear_fgsm" else 0  # the weight matrix, read once
    return MIN_STREAMS[op] * batch * d * size + extra


def make_inputs(dev: str, dtype: torch.dtype, batch: int, side: int) -> dict[str, torch.Tensor]:
    """Seeded inputs for every op: clean images x0 in [0, 1], an iterate x in the L-inf ball,
    a gradient, and a linear classifier (weight (10, D), bias, targets)."""
    gen = common.generator(dev)
    shape = (batch, common.CHANNELS, side, side)
    d = common.CHANNELS * side * side
    x0 = torch.rand(shape, generator=gen, device=dev)
    x = (x0 + torch.empty_like(x0).uniform_(-EPS_LINF, EPS_LINF, generator=gen)).clamp_(0, 1)
    grad = torch.randn(shape, generator=gen, device=dev)
    weight = torch.randn((CLASSES, d), generator=gen, device=dev).mul_(1 / math.sqrt(d))
    bias = torch.randn((CLASSES,), generator=gen, device=dev)
    target = torch.randint(0, CLASSES, (batch,), generator=gen, device=dev)
    cast = {"x": x, "x0": x0, "grad": grad, "weight": weight, "bias": bias}
    out = {k: v.to(dtype) for k, v in cast.items()}
    out["target"] = target
    return out


def op_call(op: str, impl: str, t: dict[str, torch.Tensor]) -> Callable[[], Any]:
    """A zero-argument call of `op` by `impl` on inputs `t` (from ``make_inputs``)."""
    if impl == "eager":
        mod, kw = reference, {}
    elif impl in ("triton", "torch_compile"):
        mod, kw = kernels, {"backend": "triton" if impl == "triton" else "torch"}
    else:
        raise ValueError(f"op_call: expected impl in {IMPLS}, got {impl!r}")
    x, x0, g = t["x"], t["x0"], t["grad"]
    eps_l2 = EPS_L2_AREA * math.sqrt(x[0].numel())
    calls: dict[str, Callable[[], Any]] = {
        "fgsm": lambda: mod.fgsm(x0, g, EPS_LINF, **kw),
        "pgd_linf": lambda: mod.pgd_step(x, x0, g, step=STEP_LINF, eps=EPS_LINF, **kw),
        "pgd_l2": lambda: mod.pgd_step(x, x0, g, step=eps_l2 / 4, eps=eps_l2, norm="l2", **kw),
        "pgd_linf_norms": lambda: mod.pgd_step(
            x, x0, g, step=STEP_LINF, eps=EPS_LINF, return_norms=True, **kw
        ),
        "perturbation_norms": lambda: mod.perturbation_norms(x, x0, **kw),
        "linear_fgsm": lambda: mod.linear_fgsm(
            x0, t["weight"], t["bias"], t["target"], EPS_LINF, **kw
        ),
    }
    if op not in calls:
        raise ValueError(f"op_call: expected op in {OPS}, got {op!r}")
    return calls[op]


# Warmed calls per process. asv-runner re-runs setup before every timed call; building inputs and
# compiling there each time would dominate the run.
_CALLS: dict[tuple[Any, ...], Callable[[], Any]] = {}


def _warm_op(op: str, impl: str, dev: str, batch: int, side: int) -> Callable[[], Any]:
    key = (op, impl, dev, batch, side)
    if key not in _CALLS:
        _CALLS.clear()  # one combination per process: free the previous inputs first
        inputs = make_inputs(dev, torch.float32, batch, side)
        _CALLS[key] = timing.warm(op_call(op, impl, inputs), dev)
    return _CALLS[key]


class TimeAttackOps:
    """Host wall clock of one op call, fp32, on this machine's device (synchronised on CUDA)."""

    params = (list(OPS), list(IMPLS), list(common.BATCHES), list(common.SIDES))
    param_names = ("op", "impl", "batch", "side")
    version = "attack-ops-time-2"
    # one process per combination; compiling dominates it, so one round, and a time-capped
    # handful of samples (setup is cached, so each sample is one call)
    rounds = 1
    number = 1
    repeat = (5, 20, 1.0)
    warmup_time = 0.0  # setup warms up: --quick skips asv's warm-up, and compile is no sample
    timeout = 180

    def setup(self, op: str, impl: str, batch: int, side: int) -> None:
        self.dev = common.device()
        common.require_impl(impl, self.dev)
        common.require_batch(batch, self.dev)
        common.require_side(side, self.dev)
        self.fn = _warm_op(op, impl, self.dev, batch, side)

    def time_op(self, op: str, impl: str, batch: int, side: int) -> None:
        self.fn()
        timing.sync(self.dev)


def measure_gpu_ops(
    *,
    dtypes: Sequence[str] = GPU_DTYPES,
    sizes: Sequence[tuple[int, int]] | None = None,
    impls: Sequence[str] = IMPLS,
) -> dict[tuple[str, str, str, int, int], dict[str, Any]]:
    """Measure every (op, impl, dtype, batch, side) this GPU runs (CUDA only: see GPUTracks), or
    the part of that grid named by `dtypes`, `sizes` ((batch, side) pairs) and `impls`.

    Each entry holds ms, gbps, pct_copy, peak_memory and bytes, or error and skip when the
    combination failed: out of memory or a failed compile skips it, anything else fails it.
    """
    import torch._dynamo.config as dynamo_config  # here: costly to import for the CPU classes

    common.seed_all()
    # one process compiles every op for both dtypes (pgd_step alone in 6 variants): dynamo's
    # default of 8 recompiles per function would quietly leave later variants eager
    dynamo_config.recompile_limit = max(64, dynamo_config.recompile_limit)
    timing.copy_bandwidth_gbps()  # measured first, on an unfragmented GPU; cached for the rest
    impls = [i for i in impls if i != "triton" or common.triton_available()]
    results: dict[tuple[str, str, str, int, int], dict[str, Any]] = {}
    if sizes is None:
        sizes = [(b, s) for b in common.batches_for("cuda") for s in common.sides_for("cuda")]
    for dtype_name in dtypes:
        dtype = common.DTYPES[dtype_name]
        for batch, side in sizes:
            try:
                inputs = make_inputs("cuda", dtype, batch, side)
            except Exception as exc:
                err = {"error": f"inputs: {type(exc).__name__}: {exc}"[:500], "skip": True}
                results.update({(o, i, dtype_name, batch, side): err for o in OPS for i in impls})
                torch.cuda.empty_cache()
                continue
            for op in OPS:
                nbytes = min_bytes(op, batch, side, dtype)
                for impl in impls:
                    results[(op, impl, dtype_name, batch, side)] = timing.measured(
                        lambda op=op, impl=impl, t=inputs: op_call(op, impl, t),
                        lambda fn, n=nbytes: timing.measure_gpu(fn, n),
                    )
            del inputs
            torch.cuda.empty_cache()
    return results


class TrackAttackOpsGPU(timing.GPUOpTracks):
    """GPU speed (do_bench median), effective bandwidth and memory of one op call."""

    params = (list(OPS), list(IMPLS), list(GPU_DTYPES), list(common.BATCHES), list(common.SIDES))
    param_names = ("op", "impl", "dtype", "batch", "side")
    version = "attack-ops-gpu-2"

    def measure(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        return measure_gpu_ops()

    def setup(self, results: dict, op: str, impl: str, dtype: str, batch: int, side: int) -> None:
        common.require_cuda()
        common.require_impl(impl, "cuda")
        common.require_batch(batch, "cuda")
        common.require_side(side, "cuda")
        super().setup(results, op, impl, dtype, batch, side)


# --- the whole attack --------------------------------------------------------------------------

ATTACK_IMPLS = ("hdbench_triton", "hdbench_torch_compile", "hdbench_eager", "torchattacks")
ATTACK_SIDES = (64, 256, 1024)  # 64 runs on the CPU only, 1024 on the GPU only, 256 on both
ATTACK_STEPS = 10


def pgd_attack(
    model: torch.nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    step_fn: Callable[..., torch.Tensor],
    *,
    eps: float = EPS_LINF,
    alpha: float = STEP_LINF,
    steps: int = ATTACK_STEPS,
) -> torch.Tensor:
    """L-inf PGD without random start, as torchattacks.PGD computes it: `steps` steps of
    ``step_fn(x, x0, grad, step=alpha, eps=eps)`` on the mean cross-entropy's input gradient."""
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        x = step_fn(x.detach(), x0, grad, step=alpha, eps=eps)
    return x


def attack_call(impl: str, dev: str, batch: int, side: int) -> Callable[[], torch.Tensor]:
    """A zero-argument whole attack by `impl` on a seeded linear classifier and images."""
    common.seed_all()
    d = common.CHANNELS * side * side
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, CLASSES)).to(dev).eval()
    gen = common.generator(dev)
    x0 = torch.rand((batch, common.CHANNELS, side, side), generator=gen, device=dev)
    y = torch.randint(0, CLASSES, (batch,), generator=gen, device=dev)
    if impl == "torchattacks":
        ta = common.require_module("torchattacks")
        atk = ta.PGD(model, eps=EPS_LINF, alpha=STEP_LINF, steps=ATTACK_STEPS, random_start=False)
        return lambda: atk(x0, y)
    steps: dict[str, Callable[..., torch.Tensor]] = {
        "hdbench_triton": lambda *a, **k: kernels.pgd_step(*a, backend="triton", **k),
        "hdbench_torch_compile": lambda *a, **k: kernels.pgd_step(*a, backend="torch", **k),
        "hdbench_eager": reference.pgd_step,
    }
    if impl not in steps:
        raise ValueError(f"attack_call: expected impl in {ATTACK_IMPLS}, got {impl!r}")
    step_fn = steps[impl]
    return lambda: pgd_attack(model, x0, y, step_fn)


_ATTACKS: dict[tuple[Any, ...], Callable[[], Any]] = {}
_ATTACK_MS: dict[tuple[Any, ...], float] = {}


def _warm_attack(impl: str, dev: str, batch: int, side: int) -> Callable[[], Any]:
    key = (impl, dev, batch, side)
    if key not in _ATTACKS:
        _ATTACKS.clear()
        _ATTACKS[key] = timing.warm(attack_call(impl, dev, batch, side), dev)
    return _ATTACKS[key]


class TimeWholeAttack:
    """Host wall clock of a 10-step L-inf PGD attack (fp32) on this machine's device."""

    params = (list(ATTACK_IMPLS), list(ATTACK_SIDES))
    param_names = ("impl", "side")
    version = "whole-attack-time-1"
    rounds = 1
    number = 1
    repeat = (3, 10, 2.0)
    warmup_time = 0.0
    timeout = 240

    def setup(self, impl: str, side: int) -> None:
        self.dev = common.device()
        common.require_impl(impl, self.dev)
        common.require_side(side, self.dev)
        self.fn = _warm_attack(impl, self.dev, common.BATCH[self.dev], side)

    def time_attack(self, impl: str, side: int) -> None:
        self.fn()
        timing.sync(self.dev)


class TrackWholeAttackGPU:
    """GPU time (do_bench median, ms) of a 10-step L-inf PGD attack, fp32."""

    params = (list(ATTACK_IMPLS), list(ATTACK_SIDES))
    param_names = ("impl", "side")
    version = "whole-attack-gpu-1"
    rounds = 1
    timeout = 240

    def setup(self, impl: str, side: int) -> None:
        common.require_cuda()
        common.require_impl(impl, "cuda")
        common.require_side(side, "cuda")
        key = (impl, side)
        if key not in _ATTACK_MS:
            fn = _warm_attack(impl, "cuda", common.BATCH["cuda"], side)
            _ATTACK_MS[key] = timing.bench_ms(fn)

    def track_ms(self, impl: str, side: int) -> float:
        return _ATTACK_MS[(impl, side)]

    track_ms.unit = "ms"


# --- minimal-norm searches ----------------------------------------------------------------------

MINIMAL_IMPLS = (
    "hdbench_deepfool",
    "hdbench_deepfool_refined",
    "hdbench_deepfool_refined_eager",
    "hdbench_deepfool_blackbox",
    "torchattacks_deepfool",
    "foolbox_deepfool",
    "foolbox_fmn",
)
MINIMAL_SIDES = (64, 128)  # the CPU default experiment's two largest sides
MINIMAL_POINTS = {"cpu": 128, "cuda": 1024}  # the experiment's test points per side
DEEPFOOL_STEPS = 50
OVERSHOOT = 0.02


def minimal_problem(dev: str, side: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded MLP trained on the ``upsampled`` scenes at `side` (as the scaling experiment
    trains it) and its correctly classified test points: what every search is run on."""
    from hdbench.suite.experiments import models as M
    from hdbench.suite.experiments.data import Scenes

    scenes = Scenes("upsampled", (8, side), seed=common.SEED)
    trained = M.train(
        "mlp", scenes, side, "fewer", training=M.Training(steps=100), seed=common.SEED, device=dev
    )
    n = MINIMAL_POINTS[dev] // (8 if common.smoke() else 1)
    x, y = M.test_set(scenes, 2 * n, dev)[side]
    keep = M.accuracy(trained.model, x, y)
    return trained.model, x[keep][:n].contiguous(), y[keep][:n].contiguous()


Problem = tuple[torch.nn.Module, torch.Tensor, torch.Tensor]


def minimal_search(impl: str, problem: Problem) -> Callable[[], torch.Tensor]:
    """A zero-argument minimal-L2 search by `impl` on `problem` (model, x, y) returning the
    adversarial points, all in the box [0, 1], with DeepFool's 50 steps and 0.02 overshoot where
    the method has them.

    ``hdbench_deepfool`` is DeepFool and the line search back to the boundary along its direction
    (``refine=0``), run through the model's affine stem; ``hdbench_deepfool_refined`` adds the
    tangent-plane correction the scaling experiment uses (``refine=1``);
    ``hdbench_deepfool_blackbox`` is the first without the stem (``use_stem=False``: every point
    of the line search a forward pass of the whole model, as the peers treat it);
    ``hdbench_deepfool_refined_eager`` is the second with nothing compiled
    (``hdbench.kernels.eager``), against which its compiled steps and searches are measured."""
    from hdbench.kernels import eager
    from hdbench.suite.experiments import attacks

    model, x, y = problem
    if impl.startswith("hdbench_deepfool"):
        refine = int("refined" in impl)
        use_stem = not impl.endswith("blackbox")
        mode = eager if impl.endswith("eager") else contextlib.nullcontext

        def search() -> torch.Tensor:
            with mode():
                return attacks.deepfool(
                    model,
                    x,
                    y,
                    max_iter=DEEPFOOL_STEPS,
                    overshoot=OVERSHOOT,
                    refine=refine,
                    clamp=(0.0, 1.0),
                    use_stem=use_stem,
                ).x_adv

        return search
    if impl == "torchattacks_deepfool":
        ta = common.require_module("torchattacks")
        atk = ta.DeepFool(model, steps=DEEPFOOL_STEPS, overshoot=OVERSHOOT)
        return lambda: atk(x, y)
    if impl in ("foolbox_deepfool", "foolbox_fmn"):
        fb = common.require_module("foolbox")
        fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        if impl == "foolbox_deepfool":
            atk = fb.attacks.L2DeepFoolAttack(steps=DEEPFOOL_STEPS, overshoot=OVERSHOOT)
        else:
            atk = fb.attacks.L2FMNAttack()
        return lambda: atk(fmodel, x, y, epsilons=None)[1]
    raise ValueError(f"minimal_search: expected impl in {MINIMAL_IMPLS}, got {impl!r}")


@torch.no_grad()
def minimal_outcome(problem: Problem, adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(success (B,): the label flipped at `adv`, pixel L2 norms (B,) of adv - x) of a search's
    points on `problem` (model, x, y)."""
    model, x, y = problem
    return model(adv).argmax(dim=1) != y, (adv - x).flatten(1).norm(dim=1)


def minimal_cache() -> dict[str, Any]:
    """The problems at every side and each search's outcome on them, once per ``asv run``
    (the shared ``setup_cache`` of the two classes below): {"problems": {side: (model, x, y)},
    "outcomes": {(impl, side): (success (B,), pixel L2 norms (B,)) or the reason it could not
    run}}."""
    dev = common.device()
    problems = {side: minimal_problem(dev, side) for side in MINIMAL_SIDES}
    outcomes: dict[tuple[str, int], Any] = {}
    for side, problem in problems.items():
        for impl in MINIMAL_IMPLS:
            try:
                adv = minimal_search(impl, problem)()
            except NotImplementedError as exc:  # a peer library that is not installed
                outcomes[(impl, side)] = str(exc)
                continue
            outcomes[(impl, side)] = minimal_outcome(problem, adv)
    return {"problems": problems, "outcomes": outcomes}


minimal_cache.timeout = 600


class TimeMinimalL2:
    """Host wall clock of one minimal-L2 search over the same model and images: hdbench's batched
    DeepFool with its line search (and correction; and without the affine stem) against
    torchattacks' DeepFool (one image at a time) and foolbox's DeepFool and FMN.
    ``TrackMinimalL2`` holds the norms each reached."""

    params = (list(MINIMAL_IMPLS), list(MINIMAL_SIDES))
    param_names = ("impl", "side")
    version = "minimal-l2-time-2"
    rounds = 1
    number = 1
    repeat = (3, 10, 20.0)  # up to 10 one-call samples for the fast searches, 20 s at most
    warmup_time = 0.0
    timeout = 300
    setup_cache = staticmethod(minimal_cache)

    def setup(self, cache: dict, impl: str, side: int) -> None:
        self.dev = common.device()
        self.fn = timing.warm(minimal_search(impl, cache["problems"][side]), self.dev)

    def time_search(self, cache: dict, impl: str, side: int) -> None:
        self.fn()
        timing.sync(self.dev)


# the search the scaling experiment runs, and the peers it is timed against in turn
SPEEDUP_SEARCH = "hdbench_deepfool_refined"
SPEEDUP_PEERS = tuple(i for i in MINIMAL_IMPLS if role(i) == "peer")  # results.vocabulary


def speedup_cache() -> dict[tuple[str, int], Any]:
    """{(peer, side): the speed-up of ``SPEEDUP_SEARCH`` over `peer`, or the reason it could not
    run}: each pair timed in turn (``timing.interleaved_ms``) on ``minimal_problem``, all in one
    process, so that the search compiles once."""
    dev = common.device()
    rounds = 3 if common.smoke() else 15
    out: dict[tuple[str, int], Any] = {}
    for side in MINIMAL_SIDES:
        problem = minimal_problem(dev, side)
        ours = timing.warm(minimal_search(SPEEDUP_SEARCH, problem), dev)
        for peer in SPEEDUP_PEERS:
            try:
                theirs = timing.warm(minimal_search(peer, problem), dev)
            except NotImplementedError as exc:  # a peer library that is not installed
                out[(peer, side)] = str(exc)
                continue
            ms = timing.interleaved_ms(
                {SPEEDUP_SEARCH: ours, peer: theirs}, dev, rounds=rounds, budget_s=20.0
            )
            out[(peer, side)] = ms[peer] / ms[SPEEDUP_SEARCH]
    return out


speedup_cache.timeout = 900


class TrackMinimalL2Speedup:
    """How many times faster ``SPEEDUP_SEARCH`` (DeepFool, its line search and the correction:
    what the scaling experiment runs) is than each peer of ``TimeMinimalL2`` on the same model
    and images, the two timed in turn in one process (``speedup_cache``): the ratio of two
    ``TimeMinimalL2`` numbers, timed minutes apart in separate processes, carries a shared
    machine's drift. Above 1: hdbench is faster."""

    params = (list(SPEEDUP_PEERS), list(MINIMAL_SIDES))
    param_names = ("peer", "side")
    version = "minimal-l2-speedup-1"
    timeout = 900
    setup_cache = staticmethod(speedup_cache)

    def setup(self, cache: dict, peer: str, side: int) -> None:
        if isinstance(cache[(peer, side)], str):
            common.skip(cache[(peer, side)])

    def track_speedup(self, cache: dict, peer: str, side: int) -> float:
        return cache[(peer, side)]

    track_speedup.unit = "x"


class TrackMinimalL2:
    """Median minimal pixel L2 and success rate of each search of ``TimeMinimalL2``."""

    params = (list(MINIMAL_IMPLS), list(MINIMAL_SIDES))
    param_names = ("impl", "side")
    version = "minimal-l2-norm-2"
    timeout = 300
    setup_cache = staticmethod(minimal_cache)

    def setup(self, cache: dict, impl: str, side: int) -> None:
        outcome = cache["outcomes"][(impl, side)]
        if isinstance(outcome, str):
            common.skip(outcome)
        self.ok, self.norms = outcome

    def track_median_l2(self, cache: dict, impl: str, side: int) -> float:
        if not bool(self.ok.any()):
            raise RuntimeError(f"{impl} found no adversarial point")
        return float(self.norms[self.ok].median())

    track_median_l2.unit = "pixel L2"

    def track_success_rate(self, cache: dict, impl: str, side: int) -> float:
        return float(self.ok.double().mean())

    track_success_rate.unit = "fraction"


# every benchmark above records the sizes and seeds behind its numbers (suite.provenance)
provenance.record(globals())
