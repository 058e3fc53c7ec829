"""The multiresolution synthetic image families of ``suite/experiments/data.py``."""

from __future__ import annotations

import pytest
import torch

from hdbench import kernels
from hdbench.suite.experiments.data import CHUNK, FAMILIES, Scenes, power_law_field
from tests.conftest import DEVICE

SIDES = (8, 16, 32, 64)


@pytest.fixture(autouse=True)
def _torch_backend(monkeypatch):
    # the pyramid kernels are checked in test_pyramid.py; here the interpreter would only be slow
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")


@pytest.mark.parametrize("family", FAMILIES)
def test_images_are_labelled_in_range_and_reproducible(family):
    scenes = Scenes(family, SIDES, seed=3)
    a = scenes.render(0, 20, DEVICE)
    b = scenes.render(0, 20, DEVICE)
    other = Scenes(family, SIDES, seed=4).render(0, 20, DEVICE)
    assert sorted(a) == list(SIDES)
    for s in SIDES:
        x, y = a[s]
        assert x.shape == (20, 1, s, s) and x.dtype == torch.float32 and y.shape == (20,)
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
        assert torch.equal(x, b[s][0]) and torch.equal(y, b[s][1])
        assert not torch.allclose(x, other[s][0])
        assert set(y.tolist()) == {0, 1}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_sample_does_not_depend_on_its_batch(family):
    scenes = Scenes(family, (8, 32), seed=1)
    whole = scenes.render(0, 2 * CHUNK + 5, DEVICE)
    part = scenes.render(CHUNK - 3, CHUNK + 7, DEVICE)
    streamed = list(scenes.batches(2 * CHUNK + 5, DEVICE, batch_size=CHUNK))
    assert [start for start, _ in streamed] == [0, CHUNK, 2 * CHUNK]
    for s in (8, 32):
        torch.testing.assert_close(part[s][0], whole[s][0][CHUNK - 3 : CHUNK + 7], rtol=0, atol=0)
        joined = torch.cat([batch[s][0] for _, batch in streamed])
        torch.testing.assert_close(joined, whole[s][0], rtol=0, atol=0)


@pytest.mark.parametrize("convention", ["opencv", "kornia"])
def test_natural_lower_sides_are_reductions_of_the_top(convention):
    r = Scenes("natural", SIDES, convention=convention).render(0, 6, DEVICE)
    for fine, coarse in zip(SIDES[:0:-1], SIDES[-2::-1], strict=True):
        torch.testing.assert_close(
            kernels.pyr_down(r[fine][0], convention=convention), r[coarse][0]
        )


def test_upsampled_sides_are_zero_detail_synthesis_of_the_coarse_scene():
    r = Scenes("upsampled", SIDES, coarse=8).render(0, 6, DEVICE)
    coarse = r[8][0]
    for s in SIDES[1:]:
        torch.testing.assert_close(kernels.resample(coarse, (s, s)), r[s][0])
    assert all(torch.equal(r[s][1], r[8][1]) for s in SIDES)  # same scenes, same labels


def test_natural_has_detail_at_every_scale_and_upsampled_does_not():
    nat = Scenes("natural", (64,)).render(0, 8, DEVICE)[64][0]
    up = Scenes("upsampled", (64,)).render(0, 8, DEVICE)[64][0]
    e_nat = kernels.level_energy(nat - nat.mean(), 4)
    e_up = kernels.level_energy(up - up.mean(), 4)
    assert (e_nat[:, 0] > 10 * e_up[:, 0]).all()


def test_noisy_is_upsampled_plus_per_pixel_noise():
    base = Scenes("upsampled", SIDES, noise=0.05).render(0, 8, DEVICE)
    noisy = Scenes("noisy", SIDES, noise=0.05).render(0, 8, DEVICE)
    for s in SIDES:
        d = noisy[s][0] - base[s][0]
        inside = (noisy[s][0] > 0) & (noisy[s][0] < 1)  # clipping shortens some draws
        assert abs(d[inside].std().item() - 0.05) < 0.01
        assert torch.equal(noisy[s][1], base[s][1])


def test_classes_are_separable_by_their_pattern():
    x, y = Scenes("upsampled", (8,), classes=3, contrast=1.0).render(0, 300, DEVICE)[8]
    assert set(y.tolist()) == {0, 1, 2}
    # nearest class mean: the class pattern must be learnable from the images
    means = torch.stack([x[y == c].mean(0) for c in range(3)])
    pred = ((x[:, None] - means[None]) ** 2).sum(dim=(2, 3, 4)).argmin(1)
    assert (pred == y).float().mean() > 0.8


def test_power_law_field_has_unit_variance_and_its_slope():
    noise = torch.randn(64, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for alpha in (0.0, 2.0):
        f = power_law_field(noise, alpha)
        assert abs(f.var().item() - 1.0) < 0.1
    # the spectrum's log-log slope is -alpha
    spec = torch.fft.rfft2(power_law_field(noise, 2.0)).abs().pow(2).mean(dim=(0, 1))
    fy = torch.fft.fftfreq(64, d=1 / 64)
    fx = torch.fft.rfftfreq(64, d=1 / 64)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    band = (f >= 2) & (f <= 16)
    slope = (
        torch.linalg.lstsq(
            torch.stack([f[band].log(), torch.ones(int(band.sum()))], 1), spec[band].log()[:, None]
        )
        .solution[0]
        .item()
    )
    assert abs(slope + 2.0) < 0.15


@pytest.mark.skipif(DEVICE != "cuda", reason="draws on a CUDA device")
def test_a_gpu_draws_its_own_reproducible_scenes():
    """On a GPU the scenes are drawn there: the same for a seed and any batch split, equally
    distributed as the CPU's, not the CPU's own draws; the class patterns are shared."""
    for family in FAMILIES:
        scenes = Scenes(family, SIDES)
        whole = scenes.render(0, 40, "cuda")
        parts = [scenes.render(a, b, "cuda") for a, b in ((0, 7), (7, 33), (33, 40))]
        cpu = scenes.render(0, 40, "cpu")
        for s in SIDES:
            joined = torch.cat([p[s][0] for p in parts])
            torch.testing.assert_close(joined, whole[s][0], atol=1e-5, rtol=1e-5)
            assert torch.equal(torch.cat([p[s][1] for p in parts]), whole[s][1])
            assert not torch.allclose(whole[s][0].cpu(), cpu[s][0], atol=1e-3)
            # same distribution: pixel means and spreads agree to sampling error
            g, c = whole[s][0].double().cpu(), cpu[s][0].double()
            assert abs(g.mean() - c.mean()) < 0.05 and abs(g.std() - c.std()) < 0.05
    torch.testing.assert_close(scenes._patterns("cuda").cpu(), scenes._patterns("cpu"))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(family="fractal", sides=(8,)), "family in"),
        (dict(family="natural", sides=(8, 24)), "on the pyramid chain"),
        (dict(family="upsampled", sides=(12,), coarse=8), "got [8] off it"),
        (dict(family="natural", sides=(0, 8)), "positive ints"),
        (dict(family="natural", sides=(8,), classes=1), "classes"),
        (dict(family="noisy", sides=(8,), noise=-0.1), "noise"),
    ],
)
def test_bad_scenes_are_refused(kwargs, words):
    with pytest.raises(ValueError) as info:
        Scenes(**kwargs)
    assert words in str(info.value) and "Scenes:" in str(info.value)


def test_bad_ranges_are_refused():
    scenes = Scenes("upsampled", (8,))
    with pytest.raises(ValueError, match="start < stop"):
        scenes.render(5, 5)
    with pytest.raises(ValueError, match="batch_size"):
        next(scenes.batches(4, batch_size=0))
