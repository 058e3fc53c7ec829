"""What every minimal-norm search shares: the linearisation of the nearest class boundary, the
logit margin, input checks, the finished ``Search``, exact distances for linear models and the
gradient diagnostics of E1 and E2.

- ``linearise``: per sample, the nearest other class ``j`` of the linearised model, ``f_j =
  logit_y - logit_j`` and its input gradient; ``Linearisation``.
- ``linear_distances``: exact distances to the decision boundary of a linear classifier,
  ``L2 = min_j |f_j| / ||w_j||_2`` and ``L-inf = min_j |f_j| / ||w_j||_1``, ``f_j = logit_y -
  logit_j``, ``w_j = W_y - W_j`` (no box constraint: the boundary of the affine map itself).
- ``diagnostics`` / ``gradient_diagnostics``: ||grad f||_2, ||grad f||_1, m = mean |grad f| and
  the margin |f|; ``energy_concentration``: the fraction of pixels carrying a share of a
  perturbation's energy.
- ``split_at_stem``: a model's affine stem and tail (``protocols.SplitsAtAffineStem``), or the
  identity and the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from hdbench import kernels
from hdbench.kernels import Norms
from hdbench.suite.experiments.protocols import SplitsAtAffineStem

TINY = 1e-12


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


def check_inputs(op: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError(
            f"{op}: expected x a floating tensor (B, ...), got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}"
        )
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
        return nearest_boundary(x, model(x), y)


def nearest_boundary(x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> Linearisation:
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
        best_g = torch.where(
            per_sample(take, g), g, torch.zeros_like(g) if best_g is None else best_g
        )
    return Linearisation(logits, best_f, best_g)


def linearise_traceable(tail: nn.Module, z: torch.Tensor, y: torch.Tensor) -> Linearisation:
    """``linearise``, through ``torch.func.vjp`` while ``torch.compile`` traces it (autograd's
    ``grad`` would break the graph); eager, through autograd, which is faster there."""
    if not torch.compiler.is_compiling():
        return linearise(tail, z, y)
    logits, vjp = torch.func.vjp(tail, z)
    return _nearest_from(logits, lambda cotangent, _more: vjp(cotangent)[0], y)


@torch.no_grad()
def label_flipped(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(dim=1) != y


def finish_search(x_adv: torch.Tensor, x0: torch.Tensor, success: torch.Tensor, it: int, backend):
    norms = kernels.perturbation_norms(x_adv, x0, backend=backend)
    nan = torch.full_like(norms.l2, math.nan)
    norms = Norms(*(torch.where(success, v, nan) for v in norms))
    return Search(x_adv, norms, success, it)


def per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
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
    check_inputs(op, x, y)
    xr = x.flatten(1).to(weight.dtype)
    if weight.dim() != 2 or weight.shape[1] != xr.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(
            f"{op}: expected weight (K, {xr.shape[1]}) and bias (K,), got "
            f"{tuple(weight.shape)} and {tuple(bias.shape)}"
        )
    logits = xr @ weight.T + bias
    y = y.long()
    gap = (logits.gather(1, y[:, None]) - logits).clamp_min(0)  # (B, K)
    dw = weight[y][:, None, :] - weight[None, :, :]  # (B, K, D): W_y - W_j
    l2 = gap / dw.norm(dim=2).clamp_min(TINY)
    l1 = gap / dw.abs().sum(dim=2).clamp_min(TINY)
    own = torch.nn.functional.one_hot(y, weight.shape[0]).bool()
    inf = torch.tensor(math.inf, dtype=l2.dtype, device=l2.device)
    return (
        torch.where(own, inf, l2).amin(dim=1).float(),
        torch.where(own, inf, l1).amin(dim=1).float(),
    )


def margin_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) max_{j != y} logit_j - logit_y: positive exactly where the label has flipped."""
    fy = logits.gather(1, y.long()[:, None])[:, 0]
    return logits.scatter(1, y.long()[:, None], -math.inf).amax(dim=1) - fy


@torch.no_grad()
def model_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return margin_of(model(x), y)


def split_at_stem(model: nn.Module, use_stem: bool) -> tuple[nn.Module, nn.Module]:
    """(stem, tail) with model(x) == tail(stem(x)) and stem affine: the model's own
    ``affine_stem()`` where it has one and `use_stem`, else (identity, model)."""
    if use_stem and isinstance(model, SplitsAtAffineStem):
        return model.affine_stem()
    return nn.Identity(), model


class Diagnostics(NamedTuple):
    """Per-sample input-gradient diagnostics at the clean point, (B,) float32 each."""

    grad_l2: torch.Tensor  # ||grad_x f||_2
    grad_l1: torch.Tensor  # ||grad_x f||_1
    mean_abs_grad: torch.Tensor  # m = mean_i |df/dx_i| (mean |w_i| for a linear model)
    margin: torch.Tensor  # |f|, f the nearest competing class's logit margin


def gradient_diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Diagnostics:
    """||grad f||_2, ||grad f||_1, mean |df/dx_i| and |f| at x (f as in ``linearise``)."""
    check_inputs("gradient_diagnostics", x, y)
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
