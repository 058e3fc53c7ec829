"""Saddles against minima (SCIENCE.md, E3): random-matrix models of the Hessian at a critical point,
and a critical-point finder validated on a landscape whose answer is known.

Random-matrix models, dimension d, ``trials`` Hessians drawn in one batch:
- ``"signs"``: d independent eigenvalues of random sign, index ~ Binomial(d, 1/2), P(minimum) =
  2^-d exactly;
- ``"goe"``: the Gaussian orthogonal ensemble (H = (A + A^T) / 2, A with iid N(0, 1) entries),
  eigenvalues by one batched ``eigvalsh``; P(positive definite) falls like exp(-theta d^2) with
  theta = ln(3) / 4 (Dean & Majumdar 2006) and is exactly (2 - sqrt 2) / 4 at d = 2.

The critical-point finder minimises ||grad f||^2 from many starts at once by damped Newton steps
(Levenberg-Marquardt on grad f = 0: dx = -(H^2 + lambda I)^-1 H g, batched ``linalg.solve``),
keeps the points whose gradient norm is below a threshold, merges duplicates, and classifies each
by its Hessian's index. ``torus`` builds f(x) = sum_i sin(a_i x_i + phi_i) on the torus, whose
critical points are known in closed form and whose index distribution over them is exactly
Binomial(d, 1/2): the finder's check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

MODELS = ("signs", "goe")
GOE_THETA = math.log(3) / 4
Z95 = 1.959963984540054


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sample_indices(
    model: str, d: int, trials: int, *, seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(trials,) int64: the index (number of negative eigenvalues) of `trials` random d x d
    Hessians of `model`; random numbers drawn on the CPU, eigenvalues on `device`."""
    if model not in MODELS:
        raise ValueError(f"sample_indices: expected model in {MODELS}, got {model!r}")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"sample_indices: expected d a positive int, got {d!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"sample_indices: expected trials a positive int, got {trials!r}")
    gen = _generator(seed)
    if model == "signs":
        signs = torch.randint(0, 2, (trials, d), generator=gen)
        return signs.sum(dim=1).to(device)
    a = torch.randn(trials, d, d, generator=gen, dtype=torch.float64).to(device)
    eig = torch.linalg.eigvalsh((a + a.transpose(1, 2)) / 2)
    return (eig < 0).sum(dim=1)


class Proportion(NamedTuple):
    """A binomial proportion with its Wilson 95% interval."""

    value: float
    low: float
    high: float
    successes: int
    trials: int


def wilson(successes: int, trials: int, z: float = Z95) -> Proportion:
    """The Wilson score interval: right coverage even at 0 or ``trials`` successes, where the
    normal approximation collapses to a point."""
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return Proportion(p, max(0.0, centre - half), min(1.0, centre + half), successes, trials)


def p_minimum(indices: torch.Tensor) -> Proportion:
    """P(index = 0), the fraction of minima, with its Wilson 95% interval."""
    return wilson(int((indices == 0).sum()), indices.numel())


def index_distribution(indices: torch.Tensor, d: int) -> torch.Tensor:
    """(d + 1,) float64: the fraction of samples with each index 0 .. d."""
    return torch.bincount(indices.cpu(), minlength=d + 1)[: d + 1].double() / indices.numel()


def exact_p_minimum(model: str, d: int) -> float | None:
    """The exact P(minimum) where one is known: 2^-d (signs); 1/2 and (2 - sqrt 2)/4 (GOE, d = 1,
    2); None otherwise."""
    if model == "signs":
        return 2.0**-d
    return {1: 0.5, 2: (2 - math.sqrt(2)) / 4}.get(d)


def decay_rate(ds, p_min, power: int = 1) -> float:
    """theta in P(minimum) ~ C exp(-theta d^power), by least squares on log P over the d with
    P > 0; nan with fewer than two such d."""
    pts = [(float(d) ** power, math.log(p)) for d, p in zip(ds, p_min, strict=True) if p > 0]
    if len(pts) < 2:
        return math.nan
    x = torch.tensor([q[0] for q in pts], dtype=torch.float64)
    y = torch.tensor([q[1] for q in pts], dtype=torch.float64)
    xc = x - x.mean()
    return float(-(xc * (y - y.mean())).sum() / (xc * xc).sum())


# --- critical points ---------------------------------------------------------------------------


class Landscape(NamedTuple):
    """A smooth f: R^d -> R, batched: ``grad (n, d) -> (n, d)`` and ``hessian (n, d) ->
    (n, d, d)``; ``period`` wraps coordinates (a torus) or is None."""

    d: int
    value: Callable[[torch.Tensor], torch.Tensor]
    grad: Callable[[torch.Tensor], torch.Tensor]
    hessian: Callable[[torch.Tensor], torch.Tensor]
    period: torch.Tensor | None


def torus(a: torch.Tensor, phi: torch.Tensor) -> Landscape:
    """f(x) = sum_i sin(a_i x_i + phi_i) for integer frequencies a (d,) on [0, 2 pi)^d."""
    a = a.to(torch.float64)
    phi = phi.to(torch.float64)
    return Landscape(
        d=a.numel(),
        value=lambda x: torch.sin(a * x + phi).sum(dim=-1),
        grad=lambda x: a * torch.cos(a * x + phi),
        hessian=lambda x: torch.diag_embed(-(a * a) * torch.sin(a * x + phi)),
        period=torch.full_like(a, 2 * math.pi),
    )


def torus_critical_points(a: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every critical point of ``torus(a, phi)`` in [0, 2 pi)^d and its index: coordinate i has
    2 a_i critical values, a_i x_i + phi_i = pi/2 + k pi, a maximum in x_i where sin = +1."""
    per_axis = []
    for ai, pi_ in zip(a.tolist(), phi.tolist(), strict=True):
        k = torch.arange(2 * int(ai), dtype=torch.float64)
        x = torch.remainder((math.pi / 2 + k * math.pi - pi_) / ai, 2 * math.pi)
        per_axis.append((x, (k % 2 == 0).long()))  # k even: sin = +1, negative curvature
    points = torch.cartesian_prod(*[p[0] for p in per_axis]).reshape(-1, len(per_axis))
    negative = torch.cartesian_prod(*[p[1] for p in per_axis]).reshape(-1, len(per_axis))
    return points, negative.sum(dim=1)


class CriticalPoints(NamedTuple):
    """Points found (m, d), their gradient norms and indices, and how many of the starts
    converged elsewhere than a critical point (gradient norm above the threshold)."""

    points: torch.Tensor
    grad_norm: torch.Tensor
    index: torch.Tensor
    rejected: int
    threshold: float


def find_critical_points(
    f: Landscape,
    starts: torch.Tensor,
    *,
    steps: int = 60,
    damping: float = 1e-3,
    threshold: float = 1e-8,
    merge: float = 1e-5,
) -> CriticalPoints:
    """Minimise ||grad f||^2 from every row of ``starts (n, d)`` by Levenberg-Marquardt steps on
    grad f = 0, all starts at once; keep points with ||grad f|| <= threshold, merge those closer
    than ``merge`` (modulo the period), classify by the Hessian's index."""
    x = starts.to(torch.float64).clone()
    eye = torch.eye(f.d, dtype=x.dtype, device=x.device)
    lam = torch.full((x.shape[0], 1, 1), damping, dtype=x.dtype, device=x.device)
    for _ in range(steps):
        g = f.grad(x)
        h = f.hessian(x)
        step = torch.linalg.solve(h @ h + lam * eye, (h @ g[..., None]))[..., 0]
        trial = x - step
        better = f.grad(trial).norm(dim=1) < g.norm(dim=1)
        # accepted steps trust the Newton model more, rejected ones less
        x = torch.where(better[:, None], trial, x)
        lam = torch.where(better[:, None, None], lam / 3, lam * 4).clamp(1e-12, 1e6)
    if f.period is not None:
        x = torch.remainder(x, f.period)
    g_norm = f.grad(x).norm(dim=1)
    ok = g_norm <= threshold
    kept, kept_norm = x[ok], g_norm[ok]
    unique: list[int] = []
    for i in range(kept.shape[0]):
        diff = kept[i] - kept[unique] if unique else None
        if diff is not None and f.period is not None:
            diff = torch.remainder(diff + f.period / 2, f.period) - f.period / 2
        if diff is None or bool((diff.norm(dim=1) > merge).all()):
            unique.append(i)
    pts = kept[unique]
    index = (torch.linalg.eigvalsh(f.hessian(pts)) < 0).sum(dim=1) if len(unique) else pts[:, 0]
    return CriticalPoints(pts, kept_norm[unique], index.long(), int((~ok).sum()), threshold)
