"""Pure-torch twins of the fused gradient-sign attack ops in ``kernels/attack.py``.

These are the test oracle, the eager baseline of the benchmarks, and (through ``torch.compile``)
the CPU backend. They compute in float32 and return the input dtype, exactly like the kernels, and
define the semantics the kernels must reproduce:

- ``sign`` keeps NaN: a NaN gradient element gives a NaN output element (torch's own ``sign``
  returns 0 for NaN in float16 on the CPU, which would hide the fault).
- L2 steps use ``g / ||g||_2`` per sample; a zero gradient gives no step; a NaN anywhere in a
  sample's gradient makes that whole sample NaN.
- ``clamp`` keeps NaN (``torch.clamp`` does).

They validate nothing: the public launchers in ``kernels/attack.py`` do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Norms(NamedTuple):
    """Per-sample norms of a perturbation ``delta = x - x0``, each a float32 tensor of shape (B,).

    ``l2_area`` is the area-normalised L2 norm ``sqrt(mean(delta^2)) = l2 / sqrt(D)``, D being the
    number of elements per sample: the image read as a function on the unit square.
    """

    l2: torch.Tensor
    l2_area: torch.Tensor
    linf: torch.Tensor
    l1: torch.Tensor


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, D) in float32."""
    return t.reshape(t.shape[0], -1).float()


def _per_sample(value: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar or (B,) value as a (B, 1) float32 column."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float32).reshape(-1, 1).expand(batch, 1)
    return torch.full((batch, 1), float(value), dtype=torch.float32, device=device)


def _sign(g: torch.Tensor) -> torch.Tensor:
    # g != g, not isnan: inductor's CPU code vectorises the first (4x faster compiled)
    return torch.where(g != g, g, torch.sign(g))


def _clamp(x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    return x if clamp is None else x.clamp(clamp[0], clamp[1])


def perturbation_norms(x: torch.Tensor, x0: torch.Tensor) -> Norms:
    """Norms of ``x - x0`` per sample. Shape: x, x0 (B, ...) -> four (B,) tensors."""
    d = _rows(x) - _rows(x0)
    l2 = torch.linalg.vector_norm(d, dim=1)
    return Norms(l2, l2 / math.sqrt(d.shape[1]), d.abs().amax(dim=1), d.abs().sum(dim=1))


def l2_scales(
    dd: torch.Tensor, dg: torch.Tensor, gg: torch.Tensor, step: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) of the L2 step ``delta' = (d + a g) b`` from per-sample ``||d||^2, <d, g>,
    ||g||^2`` (d = x - x0): ``a = step / ||g||`` (0 where g = 0, NaN where g has a NaN) and ``b``
    the factor onto the eps-ball, from ``||d + a g||^2 = ||d||^2 + 2 a <d, g> + a^2 ||g||^2``.
    Shapes alike: (B,) or (B, 1)."""
    gnorm = gg.sqrt()
    a = step * torch.where(gnorm == 0, torch.zeros_like(gnorm), 1.0 / gnorm)  # NaN stays NaN
    dnorm = (dd + 2 * a * dg + a * a * gg).clamp_min(0).sqrt()
    return a, torch.where(dnorm > eps, eps / dnorm, torch.ones_like(dnorm))


def fgsm(
    x: torch.Tensor,
    grad: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """``clamp(x + eps * sign(grad))``. Shape: x, grad (B, ...); eps scalar or (B,)."""
    xf, g = _rows(x), _rows(grad)
    out = _clamp(xf + _per_sample(eps, x.shape[0], x.device) * _sign(g), clamp)
    return out.to(x.dtype).reshape(x.shape)


def pgd_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    grad: torch.Tensor,
    *,
    step: float | torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "linf",
    clamp: tuple[float, float] | None = (0.0, 1.0),
    active: torch.Tensor | None = None,
    return_norms: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Norms]:
    """One projected gradient step; see ``kernels.attack.pgd_step`` for the contract."""
    batch = x.shape[0]
    xf, x0f, g = _rows(x), _rows(x0), _rows(grad)
    step_c = _per_sample(step, batch, x.device)
    eps_c = _per_sample(eps, batch, x.device)
    if norm == "linf":
        delta = torch.maximum(torch.minimum(xf + step_c * _sign(g) - x0f, eps_c), -eps_c)
    else:
        # the kernel's one statistics pass (see l2_scales): compiled, the CPU backend reads the
        # data twice, not three times (||g||, then ||delta||, then the step)
        d = xf - x0f
        dd, dg, gg = ((u * v).sum(dim=1, keepdim=True) for u, v in ((d, d), (d, g), (g, g)))
        a, b = l2_scales(dd, dg, gg, step_c, eps_c)
        delta = (d + a * g) * b
    out = _clamp(x0f + delta, clamp)
    if active is not None:
        out = torch.where(active.reshape(-1, 1), out, xf)
    out = out.to(x.dtype).reshape(x.shape)
    if return_norms:
        return out, perturbation_norms(out, x0)
    return out


def linear_fgsm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    targeted: bool = False,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """FGSM on the cross-entropy of a linear softmax classifier ``logits = x W^T + b``.

    The input gradient of ``CE(softmax(logits), target)`` is ``(softmax(logits) - onehot) W``;
    untargeted attacks ascend it, targeted ones descend it. Shape: x (B, ...) with D elements per
    sample, weight (K, D), bias (K,) or None, target (B,) -> x_adv like x (and logits (B, K)).
    """
    xf = _rows(x)
    w = weight.float()
    logits = xf @ w.T
    if bias is not None:
        logits = logits + bias.float()
    onehot = torch.nn.functional.one_hot(target.long(), w.shape[0]).float()
    g = (logits.softmax(dim=1) - onehot) @ w
    direction = -_sign(g) if targeted else _sign(g)
    out = _clamp(xf + _per_sample(eps, x.shape[0], x.device) * direction, clamp)
    out = out.to(x.dtype).reshape(x.shape)
    return (out, logits) if return_logits else out
