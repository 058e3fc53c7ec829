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

``gaussian_field`` draws a stationary Gaussian random field by random Fourier features,
f(x) = sqrt(2/M) sum_m c_m cos(w_m . x + b_m) with c ~ N(0, 1), w ~ N(0, I / ell^2) and
b ~ U(0, 2 pi): covariance exp(-|x - y|^2 / (2 ell^2)) as M grows. ``field_census`` finds its
critical points in a box from many starts and classifies them. Known answers for the checks: in
d = 1 minima and maxima alternate; on a torus (``fourier_field`` with integer frequencies) the
counts by index satisfy sum_k (-1)^k N_k = 0, the torus's Euler characteristic (Morse theory).
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
    # the bound at 0 (or all) successes is exactly 0 (1); rounding would leave 1e-17
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Proportion(p, low, high, successes, trials)


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


# curvature below this fraction of the largest |eigenvalue| counts as flat (``flat_share``)
FLAT_CURVATURE = 1e-3


class CriticalPoints(NamedTuple):
    """Points found (m, d), their gradient norms and indices, and how many of the starts
    converged elsewhere than a critical point (gradient norm above the threshold); for each of
    those, ``flat_share`` (rejected,): the share of its final gradient's norm along Hessian
    eigenvectors of curvature below ``FLAT_CURVATURE`` times the largest. Near 1 the start
    stalled in a gradient-flat region (the gradient lies where the landscape does not curve, so
    Newton steps cannot remove it); near 0 it had simply not converged."""

    points: torch.Tensor
    grad_norm: torch.Tensor
    index: torch.Tensor
    rejected: int
    threshold: float
    flat_share: torch.Tensor


def find_critical_points(
    f: Landscape,
    starts: torch.Tensor,
    *,
    steps: int = 60,
    damping: float = 1e-3,
    threshold: float = 1e-8,
    merge: float = 1e-5,
    tol: float = 0.0,
) -> CriticalPoints:
    """Minimise ||grad f||^2 from every row of ``starts (n, d)`` by Levenberg-Marquardt steps on
    grad f = 0, all starts at once; keep points with ||grad f|| <= threshold, merge those closer
    than ``merge`` (modulo the period), classify by the Hessian's index (the number of its
    eigenvalues below ``-tol``).

    Raises:
        ValueError: ``starts`` is not a (n, f.d) tensor.
    """
    if not isinstance(starts, torch.Tensor) or starts.dim() != 2 or starts.shape[1] != f.d:
        got = tuple(starts.shape) if isinstance(starts, torch.Tensor) else type(starts).__name__
        raise ValueError(f"find_critical_points: expected starts of shape (n, {f.d}), got {got}")
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
    g = f.grad(x)
    g_norm = g.norm(dim=1)
    ok = g_norm <= threshold
    kept, kept_norm = x[ok], g_norm[ok]
    flat = flat_share(f.hessian(x[~ok]), g[~ok]) if bool((~ok).any()) else g_norm.new_zeros(0)
    unique = _first_of_each_cluster(kept, merge, f.period)
    pts = kept[unique]
    if pts.shape[0]:
        index = (torch.linalg.eigvalsh(f.hessian(pts)) < -tol).sum(dim=1)
    else:
        index = torch.zeros(0, dtype=torch.long, device=pts.device)
    return CriticalPoints(pts, kept_norm[unique], index.long(), int((~ok).sum()), threshold, flat)


def flat_share(hessian: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(n,): the share of each gradient's norm (n, d) along the eigenvectors of its Hessian
    (n, d, d) whose |eigenvalue| is below ``FLAT_CURVATURE`` times the largest."""
    lam, vec = torch.linalg.eigh(hessian)
    along = (vec.transpose(1, 2) @ grad[..., None])[..., 0]  # the gradient in the eigenbasis
    flat = lam.abs() <= FLAT_CURVATURE * lam.abs().amax(dim=1, keepdim=True)
    return (along.pow(2) * flat).sum(dim=1).sqrt() / along.norm(dim=1).clamp_min(1e-300)


def _first_of_each_cluster(
    x: torch.Tensor, merge: float, period: torch.Tensor | None, chunk: int = 256
) -> torch.Tensor:
    """Indices of the rows of ``x (m, d)`` with no earlier row within ``merge`` (modulo the
    period): one row per converged point, since starts that reach the same critical point agree
    to far better than ``merge``. Chunked pairwise distances, (chunk, m, d) at a time."""
    m = x.shape[0]
    keep = torch.ones(m, dtype=torch.bool, device=x.device)
    rows = torch.arange(m, device=x.device)
    for lo in range(0, m, chunk):
        diff = x[lo : lo + chunk, None, :] - x[None, :, :]
        if period is not None:
            diff = torch.remainder(diff + period / 2, period) - period / 2
        close = diff.norm(dim=2) <= merge
        earlier = rows[None, :] < rows[lo : lo + chunk, None]
        keep[lo : lo + chunk] = ~(close & earlier).any(dim=1)
    return rows[keep]


# --- Gaussian random fields --------------------------------------------------------------------


def _positive_int(op: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{op}: expected {name} a positive int, got {value!r}")
    return value


def fourier_field(
    w: torch.Tensor, b: torch.Tensor, c: torch.Tensor, period: torch.Tensor | None = None
) -> Landscape:
    """f(x) = sqrt(2/M) sum_m c_m cos(w_m . x + b_m), batched over points x (n, d).

    Args:
        w: (M, d) frequencies.
        b: (M,) phases.
        c: (M,) amplitudes.
        period: (d,) periods when every w_m is a whole multiple of 2 pi / period (a torus), or
            None.

    Returns:
        The Landscape, in float64 on ``w``'s device.

    Raises:
        ValueError: shapes that do not match.
    """
    if w.dim() != 2 or b.shape != (w.shape[0],) or c.shape != (w.shape[0],):
        raise ValueError(
            "fourier_field: expected w (M, d), b (M,), c (M,), got "
            f"{tuple(w.shape)}, {tuple(b.shape)}, {tuple(c.shape)}"
        )
    w, b = w.to(torch.float64), b.to(torch.float64)
    c = c.to(torch.float64) * math.sqrt(2.0 / w.shape[0])
    d = w.shape[1]
    # outer products w_m w_m^T flattened once: the Hessian is then one (n, M) x (M, d^2) product
    ww = (w[:, :, None] * w[:, None, :]).reshape(w.shape[0], d * d)

    def hessian(x: torch.Tensor) -> torch.Tensor:
        return -((torch.cos(x @ w.T + b) * c) @ ww).reshape(-1, d, d)

    return Landscape(
        d=d,
        value=lambda x: torch.cos(x @ w.T + b) @ c,
        grad=lambda x: -(torch.sin(x @ w.T + b) * c) @ w,
        hessian=hessian,
        period=None if period is None else period.to(torch.float64),
    )


def gaussian_field(
    d: int,
    *,
    features: int = 512,
    length: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Landscape:
    """A stationary Gaussian random field on R^d by ``features`` random Fourier features with
    correlation length ``length``: w ~ N(0, I / length^2), b ~ U(0, 2 pi), c ~ N(0, 1), drawn
    on the CPU (the same field on every device).

    Raises:
        ValueError: d or features not a positive int, length not a positive number.
    """
    op = "gaussian_field"
    _positive_int(op, "d", d)
    _positive_int(op, "features", features)
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
        raise ValueError(f"{op}: expected length a positive number, got {length!r}")
    gen = _generator(seed)
    w = torch.randn(features, d, generator=gen, dtype=torch.float64) / length
    b = torch.rand(features, generator=gen, dtype=torch.float64) * 2 * math.pi
    c = torch.randn(features, generator=gen, dtype=torch.float64)
    return fourier_field(w.to(device), b.to(device), c.to(device))


class Census(NamedTuple):
    """The distinct critical points found inside a box (``points``), and how many more were found
    outside it: a census of the box, so that points far from every start do not skew it."""

    points: CriticalPoints
    outside: int


def field_census(
    f: Landscape,
    starts: int,
    *,
    box: float,
    seed: int = 0,
    steps: int = 60,
    threshold: float = 1e-8,
    device: torch.device | str = "cpu",
) -> Census:
    """Critical points of ``f`` (on ``device``) in the box [0, box]^d from ``starts`` uniform
    starts in it (drawn on the CPU).

    Raises:
        ValueError: starts not a positive int or box not a positive number.
    """
    op = "field_census"
    _positive_int(op, "starts", starts)
    if isinstance(box, bool) or not isinstance(box, (int, float)) or not box > 0:
        raise ValueError(f"{op}: expected box a positive number, got {box!r}")
    x0 = torch.rand(starts, f.d, generator=_generator(seed), dtype=torch.float64) * box
    found = find_critical_points(f, x0.to(device), steps=steps, threshold=threshold)
    inside = ((found.points >= 0) & (found.points <= box)).all(dim=1)
    kept = CriticalPoints(
        found.points[inside],
        found.grad_norm[inside],
        found.index[inside],
        found.rejected,
        found.threshold,
        found.flat_share,
    )
    return Census(kept, int((~inside).sum()))
