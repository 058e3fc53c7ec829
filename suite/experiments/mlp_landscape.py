"""Critical points of real network losses (SCIENCE.md, E3): small tanh MLPs with a mean-squared
loss on a fixed, seeded Gaussian mixture.

Pipeline, for S starts at once:

1. Starts: S initialisations (weights N(0, 1/fan_in), zero biases), each trained by plain gradient
   descent for its own number of steps, spread evenly from none to ``train_steps``, so that the
   critical points found below lie at every level of the loss, not only near the initial one; the
   step stays below the stability limit 2 / lambda_max, which falls as the width grows.
2. Critical points: ``landscape.find_critical_points`` on the loss, that is Levenberg-Marquardt on
   grad L = 0 (the minimisation of ||grad L||^2 with Gauss-Newton matrix H^2), with dense
   Hessians of all S starts by ``kernels.mlp_hvp`` on the identity (one k-batched product each).
   A start counts as a critical point only if its final ||grad L|| is at most ``threshold``
   (``GRAD_THRESHOLD``); the others are rejected and counted: they stopped in flat regions where
   ||grad L||^2 has a positive local minimum, or had not converged. For each, the share of its
   final gradient along near-flat Hessian directions (``landscape.flat_share``) tells which.
3. Index: the Hessian's spectrum at each point by Lanczos on ``kernels.mlp_hvp``
   (``spectral.mlp_index``): a point is a minimum when the smallest Ritz value is at least
   ``-tol``; its index fraction is the stochastic-Lanczos-quadrature estimate of the fraction of
   eigenvalues below ``-tol``. The dense eigendecomposition of the same Hessian is kept beside it
   as the check, and their agreement is reported.

The MSE loss keeps minima at finite parameters (cross-entropy on separable data has none), and
float64 throughout keeps the threshold meaningful. ``tol`` is absolute; the targets are one-hot,
so the Hessian's largest eigenvalues are of order 1.

The parameter layout is that of ``kernels.hvp`` (per layer the weight row-major, then the bias).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hdbench import kernels
from hdbench.suite.experiments import landscape as L
from hdbench.suite.experiments import spectral

D_IN = 4
CLASSES = 3
SAMPLES = 32
# accepted as critical: ||grad L|| <= 1e-6, about 1e-4 of its size at the trained starts. Newton
# steps reach 1e-13 at a non-degenerate point but only about 1e-7 at degenerate minima (flat
# directions of an MLP loss), so a stricter threshold would reject true minima.
GRAD_THRESHOLD = 1e-6
INDEX_TOL = 1e-6
# the starts' gradient-descent step at most this over the Hessian's largest eigenvalue at
# initialisation: below the stability limit 2 / lambda_max, with room for the sharpening that
# training brings
STABLE_STEP = 1.5


def _positive_int(op: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{op}: expected {name} a positive int, got {value!r}")
    return value


def mixture(
    n: int = SAMPLES,
    *,
    dim: int = D_IN,
    classes: int = CLASSES,
    seed: int = 0,
    spread: float = 1.5,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded Gaussian mixture: class centres N(0, spread^2 I), unit-variance clusters,
    ``n // classes`` (or one more) samples per class.

    Returns:
        x (n, dim) float64 inputs and y (n, classes) float64 one-hot targets.

    Raises:
        ValueError: n, dim or classes not positive ints (classes >= 2).
    """
    op = "mixture"
    for name, value in (("n", n), ("dim", dim), ("classes", classes)):
        _positive_int(op, name, value)
    if classes < 2:
        raise ValueError(f"{op}: expected classes >= 2, got {classes}")
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=gen, dtype=torch.float64) * spread
    labels = torch.arange(n) % classes
    x = centres[labels] + torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.one_hot(labels, classes).to(torch.float64)
    return x.to(device), y.to(device)


def parameter_count(width: int, dim: int = D_IN, classes: int = CLASSES) -> int:
    """P of the one-hidden-layer MLP dim -> width -> classes."""
    return (dim + 1) * width + (width + 1) * classes


def width_for(n_params: int, dim: int = D_IN, classes: int = CLASSES) -> int:
    """The hidden width whose MLP has exactly ``n_params`` parameters.

    Raises:
        ValueError: no width gives that count.
    """
    width, rest = divmod(n_params - classes, dim + 1 + classes)
    if isinstance(n_params, bool) or not isinstance(n_params, int) or rest or width < 1:
        raise ValueError(
            f"width_for: expected a parameter count (dim + 1 + classes) * width + classes = "
            f"{dim + 1 + classes} * width + {classes}, got {n_params!r}"
        )
    return width


def unflatten(
    theta: torch.Tensor, sizes: tuple[int, ...]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(..., P) -> [(W_l (..., sizes[l+1], sizes[l]), b_l (..., sizes[l+1]))], views in
    ``kernels.hvp``'s layout; leading dimensions (a batch of S parameter vectors) carried."""
    lead = theta.shape[:-1]
    out, at = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = theta[..., at : at + fan_in * fan_out].reshape(*lead, fan_out, fan_in)
        at += fan_in * fan_out
        out.append((w, theta[..., at : at + fan_out]))
        at += fan_out
    return out


class MLPLoss:
    """The mean MSE loss of a tanh MLP with layer sizes ``sizes`` on (x, y), as a function of
    the flat parameters, batched over S parameter vectors (S, P)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, sizes: tuple[int, ...]) -> None:
        self.x, self.y, self.sizes = x, y, sizes
        self.n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self._eye = torch.eye(self.n_params, dtype=x.dtype, device=x.device)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """(S, P) -> (S,) losses: one batched forward pass for all S parameter vectors."""
        a = self.x.expand(theta.shape[0], *self.x.shape)
        layers = unflatten(theta, self.sizes)
        for i, (w, b) in enumerate(layers):
            a = torch.baddbmm(b[:, None, :], a, w.transpose(1, 2))
            if i < len(layers) - 1:
                a = torch.tanh(a)
        return 0.5 * (a - self.y).pow(2).sum(dim=2).mean(dim=1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """(S, P) -> (S, P) gradients (the losses are independent, so one backward of their
        sum gives every start's gradient)."""
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            return torch.autograd.grad(self.value(t).sum(), t)[0]

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """(S, P) -> (S, P, P) Hessians: per start, H times the identity in one k-batched
        ``kernels.mlp_hvp`` (several times faster than ``torch.func.hessian`` here)."""
        out = [
            kernels.mlp_hvp(
                self.params(t), self.x, self.y, self._eye, activation="tanh", loss="mse"
            )
            for t in theta
        ]
        h = torch.stack(out) if out else theta.new_zeros(0, self.n_params, self.n_params)
        return (h + h.transpose(1, 2)) / 2

    def params(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(P,) -> contiguous (weight, bias) pairs for ``kernels``."""
        return [(w.contiguous(), b.contiguous()) for w, b in unflatten(theta, self.sizes)]

    def landscape(self) -> L.Landscape:
        return L.Landscape(self.n_params, self.value, self.grad, self.hessian, None)


def trained_starts(
    f: MLPLoss, starts: int, *, train_steps: int, lr: float = 0.1, seed: int = 0
) -> torch.Tensor:
    """(starts, P) initialisations, start s trained by ``round(s / (starts - 1) * train_steps)``
    gradient-descent steps (all starts in one batch; a start stops where its count ends).

    Each start's step is the smaller of `lr` and ``STABLE_STEP / lambda_max``, lambda_max its
    Hessian's largest eigenvalue at initialisation: lambda_max grows with the width (about 12 at
    width 32, 36 to 47 at width 128), and a step beyond 2 / lambda_max diverges."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for fan_in, fan_out in zip(f.sizes[:-1], f.sizes[1:], strict=True):
        w = torch.randn(starts, fan_out * fan_in, generator=gen, dtype=torch.float64)
        parts += [w / math.sqrt(fan_in), torch.zeros(starts, fan_out, dtype=torch.float64)]
    theta = torch.cat(parts, dim=1).to(f.x.device)
    if train_steps == 0:
        return theta
    top = torch.linalg.eigvalsh(f.hessian(theta))[:, -1]
    rate = torch.minimum(torch.full_like(top, lr), STABLE_STEP / top.clamp_min(1e-12))[:, None]
    span = torch.linspace(0, train_steps, starts, dtype=torch.float64).round().to(f.x.device)
    for t in range(train_steps):
        moving = (span > t).to(theta.dtype)[:, None]
        theta = theta - rate * moving * f.grad(theta)
    return theta


class MLPCritical(NamedTuple):
    """Critical points of one MLP loss: per point (m of them) its loss, Lanczos index fraction,
    smallest Ritz value and dense index; the starts rejected and the thresholds used."""

    n_params: int
    loss: torch.Tensor
    index_fraction: torch.Tensor
    lambda_min: torch.Tensor
    dense_index: torch.Tensor
    is_minimum: torch.Tensor
    grad_norm: torch.Tensor
    starts: int
    rejected: int
    threshold: float
    tol: float
    rejected_flat_share: torch.Tensor  # (rejected,) see ``landscape.CriticalPoints``


def mlp_critical_points(
    width: int,
    *,
    starts: int = 12,
    train_steps: int = 3000,
    newton_steps: int = 150,
    samples: int = SAMPLES,
    threshold: float = GRAD_THRESHOLD,
    tol: float = INDEX_TOL,
    lanczos_steps: int = 64,
    probes: int = 8,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> MLPCritical:
    """Find and classify the critical points of the MLP D_IN -> width -> CLASSES (tanh, MSE) on
    ``mixture(samples, seed=seed)``, from ``starts`` starts (see the module docstring).

    Returns:
        MLPCritical: per distinct point found (m of them) tensors of shape (m,), on the CPU.

    Raises:
        ValueError: a count that is not a positive int.
    """
    op = "mlp_critical_points"
    for name, value in (
        ("width", width),
        ("starts", starts),
        ("newton_steps", newton_steps),
        ("lanczos_steps", lanczos_steps),
        ("probes", probes),
    ):
        _positive_int(op, name, value)
    if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 0:
        raise ValueError(f"{op}: expected train_steps an int >= 0, got {train_steps!r}")
    x, y = mixture(samples, seed=seed, device=device)
    f = MLPLoss(x, y, (D_IN, width, CLASSES))
    theta0 = trained_starts(f, starts, train_steps=train_steps, seed=seed + 1)
    found = L.find_critical_points(
        f.landscape(), theta0, steps=newton_steps, threshold=threshold, tol=tol
    )
    pts = found.points
    losses = f.value(pts) if pts.shape[0] else pts.new_zeros(0)
    fraction, lam_min = [], []
    for theta in pts:
        idx = spectral.mlp_index(
            f.params(theta),
            x,
            y,
            activation="tanh",
            loss="mse",
            steps=min(lanczos_steps, f.n_params),
            probes=probes,
            seed=seed,
            tol=tol,
        )
        fraction.append(idx.fraction)
        lam_min.append(idx.lambda_min)
    lam = torch.tensor(lam_min, dtype=torch.float64)
    return MLPCritical(
        n_params=f.n_params,
        loss=losses.cpu(),
        index_fraction=torch.tensor(fraction, dtype=torch.float64),
        lambda_min=lam,
        dense_index=found.index.cpu(),
        is_minimum=lam >= -tol,
        grad_norm=found.grad_norm.cpu(),
        starts=starts,
        rejected=found.rejected,
        threshold=threshold,
        tol=tol,
        rejected_flat_share=found.flat_share.cpu(),
    )


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two (m,) samples (average ranks for ties); nan when
    m < 3 or either sample is constant."""
    if a.numel() < 3:
        return math.nan

    def ranks(v: torch.Tensor) -> torch.Tensor:
        order = v.double().argsort()
        r = torch.empty_like(order, dtype=torch.float64)
        r[order] = torch.arange(v.numel(), dtype=torch.float64)
        # ties share the mean of their ranks
        uniq, inverse = torch.unique(v, return_inverse=True)
        sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, r)
        counts = torch.bincount(inverse, minlength=uniq.numel()).double()
        return (sums / counts)[inverse]

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm()).item()
    return float((ra * rb).sum() / denom) if denom > 0 else math.nan
