"""Hessian-vector products of MLPs: with respect to all parameters, for k vectors at once (a
Hessian-matrix product), and with respect to the input, batched over samples.

The MLP, the flat parameter layout and the losses are those of ``kernels/reference/hvp.py``:
``params`` is a list of ``(weight (d_l, d_{l-1}), bias (d_l,))``; the flat vector of length P holds,
layer by layer, the weight row-major and then the bias (``parameters_to_vector`` order).

Algorithm: Pearlmutter's R-operator (forward-over-reverse). One shared forward pass (cuBLAS through
torch) caches every layer's input a_{l-1}, act'(z_l) and act''(z_l); the k-batched R-forward and
R-backward passes are all of one shape, ``C[k] = A1[k] B1[k] + A2[k] B2[k]`` followed by an
elementwise epilogue, and run in one Triton kernel (``_dual_gemm_kernel``) each:

- R-forward: Rz_l = a_{l-1} V_l^T + Ra_{l-1} W_l^T + vb_l; the epilogue stores Rz_l and
  Ra_l = act'(z_l) Rz_l from the same registers;
- R-backward: R(delta_{l-1}) = (R(delta_l) W_l + delta_l V_l) act'(z_{l-1})
  + (delta_l W_l) act''(z_{l-1}) Rz_{l-1}, one kernel with the two products and both terms of
  the epilogue;
- the weight block of the product: R(delta_l)^T a_{l-1} + delta_l^T Ra_{l-1}, written straight
  into its slice of the (k, P) output through strides.

Operands shared by the k vectors (W_l, a_{l-1}, delta_l) have batch stride 0 and are read from
cache, so k vectors cost far less than k products. With ``gauss_newton=True`` the second products
and the act'' term drop out: the result is the generalised Gauss-Newton product J^T H_loss J v,
positive semi-definite for both losses, at about half the cost.

Accuracy: arithmetic and accumulation are fp32. fp32 parameters use exact fp32 products by default
(``precision="ieee"``): the tests hold them to the fp32 tolerance of an fp64 Hessian (1e-5 of the
product's largest entry). ``precision="tf32"`` feeds the tensor cores TF32 inputs (10-bit
mantissa), and bf16 parameters give bf16 operands and intermediates with fp32 accumulation; their
error follows the inputs' rounding (about 1e-3 and 1e-2 relative expected). The GPU-only test
bounds them at 5e-3 and 3e-2 relative (Frobenius); neither has run on a GPU yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hdbench.kernels import _checks
from hdbench.kernels._backend import compiled, resolve
from hdbench.kernels.reference import hvp as ref
from hdbench.kernels.reference.hvp import ACTIVATIONS, LOSSES, Params

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton wheel for this platform: the torch backend serves every call
    triton = None

PRECISIONS = ("ieee", "tf32")
BLOCK_M, BLOCK_N, BLOCK_K = 32, 32, 32


if triton is not None:

    @triton.jit
    def _dual_gemm_kernel(
        out_ptr,
        pre_ptr,
        a1_ptr,
        b1_ptr,
        a2_ptr,
        b2_ptr,
        bias_ptr,
        e1_ptr,
        e2_ptr,
        e3_ptr,
        M,
        N,
        K,
        s_a1b,
        s_a1m,
        s_a1k,
        s_b1b,
        s_b1k,
        s_b1n,
        s_a2b,
        s_a2m,
        s_a2k,
        s_b2b,
        s_b2k,
        s_b2n,
        s_biasb,
        s_e1b,
        s_e2b,
        s_e3b,
        s_ob,
        s_om,
        s_pb,
        SECOND: tl.constexpr,
        BIAS: tl.constexpr,
        PRE: tl.constexpr,
        E1: tl.constexpr,
        E23: tl.constexpr,
        PRECISION: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
    ):
        """out[b] = epi(A1[b] @ B1[b] (+ A2[b] @ B2[b]) (+ bias[b])), epi(c) = c (* E1[b])
        (+ E2[b] * E3[b]); PRE also stores c before the epilogue. E tensors are (M, N)
        row-major per batch (batch stride 0 when shared); out has row stride s_om, unit columns.
        """
        b = tl.program_id(2).to(tl.int64)
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        cols = tl.program_id(1) * BN + tl.arange(0, BN)
        rmask = rows < M
        cmask = cols < N
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            ks = k0 + tl.arange(0, BK)
            kmask = ks < K
            a = tl.load(
                a1_ptr + b * s_a1b + rows[:, None] * s_a1m + ks[None, :] * s_a1k,
                mask=rmask[:, None] & kmask[None, :],
                other=0.0,
            )
            w = tl.load(
                b1_ptr + b * s_b1b + ks[:, None] * s_b1k + cols[None, :] * s_b1n,
                mask=kmask[:, None] & cmask[None, :],
                other=0.0,
            )
            acc = tl.dot(a, w, acc, input_precision=PRECISION)
            if SECOND:
                a = tl.load(
                    a2_ptr + b * s_a2b + rows[:, None] * s_a2m + ks[None, :] * s_a2k,
                    mask=rmask[:, None] & kmask[None, :],
                    other=0.0,
                )
                w = tl.load(
                    b2_ptr + b * s_b2b + ks[:, None] * s_b2k + cols[None, :] * s_b2n,
                    mask=kmask[:, None] & cmask[None, :],
                    other=0.0,
                )
                acc = tl.dot(a, w, acc, input_precision=PRECISION)
        mask = rmask[:, None] & cmask[None, :]
        if BIAS:
            acc += tl.load(bias_ptr + b * s_biasb + cols, mask=cmask, other=0.0).to(tl.float32)[
                None, :
            ]
        tile = rows[:, None] * N + cols[None, :]
        if PRE:
            tl.store(pre_ptr + b * s_pb + tile, acc.to(pre_ptr.dtype.element_ty), mask=mask)
        if E1:
            acc = acc * tl.load(e1_ptr + b * s_e1b + tile, mask=mask, other=0.0).to(tl.float32)
        if E23:
            e2 = tl.load(e2_ptr + b * s_e2b + tile, mask=mask, other=0.0).to(tl.float32)
            e3 = tl.load(e3_ptr + b * s_e3b + tile, mask=mask, other=0.0).to(tl.float32)
            acc += e2 * e3
        out_offs = b * s_ob + rows[:, None] * s_om + cols[None, :]
        tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _bmk(t: torch.Tensor, batch: int) -> tuple[torch.Tensor, int, int, int]:
    """(tensor, batch stride, row stride, column stride) of a (M, K) shared or (batch, M, K)
    batched operand; a shared operand gets batch stride 0."""
    if t.dim() == 2:
        return t, 0, t.stride(0), t.stride(1)
    if t.shape[0] != batch:
        raise RuntimeError(f"internal: operand batch {t.shape[0]} != {batch}")
    return t, t.stride(0), t.stride(1), t.stride(2)


def _ebatch(t: torch.Tensor | None, m: int, n: int) -> tuple[torch.Tensor | None, int]:
    """An epilogue operand, contiguous (M, N) or (batch, M, N): (tensor, batch stride)."""
    if t is None:
        return None, 0
    t = t.contiguous()
    return t, (0 if t.dim() == 2 else m * n)


def dual_gemm(
    a1: torch.Tensor,
    b1: torch.Tensor,
    a2: torch.Tensor | None = None,
    b2: torch.Tensor | None = None,
    *,
    batch: int,
    bias: torch.Tensor | None = None,
    e1: torch.Tensor | None = None,
    e2: torch.Tensor | None = None,
    e3: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    pre: bool = False,
    precision: str = "ieee",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(epi(c), c)`` with c = a1 @ b1 (+ a2 @ b2) (+ bias), epi(c) = c (* e1) (+ e2 * e3), over
    `batch`; every operand (M, K) / (K, N) / (M, N) shared or with a leading batch axis; any
    strides for a and b (pass transposed views). `out` (batch, M, N) may be a strided view whose
    columns are unit-stride (a slice of a larger buffer). The second result is c when `pre`."""
    m, k = a1.shape[-2:]
    n = b1.shape[-1]
    dtype = b1.dtype if b1.dtype == a1.dtype else torch.float32
    if out is None:
        out = torch.empty((batch, m, n), dtype=dtype, device=a1.device)
    pre_t = torch.empty((batch, m, n), dtype=dtype, device=a1.device) if pre else None
    a1, s_a1b, s_a1m, s_a1k = _bmk(a1, batch)
    b1, s_b1b, s_b1k, s_b1n = _bmk(b1, batch)
    second = a2 is not None
    a2, s_a2b, s_a2m, s_a2k = _bmk(a2, batch) if second else (a1, 0, 0, 0)
    b2, s_b2b, s_b2k, s_b2n = _bmk(b2, batch) if second else (b1, 0, 0, 0)
    if bias is not None:
        bias = bias.contiguous()
    e1, s_e1b = _ebatch(e1, m, n)
    e2, s_e2b = _ebatch(e2, m, n)
    e3, s_e3b = _ebatch(e3, m, n)
    dummy = out
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N), batch)
    _dual_gemm_kernel[grid](
        out,
        pre_t if pre else dummy,
        a1,
        b1,
        a2,
        b2,
        bias if bias is not None else dummy,
        e1 if e1 is not None else dummy,
        e2 if e2 is not None else dummy,
        e3 if e3 is not None else dummy,
        m,
        n,
        k,
        s_a1b,
        s_a1m,
        s_a1k,
        s_b1b,
        s_b1k,
        s_b1n,
        s_a2b,
        s_a2m,
        s_a2k,
        s_b2b,
        s_b2k,
        s_b2n,
        bias.stride(0) if bias is not None and bias.dim() == 2 else 0,
        s_e1b,
        s_e2b,
        s_e3b,
        out.stride(0),
        out.stride(1),
        m * n,
        SECOND=second,
        BIAS=bias is not None,
        PRE=pre,
        E1=e1 is not None,
        E23=e2 is not None,
        PRECISION=precision,
        BM=BLOCK_M,
        BN=BLOCK_N,
        BK=BLOCK_K,
        num_warps=4,
    )
    return out, pre_t


def _mlp_hvp_triton(params, x, y, v, activation, loss, gauss_newton, precision):
    k = v.shape[0]
    vs = ref.split(v, params)
    logits, cache = ref.forward(params, x, activation)
    n_layers = len(params)
    r_z: list[torch.Tensor] = []
    r_a: list[torch.Tensor | None] = []
    prev = None
    for (w, _), (vw, vb), (a, _z, d1, _d2) in zip(params, vs, cache, strict=True):
        second = {} if prev is None else {"a2": prev, "b2": w.T}
        if d1 is None:  # the logits: no activation
            rz, _ = dual_gemm(
                a, vw.transpose(1, 2), **second, batch=k, bias=vb, precision=precision
            )
            r_z.append(rz)
            r_a.append(None)
        else:
            ra, rz = dual_gemm(
                a,
                vw.transpose(1, 2),
                **second,
                batch=k,
                bias=vb,
                e1=d1,
                pre=True,
                precision=precision,
            )
            r_z.append(rz)
            r_a.append(ra)
            prev = ra
    g, r_delta = ref.loss_grad_and_hessian_product(logits, y, r_z[-1], loss)
    delta = g
    p_total = v.shape[1]
    out = torch.empty((k, p_total), dtype=v.dtype, device=v.device)
    offsets, at = [], 0
    for w, b in params:
        offsets.append(at)
        at += w.numel() + b.numel()
    for i in range(n_layers - 1, -1, -1):
        w, b = params[i]
        a = cache[i][0]
        d_out, d_in = w.shape
        w_slice = out[:, offsets[i] : offsets[i] + w.numel()].view(k, d_out, d_in)
        second = {}
        if not gauss_newton and i > 0:
            second = {"a2": delta.T, "b2": r_a[i - 1]}
        dual_gemm(r_delta.transpose(1, 2), a, **second, batch=k, out=w_slice, precision=precision)
        out[:, offsets[i] + w.numel() : offsets[i] + w.numel() + b.numel()] = r_delta.sum(dim=1)
        if i == 0:
            break
        _, _, d1, d2 = cache[i - 1]
        back = delta @ w
        if gauss_newton:
            r_delta, _ = dual_gemm(r_delta, w, batch=k, e1=d1, precision=precision)
        else:
            r_delta, _ = dual_gemm(
                r_delta,
                w,
                delta,
                vs[i][0],
                batch=k,
                e1=d1,
                e2=back * d2,
                e3=r_z[i - 1],
                precision=precision,
            )
        delta = back * d1
    return out


def _input_hvp_triton(params, x, y, v, activation, precision):
    logits, cache = ref.forward(params, x, activation)
    _, j = ref.margin(params, x, y, activation)
    r_z, r_a = [], v
    for (w, _), (_a, _z, d1, _d2) in zip(params, cache, strict=True):
        if d1 is None:
            break  # the logits' R is not needed: the margin is linear in them
        ra, rz = dual_gemm(r_a, w.T, batch=1, e1=d1, pre=True, precision=precision)
        r_z.append(rz[0])
        r_a = ra[0]
    classes = logits.shape[1]
    eye = torch.eye(classes, dtype=x.dtype, device=x.device)
    delta = eye[y] - eye[j]
    r_delta = None
    for i in range(len(params) - 1, 0, -1):
        w = params[i][0]
        _, _, d1, d2 = cache[i - 1]
        back = delta @ w
        if r_delta is None:  # R(delta_L) = 0: only the act'' term
            r_delta = back * d2 * r_z[i - 1]
        else:
            r_delta = dual_gemm(
                r_delta, w, batch=1, e1=d1, e2=back * d2, e3=r_z[i - 1], precision=precision
            )[0][0]
        delta = back * d1
    if r_delta is None:  # a linear model has no curvature
        return torch.zeros_like(v)
    return dual_gemm(r_delta, params[0][0], batch=1, precision=precision)[0][0]


# --------------------------------------------------------------------------------------------
# validation and public ops
# --------------------------------------------------------------------------------------------


def _check_params(op: str, params: object) -> Params:
    if isinstance(params, torch.Tensor) or not isinstance(params, Sequence) or not params:
        _checks.fail(
            op,
            "params to be a non-empty list of (weight, bias) pairs",
            type(params).__name__,
            TypeError,
        )
    first = None
    width = None
    for i, pair in enumerate(params):  # type: ignore[arg-type]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            _checks.fail(
                op, f"params[{i}] to be a (weight, bias) pair", repr(type(pair)), TypeError
            )
        w, b = pair
        for name, t in (("weight", w), ("bias", b)):
            if not isinstance(t, torch.Tensor) or t.dtype not in (
                torch.float32,
                torch.bfloat16,
                torch.float64,
            ):
                got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
                _checks.fail(
                    op, f"params[{i}] {name} of dtype float32, bfloat16 or float64", got, TypeError
                )
        if w.dim() != 2 or b.shape != (w.shape[0],):
            _checks.fail(
                op,
                f"params[{i}] = (weight (d_out, d_in), bias (d_out,))",
                f"{tuple(w.shape)}, {tuple(b.shape)}",
            )
        if width is not None and w.shape[1] != width:
            _checks.fail(
                op,
                f"params[{i}] weight with {width} inputs (the layer before's outputs)",
                f"shape {tuple(w.shape)}",
            )
        width = w.shape[0]
        first = w if first is None else first
        for t in (w, b):
            if t.device != first.device or t.dtype != first.dtype:
                _checks.fail(
                    op,
                    f"every parameter on {first.device} in {first.dtype}",
                    f"{t.device} {t.dtype} at params[{i}]",
                )
    return [(w, b) for w, b in params]  # type: ignore[misc]


def _check_inputs(op: str, params: Params, x: object, y: object, loss: str | None) -> None:
    w0 = params[0][0]
    _checks.tensor(op, "x", x, min_dim=2, float_only=False)
    if x.dim() != 2 or x.shape[1] != w0.shape[1]:  # type: ignore[union-attr]
        _checks.fail(op, f"x of shape (N, {w0.shape[1]})", f"{tuple(x.shape)}")  # type: ignore
    if x.dtype != w0.dtype or x.device != w0.device:  # type: ignore[union-attr]
        _checks.fail(
            op, f"x on {w0.device} in {w0.dtype} like the parameters", f"{x.device} {x.dtype}"
        )  # type: ignore[union-attr]
    n, classes = x.shape[0], params[-1][0].shape[0]  # type: ignore[union-attr]
    if loss == "mse":
        _checks.same_as(
            op, "y", y, "the logits", torch.empty((n, classes), dtype=w0.dtype, device=w0.device)
        )
    else:
        _checks.labels(op, "y", y, n, classes, w0.device)


def _backend_for(op: str, x: torch.Tensor, backend: str | None) -> str:
    """The backend for `op`; float64 (the accuracy check's dtype) has no Triton path."""
    chosen = resolve(op, x, backend)
    if x.dtype == torch.float64 and chosen == "triton":
        if backend == "triton":
            _checks.fail(op, "float32 or bfloat16 data for backend='triton'", x.dtype, TypeError)
        return "torch"
    return chosen


_ref_mlp_hvp = compiled(ref.mlp_hvp)
_ref_input_hvp = compiled(ref.input_hvp)


def mlp_hvp(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    *,
    activation: str = "tanh",
    loss: str = "ce",
    gauss_newton: bool = False,
    precision: str = "ieee",
    backend: str | None = None,
) -> torch.Tensor:
    """H v for k vectors: (k, P) -> (k, P), H the Hessian of the mean loss over (x (N, d_0), y)
    with respect to all parameters (``gauss_newton``: the Gauss-Newton matrix instead). y: labels
    (N,) for ``loss="ce"``, targets (N, d_L) for ``"mse"``. A (P,) v gives a (P,) result.

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> params = [(torch.randn(5, 4), torch.randn(5)), (torch.randn(3, 5), torch.randn(3))]
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> p = sum(w.numel() + b.numel() for w, b in params)
        >>> tuple(kernels.mlp_hvp(params, x, y, torch.randn(2, p)).shape)  # k = 2 vectors
        (2, 43)
    """
    op = "mlp_hvp"
    params = _check_params(op, params)
    activation = _checks.choice(op, "activation", activation, ACTIVATIONS)
    loss = _checks.choice(op, "loss", loss, LOSSES)
    precision = _checks.choice(op, "precision", precision, PRECISIONS)
    _check_inputs(op, params, x, y, loss)
    p = ref.flat_size(params)
    _checks.tensor(op, "v", v, float_only=False)
    single = v.dim() == 1
    vv = v[None] if single else v
    if vv.dim() != 2 or vv.shape[1] != p:
        _checks.fail(
            op,
            f"v of shape (k, P) or (P,) with P = {p} (the flat parameter count)",
            f"shape {tuple(v.shape)}",
        )
    w0 = params[0][0]
    if vv.dtype != w0.dtype or vv.device != w0.device:
        _checks.fail(
            op, f"v on {w0.device} in {w0.dtype} like the parameters", f"{vv.device} {vv.dtype}"
        )
    vv = vv.contiguous()
    if _backend_for(op, x, backend) == "torch":
        out = _ref_mlp_hvp(params, x, y, vv, activation, loss, gauss_newton)
    else:
        out = _mlp_hvp_triton(params, x, y, vv, activation, loss, gauss_newton, precision)
    return out[0] if single else out


def input_hvp(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    *,
    activation: str = "tanh",
    precision: str = "ieee",
    backend: str | None = None,
) -> torch.Tensor:
    """Per sample, the Hessian of the logit margin f_y - f_j with respect to the input (j the
    runner-up class at x, held fixed) times v: x, v (N, d_0), labels y (N,) -> (N, d_0).

    Examples:
        >>> import torch
        >>> from hdbench import kernels
        >>> params = [(torch.randn(5, 4), torch.randn(5)), (torch.randn(3, 5), torch.randn(3))]
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> tuple(kernels.input_hvp(params, x, y, torch.randn(8, 4)).shape)
        (8, 4)
    """
    op = "input_hvp"
    params = _check_params(op, params)
    activation = _checks.choice(op, "activation", activation, ACTIVATIONS)
    precision = _checks.choice(op, "precision", precision, PRECISIONS)
    _check_inputs(op, params, x, y, "ce")
    _checks.same_as(op, "v", v, "x", x)
    if params[-1][0].shape[0] < 2:
        _checks.fail(op, "a classifier with at least 2 classes", f"{params[-1][0].shape[0]} output")
    if _backend_for(op, x, backend) == "torch":
        return _ref_input_hvp(params, x, y, v.contiguous(), activation)
    return _input_hvp_triton(params, x, y, v.contiguous(), activation, precision)
