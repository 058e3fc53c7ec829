"""DeepFool's minimal-L2 search (Moosavi-Dezfooli et al. 2016), batched, with a line search back
to the boundary and tangent-plane corrections.

Linearise the nearest class boundary, step onto it (one fused ``kernels.pgd_step`` in L2 mode,
inactive samples untouched; for a model with an affine first layer, in that layer's outputs,
where the steps run compiled), repeat until the label flips; then a line search back along its
direction to the boundary (``line_search``), and tangent-plane corrections where the boundary is
curved. See ``deepfool``.
"""

from __future__ import annotations

import torch
from torch import nn

from hdbench import kernels
from hdbench.kernels import compiled
from hdbench.suite.experiments.line_search import search_boundary
from hdbench.suite.experiments.linearise import (
    TINY,
    Search,
    check_inputs,
    finish_search,
    linearise,
    linearise_traceable,
    margin_of,
    model_margin,
    nearest_boundary,
    per_sample,
    split_at_stem,
)
from hdbench.suite.experiments.protocols import AffineStem, KeepsGram

BIG = 1e30  # an L2 radius no step reaches: DeepFool's steps are not projected


STEM_WINDOW = 16  # line-search points per call where a point costs the tail alone


BOX_PUSH = (2.0, 4.0)  # how much further an end the box held short is pushed, in turn


def _through_gram(g_z: torch.Tensor, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G g_z (B, H), ||g||^2 (B,)) for coefficients g_z (B, H) of W's rows, G = `gram` = W W^T:
    the stem-output move of a step along the pixel vector g = W^T g_z, and its squared length."""
    g_gram = g_z @ gram
    return g_gram, (g_gram * g_z).sum(dim=1)


def _step_in_stem(
    tail: nn.Module,
    z: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    active: torch.Tensor,
    gram: torch.Tensor,
    overshoot: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One DeepFool step of ``_deepfool_in_stem`` at stem outputs z (B, H) = z0 + a G:
    (margin (B,) at z, active (B,) less the rows flipped there, a and z after the step, which
    moves the rows still active only). G = `gram` (H, H)."""
    lin = linearise_traceable(tail, z, y)
    margin = margin_of(lin.logits, y)
    active = active & ~(margin > 0)
    g_gram, gg = _through_gram(lin.grad, gram)
    # the pixel step (1 + overshoot) (|f| + 1e-6) / ||g|| along g / ||g||, as a multiple of g
    c = torch.where(active & (gg > 0), (lin.margin.abs() + 1e-6) / gg.clamp_min(TINY), 0.0)
    c = c * (1 + overshoot)
    return (
        margin,
        active,
        torch.addcmul(a, c[:, None], lin.grad),
        torch.addcmul(z, c[:, None], g_gram),
    )


def _correction_in_stem(
    tail: nn.Module,
    z0: torch.Tensor,
    z_at: torch.Tensor,
    y: torch.Tensor,
    gram: torch.Tensor,
    overshoot: float,
) -> tuple[torch.Tensor, ...]:
    """A tangent-plane correction of ``_deepfool_in_stem`` at the boundary point's stem output
    z_at (B, H): (g_z, gg = ||g||^2, c, c_end = (1 + overshoot) c, z_end, f_end), the step
    from z0 being ``c_end g_z`` in coefficients of W's rows, to z_end = z0 + c_end G g_z with
    margin f_end."""
    lin = linearise_traceable(tail, z_at, y)
    g_gram, gg = _through_gram(lin.grad, gram)
    c = ((lin.grad * (z_at - z0)).sum(dim=1) - lin.margin) / gg.clamp_min(TINY)
    c_end = c * (1 + overshoot)
    z_end = torch.addcmul(z0, c_end[:, None], g_gram)
    return lin.grad, gg, c, c_end, z_end, margin_of(tail(z_end), y)


# compiled: eager, each is some 50 small operations whose dispatch is most of its time
_step_in_stem_compiled = compiled(_step_in_stem)


_correction_in_stem_compiled = compiled(_correction_in_stem)


class _Corrections:
    """What a DeepFool search and its tangent-plane corrections share for one batch of samples:
    model, stem and tail, labels, settings, and once known the stem's output z0 at the clean
    inputs and the search's margins f0s there (placeholders -1 where no search is wanted)."""

    def __init__(
        self,
        model: nn.Module,
        stem: nn.Module,
        tail: nn.Module,
        y: torch.Tensor,
        *,
        clamp: tuple[float, float] | None,
        overshoot: float,
        tol: float,
        backend: str | None,
    ) -> None:
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
        """``search_boundary`` from z0 to stem outputs z1 (margins f1 there) on `rows`."""
        f1 = torch.where(rows, f1, torch.ones_like(f1))
        return search_boundary(
            self.tail,
            self.z0,
            z1,
            self.y,
            self.f0s,
            f1,
            self.tol,
            window=self.window,
            rows=rows,
            fast=self.fast,
        )

    def l2(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """(B,) pixel L2 norms of x - x0."""
        return kernels.perturbation_norms(x, x0, backend=self.backend).l2

    def in_pixels(
        self,
        x0: torch.Tensor,
        x_adv: torch.Tensor,
        found: torch.Tensor,
        dist: torch.Tensor | None,
        refine: int,
    ) -> None:
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
                f_end = margin_of(self.tail(z_end), self.y)
            usable = found & (c > 0) & (f_end > 0)
            if not bool(usable.any()):
                break
            # back to the boundary along the correction; kept where closer than `dist`
            hi, fhi = self.boundary(z_end, f_end, usable)
            cand_dist = hi * self.l2(end, x0)
            better = usable & (fhi > 0) & (cand_dist < dist)
            if not bool(better.any()):
                break
            torch.lerp(x0, end, per_sample(hi, x0), out=end)
            torch.where(per_sample(better, x0), end, x_adv, out=x_adv)
            dist = torch.where(better, cand_dist, dist)


def _deepfool_in_stem(
    search: _Corrections,
    weight: torch.Tensor,
    x0: torch.Tensor,
    *,
    max_iter: int,
    refine: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
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
    # a stem may keep its Gram matrix between calls
    gram = stem.gram() if isinstance(stem, KeepsGram) else weight @ weight.T

    @torch.no_grad()
    def boxed(
        coef: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The end ``x0 + coef W`` (R, ...) of the `rows` (all by default), clamped, with its
        stem output and margin."""
        start = x0 if rows is None else x0[rows]
        x = torch.addmm(start.flatten(1), coef, weight).view_as(start).clamp_(*clamp)
        z = stem(x)
        return x, z, margin_of(tail(z), y if rows is None else y[rows])

    a, z = torch.zeros_like(z0), z0
    active = torch.ones_like(y, dtype=torch.bool)
    iterations, first = 0, None
    # no autograd graph around the steps (an inference graph when compiled): each takes its own
    # gradient (autograd inside linearise eager, torch.func.vjp while traced)
    with torch.no_grad():
        for _ in range(max_iter):
            margin, active, a_next, z_next = _step_in_stem_compiled(
                tail, z, a, y, active, gram, search.overshoot
            )
            first = margin if first is None else first
            if not bool(active.any()):  # every label flipped at z: the step moved nothing
                break
            iterations += 1
            a, z = a_next, z_next
        else:
            margin = model_margin(tail, z, y)
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
                    tail, z0, z_at, y, gram, search.overshoot
                )
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
        x_adv = torch.lerp(x0, x_end, per_sample(t, x0), out=x_end)
    return x_adv, trivial | (found & (model_margin(search.model, x_adv, y) > 0)), redo, iterations


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
    ``protocols.SplitsAtAffineStem``) has its line searches run on the stem's outputs at the
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
    check_inputs(op, x, y)
    stem, tail = split_at_stem(model, use_stem)
    weight = stem.weight if isinstance(stem, AffineStem) else None
    x0 = x.detach().contiguous()

    def corrections(rows: torch.Tensor | None) -> _Corrections:
        return _Corrections(
            model,
            stem,
            tail,
            y if rows is None else y[rows],
            clamp=clamp,
            overshoot=overshoot,
            tol=tol,
            backend=backend,
        )

    if weight is None:
        x_adv, success, iterations = _deepfool_in_pixels(
            corrections(None), x0, max_iter=max_iter, refine=refine
        )
        return finish_search(x_adv, x0, success, iterations, backend)
    search = corrections(None)
    with torch.no_grad():
        search.z0 = stem(x0)
    x_adv, success, redo, iterations = _deepfool_in_stem(
        search, weight, x0, max_iter=max_iter, refine=refine
    )
    rows = redo.nonzero().squeeze(1)
    if rows.numel():  # iterates the box clamped short of the boundary: DeepFool in pixels
        x_rows, ok, _ = _deepfool_in_pixels(
            corrections(rows), x0[rows], max_iter=max_iter, refine=refine
        )
        x_adv[rows], success[rows] = x_rows, ok
    return finish_search(x_adv, x0, success, iterations, backend)


def _deepfool_in_pixels(
    search: _Corrections,
    x0: torch.Tensor,
    *,
    max_iter: int,
    refine: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
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
        margin = margin_of(logits.detach(), y)
        if first is None:
            first, z0 = margin, z.detach()
        active &= ~(margin > 0)
        if not bool(active.any()):  # every label flipped: no gradient needed at this point
            last, z1 = margin, z.detach()
            break
        iterations += 1
        lin = nearest_boundary(xg, logits, y)
        gnorm = lin.grad.flatten(1).norm(dim=1)
        step = torch.where(gnorm > 0, (lin.margin.abs() + 1e-6) / gnorm.clamp_min(TINY), 0.0)
        xk = kernels.pgd_step(
            xk,
            x0,
            lin.grad,
            step=(1 + overshoot) * step,
            eps=BIG,
            norm="l2",
            clamp=clamp,
            active=active,
            backend=backend,
        )
    with torch.no_grad():
        if first is None:  # max_iter was 0
            z0 = stem(x0)
            first = margin_of(tail(z0), y)
        if last is None:  # max_iter ran out: the final iterate not evaluated yet
            z1 = stem(xk)
            last = margin_of(tail(z1), y)
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
        x_adv = torch.lerp(x0, xk, per_sample(t, x0), out=xk)
        search.in_pixels(x0, x_adv, found, dist, refine)
    # the stem's outputs along a segment equal its outputs at the segment's points up to
    # rounding: the points themselves are checked
    return x_adv, trivial | (found & (model_margin(search.model, x_adv, y) > 0)), iterations
