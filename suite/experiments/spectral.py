"""Spectral tools on a Hessian-vector-product operator: Lanczos, the index by stochastic Lanczos
quadrature, Hutchinson's trace, and the exact spectrum for small P as the check.

An operator is a function ``matvec(V) -> H V`` on a batch of vectors ``V (p, n)``, like
``kernels.mlp_hvp`` with its parameters bound (``mlp_operator``). Every routine runs p Lanczos
chains or probes at once, one batched product per step, and never synchronises with the host
inside its loop (no ``.item()``, no data-dependent Python branch): a breakdown (an exhausted
Krylov space) is handled with ``torch.where``, by restarting the chain on a fresh vector
orthogonal to its basis with a zero coupling, which keeps every Ritz value an eigenvalue's
estimate.

References: Lanczos with full reorthogonalisation (Golub & Van Loan, 10.1); stochastic Lanczos
quadrature (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019); Hutchinson 1989. PyHessian
(Yao et al. 2020) does the same with one vector at a time and a host synchronisation per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from hdbench import kernels
from hdbench.kernels.reference import hvp as hvp_ref

MatVec = Callable[[torch.Tensor], torch.Tensor]


class Lanczos(NamedTuple):
    """Ritz values ``theta (p, m)`` (ascending per chain) and their quadrature weights
    ``weights (p, m)`` (squared first components of T's eigenvectors; each row sums to 1)."""

    theta: torch.Tensor
    weights: torch.Tensor


class Index(NamedTuple):
    """The Hessian's index by stochastic Lanczos quadrature, beside the numbers that say whether
    the point is critical at all: ``fraction`` of negative eigenvalues and its standard error over
    probes, ``count`` = fraction * n, the extreme eigenvalues, the gradient norm and the
    curvature along the gradient ``||H g|| / ||g||``."""

    fraction: float
    fraction_se: float
    count: float
    lambda_min: float
    lambda_max: float
    grad_norm: float
    hg_over_g: float


def lanczos(matvec: MatVec, start: torch.Tensor, steps: int) -> Lanczos:
    """``steps`` Lanczos steps from each row of ``start (p, n)`` (normalised here), with full
    reorthogonalisation (twice, classical Gram-Schmidt): p chains, one ``matvec`` per step."""
    if not isinstance(start, torch.Tensor) or start.dim() != 2:
        got = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
        raise ValueError(f"lanczos: expected start vectors of shape (p, n), got {got}")
    p, n = start.shape
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n:
        raise ValueError(f"lanczos: expected steps an int in [1, {n}], got {steps!r}")
    dtype, device = start.dtype, start.device
    basis = torch.zeros(p, steps, n, dtype=dtype, device=device)
    alpha = torch.zeros(p, steps, dtype=dtype, device=device)
    beta = torch.zeros(p, steps, dtype=dtype, device=device)  # beta[:, j] couples j and j + 1
    q = start / start.norm(dim=1, keepdim=True)
    gen = torch.Generator(device=device).manual_seed(0)
    tiny = torch.finfo(dtype).eps * 100
    for j in range(steps):
        basis[:, j] = q
        w = matvec(q)
        alpha[:, j] = (w * q).sum(dim=1)
        w = w - alpha[:, j, None] * q
        if j > 0:
            w = w - beta[:, j - 1, None] * basis[:, j - 1]
        for _ in range(2):  # full reorthogonalisation against every earlier vector
            w = w - torch.einsum("pj,pjn->pn", torch.einsum("pjn,pn->pj", basis, w), basis)
        if j == steps - 1:
            break
        b = w.norm(dim=1)
        # breakdown: the chain's Krylov space is invariant; restart on a fresh orthogonal vector
        fresh = torch.randn(p, n, dtype=dtype, device=device, generator=gen)
        for _ in range(2):
            fresh = fresh - torch.einsum(
                "pj,pjn->pn", torch.einsum("pjn,pn->pj", basis, fresh), basis
            )
        scale = torch.maximum(alpha[:, : j + 1].abs().amax(dim=1), torch.ones_like(b))
        broke = b <= tiny * scale
        beta[:, j] = torch.where(broke, torch.zeros_like(b), b)
        q = torch.where(
            broke[:, None], fresh / fresh.norm(dim=1, keepdim=True), w / b.clamp_min(tiny)[:, None]
        )
    t = (
        torch.diag_embed(alpha)
        + torch.diag_embed(beta[:, :-1], 1)
        + torch.diag_embed(beta[:, :-1], -1)
    )
    theta, vecs = torch.linalg.eigh(t)
    return Lanczos(theta, vecs[:, 0, :] ** 2)


def rademacher(p: int, n: int, dtype: torch.dtype, device, seed: int = 0) -> torch.Tensor:
    """(p, n) random signs, seeded, drawn on the CPU (the same probes on every device)."""
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (p, n), generator=gen).to(dtype).mul_(2).sub_(1)
    return signs.to(device)


def slq_negative_fraction(
    matvec: MatVec,
    n: int,
    *,
    steps: int,
    probes: int,
    dtype,
    device,
    seed: int = 0,
    tol: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, Lanczos]:
    """Fraction of eigenvalues below ``-tol`` by stochastic Lanczos quadrature: per probe the
    quadrature weight of the Ritz values below it; returns (mean, standard error, Lanczos)."""
    run = lanczos(matvec, rademacher(probes, n, dtype, device, seed), steps)
    per_probe = (run.weights * (run.theta < -tol)).sum(dim=1)
    se = per_probe.std() / math.sqrt(probes) if probes > 1 else torch.zeros(())
    return per_probe.mean(), se, run


def hutchinson_trace(
    matvec: MatVec, n: int, *, probes: int, dtype, device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """tr(H) ~ mean over Rademacher probes of v^T H v; returns (estimate, standard error)."""
    v = rademacher(probes, n, dtype, device, seed)
    samples = (v * matvec(v)).sum(dim=1)
    se = samples.std() / math.sqrt(probes) if probes > 1 else torch.zeros(())
    return samples.mean(), se


def dense_matrix(matvec: MatVec, n: int, dtype, device, chunk: int = 256) -> torch.Tensor:
    """The (n, n) matrix of the operator, ``chunk`` columns per product (small n only)."""
    eye = torch.eye(n, dtype=dtype, device=device)
    cols = [matvec(eye[i : i + chunk]) for i in range(0, n, chunk)]
    h = torch.cat(cols).T
    return (h + h.T) / 2


def flat(params: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The flat parameter vector (``kernels.hvp``'s layout)."""
    return torch.cat([t.reshape(-1) for pair in params for t in pair])


def mlp_operator(params, x, y, **kwargs) -> MatVec:
    """``V (p, P) -> H V`` for the MLP's mean loss, through ``kernels.mlp_hvp``."""
    return lambda v: kernels.mlp_hvp(params, x, y, v, **kwargs)


def mlp_gradient(params, x, y, activation: str = "tanh", loss: str = "ce") -> torch.Tensor:
    """The (P,) gradient of the MLP's mean loss, flat."""
    leaves = [t.detach().requires_grad_(True) for pair in params for t in pair]
    pairs = list(zip(leaves[::2], leaves[1::2], strict=True))
    value = hvp_ref.loss_value(hvp_ref.forward(pairs, x, activation)[0], y, loss)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, leaves)])


def mlp_index(
    params,
    x,
    y,
    *,
    activation: str = "tanh",
    loss: str = "ce",
    steps: int = 64,
    probes: int = 8,
    seed: int = 0,
    tol: float = 0.0,
    backend: str | None = None,
) -> Index:
    """The index of the MLP loss's Hessian at ``params`` by SLQ, with the extreme eigenvalues
    (from the same chains), the gradient norm and ||H g|| / ||g||. One host synchronisation, at
    the end."""
    n = hvp_ref.flat_size(params)
    dtype, device = params[0][0].dtype, params[0][0].device
    op = mlp_operator(params, x, y, activation=activation, loss=loss, backend=backend)
    mean, se, run = slq_negative_fraction(
        op, n, steps=min(steps, n), probes=probes, dtype=dtype, device=device, seed=seed, tol=tol
    )
    g = mlp_gradient(params, x, y, activation, loss)
    hg = op(g[None])[0]
    g_norm = g.norm()
    stats = torch.stack(
        [
            mean,
            se,
            run.theta[:, 0].min(),
            run.theta[:, -1].max(),
            g_norm,
            hg.norm() / g_norm.clamp_min(torch.finfo(dtype).tiny),
        ]
    ).tolist()
    return Index(stats[0], stats[1], stats[0] * n, stats[2], stats[3], stats[4], stats[5])
