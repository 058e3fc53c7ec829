"""Input validation shared by every public op.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong value or
shape) with a message of the form ``"<op>: expected <what>, got <value>"`` so a user can tell which
call failed and why without reading a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fail(op: str, expected: str, got: object, exc: type[Exception] = ValueError) -> None:
    raise exc(f"{op}: expected {expected}, got {got}")


def tensor(op: str, name: str, x: object, *, min_dim: int = 1, float_only: bool = True) -> None:
    """`x` is a non-empty floating tensor of at least `min_dim` dimensions with a batch axis."""
    if not isinstance(x, torch.Tensor):
        fail(op, f"{name} to be a torch.Tensor", type(x).__name__, TypeError)
    if float_only and x.dtype not in FLOAT_DTYPES:
        fail(op, f"{name} of dtype float32, float16 or bfloat16", x.dtype, TypeError)
    if x.dim() < min_dim:
        fail(op, f"{name} with at least {min_dim} dimension(s)", f"shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        fail(op, f"{name} with a non-empty batch", f"shape {tuple(x.shape)}")
    if x.numel() == 0:
        fail(op, f"{name} with at least one element per sample", f"shape {tuple(x.shape)}")


def same_as(op: str, name: str, y: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """`y` has the shape, dtype and device of `ref` (float64 too, where `ref` is float64)."""
    tensor(op, name, y, float_only=ref.dtype != torch.float64)
    if y.shape != ref.shape:
        fail(op, f"{name} of shape {tuple(ref.shape)} like {ref_name}", f"{tuple(y.shape)}")
    if y.dtype != ref.dtype:
        fail(op, f"{name} of dtype {ref.dtype} like {ref_name}", y.dtype, TypeError)
    if y.device != ref.device:
        fail(op, f"{name} on {ref.device} like {ref_name}", y.device)


def scalar_or_per_sample(
    op: str, name: str, value: object, batch: int, device: torch.device
) -> torch.Tensor:
    """A finite, non-negative scalar or a `(B,)` tensor of them, returned as `(B,)` float32.

    Checking a tensor's values costs one host synchronisation; callers that loop on the GPU pass
    Python floats or accept that cost once per call.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        fail(op, f"{name} to be a float or a (B,) tensor", type(value).__name__, TypeError)
    if isinstance(value, torch.Tensor):
        if value.dtype not in FLOAT_DTYPES + (torch.float64,):
            fail(op, f"{name} of a floating dtype", value.dtype, TypeError)
        if value.dim() == 0:
            value = value.reshape(1).expand(batch)
        if value.shape != (batch,):
            fail(op, f"{name} of shape () or ({batch},)", f"shape {tuple(value.shape)}")
        if value.device != device:
            fail(op, f"{name} on {device}", value.device)
        bad = ~torch.isfinite(value) | (value < 0)
        if bool(bad.any()):
            fail(op, f"{name} finite and >= 0", f"{value[bad][0].item()}")
        return value.to(torch.float32).contiguous()
    if not math.isfinite(value) or value < 0:
        fail(op, f"{name} finite and >= 0", value)
    return torch.full((batch,), float(value), dtype=torch.float32, device=device)


def clamp_range(op: str, clamp: object) -> tuple[float, float] | None:
    """`None` (no clamp) or a pair `(lo, hi)` of finite floats with lo <= hi."""
    if clamp is None:
        return None
    if not isinstance(clamp, Sequence) or isinstance(clamp, str) or len(clamp) != 2:
        fail(op, "clamp to be None or a pair (lo, hi)", repr(clamp), TypeError)
    lo, hi = clamp
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail(op, "clamp bounds to be floats", repr(clamp), TypeError)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        fail(op, "clamp = (lo, hi) finite with lo <= hi", repr(tuple(clamp)))
    return float(lo), float(hi)


def choice(op: str, name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        fail(op, f"{name} in {tuple(allowed)}", repr(value))
    return value  # type: ignore[return-value]


def active_mask(op: str, active: object, batch: int, device: torch.device) -> torch.Tensor | None:
    """`None` or a boolean `(B,)` tensor on the data's device."""
    if active is None:
        return None
    if not isinstance(active, torch.Tensor) or active.dtype != torch.bool:
        got = active.dtype if isinstance(active, torch.Tensor) else type(active).__name__
        fail(op, "active to be None or a torch.bool tensor of shape (B,)", got, TypeError)
    if active.shape != (batch,):
        fail(op, f"active of shape ({batch},)", f"shape {tuple(active.shape)}")
    if active.device != device:
        fail(op, f"active on {device}", active.device)
    return active.contiguous()


def labels(op: str, name: str, y: object, batch: int, classes: int, device: torch.device) -> None:
    """An integer `(B,)` tensor of class indices in [0, classes)."""
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
        fail(op, f"{name} to be an int64 or int32 tensor of class indices", got, TypeError)
    if y.shape != (batch,):
        fail(op, f"{name} of shape ({batch},)", f"shape {tuple(y.shape)}")
    if y.device != device:
        fail(op, f"{name} on {device}", y.device)
    if bool(((y < 0) | (y >= classes)).any()):
        fail(op, f"{name} in [0, {classes})", f"values in [{int(y.min())}, {int(y.max())}]")
