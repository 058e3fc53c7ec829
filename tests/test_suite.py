"""The asv suite's plumbing: machine registration, sizes and skips, and that every benchmark's
setup and one call run on the CPU at the smallest size (GPU benchmarks skip there).

Benchmarks run here with ``HDBENCH_TORCH_COMPILE=0``: compiling every op would take most of a
minute, and compiling is the kernels' concern, not the suite's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hdbench.kernels.reference import hvp as ref_hvp
from hdbench.kernels.reference import pyramid as ref_pyramid
from hdbench.suite import bench_attack as ba
from hdbench.suite import bench_hvp as bh
from hdbench.suite import bench_pyramid as bp
from hdbench.suite import common, machine, timing

ROOT = Path(__file__).resolve().parents[1]
CPU_IMPLS = [i for i in ba.IMPLS if i != "triton"]


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch) -> str:
    """Run as a machine without CUDA (whatever this one has), the compiled backend off."""
    monkeypatch.setattr(common, "cuda_available", lambda: False)
    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "0")
    monkeypatch.delenv(common.CPU_MAX_SIDE_ENV, raising=False)
    return "cpu"


# --- machine -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
        ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
        ("  AMD Instinct MI300X (gfx942) ", "amd-instinct-mi300x-gfx942"),
        ("cpu-My_Host.local", "cpu-my_host.local"),
    ],
)
def test_slug(text: str, expected: str) -> None:
    assert common.slug(text) == expected


def test_machine_name_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "gpu_name", lambda: "NVIDIA H100 80GB HBM3")
    assert common.machine_name() == "nvidia-h100-80gb-hbm3"


def test_machine_name_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "gpu_name", lambda: None)
    monkeypatch.setattr(common.socket, "gethostname", lambda: "Build Box.example.org")
    assert common.machine_name() == "cpu-build-box"


def test_register_is_idempotent_and_asv_reads_it(tmp_path: Path) -> None:
    from asv.machine import Machine, MachineCollection

    path = str(tmp_path / "asv-machine.json")
    name = machine.register(path)
    first = Path(path).read_text()
    assert machine.register(path) == name
    assert Path(path).read_text() == first
    stored = json.loads(first)
    assert set(stored) == {name, "version"}
    info = MachineCollection.load(name, _path=path)
    for field in ("machine", "os", "arch", "cpu", "num_cpu", "ram", "gpu", "gpu_memory", "cuda"):
        assert isinstance(info[field], str) and info[field], field
    assert info["torch"] == torch.__version__
    # what `asv run --machine NAME` does: load without asking anything
    loaded = Machine.load(machine_name=name, _path=path, interactive=False)
    assert loaded.machine == name and loaded.gpu == info["gpu"]


def test_machine_cli_prints_only_the_name(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    out = subprocess.run(
        [sys.executable, "-m", "hdbench.suite.machine", "--path", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    name = out.stdout.strip()
    assert "\n" not in name and name in json.loads(path.read_text())


# --- sizes and skips ---------------------------------------------------------------------------


def test_sides(cpu: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(common.SIDES_CPU) | set(common.SIDES_GPU) == set(common.SIDES)
    assert common.sides_for("cpu") == common.SIDES_CPU
    assert common.sides_for("cuda") == common.SIDES_GPU
    monkeypatch.setenv(common.CPU_MAX_SIDE_ENV, "128")
    assert common.sides_for("cpu") == (64, 128)


def test_skips(cpu: str) -> None:
    assert common.device() == "cpu"
    common.require_side(64, "cpu")
    common.require_side(2048, "cuda")
    for call in (
        lambda: common.require_side(2048, "cpu"),
        lambda: common.require_side(64, "cuda"),
        lambda: common.require_impl("triton", "cpu"),
        lambda: common.require_impl("hdbench_triton", "cpu"),
        lambda: common.require_cuda(),
        lambda: common.require_module("hdbench_no_such_module"),
        lambda: timing.copy_bandwidth_gbps(),
    ):
        with pytest.raises(NotImplementedError):
            call()
    common.require_impl("eager", "cpu")
    assert common.require_module("math").sqrt(4.0) == 2.0


def test_gbps() -> None:
    assert timing.gbps(2e9, 1000.0) == pytest.approx(2.0)
    assert timing.gbps(1e6, 1.0) == pytest.approx(1.0)


def test_min_bytes() -> None:
    n = 2 * 3 * 8 * 8
    assert ba.min_bytes("pgd_linf_norms", 2, 8, torch.float32) == 16 * n
    assert ba.min_bytes("pgd_l2", 2, 8, torch.bfloat16) == 8 * n
    assert ba.min_bytes("fgsm", 2, 8, torch.float32) == 12 * n
    assert ba.min_bytes("perturbation_norms", 2, 8, torch.float32) == 8 * n
    assert ba.min_bytes("linear_fgsm", 2, 8, torch.float32) == 8 * n + 4 * ba.CLASSES * 3 * 64


# --- the benchmarks ----------------------------------------------------------------------------


def test_discovery_names_and_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """asv finds exactly these benchmarks (no helper in common/machine looks like one)."""
    from asv_runner.discovery import disc_benchmarks

    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # discovery adds an importer
    found = {b.name: b for b in disc_benchmarks(str(ROOT / "suite"))}
    units = {
        "bench_attack.TimeAttackOps.time_op": "seconds",
        "bench_attack.TimeWholeAttack.time_attack": "seconds",
        "bench_attack.TrackAttackOpsGPU.track_ms": "ms",
        "bench_attack.TrackAttackOpsGPU.track_gbps": "GB/s",
        "bench_attack.TrackAttackOpsGPU.track_pct_copy": "%",
        "bench_attack.TrackAttackOpsGPU.track_peak_memory": "bytes",
        "bench_attack.TrackWholeAttackGPU.track_ms": "ms",
        "bench_attack.TimeMinimalL2.time_search": "seconds",
        "bench_attack.TrackMinimalL2.track_median_l2": "pixel L2",
        "bench_attack.TrackMinimalL2.track_success_rate": "fraction",
        "bench_attack.TrackMinimalL2Speedup.track_speedup": "x",
        "bench_pyramid.TimePyramidOps.time_op": "seconds",
        "bench_pyramid.TrackPyramidOpsGPU.track_ms": "ms",
        "bench_pyramid.TrackPyramidOpsGPU.track_gbps": "GB/s",
        "bench_pyramid.TrackPyramidOpsGPU.track_pct_copy": "%",
        "bench_pyramid.TrackPyramidOpsGPU.track_peak_memory": "bytes",
        "bench_hvp.TimeHVP.time_hvp": "seconds",
        "bench_hvp.TimeLanczosIndex.time_index": "seconds",
        "bench_hvp.TrackHVPGPU.track_ms": "ms",
        "bench_hvp.TrackHVPGPU.track_tflops": "TFLOP/s",
        "bench_hvp.TrackHVPGPU.track_pct_peak": "%",
        "bench_hvp.TrackHVPGPU.track_peak_memory": "bytes",
    }
    kernel_benches = ("bench_attack.", "bench_pyramid.", "bench_hvp.")
    assert {k for k in found if k.startswith(kernel_benches)} == set(units)
    assert not [k for k in found if k.startswith(("common.", "machine."))]
    for name, unit in units.items():
        assert found[name].unit == unit, name
    for cls in (ba.TimeAttackOps, ba.TrackAttackOpsGPU, ba.TimeWholeAttack, ba.TrackWholeAttackGPU):
        assert isinstance(cls.version, str) and cls.timeout > 0


def test_params_are_machine_independent() -> None:
    """Constants, never a function of this machine (a skipped-at-discovery benchmark vanishes)."""
    assert [list(p) for p in ba.TimeAttackOps.params] == [
        list(ba.OPS),
        list(ba.IMPLS),
        list(common.BATCHES),
        list(common.SIDES),
    ]
    assert list(ba.TrackAttackOpsGPU.params[2]) == ["fp32", "bf16"]
    assert list(ba.TrackAttackOpsGPU.params[3]) == list(common.BATCHES)
    assert list(ba.TrackAttackOpsGPU.params[4]) == list(common.SIDES)


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("op", ba.OPS)
def test_time_attack_ops_runs(cpu: str, op: str, impl: str) -> None:
    side = common.sides_for(cpu)[0]
    batch = common.batches_for(cpu)[-1]
    bench = ba.TimeAttackOps()
    bench.setup(op, impl, batch, side)
    bench.time_op(op, impl, batch, side)


def test_time_attack_ops_skips_on_cpu(cpu: str) -> None:
    bench = ba.TimeAttackOps()
    with pytest.raises(NotImplementedError):
        bench.setup("fgsm", "triton", 8, 64)
    with pytest.raises(NotImplementedError):
        bench.setup("fgsm", "eager", 8, 2048)
    with pytest.raises(NotImplementedError, match="batch 16 is not run on cpu"):
        bench.setup("fgsm", "eager", 16, 64)


def test_ops_agree(cpu: str) -> None:
    """torch_compile and eager compute the same thing on the benchmark's inputs."""
    t = ba.make_inputs("cpu", torch.float32, 2, 16)
    for op in ba.OPS:
        a = ba.op_call(op, "torch_compile", t)()
        b = ba.op_call(op, "eager", t)()
        torch.testing.assert_close(a, b, msg=op)


@pytest.mark.parametrize("impl", [i for i in ba.ATTACK_IMPLS if "triton" not in i])
def test_time_whole_attack_runs(cpu: str, impl: str) -> None:
    side = min(s for s in ba.ATTACK_SIDES if s in common.sides_for(cpu))
    bench = ba.TimeWholeAttack()
    try:
        bench.setup(impl, side)
    except NotImplementedError as exc:  # torchattacks not installed
        pytest.skip(str(exc))
    bench.time_attack(impl, side)


def test_whole_attack_matches_torchattacks(cpu: str) -> None:
    pytest.importorskip("torchattacks")
    ours = ba.attack_call("hdbench_eager", "cpu", 4, 16)()
    theirs = ba.attack_call("torchattacks", "cpu", 4, 16)()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert (ours - ba.attack_call("hdbench_eager", "cpu", 4, 16).__call__()).abs().max() == 0


def test_gpu_benchmarks_skip_on_cpu(cpu: str) -> None:
    results = ba.TrackAttackOpsGPU().setup_cache()
    assert results == {}
    for impl in ba.IMPLS:
        with pytest.raises(NotImplementedError):
            ba.TrackAttackOpsGPU().setup(results, "pgd_linf", impl, "fp32", 16, 1024)
    for impl in ba.ATTACK_IMPLS:
        with pytest.raises(NotImplementedError):
            ba.TrackWholeAttackGPU().setup(impl, 1024)
    with pytest.raises(NotImplementedError):
        ba.TimeWholeAttack().setup("hdbench_triton", 64)


def test_gpu_setup_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A measured error fails the benchmark; an out-of-memory entry skips it."""
    monkeypatch.setattr(common, "cuda_available", lambda: True)  # reach the lookup on any host
    key = ("fgsm", "eager", "fp32", 16, 256)
    with pytest.raises(NotImplementedError, match="not measured"):
        ba.TrackAttackOpsGPU().setup({}, *key)
    with pytest.raises(NotImplementedError):
        ba.TrackAttackOpsGPU().setup({key: {"error": "OOM", "skip": True}}, *key)
    with pytest.raises(RuntimeError):
        ba.TrackAttackOpsGPU().setup({key: {"error": "boom", "skip": False}}, *key)


def test_suite_imports_without_triton() -> None:
    """Discovery and skips work where no triton wheel exists (None in sys.modules hides it)."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "from hdbench.suite import bench_attack as ba, common\n"
        "assert not common.triton_available()\n"
        "common.cuda_available = lambda: False\n"
        "try:\n"
        "    ba.TimeAttackOps().setup('fgsm', 'triton', 8, 64)\n"
        "except NotImplementedError:\n"
        "    print('skipped')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "skipped"


# --- pyramid benchmarks ------------------------------------------------------------------------


@pytest.mark.parametrize("op", bp.OPS)
@pytest.mark.parametrize("impl", [i for i in bp.IMPLS if "triton" not in i])
def test_time_pyramid_ops_run_or_skip_with_a_reason(cpu: str, op: str, impl: str) -> None:
    bench = bp.TimePyramidOps()
    side = common.sides_for(cpu)[0]
    unsupported = (impl == "kornia" and op not in bp.KORNIA_OPS) or (
        impl == "avg_pool" and op not in bp.AVG_POOL_OPS
    )
    if unsupported:
        with pytest.raises(NotImplementedError, match=f"no {op}"):
            bench.setup(op, impl, side)
        return
    bench.setup(op, impl, side)
    bench.time_op(op, impl, side)


def test_pyramid_benchmarks_skip_triton_and_gpu_on_cpu(cpu: str) -> None:
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        bp.TimePyramidOps().setup("gaussian", "triton", 64)
    with pytest.raises(NotImplementedError, match="side 2048"):
        bp.TimePyramidOps().setup("gaussian", "eager", 2048)
    results = bp.TrackPyramidOpsGPU().setup_cache()
    assert results == {}
    with pytest.raises(NotImplementedError):
        bp.TrackPyramidOpsGPU().setup(results, "gaussian", "triton", "fp32", 1024)


def test_pyramid_impls_agree_on_the_benchmark_inputs(cpu: str) -> None:
    """Every implementation computes its convention's pyramid on the benchmark's inputs."""
    t = bp.make_inputs("cpu", torch.float32, 2, 32, "opencv")
    for op in bp.OPS:
        torch.testing.assert_close(
            bp.op_call(op, "torch_compile", t)(), bp.op_call(op, "eager", t)(), msg=op
        )
    t = bp.make_inputs("cpu", torch.float32, 2, 32, "kornia")
    x, small = t["x"], t["small"]
    want = {
        "pyr_down": ref_pyramid.pyr_down(x, "kornia"),
        "pyr_up": ref_pyramid.pyr_up(small, (32, 32), "kornia"),
        "gaussian": ref_pyramid.gaussian_pyramid(x, bp.LEVELS, "kornia"),
        "laplacian": ref_pyramid.laplacian_pyramid(x, bp.LEVELS, "kornia"),
    }
    for op in bp.KORNIA_OPS:
        torch.testing.assert_close(bp.op_call(op, "kornia", t)(), want[op], msg=op)
    pooled = bp.op_call("gaussian", "avg_pool", t)()
    assert [p.shape[-1] for p in pooled] == [32, 16, 8, 4, 2]


def test_pyramid_min_bytes() -> None:
    # batch 1, side 32, fp32, 3 channels: levels of 32^2, 16^2, 8^2, 4^2, 2^2 elements
    area = 3 * (1024 + 256 + 64 + 16 + 4) * 4
    assert bp.min_bytes("gaussian", 1, 32, torch.float32, "opencv") == area
    assert bp.min_bytes("laplacian", 1, 32, torch.float32, "opencv") == area + 3 * 1024 * 4
    assert bp.min_bytes("pyr_down", 1, 32, torch.float32, "opencv") == 3 * (1024 + 256) * 4
    assert bp.min_bytes("pyr_up", 2, 32, torch.bfloat16, "opencv") == 2 * 3 * (1024 + 256) * 2
    assert bp.min_bytes("level_energy", 1, 33, torch.float32, "kornia") == 3 * 33 * 33 * 4


# --- HVP benchmarks ----------------------------------------------------------------------------


def test_hvp_impls_agree(cpu: str) -> None:
    """Every HVP implementation computes the same H V on the benchmark's problem."""
    problem = bh.make_problem("cpu", torch.float32, 2, 16, 32)
    v = torch.randn(3, ref_hvp.flat_size(problem["params"]))
    want = ref_hvp.mlp_hvp(problem["params"], problem["x"], problem["y"], v)
    for impl in ("torch_compile", "torch_func", "double_backward"):
        got = bh.hvp_call(impl, problem, v)()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=impl)


@pytest.mark.parametrize("impl", [i for i in bh.IMPLS if "triton" not in i])
def test_time_hvp_runs_or_skips_with_a_reason(cpu: str, impl: str) -> None:
    bench = bh.TimeHVP()
    try:
        bench.setup(impl, 2, 64, 256, 1)
    except NotImplementedError as exc:
        # torch.compile cannot trace autograd.grad with create_graph: a recorded skip
        assert impl == "double_backward_compile" and "double backward" in str(exc)
        return
    bench.time_hvp(impl, 2, 64, 256, 1)


def test_hvp_benchmarks_skip_what_this_machine_does_not_run(cpu: str) -> None:
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        bh.TimeHVP().setup("triton", 2, 64, 256, 1)
    with pytest.raises(NotImplementedError, match="width 1024 is not run on cpu"):
        bh.TimeHVP().setup("eager", 2, 1024, 256, 1)
    with pytest.raises(NotImplementedError, match="batch 2048"):
        bh.TimeHVP().setup("eager", 2, 64, 2048, 1)
    results = bh.TrackHVPGPU().setup_cache()
    assert results == {}
    with pytest.raises(NotImplementedError):
        bh.TrackHVPGPU().setup(results, "triton", "fp32", 2, 256, 2048, 8)


def test_lanczos_index_impls_agree(cpu: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """hdbench's batched SLQ and the PyHessian-style loop give the same estimate."""
    monkeypatch.setattr(bh, "STEPS", 6)
    monkeypatch.setattr(bh, "PROBES", 2)
    monkeypatch.setattr(bh, "LANCZOS_DIMS", (6, 8, 3))
    ours = bh.lanczos_call("hdbench", "cpu")()
    theirs = bh.lanczos_call("pyhessian_loop", "cpu")()
    assert 0 < ours < 1
    assert ours == pytest.approx(theirs, abs=1e-4)
    bench = bh.TimeLanczosIndex()
    bench.setup("hdbench")
    bench.time_index("hdbench")


def test_hvp_flops() -> None:
    problem = bh.make_problem("cpu", torch.float32, 0, 0, 5, dims=(4, 6, 3))
    assert bh.flops(problem, 2) == 12 * 5 * (4 * 6 + 6 * 3) * 2


def test_measured_keeps_numbers_and_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU combination's entry: the measurement, a skip (no peer, OOM) or a failure."""
    monkeypatch.setattr(timing, "sync", lambda dev: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    calls = []
    entry = timing.measured(
        lambda: lambda: calls.append(1), lambda fn: {"ms": 1.5, "n": len(calls)}
    )
    assert entry == {"ms": 1.5, "n": 2}  # warmed twice before measuring

    def missing():
        common.skip("kornia has no reconstruct")

    assert timing.measured(missing, dict) == {
        "error": "NotImplementedError: kornia has no reconstruct",
        "skip": True,
    }

    def broken():
        raise RuntimeError("illegal memory access")

    assert timing.measured(lambda: broken, dict)["skip"] is False


def test_gpu_snapshot_keeps_each_group_and_stops_at_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows carry their params by name; a failing group keeps its error and the next one still
    runs; once the budget is spent no group starts; the file is written after every group."""
    from hdbench.suite import gpu_snapshot as gs

    monkeypatch.setattr(gs, "header", lambda budget: {"device": "fake", "groups": {}})
    out = tmp_path / "snap.json"
    seen = []

    def measure_a():
        return {("fgsm", "triton"): {"ms": 0.5}, ("fgsm", "eager"): {"error": "x", "skip": True}}

    def broken():
        seen.append(json.loads(out.read_text())["groups"])  # a's rows already on disk
        raise RuntimeError("illegal memory access")

    def slow():
        clock[0] += 100.0
        return {("k",): {"ms": 2.0}}

    clock = [0.0]
    monkeypatch.setattr(gs.time, "perf_counter", lambda: clock[0])
    groups = [
        ("a", "ops", ("op", "impl"), measure_a),
        ("b", "broken", ("x",), broken),
        ("c", "slow", ("k",), slow),
        ("d", "never", ("k",), slow),
    ]
    data = gs.snapshot(str(out), budget=50.0, log=lambda m: None, groups=groups)
    assert json.loads(out.read_text()) == json.loads(json.dumps(data))
    assert out.stat().st_mode & 0o777 == 0o644  # readable by all, as the report's files
    g = data["groups"]
    assert g["a"]["rows"] == [
        {"op": "fgsm", "impl": "triton", "ms": 0.5},
        {"op": "fgsm", "impl": "eager", "error": "x", "skip": True},
    ]
    assert list(seen[0]) == ["a"]
    assert g["b"]["error"] == "RuntimeError: illegal memory access" and g["b"]["skip"] is False
    assert g["c"]["rows"] == [{"k": "k", "ms": 2.0}]
    assert g["d"] == {"what": "never", "skipped": "budget spent (100 s)"}


def test_gpu_snapshot_groups_name_every_param() -> None:
    """Each group's param names match its measurement's keys (checked on the real functions'
    grids without a GPU: the key tuples' lengths are the benchmarks' param counts)."""
    from hdbench.suite import gpu_snapshot as gs

    names = {name: params for name, _, params, _ in gs.GROUPS}
    assert names["attack_ops"] == tuple(ba.TrackAttackOpsGPU.param_names)
    assert names["pyramid_ops"] == tuple(bp.TrackPyramidOpsGPU.param_names)
    assert names["hvp"] == tuple(bh.TrackHVPGPU.param_names)
    assert names["whole_attack"] == tuple(ba.TrackWholeAttackGPU.param_names)
    assert names["minimal_l2"] == tuple(ba.TimeMinimalL2.param_names)


# --- saddle statistics -------------------------------------------------------------------------


def test_saddle_benchmarks_track_the_run(cpu: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from hdbench.suite import bench_saddles as bs

    monkeypatch.setattr(bs, "TRIALS", 4000)
    monkeypatch.setattr(bs, "TORUS_DS", (1, 2))
    stats = bs.TrackRandomMatrix().setup_cache()
    assert {d for _, d in stats} == set(range(1, bs.CPU_MAX_D + 1))
    bench = bs.TrackRandomMatrix()
    bench.setup(stats, "goe", 2)
    p = bench.track_p_minimum(stats, "goe", 2)
    assert (
        bench.track_p_minimum_low(stats, "goe", 2)
        <= p
        <= bench.track_p_minimum_high(stats, "goe", 2)
    )
    exact = bs.TrackRandomMatrixExact()
    exact.setup("goe", 2)
    assert exact.track_p_minimum_exact("goe", 2) == pytest.approx((2 - 2**0.5) / 4)
    assert p != exact.track_p_minimum_exact("goe", 2)  # measured, not the reference
    with pytest.raises(NotImplementedError, match="no exact"):
        exact.setup("goe", 7)
    with pytest.raises(NotImplementedError, match="GPU only"):
        bench.setup(stats, "goe", 20)
    assert 0.5 < bs.TrackDecayRate().track_decay_rate(stats, "signs") < 0.9
    dist = bs.TrackIndexDistribution()
    probs = []
    for k in range(5):
        dist.setup(stats, "signs", 4, k)
        probs.append(dist.track_probability(stats, "signs", 4, k))
    assert sum(probs) == pytest.approx(1.0)
    for k, pk in enumerate(probs):  # Binomial(4, 1/2) within Monte Carlo error (4000 trials)
        exact_k = math.comb(4, k) / 16
        assert abs(pk - exact_k) < 4 * math.sqrt(exact_k * (1 - exact_k) / 4000)
    with pytest.raises(NotImplementedError, match="index 5 > d = 4"):
        dist.setup(stats, "signs", 4, 5)
    torus = bs.TrackTorusFinder().setup_cache()
    finder = bs.TrackTorusFinder()
    for d in (1, 2):
        finder.setup(torus, d)  # asv calls setup before each track method
        assert (
            finder.track_found(torus, d)
            == finder.track_exact_count(torus, d)
            == 2**d * (1 if d == 1 else 2)
        )
        assert finder.track_rejected(torus, d) == 0
        assert finder.track_p_minimum(torus, d) == 2.0**-d


# --- minimal-norm searches and the scaling benchmarks -------------------------------------------


def test_minimal_l2_searches_run_and_ours_is_no_worse(cpu: str, monkeypatch) -> None:
    from asv_runner.benchmarks._base import get_setup_cache_key

    monkeypatch.setitem(ba.MINIMAL_POINTS, "cpu", 12)
    monkeypatch.setattr(ba, "MINIMAL_SIDES", (16,))
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")
    keys = {get_setup_cache_key(c.setup_cache) for c in (ba.TimeMinimalL2, ba.TrackMinimalL2)}
    assert len(keys) == 1
    cache = ba.TrackMinimalL2().setup_cache()  # as asv calls it: on an instance
    model, x, y = cache["problems"][16]
    assert x.shape[0] == 12 and (model(x).argmax(dim=1) == y).all()
    medians = {}
    for impl in ba.MINIMAL_IMPLS:
        bench = ba.TimeMinimalL2()
        bench.setup(cache, impl, 16)
        bench.time_search(cache, impl, 16)
        track = ba.TrackMinimalL2()
        track.setup(cache, impl, 16)
        assert track.track_success_rate(cache, impl, 16) == 1.0
        medians[impl] = track.track_median_l2(cache, impl, 16)
    # DeepFool's point overshoots the boundary; the line search along it only comes closer, and
    # the tangent-plane correction is kept only where it is closer still
    assert medians["hdbench_deepfool"] <= medians["torchattacks_deepfool"] * (1 + 1e-4)
    assert medians["hdbench_deepfool"] <= medians["foolbox_deepfool"] * (1 + 1e-4)
    assert medians["hdbench_deepfool_refined"] <= medians["hdbench_deepfool"] * (1 + 1e-6)
    assert medians["hdbench_deepfool_refined_eager"] == pytest.approx(
        medians["hdbench_deepfool_refined"], rel=1e-5
    )
    # through the affine stem or the whole model: the same search up to the bracket's width
    assert medians["hdbench_deepfool_blackbox"] == pytest.approx(
        medians["hdbench_deepfool"], rel=2e-3
    )
    with pytest.raises(ValueError, match="minimal_search: expected impl in"):
        ba.minimal_search("cleverhans", cache["problems"][16])
    # the speed-ups: the ratio of the two medians that each interleaved run measured
    timed = []

    def interleaved_ms(fns: dict, dev: str, **kw) -> dict[str, float]:
        timed.append(list(fns))
        return {name: float(i + 1) for i, name in enumerate(fns)}  # ours 1 ms, the peer's 2

    monkeypatch.setattr(ba.timing, "interleaved_ms", interleaved_ms)
    speed_cache = ba.TrackMinimalL2Speedup().setup_cache()
    assert timed == [[ba.SPEEDUP_SEARCH, peer] for peer in ba.SPEEDUP_PEERS]
    for peer in ba.SPEEDUP_PEERS:
        speed = ba.TrackMinimalL2Speedup()
        speed.setup(speed_cache, peer, 16)
        assert speed.track_speedup(speed_cache, peer, 16) == 2.0


@pytest.mark.parametrize(("rounds", "budget_s", "expected"), [(5, 60.0, 5), (9, 0.0, 3)])
def test_interleaved_ms_takes_turns(rounds: int, budget_s: float, expected: int) -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    ms = timing.interleaved_ms(fns, "cpu", rounds=rounds, budget_s=budget_s)
    assert set(ms) == set(fns) and all(v >= 0 for v in ms.values())
    # each round calls every function once, in the order reversed every other round; a budget
    # already spent stops it after three rounds
    turn = ["a", "b", "c"]
    assert calls == [n for r in range(expected) for n in (turn if r % 2 == 0 else turn[::-1])]
    with pytest.raises(ValueError, match=r"interleaved_ms: expected rounds >= 3"):
        timing.interleaved_ms(fns, "cpu", rounds=2, budget_s=1.0)


def test_scaling_benchmarks_share_one_run_and_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from asv_runner.benchmarks._base import get_setup_cache_key
    from asv_runner.benchmarks.mark import SkipNotImplemented

    from hdbench.suite import bench_scaling as bsc
    from hdbench.suite.experiments import models as M
    from hdbench.suite.experiments import scaling as S

    classes = (
        bsc.TrackScaling,
        bsc.TrackScalingSlope,
        bsc.TrackGoodfellow,
        bsc.TrackControl,
        bsc.TrackScalingRun,
    )
    assert len({get_setup_cache_key(c.setup_cache) for c in classes}) == 1
    for c in classes:
        assert isinstance(c.version, str) and c.timeout >= bsc.scaling_results.timeout
    assert list(bsc.TrackScaling.params[3]) == sorted(
        {*S.SIZES["cpu"].sides, *S.SIZES["gpu"].sides}
    )
    tiny = dataclasses.replace(
        S.SIZES["cpu"],
        sides=(8, 16, 32),
        test_points=32,
        more_max_side=16,
        n_boot=100,
        families=("upsampled",),
        training=M.Training(steps=30, batch=32),
    )
    monkeypatch.setattr(S, "config", lambda dev: tiny)
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")
    results = bsc.TrackScalingSlope().setup_cache()  # as asv calls it: on an instance
    point = bsc.TrackScaling()
    point.setup(results, "upsampled", "mlp", "fewer", 16)
    assert point.track_median_l2() == results["points"][("upsampled", "mlp", "fewer", 16)].median_l2
    assert point.track_median_l2_area() == pytest.approx(point.track_median_l2() / 16, rel=0.3)
    with pytest.raises(NotImplementedError, match="not in the cpu size"):
        point.setup(results, "natural", "mlp", "fewer", 16)
    with pytest.raises(NotImplementedError, match="'more' regime runs to side 16"):
        point.setup(results, "upsampled", "mlp", "more", 32)
    results["points"][("upsampled", "mlp", "fewer", 8)].skipped = "did not learn: test"
    point.setup(results, "upsampled", "mlp", "fewer", 8)
    assert point.track_clean_accuracy() > 0
    with pytest.raises(SkipNotImplemented, match="did not learn"):
        point.track_median_l2()
    slope = bsc.TrackScalingSlope()
    slope.setup(results, "upsampled", "linear", "fewer", "l2_N")
    assert slope.track_slope_low() <= slope.track_slope() <= slope.track_slope_high()
    assert slope.track_verdict() in (-1, 0, 1)
    with pytest.raises(NotImplementedError, match="fewer than 3"):
        slope.setup(results, "upsampled", "linear", "more", "l2_N")
    e2 = bsc.TrackGoodfellow()
    e2.setup(results, "upsampled", "linear", "fewer", "linf")
    assert e2.track_match() in (-1.0, -0.5, 0.0) and e2.track_match_in_interval() in (0, 1)
    control = bsc.TrackControl()
    control.setup(results, "linf")
    assert control.track_expected_slope() == -0.5
    assert control.track_slope_low() <= control.track_slope() <= control.track_slope_high()
    assert abs(control.track_slope() + 0.5) < 0.05
    assert 0.8 < control.track_mean_distance_ratio() < 1.2
    run = bsc.TrackScalingRun()
    sizes = {q: run.track_value(results, q) for q in bsc.RUN_SIZE}
    assert sizes["test_points"] == 32 and sizes["train_steps"] == 30 and sizes["train_batch"] == 32
    assert sizes["bootstrap_resamples"] == 100 and sizes["largest_side"] == 32
    assert sizes["seconds"] == round(results["seconds"], 1) > 0


def test_every_benchmark_records_its_modules_sizes_and_seeds(monkeypatch: pytest.MonkeyPatch):
    """asv copies a benchmark function's attributes into benchmarks.json: each benchmark carries
    its own module's constants and seeds, inherited GPU methods included."""
    from asv_runner.discovery import disc_benchmarks

    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # discovery adds an importer
    found = {b.name: b for b in disc_benchmarks(str(ROOT / "suite"))}
    assert found and all(isinstance(b.provenance, dict) for b in found.values())
    attack = found["bench_attack.TrackAttackOpsGPU.track_ms"].provenance["constants"]
    pyramid = found["bench_pyramid.TrackPyramidOpsGPU.track_ms"].provenance["constants"]
    assert "CLASSES=10" in attack and "LEVELS=5" in pyramid and "LEVELS=5" not in attack
    saddles = found["bench_saddles.TrackRandomMatrix.track_p_minimum"].provenance
    assert any(c.startswith("TRIALS=") for c in saddles["constants"])
    assert "seed=1000 * d + len(model)" in saddles["seeds"]
