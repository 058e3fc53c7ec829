"""Minimal adversarial perturbations (SCIENCE.md, E1 and E2), batched, on the fused attack kernels.

- ``linear_distances``: exact distances to the decision boundary of a linear classifier,
  ``L2 = min_j |f_j| / ||w_j||_2`` and ``L-inf = min_j |f_j| / ||w_j||_1``, ``f_j = logit_y -
  logit_j``, ``w_j = W_y - W_j`` (no box constraint: the boundary of the affine map itself).
- ``deepfool``: DeepFool's L2 search (Moosavi-Dezfooli et al. 2016): linearise the nearest class
  boundary, step onto it (one fused ``kernels.pgd_step`` in L2 mode, inactive samples untouched;
  for a model with an affine first layer, in that layer's outputs, where the steps run compiled),
  repeat until the label flips; then a line search back along its direction to the boundary, so
  that the reported point flips the label and a point slightly closer along the same direction
  does not, and tangent-plane corrections where the boundary is curved.
- ``min_linf``: the smallest FGSM or PGD L-inf epsilon per sample, by geometric bisection on a
  per-sample bracket seeded with the linearised distance ``|f| / ||grad f||_1`` (exact for a linear
  model). FGSM steps use ``kernels.fgsm`` (``kernels.linear_fgsm`` for a linear model, logits to
  step in one kernel); PGD steps use ``kernels.pgd_step`` with per-sample early stopping.

Every search returns a ``Search``: the adversarial points, their ``kernels.Norms`` (computed by
``kernels.perturbation_norms``; NaN where the search failed), a success flag per sample and the
iterations run. Points that the model already misclassifies count as found at distance 0. The box
[0, 1] is not imposed unless ``clamp`` is given: the scaling experiment measures the distance to
the decision boundary, which for linear models is then exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

import kernels
from kernels import Norms
from kernels._backend import compiled

BIG = 1e30  # an L2 radius no step reaches: DeepFool's steps are not projected
TINY = 1e-12
STEM_WINDOW = 16  # line-search points per call where a point costs the tail alone
BOX_PUSH = (2.0, 4.0)  # how much further an end the box held short is pushed, in turn


class Search(NamedTuple):
    """Result of a minimal-perturbation search over a batch of B samples."""

    x_adv: torch.Tensor  # (B, ...) the adversarial points (the clean point where none was found)
    norms: Norms  # per-sample norms of x_adv - x, (B,) each; NaN where success is False
    success: torch.Tensor  # (B,) bool
    iterations: int


class Linearisation(NamedTuple):
    """The nearest competing class's margin at x and its input gradient."""

    logits: torch.Tensor  # (B, K)
    margin: torch.Tensor  # (B,) f = logit_j - logit_y (< 0 while x is classified y)
    grad: torch.Tensor  # (B, ...) d f / d x


def _check(op: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError(f"{op}: expected x a floating tensor (B, ...), got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}")  # fmt: skip
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{op}: expected y an int64/int32 tensor, got {getattr(y, 'dtype', y)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{op}: expected y of shape ({x.shape[0]},), got {tuple(y.shape)}")


def linearise(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Linearisation:
    """Logits at x, and for each sample the competing class j nearest in the linearised L2 sense
    (smallest |f_j| / ||grad f_j||), its margin f_j = logit_j - logit_y and gradient.

    Shape: x (B, ...), y (B,); one backward pass per class (one in all for two classes)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        return _nearest(x, model(x), y)


def _nearest(x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> Linearisation:
    """``linearise`` from the logits of a forward pass at x (x requiring grad)."""

    def pullback(cotangent: torch.Tensor, more: bool) -> torch.Tensor:
        # the graph (a CNN's activations at large sides) is freed with the last pullback
        with torch.enable_grad():
            return torch.autograd.grad(logits, x, cotangent, retain_graph=more)[0]

    return _nearest_from(logits.detach(), pullback, y)


def _nearest_from(logits: torch.Tensor, pullback: Callable, y: torch.Tensor) -> Linearisation:
    """``linearise`` from the logits (B, K) at x and their pullback: (cotangents (B, K), more
    pullbacks to come) -> the gradient (B, ...) at x of the cotangents' row-wise products with
    the logits. One pullback per class (one in all for two classes)."""
    k = logits.shape[1]
    fy = logits.gather(1, y.long()[:, None])[:, 0]
    minus_y = -nn.functional.one_hot(y.long(), k).to(logits.dtype)
    if k == 2:
        other = 1 - y.long()
        f = logits.gather(1, other[:, None])[:, 0] - fy
        return Linearisation(logits, f, pullback(minus_y.scatter(1, other[:, None], 1.0), False))
    best_ratio = torch.full_like(fy, math.inf)
    best_f = torch.zeros_like(fy)
    best_g: torch.Tensor | None = None
    for j in range(k):
        f = logits[:, j] - fy
        g = pullback(minus_y.index_fill(1, torch.tensor([j], device=y.device), 1.0), j < k - 1)
        ratio = f.abs() / g.flatten(1).norm(dim=1).clamp_min(TINY)
        ratio = torch.where(y == j, torch.full_like(ratio, math.inf), ratio)
        take = ratio < best_ratio
        best_ratio = torch.where(take, ratio, best_ratio)
        best_f = torch.where(take, f, best_f)
        best_g = torch.where(_per_sample(take, g), g,
                             torch.zeros_like(g) if best_g is None else best_g)  # fmt: skip
    return Linearisation(logits, best_f, best_g)


def _linearise_traceable(tail: nn.Module, z: torch.Tensor, y: torch.Tensor) -> Linearisation:
    """``linearise``, through ``torch.func.vjp`` while ``torch.compile`` traces it (autograd's
    ``grad`` would break the graph); eager, through autograd, which is faster there."""
    if not torch.compiler.is_compiling():
        return linearise(tail, z, y)
    logits, vjp = torch.func.vjp(tail, z)
    return _nearest_from(logits, lambda cotangent, _more: vjp(cotangent)[0], y)


def _through_gram(g_z: torch.Tensor, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G g_z (B, H), ||g||^2 (B,)) for coefficients g_z (B, H) of W's rows, G = `gram` = W W^T:
    the stem-output move of a step along the pixel vector g = W^T g_z, and its squared length."""
    g_gram = g_z @ gram
    return g_gram, (g_gram * g_z).sum(dim=1)


def _step_in_stem(
    tail: nn.Module, z: torch.Tensor, a: torch.Tensor, y: torch.Tensor, active: torch.Tensor,
    gram: torch.Tensor, overshoot: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """One DeepFool step of ``_deepfool_in_stem`` at stem outputs z (B, H) = z0 + a G:
    (margin (B,) at z, active (B,) less the rows flipped there, a and z after the step, which
    moves the rows still active only). G = `gram` (H, H)."""
    lin = _linearise_traceable(tail, z, y)
    margin = _margin_of(lin.logits, y)
    active = active & ~(margin > 0)
    g_gram, gg = _through_gram(lin.grad, gram)
    # the pixel step (1 + overshoot) (|f| + 1e-6) / ||g|| along g / ||g||, as a multiple of g
    c = torch.where(active & (gg > 0), (lin.margin.abs() + 1e-6) / gg.clamp_min(TINY), 0.0)
    c = c * (1 + overshoot)
    return margin, active, torch.addcmul(a, c[:, None], lin.grad), torch.addcmul(z, c[:, None],
                                                                                g_gram)  # fmt: skip


def _correction_in_stem(
    tail: nn.Module, z0: torch.Tensor, z_at: torch.Tensor, y: torch.Tensor, gram: torch.Tensor,
    overshoot: float,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """A tangent-plane correction of ``_deepfool_in_stem`` at the boundary point's stem output
    z_at (B, H): (g_z, gg = ||g||^2, c, c_end = (1 + overshoot) c, z_end, f_end), the step
    from z0 being ``c_end g_z`` in coefficients of W's rows, to z_end = z0 + c_end G g_z with
    margin f_end."""
    lin = _linearise_traceable(tail, z_at, y)
    g_gram, gg = _through_gram(lin.grad, gram)
    c = ((lin.grad * (z_at - z0)).sum(dim=1) - lin.margin) / gg.clamp_min(TINY)
    c_end = c * (1 + overshoot)
    z_end = torch.addcmul(z0, c_end[:, None], g_gram)
    return lin.grad, gg, c, c_end, z_end, _margin_of(tail(z_end), y)


# compiled: eager, each is some 50 small operations whose dispatch is most of its time
_step_in_stem_compiled = compiled(_step_in_stem)
_correction_in_stem_compiled = compiled(_correction_in_stem)


@torch.no_grad()
def _flipped(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(dim=1) != y


def _finish(x_adv: torch.Tensor, x0: torch.Tensor, success: torch.Tensor, it: int, backend):
    norms = kernels.perturbation_norms(x_adv, x0, backend=backend)
    nan = torch.full_like(norms.l2, math.nan)
    norms = Norms(*(torch.where(success, v, nan) for v in norms))
    return Search(x_adv, norms, success, it)


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *[1] * (like.dim() - 1))


def linear_distances(
    weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (L2, L-inf) distances of each x to the decision boundary of ``logits = W x + b``.

    Args:
        weight: (K, D); bias: (K,); x: (B, ...) with D values per sample; y: (B,) labels.

    Returns:
        (l2, linf), float32 (B,) each: ``min_{j != y} (f_y - f_j) / ||W_y - W_j||_{2 | 1}``; 0 for
        a sample already classified otherwise (a negative margin counts as 0).
    """
    op = "linear_distances"
    _check(op, x, y)
    xr = x.flatten(1).to(weight.dtype)
    if weight.dim() != 2 or weight.shape[1] != xr.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: expected weight (K, {xr.shape[1]}) and bias (K,), got "
                         f"{tuple(weight.shape)} and {tuple(bias.shape)}")  # fmt: skip
    logits = xr @ weight.T + bias
    y = y.long()
    gap = (logits.gather(1, y[:, None]) - logits).clamp_min(0)  # (B, K)
    dw = weight[y][:, None, :] - weight[None, :, :]  # (B, K, D): W_y - W_j
    l2 = gap / dw.norm(dim=2).clamp_min(TINY)
    l1 = gap / dw.abs().sum(dim=2).clamp_min(TINY)
    own = torch.nn.functional.one_hot(y, weight.shape[0]).bool()
    inf = torch.tensor(math.inf, dtype=l2.dtype, device=l2.device)
    return (torch.where(own, inf, l2).amin(dim=1).float(),
            torch.where(own, inf, l1).amin(dim=1).float())  # fmt: skip


def _margin_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) max_{j != y} logit_j - logit_y: positive exactly where the label has flipped."""
    fy = logits.gather(1, y.long()[:, None])[:, 0]
    return logits.scatter(1, y.long()[:, None], -math.inf).amax(dim=1) - fy


@torch.no_grad()
def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _margin_of(model(x), y)


def _split(model: nn.Module, use_stem: bool) -> tuple[nn.Module, nn.Module]:
    """(stem, tail) with model(x) == tail(stem(x)) and stem affine: the model's own
    ``affine_stem()`` where it has one and `use_stem`, else (identity, model)."""
    split = getattr(model, "affine_stem", None) if use_stem else None
    return split() if callable(split) else (nn.Identity(), model)


def _along(
    tail: nn.Module, z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor, lift: torch.Tensor
) -> Callable:
    """margin_at(t (R, P), rows (R,) or None for all) -> margins less ``lift`` (R, P) at
    lerp(z0, z1, t) of the stem's outputs z0, z1 (B, ...) at the ends of B segments, P points of
    each segment in one call of the tail: the stem being affine, these are the stem's outputs at
    the same points of the segments in input space."""
    ones = [1] * (z0.dim() - 1)

    def at(t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        r, p = t.shape
        a, b, yr, lr = (z0, z1, y, lift) if rows is None else (z0[rows], z1[rows], y[rows],
                                                                lift[rows])  # fmt: skip
        if p == 1:  # no copy of the segment ends for a single point
            zt, yt = torch.lerp(a, b, t.view(r, *ones)), yr
        else:
            zt = torch.lerp(a[:, None], b[:, None], t.view(r, p, *ones)).flatten(0, 1)
            yt = yr.repeat_interleave(p)
        return _margin(tail, zt, yt).view(r, p) - lr[:, None]

    return at


def _search_boundary(
    tail: nn.Module, z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor,
    f0: torch.Tensor, f1: torch.Tensor, tol: float, *, window: int, rows: torch.Tensor,
    fast: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``_boundary`` (with its `window`, on `rows` (B,) bool) on the segments between stem
    outputs z0 and z1, margins f0 < 0 and f1 > 0 at their ends, aiming a little past the
    boundary: at the margin min(tol/4 |f0|, f1/2) rather than 0, which a margin of rounding size
    could read either way. `fast`: its bracketing stage through ``torch.compile`` (for a small
    tail, where the stage is a few dozen small operations). Returns (hi, margin - lift)."""
    lift = torch.minimum(tol / 4 * f0.abs(), f1 / 2)
    f0, f1 = f0 - lift, f1 - lift
    margin_at = _along(tail, z0, z1, y, lift)
    if not fast:
        return _boundary(margin_at, f0, f1, tol=tol, window=window, rows=rows)
    bracket = _bracket_along_compiled(tail, z0, z1, y, lift, f0, f1, tol, window)
    return _illinois(margin_at, *bracket, tol=tol, rows=rows)


def _boundary(
    margin_at: Callable, f0: torch.Tensor, f1: torch.Tensor, *, tol: float, window: int = 2,
    rows: torch.Tensor | None = None, max_evals: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(hi, f(hi)) (B,): the point at t = hi of each segment flipped (margin f(hi) > 0) and a
    point at or above hi (1 - tol) not, given ``margin_at`` (see ``_along``) and the margins
    f0 < 0 at t = 0 and f1 > 0 at t = 1: ``_bracket``, then ``_illinois`` on `rows` (B,) bool
    (all by default) for at most `max_evals` more evaluations."""
    bracket = _bracket(margin_at, f0, f1, tol=tol, window=window)
    return _illinois(margin_at, *bracket, tol=tol, rows=rows, max_evals=max_evals)


def _false_position(
    lo: torch.Tensor, hi: torch.Tensor, flo: torch.Tensor, fhi: torch.Tensor, margin: float = 1e-3
) -> torch.Tensor:
    """The false-position root of each bracket [lo, hi], `margin` of its width inside it (so
    that every step makes progress)."""
    width = hi - lo
    t = (lo * fhi - hi * flo) / (fhi - flo)
    return torch.minimum(torch.maximum(t, lo + margin * width), hi - margin * width)


def _bracket(
    margin_at: Callable, f0: torch.Tensor, f1: torch.Tensor, *, tol: float, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo, flo, hi, fhi) (B,): a bracket of each segment's crossing after two calls of
    ``margin_at``, a fixed sequence of tensor operations (no data-dependent control flow).

    One false-position step on the two ends, then a `window` of points in ratio 1 + tol centred
    on the false-position root of the bracket it leaves, all in one call: where the margin is
    smooth along the segment (the usual case after DeepFool) the window holds the crossing, and
    its first point past it and the point before bracket it within tol. A wider window holds
    more rows; each of its points costs a pass of the tail."""
    lo, hi = torch.zeros_like(f0), torch.ones_like(f0)
    t = _false_position(lo, hi, f0, f1)
    ft = margin_at(t[:, None])[:, 0]
    up = ft > 0
    hi, fhi = torch.where(up, t, hi), torch.where(up, ft, f1)
    lo, flo = torch.where(up, lo, t), torch.where(up, f0, ft)
    # the window, kept inside the bracket; centred on the root itself, which after an exact
    # first step lies on the bracket's end
    steps = torch.arange(window, dtype=f0.dtype, device=f0.device) - (window - 1) / 2
    ts = _false_position(lo, hi, flo, fhi, 0.0)[:, None] * (1 + tol) ** steps
    ts = torch.minimum(torch.maximum(ts, lo[:, None]), hi[:, None])
    fs = margin_at(ts)
    up = fs > 0
    # the first point past the boundary (argmax of a bool row: its first True) and the one before
    k = torch.where(up.any(dim=1), up.to(torch.uint8).argmax(dim=1), window)[:, None]
    ts = torch.cat([lo[:, None], ts, hi[:, None]], dim=1)  # k: the new lower end, k + 1 the upper
    fs = torch.cat([flo[:, None], fs, fhi[:, None]], dim=1)
    return ts.gather(1, k)[:, 0], fs.gather(1, k)[:, 0], ts.gather(1, k + 1)[:, 0], \
        fs.gather(1, k + 1)[:, 0]  # fmt: skip


def _bracket_along(
    tail: nn.Module, z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor, lift: torch.Tensor,
    f0: torch.Tensor, f1: torch.Tensor, tol: float, window: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``_bracket`` of ``_along(tail, z0, z1, y, lift)``: a function of tensors and the tail,
    which ``torch.compile`` can take whole."""
    return _bracket(_along(tail, z0, z1, y, lift), f0, f1, tol=tol, window=window)


# the same, as one compiled graph: eager, its two tail passes come with some 60 small operations
# whose dispatch, not arithmetic, is most of a search's time
_bracket_along_compiled = compiled(_bracket_along)


def _illinois(
    margin_at: Callable, lo: torch.Tensor, flo: torch.Tensor, hi: torch.Tensor,
    fhi: torch.Tensor, *, tol: float, rows: torch.Tensor | None = None, max_evals: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(hi, f(hi)) (B,) from the brackets [lo, hi] (margins flo <= 0 < fhi) that ``_bracket``
    left: rows still wider than tol go on alone by the Illinois variant of false position, at
    most `max_evals` evaluations; only `rows` (B,) bool, all by default, go on (others carry
    placeholder margins whose search would be wasted)."""
    side = torch.zeros_like(lo)  # +1 / -1: which end moved last (Illinois halves the other)
    f_at_hi = fhi.clone()  # fhi itself may be halved below
    wanted = torch.ones_like(lo, dtype=torch.bool) if rows is None else rows
    for _ in range(max_evals):
        rows = ((hi - lo > tol * hi) & wanted).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        t = _false_position(lo, hi, flo, fhi)[rows]
        ft = margin_at(t[:, None], rows)[:, 0]
        up = ft > 0
        s_rows = side[rows]
        flo[rows] = torch.where(up & (s_rows > 0), flo[rows] / 2, flo[rows])
        fhi[rows] = torch.where(~up & (s_rows < 0), fhi[rows] / 2, fhi[rows])
        hi[rows] = torch.where(up, t, hi[rows])
        fhi[rows] = torch.where(up, ft, fhi[rows])
        f_at_hi[rows] = torch.where(up, ft, f_at_hi[rows])
        lo[rows] = torch.where(up, lo[rows], t)
        flo[rows] = torch.where(up, flo[rows], ft)
        side[rows] = torch.where(up, 1.0, -1.0)
    return hi, f_at_hi


class _Corrections:
    """What a DeepFool search and its tangent-plane corrections share for one batch of samples:
    model, stem and tail, labels, settings, and once known the stem's output z0 at the clean
    inputs and the search's margins f0s there (placeholders -1 where no search is wanted)."""

    def __init__(
        self, model: nn.Module, stem: nn.Module, tail: nn.Module, y: torch.Tensor, *,
        clamp: tuple[float, float] | None, overshoot: float, tol: float, backend: str | None,
    ) -> None:  # fmt: skip
        self.model, self.stem, self.tail, self.y = model, stem, tail, y
        self.clamp, self.overshoot, self.tol, self.backend = clamp, overshoot, tol, backend
        # a point of a line search costs the tail: behind a stem the tail is small, so a wide
        # window of points is cheap and the search's bracketing stage runs compiled
        self.fast = not isinstance(stem, nn.Identity)
        self.window = STEM_WINDOW if self.fast else 2
        self.z0 = self.f0s = torch.empty(0)

    def boundary(
        self, z1: torch.Tensor, f1: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``_search_boundary`` from z0 to stem outputs z1 (margins f1 there) on `rows`."""
        f1 = torch.where(rows, f1, torch.ones_like(f1))
        return _search_boundary(self.tail, self.z0, z1, self.y, self.f0s, f1, self.tol,
                                window=self.window, rows=rows, fast=self.fast)  # fmt: skip

    def l2(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """(B,) pixel L2 norms of x - x0."""
        return kernels.perturbation_norms(x, x0, backend=self.backend).l2

    def in_pixels(
        self, x0: torch.Tensor, x_adv: torch.Tensor, found: torch.Tensor,
        dist: torch.Tensor | None, refine: int,
    ) -> None:  # fmt: skip
        """`refine` corrections of x_adv (B, ...) in place, at clean inputs x0 (B, ...): a
        correction linearises the model at x_adv, steps from x0 onto that tangent plane
        (clamped), searches back to the boundary along the step and keeps the point where it is
        closer than `dist` (B,)."""
        for _ in range(refine):
            lin = linearise(self.model, x_adv, self.y)
            g = lin.grad.flatten(1)
            gg = g.pow(2).sum(dim=1).clamp_min(TINY)
            work = torch.sub(x_adv, x0).flatten(1)  # x_adv - x0, then the correction's end
            along = torch.bmm(g[:, None, :], work[:, :, None])[:, 0, 0]  # <g, x_adv - x0>
            c = ((along - lin.margin) / gg) * (1 + self.overshoot)
            end = torch.addcmul(x0.flatten(1), c[:, None], g, out=work).view_as(x0)
            if self.clamp is not None:
                end.clamp_(*self.clamp)
            with torch.no_grad():
                z_end = self.stem(end)
                f_end = _margin_of(self.tail(z_end), self.y)
            usable = found & (c > 0) & (f_end > 0)
            if not bool(usable.any()):
                break
            # back to the boundary along the correction; kept where closer than `dist`
            hi, fhi = self.boundary(z_end, f_end, usable)
            cand_dist = hi * self.l2(end, x0)
            better = usable & (fhi > 0) & (cand_dist < dist)
            if not bool(better.any()):
                break
            torch.lerp(x0, end, _per_sample(hi, x0), out=end)
            torch.where(_per_sample(better, x0), end, x_adv, out=x_adv)
            dist = torch.where(better, cand_dist, dist)


def _deepfool_in_stem(
    search: _Corrections, weight: torch.Tensor, x0: torch.Tensor, *, max_iter: int, refine: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:  # fmt: skip
    """``deepfool`` for a stem ``z = W x + c`` (W = `weight` (H, D)) with no pixel-sized
    backward pass and one pixel-sized write: the input gradient is ``g = W^T g_z``, g_z the
    tail's gradient at the stem's output, so ``||g||^2 = g_z^T G g_z`` (``G = W W^T``, H x H),
    ``<g, x - x0> = g_z . (z - z0)`` and a point ``x0 + a W`` (a (B, H)) has stem output ``z0 +
    a G`` and distance ``sqrt(a G a^T)`` from x0. DeepFool's steps, the line search back to the
    boundary and the corrections all run on (B, H) tensors, without the box; the chosen
    segment's end ``x0 + a W`` is then written once, clamped as ``pgd_step`` clamps a step, and
    searched again on the segment the box holds (one forward pass for its stem output).

    Returns (x_adv, flipped (checked), redo, iterations): `redo` marks the samples whose written
    end the box (or rounding) left unflipped where its stem-space twin had flipped, for
    ``_deepfool_in_pixels``."""
    stem, tail, y, clamp = search.stem, search.tail, search.y, search.clamp
    z0 = search.z0
    gram_of = getattr(stem, "gram", None)  # a stem may keep its Gram matrix between calls
    gram = gram_of() if callable(gram_of) else weight @ weight.T

    @torch.no_grad()
    def boxed(
        coef: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The end ``x0 + coef W`` (R, ...) of the `rows` (all by default), clamped, with its
        stem output and margin."""
        start = x0 if rows is None else x0[rows]
        x = torch.addmm(start.flatten(1), coef, weight).view_as(start).clamp_(*clamp)
        z = stem(x)
        return x, z, _margin_of(tail(z), y if rows is None else y[rows])

    a, z = torch.zeros_like(z0), z0
    active = torch.ones_like(y, dtype=torch.bool)
    iterations, first = 0, None
    # no autograd graph around the steps (an inference graph when compiled): each takes its own
    # gradient (autograd inside linearise eager, torch.func.vjp while traced)
    with torch.no_grad():
        for _ in range(max_iter):
            margin, active, a_next, z_next = _step_in_stem_compiled(tail, z, a, y, active, gram,
                                                                    search.overshoot)  # fmt: skip
            first = margin if first is None else first
            if not bool(active.any()):  # every label flipped at z: the step moved nothing
                break
            iterations += 1
            a, z = a_next, z_next
        else:
            margin = _margin(tail, z, y)
    first = margin if first is None else first  # max_iter was 0
    trivial = ~(first < 0)  # already misclassified at x: distance 0
    if not iterations:  # no step was taken
        return x0.clone(), trivial, torch.zeros_like(trivial), iterations
    found = (margin > 0) & ~trivial
    if refine or clamp is None:  # the boundary along the unboxed segment
        search.f0s = torch.where(found, first, -torch.ones_like(first))
        hi, fhi = search.boundary(z, margin, found)
        found &= fhi > 0
    if refine:  # a correction's end replaces DeepFool's iterate where its boundary is closer
        dist = hi * _through_gram(a, gram)[1].sqrt()
        z_at = torch.lerp(z0, z, hi[:, None])  # the boundary point's stem output
        for _ in range(refine):
            with torch.no_grad():
                g_z, gg, c, c_end, z_end, f_end = _correction_in_stem_compiled(
                    tail, z0, z_at, y, gram, search.overshoot)  # fmt: skip
            usable = found & (c > 0) & (f_end > 0)
            if not bool(usable.any()):
                break
            hi_end, fhi_end = search.boundary(z_end, f_end, usable)
            dist_end = hi_end * c_end.abs() * gg.sqrt()
            better = usable & (fhi_end > 0) & (dist_end < dist)
            if not bool(better.any()):
                break
            a = torch.where(better[:, None], c_end[:, None] * g_z, a)
            hi, dist = torch.where(better, hi_end, hi), torch.where(better, dist_end, dist)
            z_at = torch.where(better[:, None], torch.lerp(z0, z_end, hi_end[:, None]), z_at)
    if clamp is None:  # the segment searched is the one written
        t = torch.where(found, hi, 0.0)
        x_adv = torch.addmm(x0.flatten(1), t[:, None] * a, weight).view_as(x0)
        redo = torch.zeros_like(found)
    else:  # the box may hold the end short: search again on the segment it holds
        x_end, z_box, f_box = boxed(a)
        for scale in BOX_PUSH:  # ends the box held short, pushed on along their direction
            rows = (found & ~(f_box > 0)).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            x_r, z_r, f_r = boxed(scale * a[rows], rows)
            x_end[rows], z_box[rows], f_box[rows] = x_r, z_r, f_r
        flips = found & (f_box > 0)
        search.f0s = torch.where(flips, first, -torch.ones_like(first))
        hi, fhi = search.boundary(z_box, f_box, flips)
        redo, found = found & ~flips, flips & (fhi > 0)
        t = torch.where(found, hi, 0.0)
        x_adv = torch.lerp(x0, x_end, _per_sample(t, x0), out=x_end)
    return x_adv, trivial | (found & (_margin(search.model, x_adv, y) > 0)), redo, iterations


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_iter: int = 50,
    overshoot: float = 0.02,
    refine: int = 1,
    tol: float = 1e-3,
    clamp: tuple[float, float] | None = None,
    use_stem: bool = True,
    backend: str | None = None,
) -> Search:
    """Minimal L2 perturbation by DeepFool, then onto the boundary along its direction, then
    `refine` tangent-plane corrections.

    DeepFool steps onto the linearised nearest boundary until the label flips (one fused
    ``kernels.pgd_step`` per step, finished samples untouched). A line search (false position)
    then brings the point back along its direction to the boundary. A correction linearises the
    model at that boundary point, takes the point of its tangent plane nearest the clean input
    (the DeepFool step from x, with the slope of the boundary where it is crossed), and keeps it,
    after its own line search, where it is closer: on a curved boundary DeepFool's direction is
    not the shortest.

    A model with ``affine_stem() -> (stem, tail)`` (``model(x) == tail(stem(x))``, stem affine;
    see ``suite.experiments.models``) has its line searches run on the stem's outputs at the
    segment's ends: a point of the search then costs a pass of the tail only, not of the
    pixel-sized first layer. Where the stem also exposes its matrix (``stem.weight``), DeepFool's
    steps, the corrections and their distances are worked in the stem's outputs too, with no
    pixel-sized backward pass (``_deepfool_in_stem``): only the chosen segment's end is written,
    clamped, and searched again on the segment the box holds; a sample whose written end the box
    left short of the boundary even when pushed 4x further is searched again in pixels. There,
    each step, correction and the first stage of each line search is one compiled call (eager
    where ``HDBENCH_TORCH_COMPILE=0``). The reported points are checked by one forward pass of
    the whole model.

    Args:
        model: logits (B, K) from inputs like x; x: (B, ...) clean inputs; y: (B,) true labels.
        max_iter: DeepFool iterations at most; samples stop as soon as their label flips.
        overshoot: each step goes (1 + overshoot) times the linearised distance.
        refine: tangent-plane corrections after the first boundary point.
        tol: relative width of the final bracket along the direction.
        clamp: optional value range kept by every point.
        use_stem: search through the model's affine stem where it has one (False: every point of
            a line search is a forward pass of the whole model).
        backend: backend of the attack kernels.

    Returns:
        ``Search``; each reported point flips the label (checked) and the point (1 - tol) of the
        way to it along the same direction does not.
    """
    op = "deepfool"
    _check(op, x, y)
    stem, tail = _split(model, use_stem)
    weight = getattr(stem, "weight", None)
    x0 = x.detach().contiguous()

    def corrections(rows: torch.Tensor | None) -> _Corrections:
        return _Corrections(model, stem, tail, y if rows is None else y[rows], clamp=clamp,
                            overshoot=overshoot, tol=tol, backend=backend)  # fmt: skip

    if weight is None:
        x_adv, success, iterations = _deepfool_in_pixels(
            corrections(None), x0, max_iter=max_iter, refine=refine
        )
        return _finish(x_adv, x0, success, iterations, backend)
    search = corrections(None)
    with torch.no_grad():
        search.z0 = stem(x0)
    x_adv, success, redo, iterations = _deepfool_in_stem(search, weight, x0, max_iter=max_iter,
                                                         refine=refine)  # fmt: skip
    rows = redo.nonzero().squeeze(1)
    if rows.numel():  # iterates the box clamped short of the boundary: DeepFool in pixels
        x_rows, ok, _ = _deepfool_in_pixels(corrections(rows), x0[rows], max_iter=max_iter,
                                            refine=refine)  # fmt: skip
        x_adv[rows], success[rows] = x_rows, ok
    return _finish(x_adv, x0, success, iterations, backend)


def _deepfool_in_pixels(
    search: _Corrections, x0: torch.Tensor, *, max_iter: int, refine: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:  # fmt: skip
    """``deepfool`` with its steps in pixels: (x_adv, flipped (checked), iterations)."""
    stem, tail, y, clamp = search.stem, search.tail, search.y, search.clamp
    overshoot, backend = search.overshoot, search.backend
    xk = x0  # pgd_step writes new tensors: x0 is never modified
    active = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
    iterations = 0
    # margins and stem outputs at x and at the final iterate, from the loop's own forwards
    first = last = z0 = z1 = None
    for _ in range(max_iter):
        xg = xk.detach().requires_grad_(True)
        with torch.enable_grad():
            z = stem(xg)
            logits = tail(z)
        margin = _margin_of(logits.detach(), y)
        if first is None:
            first, z0 = margin, z.detach()
        active &= ~(margin > 0)
        if not bool(active.any()):  # every label flipped: no gradient needed at this point
            last, z1 = margin, z.detach()
            break
        iterations += 1
        lin = _nearest(xg, logits, y)
        gnorm = lin.grad.flatten(1).norm(dim=1)
        step = torch.where(gnorm > 0, (lin.margin.abs() + 1e-6) / gnorm.clamp_min(TINY), 0.0)
        xk = kernels.pgd_step(xk, x0, lin.grad, step=(1 + overshoot) * step, eps=BIG,
                              norm="l2", clamp=clamp, active=active, backend=backend)  # fmt: skip
    with torch.no_grad():
        if first is None:  # max_iter was 0
            z0 = stem(x0)
            first = _margin_of(tail(z0), y)
        if last is None:  # max_iter ran out: the final iterate not evaluated yet
            z1 = stem(xk)
            last = _margin_of(tail(z1), y)
    trivial = ~(first < 0)  # already misclassified at x: distance 0
    todo = (last > 0) & ~trivial
    search.z0 = z0
    search.f0s = torch.where(todo, first, -torch.ones_like(first))
    hi, fhi = search.boundary(z1, last, todo)
    found = todo & (fhi > 0)
    t = torch.where(found, hi, 0.0)
    # big tensors are few and written in place where they are ours: a fresh (B, ...) buffer
    # per step costs page faults that, at these sizes, rival the arithmetic
    if xk is x0:  # no step was taken
        x_adv = x0.clone()
    else:  # xk came from pgd_step: ours to overwrite
        dist = t * search.l2(xk, x0) if refine else None
        x_adv = torch.lerp(x0, xk, _per_sample(t, x0), out=xk)
        search.in_pixels(x0, x_adv, found, dist, refine)
    # the stem's outputs along a segment equal its outputs at the segment's points up to
    # rounding: the points themselves are checked
    return x_adv, trivial | (found & (_margin(search.model, x_adv, y) > 0)), iterations


def min_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "pgd",
    steps: int = 10,
    rounds: int = 10,
    expand: int = 8,
    clamp: tuple[float, float] | None = None,
    backend: str | None = None,
) -> Search:
    """The smallest L-inf epsilon at which FGSM (one step) or PGD (``steps`` steps of 2.5 eps /
    steps, Madry et al.) flips each sample's label, by per-sample geometric bisection.

    The bracket starts at [e / 4, 4 e], e = |f| / ||grad f||_1 the linearised distance, and grows
    by 4x per side (``expand`` times at most) until its lower end fails and its upper end succeeds;
    ``rounds`` geometric halvings follow (16x bracket -> ratio 16^(2^-rounds)).

    Returns:
        ``Search`` with the adversarial points found at each sample's final upper end; its
        ``norms.linf`` is the reported epsilon's achieved L-inf norm (at most that epsilon).
    """
    op = "min_linf"
    _check(op, x, y)
    if method not in ("fgsm", "pgd"):
        raise ValueError(f"{op}: expected method 'fgsm' or 'pgd', got {method!r}")
    x0 = x.detach().contiguous()
    lin = linearise(model, x0, y)
    affine = model.affine() if method == "fgsm" and hasattr(model, "affine") else None

    def attack(eps: torch.Tensor, todo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flipped (B,), points) at per-sample eps; samples outside `todo` are not attacked."""
        if method == "fgsm":
            if affine is not None:  # logits, softmax, gradient and step in one kernel
                xa = kernels.linear_fgsm(x0, affine[0], affine[1], y, eps, clamp=clamp,
                                         backend=backend)  # fmt: skip
            else:
                xa = kernels.fgsm(x0, lin.grad, eps, clamp=clamp, backend=backend)
            return _flipped(model, xa, y) & todo, xa
        xk, done = x0.clone(), ~todo
        for _ in range(steps):
            g = linearise(model, xk, y).grad
            xk = kernels.pgd_step(xk, x0, g, step=2.5 * eps / steps, eps=eps, norm="linf",
                                  clamp=clamp, active=~done, backend=backend)  # fmt: skip
            done |= _flipped(model, xk, y)
            if bool(done.all()):
                break
        return done & todo, xk

    correct = lin.logits.argmax(dim=1) == y
    est = lin.margin.abs() / lin.grad.flatten(1).abs().sum(dim=1).clamp_min(TINY)
    est = torch.where(correct & torch.isfinite(est) & (est > 0), est, torch.ones_like(est))
    lo, hi = est / 4, est * 4
    ok_hi, x_hi = attack(hi, correct)
    for _ in range(expand):  # grow upward until the upper end succeeds
        grow = correct & ~ok_hi
        if not bool(grow.any()):
            break
        lo, hi = torch.where(grow, hi, lo), torch.where(grow, hi * 4, hi)
        ok, xa = attack(hi, grow)
        x_hi = torch.where(_per_sample(ok, x0), xa, x_hi)
        ok_hi |= ok
    for _ in range(expand):  # grow downward until the lower end fails
        ok_lo, xa = attack(lo, correct & ok_hi)
        if not bool(ok_lo.any()):
            break
        x_hi = torch.where(_per_sample(ok_lo, x0), xa, x_hi)
        hi, lo = torch.where(ok_lo, lo, hi), torch.where(ok_lo, lo / 4, lo)
    for _ in range(rounds):
        mid = (lo * hi).sqrt()
        ok, xa = attack(mid, correct & ok_hi)
        x_hi = torch.where(_per_sample(ok, x0), xa, x_hi)
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    success = ok_hi | ~correct
    x_adv = torch.where(_per_sample(correct & ok_hi, x0), x_hi, x0)
    return _finish(x_adv, x0, success, rounds, backend)


class Diagnostics(NamedTuple):
    """Per-sample input-gradient diagnostics at the clean point, (B,) float32 each."""

    grad_l2: torch.Tensor  # ||grad_x f||_2
    grad_l1: torch.Tensor  # ||grad_x f||_1
    mean_abs_grad: torch.Tensor  # m = mean_i |df/dx_i| (mean |w_i| for a linear model)
    margin: torch.Tensor  # |f|, f the nearest competing class's logit margin


def gradient_diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Diagnostics:
    """||grad f||_2, ||grad f||_1, mean |df/dx_i| and |f| at x (f as in ``linearise``)."""
    _check("gradient_diagnostics", x, y)
    return diagnostics(linearise(model, x, y))


def diagnostics(lin: Linearisation) -> Diagnostics:
    """``gradient_diagnostics`` of a linearisation already at hand (no forward or backward)."""
    g = lin.grad.flatten(1).float()
    l1 = g.abs().sum(dim=1)
    return Diagnostics(g.norm(dim=1), l1, l1 / g.shape[1], lin.margin.abs().float())


def energy_concentration(delta: torch.Tensor, share: float = 0.9) -> torch.Tensor:
    """(B,) fraction of a perturbation's values that carry `share` of its energy sum(delta^2):
    small when the perturbation is concentrated on few pixels, about `share` when it is flat."""
    e = delta.detach().flatten(1).float().pow(2).sort(dim=1, descending=True).values
    cum = e.cumsum(dim=1)
    need = (cum < share * cum[:, -1:]).sum(dim=1) + 1
    return need.float() / e.shape[1]
