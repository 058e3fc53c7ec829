"""Hessian-vector products against torch.func and the full fp64 Hessian; spectral tools against
eigvalsh."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp

from hdbench import kernels
from hdbench.kernels.reference import hvp as ref
from hdbench.suite.experiments import spectral
from tests.conftest import DEVICE
from tests.tolerances import TOLERANCES

DIMS = [(5, 7, 6, 3), (9, 17, 4)]  # odd, non-power-of-two widths; 3 and 2 layers


def mlp(dims, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            (torch.randn(o, i, generator=g) / i**0.5).to(DEVICE, dtype),
            (0.1 * torch.randn(o, generator=g)).to(DEVICE, dtype),
        )
        for i, o in zip(dims[:-1], dims[1:], strict=True)
    ]


def data(dims, loss, n=11, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dims[0], generator=g).to(DEVICE, dtype)
    if loss == "ce":
        y = torch.randint(0, dims[-1], (n,), generator=g).to(DEVICE)
    else:
        y = torch.randn(n, dims[-1], generator=g).to(DEVICE, dtype)
    return x, y


def unflatten(theta, params):
    # written apart from ref.split on purpose: the oracle must not share the layout under test
    out, at = [], 0
    for w, b in params:
        out.append(
            (
                theta[at : at + w.numel()].view_as(w),
                theta[at + w.numel() : at + w.numel() + b.numel()],
            )
        )
        at += w.numel() + b.numel()
    return out


def loss_fn(params, x, y, activation, loss):
    return lambda theta: ref.loss_value(
        ref.forward(unflatten(theta, params), x, activation)[0], y, loss
    )


def cast(params, dtype):
    return [(w.to(dtype), b.to(dtype)) for w, b in params]


@pytest.mark.parametrize("dims", DIMS, ids=str)
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu"])
def test_mlp_hvp_matches_the_full_hessian(dims, loss, activation, backend):
    params = mlp(dims)
    x, y = data(dims, loss)
    theta = spectral.flat(params)
    hessian = torch.autograd.functional.hessian(loss_fn(params, x, y, activation, loss), theta)
    v = torch.randn(3, theta.numel(), dtype=torch.float64, device=DEVICE)
    want = v @ hessian
    # the kernels in fp32 against the fp64 Hessian
    p32, x32 = cast(params, torch.float32), x.float()
    y32 = y if loss == "ce" else y.float()
    got = kernels.mlp_hvp(
        p32, x32, y32, v.float(), activation=activation, loss=loss, backend=backend
    )
    assert got.shape == v.shape and got.dtype == torch.float32
    scale = want.abs().max()
    assert scale > 1e-2  # a non-trivial product
    torch.testing.assert_close(got.double() / scale, want / scale, **TOLERANCES[torch.float32])
    # one vector in, one out
    single = kernels.mlp_hvp(
        p32, x32, y32, v[0].float(), activation=activation, loss=loss, backend=backend
    )
    torch.testing.assert_close(single, got[0], **TOLERANCES[torch.float32])


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_mlp_hvp_matches_torch_func(loss, backend):
    dims = DIMS[0]
    params = mlp(dims)
    x, y = data(dims, loss)
    theta = spectral.flat(params)
    f = loss_fn(params, x, y, "tanh", loss)
    v = torch.randn(theta.numel(), dtype=torch.float64, device=DEVICE)
    want = jvp(grad(f), (theta,), (v,))[1]
    got = kernels.mlp_hvp(
        cast(params, torch.float32),
        x.float(),
        y if loss == "ce" else y.float(),
        v.float(),
        loss=loss,
        backend=backend,
    )
    torch.testing.assert_close(got.double(), want, **TOLERANCES[torch.float32])


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gauss_newton_product(loss, activation, backend):
    dims = DIMS[0]
    params = mlp(dims)
    x, y = data(dims, loss)
    theta = spectral.flat(params)

    def logits(t):
        return ref.forward(unflatten(t, params), x, activation)[0]

    jac = torch.autograd.functional.jacobian(logits, theta).reshape(-1, theta.numel())
    f0 = logits(theta)
    h_loss = torch.autograd.functional.hessian(
        lambda f: ref.loss_value(f.view_as(f0), y, loss), f0.reshape(-1)
    )
    ggn = jac.T @ h_loss @ jac
    v = torch.randn(2, theta.numel(), dtype=torch.float64, device=DEVICE)
    got = kernels.mlp_hvp(
        cast(params, torch.float32),
        x.float(),
        y if loss == "ce" else y.float(),
        v.float(),
        activation=activation,
        loss=loss,
        gauss_newton=True,
        backend=backend,
    )
    scale = (v @ ggn).abs().max()
    torch.testing.assert_close(got.double() / scale, (v @ ggn) / scale, **TOLERANCES[torch.float32])
    assert torch.linalg.eigvalsh(ggn).min() > -1e-10  # positive semi-definite, unlike H


@pytest.mark.parametrize("dims", DIMS, ids=str)
@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu"])
def test_input_hvp_matches_the_margin_hessian(dims, activation, backend):
    params = mlp(dims)
    x, y = data(dims, "ce", n=5)
    v = torch.randn_like(x)
    _, j = ref.margin(params, x, y, activation)
    want = []
    for i in range(x.shape[0]):

        def m(xi, i=i):
            logit = ref.forward(params, xi[None], activation)[0][0]
            return logit[y[i]] - logit[j[i]]

        want.append(torch.autograd.functional.hessian(m, x[i]) @ v[i])
    want = torch.stack(want)
    got = kernels.input_hvp(
        cast(params, torch.float32), x.float(), y, v.float(), activation=activation, backend=backend
    )
    scale = want.abs().max().clamp_min(1e-3)
    if activation == "relu":  # piecewise linear: no curvature at all
        assert got.abs().max() == 0
    else:
        assert scale > 1e-2
    torch.testing.assert_close(got.double() / scale, want / scale, **TOLERANCES[torch.float32])


def test_float64_runs_on_the_torch_backend_only():
    params = mlp(DIMS[1])
    x, y = data(DIMS[1], "ce")
    v = torch.randn(2, ref.flat_size(params), dtype=torch.float64, device=DEVICE)
    torch.testing.assert_close(kernels.mlp_hvp(params, x, y, v), ref.mlp_hvp(params, x, y, v))
    with pytest.raises(TypeError, match="mlp_hvp: expected float32 or bfloat16 data"):
        kernels.mlp_hvp(params, x, y, v, backend="triton")


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 and tf32 products need a GPU")
@pytest.mark.parametrize("dtype, precision", [(torch.float32, "tf32"), (torch.bfloat16, "ieee")])
def test_low_precision_products_on_gpu(dtype, precision):
    dims = (64, 96, 10)
    params = mlp(dims)
    x, y = data(dims, "ce", n=128)
    v = torch.randn(8, ref.flat_size(params), dtype=torch.float64, device=DEVICE)
    want = ref.mlp_hvp(params, x, y, v)
    got = kernels.mlp_hvp(
        cast(params, dtype), x.to(dtype), y, v.to(dtype), precision=precision, backend="triton"
    )
    rel = (got.double() - want).norm() / want.norm()
    assert rel < (5e-3 if dtype == torch.float32 else 3e-2)


# ------------------------------------------------------------------ errors


def _bad(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value), str(info.value)


def test_errors_name_the_op_and_what_was_expected():
    params = cast(mlp(DIMS[0]), torch.float32)
    x, y = data(DIMS[0], "ce")
    x = x.float()
    p = ref.flat_size(params)
    v = torch.randn(2, p, device=DEVICE)
    _bad(
        lambda: kernels.mlp_hvp(params, x, y, v[:, :-1]),
        ValueError,
        f"mlp_hvp: expected v of shape (k, P) or (P,) with P = {p}",
    )
    _bad(lambda: kernels.mlp_hvp(params, x, y, v, activation="gelu"), ValueError, "activation")
    _bad(lambda: kernels.mlp_hvp(params, x, y, v, loss="hinge"), ValueError, "loss in")
    _bad(lambda: kernels.mlp_hvp(params, x[:, :4], y, v), ValueError, "x of shape (N, 5)")
    _bad(lambda: kernels.mlp_hvp(params, x, y.float(), v), TypeError, "y to be an int64")
    _bad(lambda: kernels.mlp_hvp(params, x, y, v, loss="mse"), TypeError, "y of dtype")
    _bad(lambda: kernels.mlp_hvp(params, x, x, v, loss="mse"), ValueError, "y of shape (11, 3)")
    _bad(lambda: kernels.mlp_hvp(params, x, y, v.double()), ValueError, "v on")
    _bad(
        lambda: kernels.mlp_hvp(params[:1] + params[2:], x, y, v),
        ValueError,
        "params[1] weight with 7 inputs",
    )
    _bad(lambda: kernels.mlp_hvp([], x, y, v), TypeError, "non-empty list")
    _bad(
        lambda: kernels.mlp_hvp([(params[0][0], params[1][1])], x, y, v),
        ValueError,
        "params[0] = (weight (d_out, d_in), bias (d_out,))",
    )
    _bad(lambda: kernels.input_hvp(params, x, y, x[:, :3]), ValueError, "input_hvp: expected v")
    if DEVICE == "cpu":
        meta = [(w.to("meta"), b.to("meta")) for w, b in params]
        _bad(
            lambda: kernels.mlp_hvp(params[:1] + meta[1:], x, y, v),
            ValueError,
            "every parameter on cpu",
        )


# ------------------------------------------------------------------ spectral tools


def _random_symmetric(n, negative, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.linspace(0.1, 3.0, n, dtype=torch.float64)
    eig[:negative] = -torch.linspace(0.2, 2.0, negative, dtype=torch.float64)
    return (q * eig) @ q.T, eig


def test_lanczos_finds_both_ends_of_the_spectrum():
    h, eig = _random_symmetric(60, 17)
    run = spectral.lanczos(lambda v: v @ h, torch.randn(3, 60, dtype=torch.float64), 40)
    assert run.theta.shape == (3, 40)
    torch.testing.assert_close(
        run.theta[:, 0], torch.full((3,), eig.min().item(), dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        run.theta[:, -1], torch.full((3,), eig.max().item(), dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(run.weights.sum(dim=1), torch.ones(3, dtype=torch.float64))


def test_lanczos_survives_an_exhausted_krylov_space():
    # 4 distinct eigenvalues: the Krylov space of any start vector has dimension 4, so 8 steps
    # make two complete blocks, whose Ritz values are all exact eigenvalues
    n = 30
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    distinct = torch.tensor([-2.0, -1.0, 1.0, 5.0], dtype=torch.float64)
    eig = distinct.repeat_interleave(n // 4 + 1)[:n]
    h = (q * eig) @ q.T
    run = spectral.lanczos(lambda v: v @ h, torch.randn(2, n, dtype=torch.float64), 8)
    assert torch.isfinite(run.theta).all()
    # every Ritz value is a true eigenvalue: no spurious zeros from the breakdown
    dist = (run.theta[..., None] - eig.unique()).abs().min(dim=-1).values
    assert dist.max() < 1e-6


def test_slq_index_and_hutchinson_trace_against_eigvalsh():
    n, negative = 80, 24
    h, eig = _random_symmetric(n, negative, seed=1)
    mean, se, _ = spectral.slq_negative_fraction(
        lambda v: v @ h, n, steps=30, probes=64, dtype=torch.float64, device="cpu"
    )
    assert abs(mean.item() - negative / n) < 4 * se.item() + 0.02
    tr, tr_se = spectral.hutchinson_trace(
        lambda v: v @ h, n, probes=256, dtype=torch.float64, device="cpu"
    )
    assert abs(tr.item() - eig.sum().item()) < 4 * tr_se.item()


def test_mlp_index_against_the_exact_spectrum(backend):
    dims = (4, 5, 3)
    params = cast(mlp(dims, seed=3), torch.float32)
    x, y = data(dims, "ce", n=40)
    x = x.float()
    p = ref.flat_size(params)
    op = spectral.mlp_operator(params, x, y, backend=backend)
    exact = torch.linalg.eigvalsh(spectral.dense_matrix(op, p, torch.float32, DEVICE).double())
    assert (exact < 0).any() and (exact > 0).any()  # a saddle: a test a sign error would fail
    idx = spectral.mlp_index(params, x, y, steps=p, probes=4, backend=backend)
    assert idx.lambda_min == pytest.approx(exact.min().item(), rel=1e-3, abs=1e-5)
    assert idx.lambda_max == pytest.approx(exact.max().item(), rel=1e-3, abs=1e-5)
    # The softmax's shift symmetry gives exact zero eigenvalues, whose Ritz values land on
    # either side of 0 by rounding: they may be counted either way, nothing else may.
    tiny = 1e-6 * exact.abs().max().item()
    zero = (exact.abs() < tiny).double().mean().item()
    assert 0 < zero < 0.2
    # the same probes give the same estimate on either backend, up to those zero modes
    same = spectral.mlp_index(params, x, y, steps=p, probes=4, backend="torch")
    assert abs(idx.fraction - same.fraction) <= zero + 0.02
    # with steps = P each probe's quadrature is exact, so the estimate is unbiased: what is left
    # is the probes' own spread, which fraction_se measures (checked with many probes)
    many = spectral.mlp_index(params, x, y, steps=p, probes=64, backend="torch")
    low, high = (exact < -tiny).double().mean().item(), (exact < tiny).double().mean().item()
    assert many.fraction_se < 0.03
    assert low - 4 * many.fraction_se <= many.fraction <= high + 4 * many.fraction_se
    assert idx.grad_norm > 0 and idx.hg_over_g > 0
