"""Gaussian fields and MLP losses: the critical-point finder and the index against known answers."""

from __future__ import annotations

import math

import pytest
import torch

from hdbench.suite.experiments import landscape as L
from hdbench.suite.experiments import mlp_landscape as ML
from hdbench.suite.experiments import spectral


@pytest.fixture(autouse=True)
def _one_thread():
    # the searches are many tiny operations: a second OpenMP thread only adds synchronisation
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _autograd_hessian(f: L.Landscape, x: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [torch.autograd.functional.hessian(lambda p: f.value(p[None])[0], p) for p in x]
    )


def test_fourier_field_derivatives_match_autograd():
    f = L.gaussian_field(3, features=64, seed=1)
    x = torch.rand(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 4
    xg = x.clone().requires_grad_(True)
    g = torch.autograd.grad(f.value(xg).sum(), xg)[0]
    torch.testing.assert_close(f.grad(x), g)
    torch.testing.assert_close(f.hessian(x), _autograd_hessian(f, x))


def test_field_points_are_critical_and_indices_match_a_dense_eigendecomposition():
    f = L.gaussian_field(2, features=128, seed=3)
    census = L.field_census(f, 200, box=4.0, seed=3)
    cp = census.points
    assert cp.points.shape[0] >= 3
    assert (cp.points >= 0).all() and (cp.points <= 4.0).all()
    assert f.grad(cp.points).norm(dim=1).max() <= cp.threshold
    eig = torch.linalg.eigvalsh(_autograd_hessian(f, cp.points))
    assert torch.equal((eig < 0).sum(dim=1), cp.index)


def test_minima_and_maxima_alternate_on_a_line():
    # in d = 1 every critical point is found, and a smooth function's extrema alternate
    f = L.gaussian_field(1, features=128, seed=4)
    census = L.field_census(f, 600, box=30.0, seed=4)
    order = census.points.points[:, 0].argsort()
    index = census.points.index[order]
    assert index.numel() >= 10
    assert (index[1:] != index[:-1]).all()
    # and every sign change of f' on a fine grid is one of them
    grid = torch.linspace(0, 30, 30_001, dtype=torch.float64)[:, None]
    slope = f.grad(grid)[:, 0]
    assert int((slope[1:] * slope[:-1] < 0).sum()) == index.numel()


def test_morse_counts_on_a_torus_sum_to_its_euler_characteristic():
    # a Fourier field with integer frequencies lives on the torus [0, 2 pi)^2, where
    # N_0 - N_1 + N_2 = 0 for every Morse function
    gen = torch.Generator().manual_seed(5)
    w = torch.randint(-2, 3, (12, 2), generator=gen).double()
    b = torch.rand(12, generator=gen, dtype=torch.float64) * 2 * math.pi
    c = torch.randn(12, generator=gen, dtype=torch.float64)
    f = L.fourier_field(w, b, c, period=torch.full((2,), 2 * math.pi))
    starts = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 2 * math.pi
    found = L.find_critical_points(f, starts)
    counts = torch.bincount(found.index, minlength=3).tolist()
    assert sum(counts) >= 8 and counts[0] >= 1 and counts[1] >= 2
    assert counts[0] - counts[1] + counts[2] == 0


def test_decay_rate_recovers_a_known_rate():
    ds = [1, 2, 3, 4, 5, 6]
    assert L.decay_rate(ds, [0.7 * math.exp(-0.9 * d) for d in ds]) == pytest.approx(0.9)
    assert L.decay_rate(ds, [2.0 * math.exp(-0.3 * d * d) for d in ds], 2) == pytest.approx(0.3)
    assert math.isnan(L.decay_rate([1, 2], [0.5, 0.0]))


def test_mlp_loss_gradient_and_hessian_match_autograd():
    x, y = ML.mixture(10, seed=1)
    f = ML.MLPLoss(x, y, (ML.D_IN, 3, ML.CLASSES))
    theta = torch.randn(2, f.n_params, dtype=torch.float64)

    def one(t: torch.Tensor) -> torch.Tensor:
        return f.value(t[None])[0]

    grads = torch.stack([torch.autograd.functional.jacobian(one, t) for t in theta])
    torch.testing.assert_close(f.grad(theta), grads)
    hess = torch.stack([torch.autograd.functional.hessian(one, t) for t in theta])
    torch.testing.assert_close(f.hessian(theta), hess)


@pytest.mark.parametrize("width, lr", [(8, 10.0), (128, 0.1)])
def test_trained_starts_keep_below_the_stability_limit(width, lr):
    # a fixed step of `lr` is beyond 2 / lambda_max at initialisation here (lambda_max about 5
    # at width 8, 36 to 47 at width 128: gradient descent at 0.1 overflows there within 200
    # steps); each start's step is capped at STABLE_STEP / lambda_max, so every start trains
    x, y = ML.mixture(seed=5)
    f = ML.MLPLoss(x, y, (ML.D_IN, width, ML.CLASSES))
    init = ML.trained_starts(f, 3, train_steps=0, seed=6)
    top = torch.linalg.eigvalsh(f.hessian(init))[:, -1]
    assert (lr > 2 / top).all()
    trained = ML.trained_starts(f, 3, train_steps=400, lr=lr, seed=6)
    assert torch.equal(trained[0], init[0])  # start 0 takes no step
    assert torch.isfinite(trained).all()
    before, after = f.value(init), f.value(trained)
    assert (after[1:] < 0.5 * before[1:]).all(), (before, after)


def _small_critical_point() -> tuple[ML.MLPLoss, torch.Tensor]:
    x, y = ML.mixture(12, seed=2)
    f = ML.MLPLoss(x, y, (ML.D_IN, 2, ML.CLASSES))
    starts = ML.trained_starts(f, 6, train_steps=300, seed=2)
    found = L.find_critical_points(f.landscape(), starts, steps=150, threshold=1e-6)
    assert found.points.shape[0] >= 1
    return f, found.points


def test_lanczos_index_matches_the_dense_eigendecomposition_on_a_small_mlp():
    f, points = _small_critical_point()
    for theta in points[:2]:
        params = f.params(theta)
        op = spectral.mlp_operator(params, f.x, f.y, activation="tanh", loss="mse")
        eig = torch.linalg.eigvalsh(spectral.dense_matrix(op, f.n_params, torch.float64, "cpu"))
        # full Krylov space (steps = P): the Ritz values are the eigenvalues
        run = spectral.lanczos(
            op, spectral.rademacher(1, f.n_params, torch.float64, "cpu"), f.n_params
        )
        tol = ML.INDEX_TOL
        assert int((run.theta[0] < -tol).sum()) == int((eig < -tol).sum())
        idx = spectral.mlp_index(
            params, f.x, f.y, activation="tanh", loss="mse", steps=f.n_params, probes=16, tol=tol
        )
        assert idx.lambda_min == pytest.approx(float(eig[0]), abs=1e-8)
        want = float((eig < -tol).double().mean())
        assert abs(idx.fraction - want) <= 4 * idx.fraction_se + 1e-9


def test_mlp_critical_points_are_critical_and_classified_consistently():
    run = ML.mlp_critical_points(2, starts=6, train_steps=300, newton_steps=100, samples=12, seed=2)
    n = run.loss.numel()
    assert 1 <= n <= run.starts - run.rejected
    assert (run.grad_norm <= run.threshold).all()
    assert torch.equal(run.is_minimum, run.dense_index == 0)
    assert ((run.index_fraction >= 0) & (run.index_fraction <= 1)).all()


def test_a_flat_region_is_rejected_not_counted():
    # too few Newton steps from untrained starts: the gradient is still large, so nothing counts
    run = ML.mlp_critical_points(3, starts=4, train_steps=0, newton_steps=1, samples=12)
    assert run.loss.numel() == 0 and run.rejected == 4


def test_rank_correlation():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert ML.rank_correlation(a, a**3) == pytest.approx(1.0)
    assert ML.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert ML.rank_correlation(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert math.isnan(ML.rank_correlation(a[:2], a[:2]))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: L.gaussian_field(0), "gaussian_field: expected d a positive int"),
        (lambda: L.gaussian_field(2, length=0.0), "length a positive number"),
        (lambda: L.field_census(L.gaussian_field(2), 0, box=1.0), "starts a positive int"),
        (lambda: L.field_census(L.gaussian_field(2), 5, box=-1.0), "box a positive number"),
        (lambda: L.fourier_field(torch.zeros(3, 2), torch.zeros(2), torch.zeros(3)), r"w \(M, d\)"),
        (lambda: L.find_critical_points(L.gaussian_field(2), torch.zeros(4, 3)), r"\(n, 2\)"),
        (lambda: ML.width_for(20), "width_for: expected a parameter count"),
        (lambda: ML.mixture(0), "mixture: expected n a positive int"),
        (lambda: ML.mixture(8, classes=1), "classes >= 2"),
        (lambda: ML.mlp_critical_points(2, train_steps=-1), "train_steps an int >= 0"),
    ],
)
def test_bad_arguments_are_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_width_for_inverts_parameter_count():
    for width in (1, 2, 8, 32):
        assert ML.width_for(ML.parameter_count(width)) == width


# --- the benchmarks' wiring --------------------------------------------------------------------


def _asv_benchmark(cls: type, method: str):
    """The benchmark object asv's discovery builds for ``cls.method``."""
    from asv_runner.benchmarks.track import TrackBenchmark

    from hdbench.suite import bench_saddles as bs

    instance = cls()
    func = getattr(instance, method)
    return TrackBenchmark(f"bench_saddles.{cls.__name__}.{method}", func, [func, instance, bs])


def test_classes_share_one_setup_cache_with_its_timeout():
    from hdbench.suite import bench_saddles as bs

    pairs = [
        ((bs.TrackRandomMatrix, "track_p_minimum"), (bs.TrackDecayRate, "track_decay_rate")),
        (
            (bs.TrackGaussianField, "track_p_minimum"),
            (bs.TrackGaussianFieldDecayRate, "track_decay_rate"),
        ),
    ]
    keys = []
    for a, b in pairs:
        first, second = _asv_benchmark(*a), _asv_benchmark(*b)
        assert first.setup_cache_key is not None
        assert first.setup_cache_key == second.setup_cache_key
        keys.append(first.setup_cache_key)
        for bench, (cls, _) in ((first, a), (second, b)):
            assert bench.setup_cache_timeout >= cls.timeout >= 600
    mlp = [
        _asv_benchmark(bs.TrackMLPCritical, "track_p_minimum"),
        _asv_benchmark(bs.TrackMLPSearch, "track_found"),
        _asv_benchmark(bs.TrackMLPIndexLoss, "track_index_loss_correlation"),
    ]
    assert len({b.setup_cache_key for b in mlp}) == 1
    assert len({*keys, mlp[0].setup_cache_key}) == 3
    assert all(b.setup_cache_timeout >= 600 for b in mlp)
    field_search = _asv_benchmark(bs.TrackGaussianFieldSearch, "track_found")
    assert field_search.setup_cache_key == keys[1]
    for cls in (
        bs.TrackGaussianField,
        bs.TrackGaussianFieldSearch,
        bs.TrackGaussianFieldDecayRate,
        bs.TrackMLPCritical,
        bs.TrackMLPSearch,
        bs.TrackMLPIndexLoss,
    ):
        assert isinstance(cls.version, str) and cls.version


def test_field_and_mlp_benchmarks_track_the_run(monkeypatch: pytest.MonkeyPatch):
    from hdbench.suite import bench_saddles as bs
    from hdbench.suite import common

    monkeypatch.setattr(common, "device", lambda: "cpu")
    monkeypatch.setattr(bs, "CPU_MAX_FIELD_D", 3)
    monkeypatch.setattr(bs, "FIELD_STARTS", {"cpu": 300, "cuda": 300})
    monkeypatch.setattr(bs, "FIELD_VOLUME", {"cpu": 40.0, "cuda": 40.0})
    stats = bs.field_cache()
    assert {k for k in stats if isinstance(k, int)} == {1, 2, 3}
    bench, search = bs.TrackGaussianField(), bs.TrackGaussianFieldSearch()
    bench.setup(stats, 1)
    assert bench.track_p_minimum(stats, 1) == 0.5  # d = 1: minima and maxima alternate
    bench.setup(stats, 2)
    low, high = bench.track_p_minimum_low(stats, 2), bench.track_p_minimum_high(stats, 2)
    assert 0 <= low <= bench.track_p_minimum(stats, 2) <= high <= 1 and low < high
    search.setup(stats, 2)
    assert search.track_found(stats, 2) >= 3
    assert search.track_grad_threshold(stats, 2) == 1e-8
    if search.track_rejected(stats, 2):
        assert 0 <= search.track_rejected_flat_share(stats, 2) <= 1
    for cls in (bs.TrackGaussianField, bs.TrackGaussianFieldSearch):
        with pytest.raises(NotImplementedError, match="GPU only"):
            cls().setup(stats, 9)
    assert math.isfinite(bs.TrackGaussianFieldDecayRate().track_decay_rate(stats, 1))
    assert bs.TrackGaussianField.params == ([*range(1, 11)],)  # the same list on every machine

    monkeypatch.setattr(bs, "CPU_MAX_MLP", 19)
    monkeypatch.setattr(bs, "MLP_STARTS", {"cpu": 4, "cuda": 4})
    monkeypatch.setattr(bs, "MLP_TRAIN_STEPS", 200)
    mlp = bs.mlp_cache()
    assert set(mlp) == {19}
    tracks, search = bs.TrackMLPCritical(), bs.TrackMLPSearch()
    tracks.setup(mlp, 19)
    search.setup(mlp, 19)
    found, rejected = search.track_found(mlp, 19), search.track_rejected(mlp, 19)
    assert found >= 1 and found + rejected <= 4
    assert search.track_grad_threshold(mlp, 19) == ML.GRAD_THRESHOLD
    assert 0 <= tracks.track_mean_index_fraction(mlp, 19) <= 1
    assert tracks.track_lanczos_dense_agreement(mlp, 19) == 1.0
    for cls in (bs.TrackMLPCritical, bs.TrackMLPSearch, bs.TrackMLPIndexLoss):
        with pytest.raises(NotImplementedError, match="GPU only"):
            cls().setup(mlp, 1027)
    mlp[19]["found"], mlp[19]["index_loss_correlation"] = 0, math.nan
    with pytest.raises(NotImplementedError, match="no start reached"):
        tracks.setup(mlp, 19)
    with pytest.raises(NotImplementedError, match="fewer than three"):
        bs.TrackMLPIndexLoss().setup(mlp, 19)
    search.setup(mlp, 19)  # the search numbers stay: all rejected is a result
    mlp[19]["rejected"], mlp[19]["rejected_flat_share"] = 4, 0.9
    assert search.track_rejected_flat_share(mlp, 19) == 0.9
    mlp[19]["rejected"] = 0
    from asv_runner.benchmarks.mark import SkipNotImplemented

    with pytest.raises(SkipNotImplemented, match="no start was rejected"):
        search.track_rejected_flat_share(mlp, 19)
