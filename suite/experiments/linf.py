"""The smallest FGSM or PGD L-inf epsilon per sample, by geometric bisection on a per-sample
bracket seeded with the linearised distance ``|f| / ||grad f||_1`` (exact for a linear model).
FGSM steps use ``kernels.fgsm`` (``kernels.linear_fgsm`` for a linear model, logits to step in
one kernel); PGD steps use ``kernels.pgd_step`` with per-sample early stopping. The bisection
assumes success is monotone in epsilon, which holds exactly for FGSM on a linear model.
"""

from __future__ import annotations

import torch
from torch import nn

from hdbench import kernels
from hdbench.suite.experiments.linearise import (
    TINY,
    Search,
    check_inputs,
    finish_search,
    label_flipped,
    linearise,
    per_sample,
)
from hdbench.suite.experiments.protocols import Affine


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
    check_inputs(op, x, y)
    if method not in ("fgsm", "pgd"):
        raise ValueError(f"{op}: expected method 'fgsm' or 'pgd', got {method!r}")
    x0 = x.detach().contiguous()
    lin = linearise(model, x0, y)
    affine = model.affine() if method == "fgsm" and isinstance(model, Affine) else None

    def attack(eps: torch.Tensor, todo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flipped (B,), points) at per-sample eps; samples outside `todo` are not attacked."""
        if method == "fgsm":
            if affine is not None:  # logits, softmax, gradient and step in one kernel
                xa = kernels.linear_fgsm(
                    x0, affine[0], affine[1], y, eps, clamp=clamp, backend=backend
                )
            else:
                xa = kernels.fgsm(x0, lin.grad, eps, clamp=clamp, backend=backend)
            return label_flipped(model, xa, y) & todo, xa
        xk, done = x0.clone(), ~todo
        for _ in range(steps):
            g = linearise(model, xk, y).grad
            xk = kernels.pgd_step(
                xk,
                x0,
                g,
                step=2.5 * eps / steps,
                eps=eps,
                norm="linf",
                clamp=clamp,
                active=~done,
                backend=backend,
            )
            done |= label_flipped(model, xk, y)
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
        x_hi = torch.where(per_sample(ok, x0), xa, x_hi)
        ok_hi |= ok
    for _ in range(expand):  # grow downward until the lower end fails
        ok_lo, xa = attack(lo, correct & ok_hi)
        if not bool(ok_lo.any()):
            break
        x_hi = torch.where(per_sample(ok_lo, x0), xa, x_hi)
        hi, lo = torch.where(ok_lo, lo, hi), torch.where(ok_lo, lo / 4, lo)
    for _ in range(rounds):
        mid = (lo * hi).sqrt()
        ok, xa = attack(mid, correct & ok_hi)
        x_hi = torch.where(per_sample(ok, x0), xa, x_hi)
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    success = ok_hi | ~correct
    x_adv = torch.where(per_sample(correct & ok_hi, x0), x_hi, x0)
    return finish_search(x_adv, x0, success, rounds, backend)
