"""Random-matrix models and the critical-point finder against their exact answers."""

from __future__ import annotations

import math

import pytest
import torch

from hdbench.suite.experiments import landscape as L

TRIALS = 40_000


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_independent_signs_match_the_binomial(d):
    idx = L.sample_indices("signs", d, TRIALS, seed=d)
    p = L.p_minimum(idx)
    assert p.low <= 2.0**-d <= p.high
    want = torch.tensor([math.comb(d, i) / 2**d for i in range(d + 1)], dtype=torch.float64)
    got = L.index_distribution(idx, d)
    se = (want * (1 - want) / TRIALS).sqrt()
    assert ((got - want).abs() <= 4 * se + 1e-12).all()


@pytest.mark.parametrize("d, exact", [(1, 0.5), (2, (2 - math.sqrt(2)) / 4)])
def test_goe_minimum_probability_matches_the_exact_values(d, exact):
    p = L.p_minimum(L.sample_indices("goe", d, TRIALS, seed=7))
    assert L.exact_p_minimum("goe", d) == pytest.approx(exact)
    se = math.sqrt(exact * (1 - exact) / TRIALS)
    assert abs(p.value - exact) < 4 * se


def test_goe_minima_vanish_faster_than_independent_signs():
    ds = [1, 2, 3, 4]
    goe = [L.p_minimum(L.sample_indices("goe", d, TRIALS, seed=d)).value for d in ds]
    signs = [2.0**-d for d in ds]
    assert all(g <= s for g, s in zip(goe[1:], signs[1:], strict=True))
    # exp(-theta d^2) with theta near ln(3)/4 = 0.27 (finite-d corrections included)
    assert 0.15 < L.decay_rate(ds, goe, power=2) < 0.5
    assert L.decay_rate(ds, signs) == pytest.approx(math.log(2))


def test_wilson_interval():
    p = L.wilson(0, 100)
    assert p.value == 0 and p.low == 0.0 and 0.02 < p.high < 0.05  # not the empty [0, 0]
    p = L.wilson(7, 7)
    assert p.high == 1.0 and 0.5 < p.low < 0.7
    p = L.wilson(50, 100)
    assert p.low == pytest.approx(0.4038, abs=1e-3) and p.high == pytest.approx(0.5962, abs=1e-3)


def test_torus_critical_points_are_critical_with_binomial_indices():
    a, phi = torch.tensor([1, 2, 3]), torch.tensor([0.3, 1.1, -0.4], dtype=torch.float64)
    f = L.torus(a, phi)
    pts, index = L.torus_critical_points(a, phi)
    assert pts.shape == (2 * 4 * 6, 3)
    assert f.grad(pts).norm(dim=1).max() < 1e-12
    eig_index = (torch.linalg.eigvalsh(f.hessian(pts)) < 0).sum(dim=1)
    assert torch.equal(eig_index, index)
    assert torch.bincount(index).tolist() == [6, 18, 18, 6]  # 48 x Binomial(3, 1/2)


def test_finder_recovers_every_critical_point_of_a_small_torus():
    a, phi = torch.tensor([1, 2, 3]), torch.tensor([0.3, 1.1, -0.4], dtype=torch.float64)
    f = L.torus(a, phi)
    starts = torch.rand(1500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    found = L.find_critical_points(f, starts * 2 * math.pi)
    want, want_index = L.torus_critical_points(a, phi)
    assert found.points.shape[0] == want.shape[0]
    # match each true point to a found one, modulo 2 pi
    diff = torch.remainder(found.points[:, None] - want[None] + math.pi, 2 * math.pi) - math.pi
    nearest = diff.norm(dim=2).argmin(dim=0)
    assert diff.norm(dim=2).min(dim=0).values.max() < 1e-6
    assert torch.equal(found.index[nearest], want_index)
    assert found.grad_norm.max() <= found.threshold


def test_a_point_with_a_large_gradient_is_never_counted():
    # f(x) = sum x_i^3 / 3 has one critical point, x = 0, degenerate: Newton's method approaches
    # it only linearly, so from far away a few steps leave points that are not yet critical
    f = L.Landscape(
        d=2,
        value=lambda x: (x**3 / 3).sum(dim=-1),
        grad=lambda x: x**2,
        hessian=lambda x: torch.diag_embed(2 * x),
        period=None,
    )
    starts = torch.tensor([[3.0, -2.0], [5.0, 4.0]], dtype=torch.float64)
    found = L.find_critical_points(f, starts, steps=3, threshold=1e-8)
    assert found.points.shape[0] == 0 and found.rejected == 2


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: L.sample_indices("wishart", 3, 10), "model in"),
        (lambda: L.sample_indices("goe", 0, 10), "d a positive int"),
        (lambda: L.sample_indices("goe", 2, 0), "trials a positive int"),
    ],
)
def test_bad_arguments_are_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_rejected_starts_say_whether_they_stalled_in_a_flat_region():
    # f(x, y) = y^2 / 2 + 1e-3 x slopes along x, where it has no curvature: minimising ||grad||^2
    # stalls at y = 0 with the whole gradient (1e-3, 0) in the flat direction. f = (x^2 + y^2)/2
    # with no step taken: rejected while its gradient lies where the curvature is largest.
    slope = L.Landscape(
        d=2,
        value=lambda x: x[:, 1] ** 2 / 2 + 1e-3 * x[:, 0],
        grad=lambda x: torch.stack([torch.full_like(x[:, 0], 1e-3), x[:, 1]], dim=1),
        hessian=lambda x: torch.diag(torch.tensor([0.0, 1.0], dtype=x.dtype)).expand(
            x.shape[0], 2, 2
        ),
        period=None,
    )
    starts = torch.tensor([[0.3, 2.0], [-1.0, -0.5]], dtype=torch.float64)
    stalled = L.find_critical_points(slope, starts, steps=30, threshold=1e-6)
    assert stalled.rejected == 2 and stalled.points.shape[0] == 0
    torch.testing.assert_close(stalled.flat_share, torch.ones(2, dtype=torch.float64))
    bowl = L.Landscape(
        d=2,
        value=lambda x: (x**2).sum(dim=1) / 2,
        grad=lambda x: x,
        hessian=lambda x: torch.eye(2, dtype=x.dtype).expand(x.shape[0], 2, 2),
        period=None,
    )
    unconverged = L.find_critical_points(bowl, starts, steps=0, threshold=1e-6)
    assert unconverged.rejected == 2
    torch.testing.assert_close(unconverged.flat_share, torch.zeros(2, dtype=torch.float64))
    assert L.find_critical_points(bowl, starts, steps=5).flat_share.numel() == 0
