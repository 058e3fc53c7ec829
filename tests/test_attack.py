"""Fused gradient-sign attack ops against their torch reference, properties, NaN and error paths."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdbench import kernels
from hdbench.kernels import reference as ref
from hdbench.kernels.attack import MAX_BLOCK
from tests.conftest import DEVICE, DTYPES
from tests.tolerances import REDUCTION, TOLERANCES

# odd, non-power-of-two, single-sample, 2-D and multi-chunk (D > MAX_BLOCK) shapes
SHAPES = [(3, 1, 17, 23), (1, 3, 8, 8), (5, 7), (2, 3, 50, 61)]
assert math.prod(SHAPES[-1][1:]) > MAX_BLOCK


def batch(shape, dtype=torch.float32, *, noncontiguous=False, spread=0.05):
    """Clean x0 in [0, 1], an iterate x near it, and a gradient with no zeros."""
    if noncontiguous:  # the same shape seen through a transposed view of other storage
        shape = (*shape[:-2], shape[-1], shape[-2]) if len(shape) > 2 else shape[::-1]

    def fix(t):
        if not noncontiguous:
            return t.to(dtype)
        t = t.to(dtype)
        return t.transpose(-1, -2) if t.dim() > 2 else t.t()

    x0 = torch.rand(shape, device=DEVICE)
    x = (x0 + spread * torch.randn_like(x0)).clamp(0, 1)
    g = torch.randn_like(x0)
    x0, x, g = fix(x0), fix(x), fix(g)
    if noncontiguous:
        assert not x.is_contiguous()
    return x, x0, g


def close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, **TOLERANCES[dtype])


def close_norms(actual, expected):
    assert isinstance(actual, kernels.Norms)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, e, **REDUCTION)


# --- kernels against the reference ------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clamp", [(0.0, 1.0), None, (0.2, 0.7)])
def test_fgsm_matches_reference(shape, dtype, clamp, backend):
    x, _, g = batch(shape, dtype)
    out = kernels.fgsm(x, g, 0.03, clamp=clamp, backend=backend)
    assert out.dtype == dtype and out.shape == x.shape
    close(out, ref.fgsm(x, g, 0.03, clamp=clamp), dtype)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("return_norms", [False, True])
def test_pgd_step_matches_reference(shape, dtype, norm, return_norms, backend):
    x, x0, g = batch(shape, dtype)
    # eps small enough that the projection is active for some samples, step per sample
    d = math.prod(shape[1:])
    scale = 1.0 if norm == "linf" else math.sqrt(d)
    step = torch.linspace(0.005, 0.02, shape[0], device=DEVICE) * scale
    eps = 0.03 * scale
    kw = dict(step=step, eps=eps, norm=norm, return_norms=return_norms)
    got = kernels.pgd_step(x, x0, g, **kw, backend=backend)
    want = ref.pgd_step(x, x0, g, **kw)
    if return_norms:
        close(got[0], want[0], dtype)
        close_norms(got[1], want[1])
        close_norms(got[1], ref.perturbation_norms(got[0], x0))
    else:
        assert got.dtype == dtype and got.shape == x.shape
        close(got, want, dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_perturbation_norms_match_reference(shape, dtype, backend):
    x, x0, _ = batch(shape, dtype)
    got = kernels.perturbation_norms(x, x0, backend=backend)
    close_norms(got, ref.perturbation_norms(x, x0))
    d = math.prod(shape[1:])
    torch.testing.assert_close(got.l2_area, got.l2 / math.sqrt(d))
    assert bool((got.linf > 0).all())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_noncontiguous_views(norm, backend):
    x, x0, g = batch((3, 2, 19, 10), noncontiguous=True)
    kw = dict(step=0.01, eps=0.02, norm=norm, return_norms=True)
    got = kernels.pgd_step(x, x0, g, **kw, backend=backend)
    want = ref.pgd_step(x.contiguous(), x0.contiguous(), g.contiguous(), **kw)
    close(got[0], want[0], torch.float32)
    close_norms(got[1], want[1])
    close(kernels.fgsm(x, g, 0.01, backend=backend), ref.fgsm(x, g, 0.01), torch.float32)
    close_norms(kernels.perturbation_norms(x, x0, backend=backend), ref.perturbation_norms(x, x0))


def test_active_mask_keeps_inactive_samples_bit_identical(backend):
    x, x0, g = batch((4, 3, 9, 13))
    active = torch.tensor([True, False, True, False], device=DEVICE)
    for norm in ("linf", "l2"):
        out, norms = kernels.pgd_step(
            x,
            x0,
            g,
            step=0.05,
            eps=0.1,
            norm=norm,
            active=active,
            return_norms=True,
            backend=backend,
        )
        assert torch.equal(out[~active], x[~active])
        assert not torch.equal(out[active], x[active])
        close(
            out, ref.pgd_step(x, x0, g, step=0.05, eps=0.1, norm=norm, active=active), torch.float32
        )
        close_norms(norms, ref.perturbation_norms(out, x0))


@pytest.mark.parametrize("classes", [2, 5, 10, 17])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_fgsm_matches_reference(classes, targeted, with_bias, backend):
    x, _, _ = batch((6, 3, 11, 13))
    d = x[0].numel()
    weight = torch.randn(classes, d, device=DEVICE) / math.sqrt(d)
    bias = torch.randn(classes, device=DEVICE) if with_bias else None
    target = torch.randint(0, classes, (6,), device=DEVICE)
    eps = torch.linspace(0.01, 0.05, 6, device=DEVICE)
    got, logits = kernels.linear_fgsm(
        x, weight, bias, target, eps, targeted=targeted, return_logits=True, backend=backend
    )
    want, want_logits = ref.linear_fgsm(
        x, weight, bias, target, eps, targeted=targeted, return_logits=True
    )
    torch.testing.assert_close(logits, want_logits, **REDUCTION)
    # sign(g) is ill-conditioned only where g is within rounding of 0: compare everywhere else
    onehot = torch.nn.functional.one_hot(target, classes).float()
    g = ((want_logits.softmax(1) - onehot) @ weight).reshape(x.shape)
    clear = g.abs() > 1e-5
    assert clear.float().mean() > 0.99
    close(got[clear], want[clear], torch.float32)
    # and the step really follows the gradient's sign where the clamp leaves room
    inside = clear & (got > 0) & (got < 1)
    direction = -1 if targeted else 1
    assert bool((torch.sign(got - x)[inside] == direction * torch.sign(g)[inside]).all())


def test_linear_fgsm_flips_a_linear_classifier(backend):
    """A large enough FGSM step against a linear model changes its prediction."""
    x, _, _ = batch((8, 1, 12, 12))
    weight = torch.randn(3, 144, device=DEVICE)
    target = (x.reshape(8, -1) @ weight.T).argmax(1)
    adv = kernels.linear_fgsm(x, weight, None, target, 0.5, clamp=None, backend=backend)
    pred = (adv.reshape(8, -1) @ weight.T).argmax(1)
    assert bool((pred != target).all())


# --- NaN semantics: a NaN gradient never looks like a clean result --------------------------


def test_nan_gradient_propagates(backend):
    x, x0, g = batch((3, 2, 5, 7))
    g[1, 0, 2, 3] = float("nan")
    out = kernels.fgsm(x, g, 0.1, backend=backend)
    assert torch.isnan(out[1, 0, 2, 3]) and int(torch.isnan(out).sum()) == 1

    out, norms = kernels.pgd_step(
        x, x0, g, step=0.1, eps=0.2, norm="linf", return_norms=True, backend=backend
    )
    assert torch.isnan(out[1, 0, 2, 3]) and int(torch.isnan(out).sum()) == 1
    for n in norms:  # the sample's norms say it is broken, the others are untouched
        assert torch.isnan(n[1]) and not bool(torch.isnan(n[[0, 2]]).any())

    out = kernels.pgd_step(x, x0, g, step=0.1, eps=0.2, norm="l2", backend=backend)
    assert bool(torch.isnan(out[1]).all()) and not bool(torch.isnan(out[[0, 2]]).any())


def test_nan_in_data_propagates_to_norms(backend):
    x, x0, _ = batch((2, 40))
    x[0, 7] = float("nan")
    norms = kernels.perturbation_norms(x, x0, backend=backend)
    for n in norms:
        assert torch.isnan(n[0]) and not torch.isnan(n[1])


def test_zero_gradient_takes_no_step(backend):
    x, x0, g = batch((2, 3, 4, 5))
    g[0] = 0
    for norm in ("linf", "l2"):
        out = kernels.pgd_step(x, x0, g, step=0.01, eps=1.0, norm=norm, backend=backend)
        assert torch.equal(out[0], x[0])
        assert not torch.equal(out[1], x[1])


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 4),
    d=st.integers(1, 300),
    eps=st.floats(0.0, 0.5),
    step=st.floats(0.0, 1.0),
    norm=st.sampled_from(["linf", "l2"]),
    backend=st.sampled_from(["triton", "torch"]),
    seed=st.integers(0, 2**16),
    mask_bits=st.integers(0, 15),
)
def test_pgd_step_stays_in_ball_and_range(b, d, eps, step, norm, backend, seed, mask_bits):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    x0 = torch.rand(b, d, generator=gen, device=DEVICE)
    x = (x0 + torch.randn(b, d, generator=gen, device=DEVICE)).clamp(0, 1)  # may start outside
    g = torch.randn(b, d, generator=gen, device=DEVICE)
    active = torch.tensor([bool(mask_bits >> i & 1) for i in range(b)], device=DEVICE)
    out, norms = kernels.pgd_step(
        x, x0, g, step=step, eps=eps, norm=norm, active=active, return_norms=True, backend=backend
    )
    assert torch.equal(out[~active], x[~active])
    assert bool(((out >= 0) & (out <= 1)).all())
    radius = norms.linf if norm == "linf" else norms.l2
    assert bool((radius[active] <= eps * (1 + 1e-5) + 1e-6).all())


# --- backend resolution -----------------------------------------------------------------------


def test_backend_resolution(monkeypatch):
    from hdbench.kernels._backend import resolve

    x = torch.zeros(2, 3)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve("op", x) == "triton"
    assert resolve("op", x, "torch") == "torch"
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")
    assert resolve("op", x) == "torch"
    assert resolve("op", x, "triton") == "triton"  # the argument wins over the variable
    monkeypatch.delenv("HDBENCH_BACKEND")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert resolve("op", x) == "torch"  # automatic: falls back quietly
    with pytest.raises(ValueError, match=r"pgd_step: expected a device Triton can serve .*cpu"):
        kernels.pgd_step(x, x, x, step=0.1, eps=0.1, backend="triton")
    monkeypatch.setenv("HDBENCH_BACKEND", "triton")
    with pytest.raises(ValueError, match=r"fgsm: .*HDBENCH_BACKEND='triton'"):
        kernels.fgsm(x, x, 0.1)
    monkeypatch.setenv("HDBENCH_BACKEND", "cuda")
    with pytest.raises(ValueError, match=r"fgsm: expected HDBENCH_BACKEND= one of"):
        kernels.fgsm(x, x, 0.1)


def test_torch_backend_compiled_matches_eager(monkeypatch):
    """The CPU main job runs the compiled torch backend: it must agree with the eager oracle."""
    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "1")
    x, x0, g = batch((3, 2, 9, 11))
    got = kernels.pgd_step(
        x, x0, g, step=0.01, eps=0.02, norm="linf", return_norms=True, backend="torch"
    )
    want = ref.pgd_step(x, x0, g, step=0.01, eps=0.02, norm="linf", return_norms=True)
    close(got[0], want[0], torch.float32)
    close_norms(got[1], want[1])
    close_norms(kernels.perturbation_norms(x, x0, backend="torch"), ref.perturbation_norms(x, x0))


def test_compile_failure_falls_back_to_eager(monkeypatch):
    from hdbench.kernels import _backend

    def broken_compile(fn, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("backend compiler failed")

        return fail

    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", broken_compile)
    op = kernels.compiled(lambda t: t * 2)  # the public name of _backend.compiled
    assert kernels.compiled is _backend.compiled and kernels.eager is _backend.eager
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as caught:
        assert torch.equal(op(torch.ones(3)), torch.full((3,), 2.0))
    # a class of its own, so that callers need not match the message's text
    assert [w.category for w in caught] == [kernels.CompileFallbackWarning]
    assert torch.equal(op(torch.ones(2)), torch.full((2,), 2.0))  # stays eager, no new warning


def test_an_eager_block_runs_compiled_functions_eager(monkeypatch):
    from hdbench.kernels import _backend

    compiles = []
    monkeypatch.setenv("HDBENCH_TORCH_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiles.append(fn) or fn)
    op = _backend.compiled(lambda t: t * 2)
    with _backend.eager():
        assert not _backend.compile_enabled()
        assert torch.equal(op(torch.ones(2)), torch.full((2,), 2.0))
    assert compiles == []  # nothing compiled inside the block
    assert _backend.compile_enabled()
    op(torch.ones(2))
    assert len(compiles) == 1


# --- error paths ----------------------------------------------------------------------------

X = torch.rand(2, 3, 4)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: kernels.fgsm(X.numpy(), X, 0.1), TypeError, r"fgsm: expected x to be a torch"),
        (
            lambda: kernels.fgsm(torch.tensor(1.0), torch.tensor(1.0), 0.1),
            ValueError,
            r"fgsm: expected x with at least 1 dimension\(s\), got shape \(\)",
        ),
        (
            lambda: kernels.fgsm(X.long(), X.long(), 0.1),
            TypeError,
            r"fgsm: expected x of dtype float32, float16 or bfloat16, got torch.int64",
        ),
        (lambda: kernels.fgsm(X[:0], X[:0], 0.1), ValueError, r"non-empty batch, got shape \(0,"),
        (
            lambda: kernels.fgsm(X, X[:, :2], 0.1),
            ValueError,
            r"fgsm: expected grad of shape \(2, 3, 4\) like x, got \(2, 2, 4\)",
        ),
        (lambda: kernels.fgsm(X, X.half(), 0.1), TypeError, r"grad of dtype torch.float32"),
        (lambda: kernels.fgsm(X, X.to("meta"), 0.1), ValueError, r"grad on cpu like x, got meta"),
        (lambda: kernels.fgsm(X, X, -0.1), ValueError, r"eps finite and >= 0, got -0.1"),
        (lambda: kernels.fgsm(X, X, float("nan")), ValueError, r"eps finite and >= 0, got nan"),
        (lambda: kernels.fgsm(X, X, float("inf")), ValueError, r"eps finite and >= 0, got inf"),
        (lambda: kernels.fgsm(X, X, "0.1"), TypeError, r"eps to be a float or a \(B,\) tensor"),
        (lambda: kernels.fgsm(X, X, torch.tensor([0.1, -1.0])), ValueError, r"got -1.0"),
        (lambda: kernels.fgsm(X, X, torch.ones(3)), ValueError, r"eps of shape \(\) or \(2,\)"),
        (
            lambda: kernels.fgsm(X, X, 0.1, clamp=(1.0, 0.0)),
            ValueError,
            r"clamp = \(lo, hi\) finite with lo <= hi, got \(1.0, 0.0\)",
        ),
        (lambda: kernels.fgsm(X, X, 0.1, clamp=(0.0, float("nan"))), ValueError, r"clamp"),
        (lambda: kernels.fgsm(X, X, 0.1, clamp=1.0), TypeError, r"clamp to be None or a pair"),
        (
            lambda: kernels.fgsm(X, X, 0.1, backend="cuda"),
            ValueError,
            r"fgsm: expected backend= one of \('triton', 'torch'\), got 'cuda'",
        ),
        (
            lambda: kernels.pgd_step(X, X, X, step=0.1, eps=0.1, norm="l1"),
            ValueError,
            r"pgd_step: expected norm in \('linf', 'l2'\), got 'l1'",
        ),
        (
            lambda: kernels.pgd_step(X, X, X, step=-1.0, eps=0.1),
            ValueError,
            r"pgd_step: expected step finite and >= 0",
        ),
        (
            lambda: kernels.pgd_step(X, X, X, step=0.1, eps=float("inf")),
            ValueError,
            r"pgd_step: expected eps finite and >= 0",
        ),
        (
            lambda: kernels.pgd_step(X, X.double(), X, step=0.1, eps=0.1),
            TypeError,
            r"pgd_step: expected x0 of dtype float32, float16 or bfloat16, got torch.float64",
        ),
        (
            lambda: kernels.pgd_step(X, X, X, step=0.1, eps=0.1, active=torch.ones(2)),
            TypeError,
            r"active to be None or a torch.bool tensor",
        ),
        (
            lambda: kernels.pgd_step(X, X, X, step=0.1, eps=0.1, active=torch.ones(3, dtype=bool)),
            ValueError,
            r"pgd_step: expected active of shape \(2,\), got shape \(3,\)",
        ),
        (
            lambda: kernels.perturbation_norms(X, X[:1]),
            ValueError,
            r"perturbation_norms: expected x0 of shape \(2, 3, 4\) like x, got \(1, 3, 4\)",
        ),
        (
            lambda: kernels.linear_fgsm(X, torch.ones(3, 5), None, torch.zeros(2).long(), 0.1),
            ValueError,
            r"linear_fgsm: expected weight of shape \(K, 12\) .*got shape \(3, 5\)",
        ),
        (
            lambda: kernels.linear_fgsm(X, torch.ones(3, 12), None, torch.tensor([0, 3]), 0.1),
            ValueError,
            r"linear_fgsm: expected target in \[0, 3\), got values in \[0, 3\]",
        ),
        (
            lambda: kernels.linear_fgsm(X, torch.ones(3, 12), None, torch.zeros(2), 0.1),
            TypeError,
            r"linear_fgsm: expected target to be an int64 or int32 tensor",
        ),
        (
            lambda: kernels.linear_fgsm(
                X, torch.ones(3, 12), torch.ones(2), torch.zeros(2).long(), 0.1
            ),
            ValueError,
            r"linear_fgsm: expected bias of shape",
        ),
    ],
)
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()
