"""The scaling experiment's parts on cases with known answers: exact linear distances, the
minimal-norm searches, slopes with a known exponent, the control, the verdict rule."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hdbench.results.vocabulary import VERDICT_CODES
from hdbench.suite.experiments import analysis as A
from hdbench.suite.experiments import attacks, line_search
from hdbench.suite.experiments import deepfool as deepfool_search
from hdbench.suite.experiments import models as M
from hdbench.suite.experiments import scaling as S
from hdbench.suite.experiments.data import Scenes


def _linear(d: int, k: int, seed: int = 0) -> M.LinearClassifier:
    torch.manual_seed(seed)
    model = M.LinearClassifier(d, k)
    model.fc.weight.data.normal_()
    model.fc.bias.data.normal_(std=0.5)
    model.eval()
    return model


def _labelled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


@pytest.mark.parametrize("k", [2, 3])
def test_linear_distances_match_a_brute_force_line_search(k):
    d = 37
    model = _linear(d, k)
    w, b = model.affine()
    x = torch.rand(6, 1, 1, d)
    y = _labelled(model, x)
    l2, linf = attacks.linear_distances(w, b, x, y)
    assert (l2 > 0).all() and (linf > 0).all()
    ts = torch.linspace(0, 4, 40001)[1:]

    def crossing(direction: torch.Tensor, i: int) -> float:
        """First t on the grid at which x_i + t * direction changes label (inf if none)."""
        pts = x[i].flatten() + ts[:, None] * direction
        flips = (pts @ w.T + b).argmax(dim=1) != y[i]
        return float(ts[flips.nonzero()[0, 0]]) if flips.any() else math.inf

    gen = torch.Generator().manual_seed(1)
    for i in range(x.shape[0]):
        best_l2, best_linf = math.inf, math.inf
        for j in range(k):  # the optimal directions, one per competing class
            if j == y[i]:
                continue
            dw = w[j] - w[y[i]]
            best_l2 = min(best_l2, crossing(dw / dw.norm(), i))
            best_linf = min(best_linf, crossing(dw.sign(), i))
        assert best_l2 == pytest.approx(float(l2[i]), abs=2e-4)
        assert best_linf == pytest.approx(float(linf[i]), abs=2e-4)
        for _ in range(20):  # no other direction crosses sooner
            u = torch.randn(d, generator=gen)
            assert crossing(u / u.norm(), i) >= float(l2[i]) - 1e-4
            assert (
                crossing(torch.randint(0, 2, (d,), generator=gen) * 2.0 - 1, i)
                >= float(linf[i]) - 1e-4
            )


def test_linear_distance_is_zero_for_a_misclassified_point():
    model = _linear(11, 2)
    x = torch.rand(4, 11)
    y = 1 - _labelled(model, x)
    l2, linf = attacks.linear_distances(*model.affine(), x, y)
    torch.testing.assert_close(l2, torch.zeros(4))
    torch.testing.assert_close(linf, torch.zeros(4))


@pytest.mark.parametrize("k", [2, 3])
def test_deepfool_finds_the_exact_linear_distance(k):
    model = _linear(50, k, seed=3)
    x = torch.rand(8, 2, 5, 5)
    y = _labelled(model, x)
    exact, _ = attacks.linear_distances(*model.affine(), x, y)
    res = attacks.deepfool(model, x, y)
    assert res.success.all()
    torch.testing.assert_close(res.norms.l2, exact, rtol=1e-3, atol=1e-5)


def _mlp(d: int, seed: int = 0, classes: int = 2) -> M.MLPClassifier:
    torch.manual_seed(seed)
    model = M.MLPClassifier(d, classes, hidden=16)
    for p in model.parameters():
        p.data.mul_(3.0)  # curved enough that one linear step does not land on the boundary
    return model.eval()


@pytest.mark.parametrize("use_stem", [True, False])
@pytest.mark.parametrize("refine", [0, 1])
def test_deepfool_flips_at_the_reported_norm_and_not_just_short_of_it(refine, use_stem):
    model = _mlp(3 * 7 * 9)
    x = torch.rand(16, 3, 7, 9)
    y = _labelled(model, x)
    tol = 1e-3
    res = attacks.deepfool(model, x, y, refine=refine, use_stem=use_stem, tol=tol)
    assert res.success.float().mean() >= 0.9
    ok = res.success
    delta = res.x_adv - x
    assert (_labelled(model, res.x_adv[ok]) != y[ok]).all()
    # the boundary lies within tol of the reported point along its direction (the point 0.9 of
    # the way to it must not flip; the search's own bound is tighter)
    assert (_labelled(model, (x + (1 - 2 * tol) * delta)[ok]) == y[ok]).all()
    torch.testing.assert_close(
        res.norms.l2[ok], delta[ok].flatten(1).norm(dim=1), rtol=1e-4, atol=1e-6
    )
    assert torch.isnan(res.norms.l2[~ok]).all()


def test_deepfool_through_the_stem_matches_the_whole_model():
    # through the stem: DeepFool's steps, the corrections and the line searches in the stem's
    # outputs; without: all in pixels, pgd_step's steps. Without the box, the same search
    model = _mlp(2 * 6 * 7, seed=4)
    x = torch.rand(24, 2, 6, 7)
    y = _labelled(model, x)
    with_stem = attacks.deepfool(model, x, y)
    without = attacks.deepfool(model, x, y, use_stem=False)
    both = with_stem.success & without.success
    assert both.float().mean() >= 0.9
    torch.testing.assert_close(
        with_stem.norms.l2[both], without.norms.l2[both], rtol=2e-3, atol=1e-6
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deepfool_through_the_stem_in_the_box(seed):
    # with the box the two differ by design: through the stem, DeepFool's iterate and the
    # correction are compared unboxed and only the chosen end is boxed and searched again; in
    # pixels every step is boxed. Both points are valid, and their distances close
    model = _mlp(2 * 6 * 7, seed=4 + seed)
    x = torch.rand(24, 2, 6, 7, generator=torch.Generator().manual_seed(seed))
    y = _labelled(model, x)
    tol = 1e-3
    with_stem = attacks.deepfool(model, x, y, clamp=(0.0, 1.0), tol=tol)
    without = attacks.deepfool(model, x, y, clamp=(0.0, 1.0), tol=tol, use_stem=False)
    ok = with_stem.success
    assert ok.float().mean() >= 0.9
    assert with_stem.x_adv.min() >= 0 and with_stem.x_adv.max() <= 1
    delta = (with_stem.x_adv - x)[ok]
    assert (_labelled(model, with_stem.x_adv[ok]) != y[ok]).all()
    assert (_labelled(model, x[ok] + (1 - 2 * tol) * delta) == y[ok]).all()
    both = ok & without.success
    ratio = with_stem.norms.l2[both] / without.norms.l2[both]
    assert ((ratio - 1).abs() < 0.1).all() and ratio.mean() < 1.01, ratio


@pytest.mark.parametrize("classes", [2, 3])
def test_deepfool_through_the_stem_compiled_matches_eager(monkeypatch, classes):
    # the main job runs the stem's steps, corrections and brackets compiled (torch.func's vjp in
    # place of autograd): the same search as eager, up to rounding, three classes included
    model = _mlp(2 * 6 * 7, seed=9, classes=classes)
    x = torch.rand(24, 2, 6, 7, generator=torch.Generator().manual_seed(classes))
    y = _labelled(model, x)
    eager = attacks.deepfool(model, x, y, clamp=(0.0, 1.0))
    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compile failure would fall back
        fast = attacks.deepfool(model, x, y, clamp=(0.0, 1.0))
    assert eager.success.float().mean() >= 0.9
    assert torch.equal(fast.success, eager.success) and fast.iterations == eager.iterations
    ok = fast.success
    assert (_labelled(model, fast.x_adv[ok]) != y[ok]).all()
    torch.testing.assert_close(fast.norms.l2[ok], eager.norms.l2[ok], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("window", [2, 16])
@pytest.mark.parametrize("shape", ["straight", "curved", "steep"])
def test_boundary_search_brackets_a_known_crossing(window, shape):
    # margins along 64 segments with their crossing c known; "steep" (a tanh step) leaves the
    # false-position roots and the window far from c, so the Illinois fallback finishes the rows
    gen = torch.Generator().manual_seed(11)
    c = 0.02 + 0.96 * torch.rand(64, generator=gen)
    curve = {
        "straight": lambda t, c: t - c,
        "curved": lambda t, c: (t - c) * (1 + 8 * t**2),
        "steep": lambda t, c: torch.tanh(40 * (t - c)) + 0.01 * (t - c),
    }[shape]

    def margin_at(t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return curve(t, (c if rows is None else c[rows])[:, None])

    tol = 1e-3
    f0, f1 = curve(torch.zeros(64), c), curve(torch.ones(64), c)
    hi, fhi = line_search._boundary(margin_at, f0, f1, tol=tol, window=window)
    torch.testing.assert_close(fhi, curve(hi, c))
    assert (fhi > 0).all() and (hi >= c).all()
    assert (hi * (1 - tol) <= c).all(), (hi / c - 1).max()  # within tol of the crossing


@pytest.mark.parametrize("family", ["linear", "mlp"])
def test_affine_stem_splits_the_model_and_is_affine(family):
    torch.manual_seed(6)
    model = M.build(family, 3, 5, 4).eval()
    stem, tail = model.affine_stem()
    a, b = torch.rand(6, 3, 5, 5), torch.rand(6, 3, 5, 5)
    assert torch.equal(tail(stem(a)), model(a))  # the model's own forward pass, bit for bit
    centred = model.fc if family == "linear" else model.net[0]
    torch.testing.assert_close(stem(a), centred(a.flatten(1) - 0.5))  # W (x - 1/2) + b
    torch.testing.assert_close(stem(a) - stem(b), (a - b).flatten(1) @ stem.weight.T)
    t = torch.rand(6, 1, 1, 1)
    along = torch.lerp(stem(a), stem(b), t[:, :, 0, 0])
    torch.testing.assert_close(stem(torch.lerp(a, b, t)), along)
    assert not hasattr(M.build("cnn", 3, 5, 4), "affine_stem")


@pytest.mark.parametrize("family", ["linear", "mlp"])
def test_the_stem_keeps_its_gram_matrix_until_the_weight_changes(family):
    torch.manual_seed(8)
    model = M.build(family, 1, 6, 3)
    stem = model.affine_stem()[0]
    before = stem.weight @ stem.weight.T
    torch.testing.assert_close(stem.gram(), before)
    assert model.affine_stem()[0].gram() is stem.gram()  # one product per weight
    with torch.no_grad():
        next(model.parameters()).mul_(2.0)  # the first layer's weight, in place
    torch.testing.assert_close(stem.gram(), 4 * before)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.rand(4, 1, 6, 6)).sum().backward()
    opt.step()
    torch.testing.assert_close(stem.gram(), stem.weight @ stem.weight.T)


def _binary_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    # pixels at 0 or 1: the box clamps about half of any step, so an end the stem-space search
    # writes lands short of the boundary
    model = _mlp(64, seed=7)
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(3)).round()
    return model, x, _labelled(model, x)


def _spy_on_pixels(monkeypatch) -> list[int]:
    calls = []
    in_pixels = deepfool_search._deepfool_in_pixels

    def spy(search, x0, **kw):
        calls.append(len(x0))
        return in_pixels(search, x0, **kw)

    monkeypatch.setattr(deepfool_search, "_deepfool_in_pixels", spy)
    return calls


@pytest.mark.parametrize("push", [(), deepfool_search.BOX_PUSH])
def test_deepfool_in_the_stem_where_the_box_bites(monkeypatch, push):
    # ends the box held short are pushed further along their direction; those still short (all
    # of them without the push) go to DeepFool in pixels
    model, x, y = _binary_problem()
    monkeypatch.setattr(deepfool_search, "BOX_PUSH", push)
    calls = _spy_on_pixels(monkeypatch)
    res = attacks.deepfool(model, x, y, clamp=(0.0, 1.0))
    if push:
        assert not calls  # the push reached the boundary for every sample here
    else:
        assert calls and 0 < calls[0] <= len(x)
    ok = res.success
    assert ok.float().mean() >= 0.9
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert (_labelled(model, res.x_adv[ok]) != y[ok]).all()
    delta = (res.x_adv - x)[ok]
    assert (_labelled(model, x[ok] + (1 - 2e-3) * delta) == y[ok]).all()
    monkeypatch.undo()
    pixels = attacks.deepfool(model, x, y, clamp=(0.0, 1.0), use_stem=False)
    both = ok & pixels.success
    ratio = res.norms.l2[both] / pixels.norms.l2[both]  # pushed ends: other points, as close
    assert ((ratio - 1).abs() < 0.1).all() and ratio.mean() < 1.01, ratio


@pytest.mark.parametrize("max_iter", [0, 50])
def test_deepfool_leaves_its_inputs_alone(max_iter):
    # the search writes its own buffers in place; never the caller's
    model = _mlp(3 * 5 * 6, seed=5)
    x = torch.rand(10, 3, 5, 6)
    y = _labelled(model, x)
    before = x.clone()
    res = attacks.deepfool(model, x, y, max_iter=max_iter, refine=1, clamp=(0.0, 1.0))
    assert torch.equal(x, before)
    assert res.x_adv.data_ptr() != x.data_ptr()
    if max_iter == 0:  # no step taken: nothing found, the clean points returned
        assert not res.success.any() and torch.equal(res.x_adv, x)


def test_deepfool_keeps_the_clamp_range():
    model = _mlp(64, seed=2)
    x = torch.rand(12, 1, 8, 8)
    y = _labelled(model, x)
    res = attacks.deepfool(model, x, y, clamp=(0.0, 1.0))
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert (_labelled(model, res.x_adv[res.success]) != y[res.success]).all()


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_min_linf_finds_the_exact_linear_distance(method):
    model = _linear(40, 2, seed=5)
    x = torch.rand(10, 1, 5, 8)
    y = _labelled(model, x)
    _, exact = attacks.linear_distances(*model.affine(), x, y)
    res = attacks.min_linf(model, x, y, method=method, rounds=12)
    assert res.success.all()
    # geometric bisection of a 16x bracket in 12 rounds: within 16^(1/4096) of the boundary
    ratio = res.norms.linf / exact
    assert (ratio >= 1 - 1e-4).all() and (ratio <= 1.002).all(), ratio


def test_min_linf_on_a_network_flips_at_its_epsilon_and_not_well_below():
    model = _mlp(49, seed=4)
    x = torch.rand(12, 1, 7, 7)
    y = _labelled(model, x)
    res = attacks.min_linf(model, x, y, method="fgsm")
    ok = res.success
    assert ok.float().mean() >= 0.9
    assert (_labelled(model, res.x_adv[ok]) != y[ok]).all()
    lin = attacks.linearise(model, x[ok], y[ok])
    below = x[ok] + 0.9 * res.norms.linf[ok].view(-1, 1, 1, 1) * lin.grad.sign()
    assert (_labelled(model, below) == y[ok]).float().mean() >= 0.9


def test_energy_concentration_known_cases():
    spike = torch.zeros(2, 1, 10, 10)
    spike[:, 0, 3, 4] = 2.0
    flat = torch.ones(1, 1, 10, 10)
    assert attacks.energy_concentration(spike).tolist() == pytest.approx([0.01, 0.01])
    assert attacks.energy_concentration(flat).item() == pytest.approx(0.9)


def test_gradient_diagnostics_of_a_linear_model_are_its_weights():
    model = _linear(30, 2, seed=6)
    x = torch.rand(5, 30)
    y = _labelled(model, x)
    diag = attacks.gradient_diagnostics(model, x, y)
    w, b = model.affine()
    dw = (w[1 - y] - w[y]).float()
    torch.testing.assert_close(diag.grad_l2, dw.norm(dim=1))
    torch.testing.assert_close(diag.mean_abs_grad, dw.abs().mean(dim=1))
    logits = x @ w.T + b
    torch.testing.assert_close(diag.margin, (logits[:, 0] - logits[:, 1]).abs())


@pytest.mark.parametrize("exponent", [-0.5, -0.25, 0.0])
def test_loglog_slope_recovers_a_known_exponent(exponent):
    rng = np.random.default_rng(3)
    xs = [64, 256, 1024, 4096, 16384]
    samples = [x**exponent * rng.lognormal(0.0, 0.3, size=200) for x in xs]
    s = A.loglog_slope(xs, samples)
    assert s.low <= exponent <= s.high
    assert s.high - s.low < 0.05
    assert abs(s.value - exponent) < 0.02
    assert not (s.low <= exponent + 0.1 <= s.high)


def test_the_control_case_gives_its_known_slopes_and_means():
    ns = [64, 256, 1024, 4096]
    dist = [A.control_distances(n, 4000, seed=2) for n in ns]
    l2 = A.loglog_slope(ns, [d[0].numpy() for d in dist], statistic="mean")
    linf = A.loglog_slope(ns, [d[1].numpy() for d in dist], statistic="mean")
    assert l2.low <= 0.0 <= l2.high and abs(l2.value) < 0.03
    assert linf.low <= -0.5 <= linf.high and abs(linf.value + 0.5) < 0.03
    e2, einf = A.control_expected(4096)
    assert float(dist[-1][0].mean()) == pytest.approx(e2, rel=0.05)
    assert float(dist[-1][1].mean()) == pytest.approx(einf, rel=0.05)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.7, -0.4, "agrees"),
        (-0.6, -0.41, "agrees"),
        (-0.29, 0.1, "disagrees"),
        (-0.3, 0.1, "inconclusive"),
        (-0.5, -0.39, "inconclusive"),
        (0.2, 0.5, "disagrees"),
    ],
)
def test_verdict_rule(low, high, expected):
    assert A.verdict(low, high) == expected


def test_nearest_prediction():
    assert A.nearest_prediction(A.Slope(-0.9, -1.1, -0.8)) == (-1.0, True)
    assert A.nearest_prediction(A.Slope(-0.1, -0.2, -0.05)) == (0.0, False)


def test_training_is_seeded_and_learns():
    scenes = Scenes("upsampled", (8, 16), seed=1)
    training = M.Training(steps=40, batch=32)
    a = M.train("linear", scenes, 16, "fewer", training=training, seed=3)
    b = M.train("linear", scenes, 16, "fewer", training=training, seed=3)
    torch.testing.assert_close(a.model.fc.weight, b.model.fc.weight, rtol=0, atol=0)
    assert a.train_samples == M.train_samples("fewer", 256) == 32
    x, y = M.test_set(scenes, 64)[16]
    assert M.accuracy(a.model, x, y).float().mean() > M.learned_threshold(2)


@pytest.mark.parametrize("model", M.MODELS)
def test_training_in_slices_matches_whole_minibatches(model):
    # 20 images a minibatch, 7 a pass (7 + 7 + 6): the slices' gradients add up to the batch's
    scenes = Scenes("upsampled", (8, 16), seed=1)
    training = M.Training(steps=6, batch=20)
    whole = M.train(model, scenes, 16, "fewer", training=training, seed=3)
    sliced = M.train(model, scenes, 16, "fewer", training=training, seed=3, batch_pixels=7 * 256)
    for a, b in zip(whole.model.parameters(), sliced.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert whole.train_accuracy == sliced.train_accuracy
    assert whole.final_loss == pytest.approx(sliced.final_loss, rel=1e-5)
    x, y = M.test_set(scenes, 30)[16]
    assert torch.equal(M.accuracy(whole.model, x, y), M.accuracy(whole.model, x, y, 256))
    with pytest.raises(ValueError, match="rows_per_pass: expected batch_pixels"):
        M.train(model, scenes, 16, "fewer", training=training, batch_pixels=0)


@pytest.mark.parametrize("model", M.MODELS)
def test_a_point_attacked_in_slices_matches_one_pass(torch_backend, model):
    # 9 images a pass: per-sample searches, so the slices change no sample's result
    scenes = Scenes("upsampled", (16,), seed=2)
    trained = M.train(model, scenes, 16, "fewer", training=M.Training(steps=60, batch=32), seed=1)
    x, y = M.test_set(scenes, 40)[16]
    whole = S._point(trained.model, model, x, y, None, 0.6)
    sliced = S._point(trained.model, model, x, y, None, 0.6, batch_pixels=9 * 256)
    assert "skipped" not in whole and whole["attacked"] > 9
    assert whole["attacked"] == sliced["attacked"]
    for key in (
        "l2",
        "l2_area",
        "linf",
        "m",
        "margin",
        "eps_m_n",
        "level_shares",
        "grad_l2",
        "grad_l1",
        "pixels_90",
        "success_rate",
        "success_rate_linf",
    ):
        np.testing.assert_allclose(sliced[key], whole[key], rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("model", M.MODELS)
def test_every_model_family_takes_images_and_returns_logits(model):
    net = M.build(model, 3, 9, 4)
    assert net(torch.rand(2, 3, 9, 9)).shape == (2, 4)


def _tiny(**changes) -> S.Config:
    base = S.Config(
        name="tiny",
        sides=(8, 16, 32),
        models=("linear", "mlp"),
        test_points=32,
        more_max_side=16,
        training=M.Training(steps=30, batch=32),
        families=("upsampled",),
        n_boot=200,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def torch_backend(monkeypatch):
    """The experiment's pipeline on the torch backend: the kernels have their own tests, and the
    interpreter would make a whole run slow."""
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")


def test_a_small_run_reports_points_slopes_and_control(torch_backend):
    res = S.run(_tiny())
    pts = res["points"]
    assert pts[("upsampled", "linear", "more", 32)].skipped.startswith("the 'more' regime")
    p = pts[("upsampled", "mlp", "fewer", 16)]
    assert p.clean_accuracy > 0.6 and p.attacked >= S.MIN_ATTACKED
    assert 0 < p.median_l2 and p.success_rate > 0.9
    assert abs(sum(p.level_shares) - 1) < 1e-4
    assert 0 < p.pixels_90 <= 0.9 + 1e-6
    s = res["slopes"][("upsampled", "linear", "fewer")]
    assert s["sides"] == [8, 16, 32]
    assert s["l2_N"]["low"] <= s["l2_N"]["value"] <= s["l2_N"]["high"]
    assert s["l2_R"]["value"] == pytest.approx(2 * s["l2_N"]["value"])
    assert s["l2_N"]["verdict"] in VERDICT_CODES
    assert "why" in res["slopes"][("upsampled", "linear", "more")]  # two sides only
    assert res["control"]["linf"]["expected_slope"] == -0.5


def test_a_model_that_did_not_learn_is_not_attacked(torch_backend):
    # no class signal in the images: nothing can be learned, whatever the training does
    res = S.run(_tiny(models=("linear",), regimes=("fewer",), contrast=0.0, test_points=128))
    for side in (8, 16, 32):
        p = res["points"][("upsampled", "linear", "fewer", side)]
        assert p.skipped.startswith("did not learn") and p.attacked == 0
        # nothing measured: no norms, no medians, no success rate, no level shares
        assert p.l2.size == 0 and not p.level_shares
        assert math.isnan(p.median_l2) and math.isnan(p.success_rate)
    assert "why" in res["slopes"][("upsampled", "linear", "fewer")]


def test_the_cnn_family_learns_and_is_attacked(torch_backend):
    res = S.run(
        _tiny(
            models=("cnn",),
            sides=(8, 16),
            regimes=("fewer",),
            training=M.Training(steps=60, batch=32),
        )
    )
    for side in (8, 16):
        p = res["points"][("upsampled", "cnn", "fewer", side)]
        assert p.skipped is None and p.clean_accuracy > 0.8
        assert p.success_rate > 0.9 and 0 < p.median_l2 < math.inf


def test_config_by_device_and_override(monkeypatch):
    monkeypatch.delenv(S.SIZE_ENV, raising=False)
    monkeypatch.delenv("HDBENCH_SMOKE", raising=False)
    assert S.config("cpu").name == "cpu" and S.config("cuda").name == "gpu"
    monkeypatch.setenv("HDBENCH_SMOKE", "1")
    assert S.config("cpu").name == "smoke" and len(S.config("cuda").sides) >= 3
    monkeypatch.setenv(S.SIZE_ENV, "gpu")
    assert S.config("cpu").name == "gpu"
    monkeypatch.setenv(S.SIZE_ENV, "huge")
    with pytest.raises(ValueError, match="HDBENCH_SCALING_SIZE: expected one of"):
        S.config("cpu")


def test_errors_name_the_function_and_the_value():
    model = _linear(8, 2)
    x = torch.rand(3, 8)
    with pytest.raises(ValueError, match=r"deepfool: expected y of shape \(3,\)"):
        attacks.deepfool(model, x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="min_linf: expected y an int64/int32 tensor"):
        attacks.min_linf(model, x, torch.zeros(3))
    with pytest.raises(ValueError, match="min_linf: expected method 'fgsm' or 'pgd'"):
        attacks.min_linf(model, x, torch.zeros(3, dtype=torch.long), method="cw")
    with pytest.raises(ValueError, match=r"linear_distances: expected weight \(K, 8\)"):
        attacks.linear_distances(torch.ones(2, 5), torch.ones(2), x, torch.zeros(3).long())
    with pytest.raises(ValueError, match="loglog_slope: expected >= 2 distinct positive xs"):
        A.loglog_slope([8, 8], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="loglog_slope: expected finite positive samples"):
        A.loglog_slope([8, 16], [[1.0], [0.0]])
    with pytest.raises(ValueError, match="train_samples: expected regime in"):
        M.train_samples("many", 64)
    with pytest.raises(ValueError, match="verdict: expected a negative predicted slope"):
        A.verdict(-1, 0, predicted=0.5)
