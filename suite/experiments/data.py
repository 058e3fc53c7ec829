"""Multiresolution synthetic images: the same seeded scenes rendered at every requested resolution.

Families (SCIENCE.md, E1):

- ``"upsampled"``: a coarse random scene (side ``coarse``, power spectrum 1/f^alpha) plus a smooth
  class pattern, squashed into (0, 1) at the coarse side and synthesised to each side by
  ``kernels.resample`` with zero detail: the exact multiresolution model. The pyramid's upsampling
  weights are non-negative and sum to 1, so every side stays in (0, 1) without clipping.
- ``"natural"``: a 1/f^alpha scene made at the largest requested side plus the same class pattern
  synthesised up to it, squashed into (0, 1), and reduced to each smaller side by the Gaussian
  pyramid: detail at every scale, as in natural images. The scene of a sample therefore depends on
  the largest side requested; the smaller sides are its reductions.
- ``"noisy"``: ``upsampled`` plus independent per-pixel Gaussian noise (std ``noise``) drawn anew at
  each side, clipped to [0, 1]: detail that is not part of the scene.

Labels are uniform over ``classes``; class c adds ``contrast * pattern_c`` to the scene before the
squash, pattern_c a smooth (1/f^4) unit-RMS field fixed by the seed.

Reproducibility: scenes are drawn in chunks of ``CHUNK`` samples, each from a generator of the
target device seeded by (seed, chunk index), so a sample's scene does not depend on the batch it was
made in, and the same seed gives the same scenes on every machine of a device type. A CPU and a GPU
draw different (equally distributed) scenes from one seed: drawing on the device is what lets the
GPU size stream its training sets (a "natural" training minibatch at side 1024 is 2^28 normal
draws per step, minutes per model on a CPU generator). The class patterns are drawn on the CPU, so
they are the same everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch

from hdbench import kernels
from hdbench.kernels.pyramid import max_levels, pyramid_sizes

FAMILIES = ("upsampled", "natural", "noisy")
CHUNK = 16  # samples per seeded chunk
_SCENE, _PATTERN, _NOISE = 1, 2, 3  # seed-stream tags
# working-set budget of one batch at the top side (the FFT holds a few copies of it)
BATCH_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}


def _generator(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` for one stream, seeded by a hash of ``key`` (numpy's
    SeedSequence)."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(seed & ((1 << 63) - 1))


def power_law_field(noise: torch.Tensor, alpha: float) -> torch.Tensor:
    """Shape white noise (..., S, S) into a zero-mean, unit-variance field with power spectrum
    proportional to 1/f^alpha (f in cycles per image; the mean is removed)."""
    s_h, s_w = noise.shape[-2:]
    fy = torch.fft.fftfreq(s_h, d=1.0 / s_h, device=noise.device)
    fx = torch.fft.rfftfreq(s_w, d=1.0 / s_w, device=noise.device)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amplitude = torch.where(f > 0, f.clamp_min(1.0).pow(-alpha / 2), torch.zeros_like(f))
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * amplitude, s=(s_h, s_w))
    # unit variance for unit white noise: Parseval over the full (two-sided) spectrum
    full_x = torch.fft.fftfreq(s_w, d=1.0 / s_w, device=noise.device)
    full_f = torch.sqrt(fy[:, None] ** 2 + full_x[None, :] ** 2)
    power = torch.where(full_f > 0, full_f.clamp_min(1.0).pow(-alpha), torch.zeros_like(full_f))
    return field / power.mean().sqrt()


@dataclasses.dataclass(frozen=True)
class Scenes:
    """A seeded family of labelled scenes at several square resolutions.

    ``render(start, stop)`` gives, for every side, images (n, channels, side, side) in [0, 1] and
    labels (n,) int64 for samples ``start .. stop - 1``; ``batches(n, ...)`` streams them.
    All sides, and ``coarse``, must lie on one pyramid chain (each side reduces to the next by
    ``kernels.pyr_down``), e.g. 8, 16, 32, 64, 128.
    """

    family: str
    sides: tuple[int, ...]
    seed: int = 0
    classes: int = 2
    channels: int = 1
    coarse: int = 8
    alpha: float = 2.0
    contrast: float = 1.0
    noise: float = 0.05
    convention: str = "opencv"

    def __post_init__(self) -> None:
        op = "Scenes"
        if self.family not in FAMILIES:
            raise ValueError(f"{op}: expected family in {FAMILIES}, got {self.family!r}")
        sides = tuple(self.sides) if not isinstance(self.sides, int) else (self.sides,)
        if not sides or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sides):
            raise ValueError(f"{op}: expected sides to be positive ints, got {self.sides!r}")
        object.__setattr__(self, "sides", tuple(sorted(set(sides))))
        for name in ("classes", "channels", "coarse"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name == "classes" else 1):
                raise ValueError(
                    f"{op}: expected {name} to be an int >= "
                    f"{2 if name == 'classes' else 1}, got {v!r}"
                )
        for name in ("alpha", "contrast", "noise"):
            v = getattr(self, name)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not number or not math.isfinite(v) or v < 0:
                raise ValueError(f"{op}: expected {name} to be a finite float >= 0, got {v!r}")
        chain = pyramid_sizes(
            self.top, self.top, max_levels(self.top, self.top, self.convention), self.convention
        )
        on_chain = {h for h, _ in chain}
        off = [s for s in (*self.sides, self.coarse) if s not in on_chain]
        if off:
            raise ValueError(
                f"{op}: expected sides and coarse on the pyramid chain of the largest side "
                f"{self.top} ({sorted(on_chain, reverse=True)}), got {off} off it"
            )

    @property
    def top(self) -> int:
        return max(max(self.sides), self.coarse)

    def _patterns(self, device: torch.device) -> torch.Tensor:
        """(classes, channels, coarse, coarse) smooth unit-RMS class patterns."""
        g = _generator(self.seed, _PATTERN)
        white = torch.randn(self.classes, self.channels, self.coarse, self.coarse, generator=g)
        p = power_law_field(white, 4.0)
        p = p / p.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        return p.to(device)

    def _draw(
        self, first: int, last: int, lo: int, n: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (n,) and white noise (n, channels, side, side) of samples lo .. lo + n - 1 of
        chunks first .. last, each chunk from its own generator on `device` (so a sample's scene
        does not depend on the batch it is made in)."""
        side = self.coarse if self.family in ("upsampled", "noisy") else self.top
        ys, whites = [], []
        for k in range(first, last + 1):
            g = _generator(self.seed, _SCENE, k, device=device)
            ys.append(torch.randint(self.classes, (CHUNK,), generator=g, device=device))
            whites.append(torch.randn(CHUNK, self.channels, side, side, generator=g, device=device))
        return torch.cat(ys)[lo : lo + n], torch.cat(whites)[lo : lo + n]

    def render(
        self,
        start: int,
        stop: int,
        device: torch.device | str = "cpu",
        sides: tuple[int, ...] | None = None,
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """{side: (images (n, channels, side, side) float32 in [0, 1], labels (n,) int64)} for
        samples start .. stop - 1 (n = stop - start), for every side or the given `sides`."""
        if isinstance(start, bool) or isinstance(stop, bool) or not (0 <= start < stop):
            raise ValueError(f"Scenes.render: expected 0 <= start < stop, got {start}, {stop}")
        wanted = self.sides if sides is None else tuple(sides)
        if not wanted or any(s not in self.sides for s in wanted):
            raise ValueError(f"Scenes.render: expected sides among {self.sides}, got {sides!r}")
        device = torch.device(device)
        first, last = start // CHUNK, (stop - 1) // CHUNK
        y, white = self._draw(first, last, start - first * CHUNK, stop - start, device)
        side = white.shape[-1]
        patterns = self._patterns(device)
        if side != self.coarse:  # one per class, not one per sample
            patterns = kernels.resample(patterns, (side, side), convention=self.convention)
        scene = torch.sigmoid(power_law_field(white, self.alpha) + self.contrast * patterns[y])
        if self.family == "natural":
            levels = kernels.gaussian_pyramid(
                scene, max_levels(side, side, self.convention), convention=self.convention
            )
            by_side = {lvl.shape[-1]: lvl for lvl in levels}
            images = {s: by_side[s] for s in wanted}
        else:
            images = {
                s: kernels.resample(scene, (s, s), convention=self.convention) for s in wanted
            }
        if self.family == "noisy":
            lo = start - first * CHUNK
            for s in wanted:
                gens = [
                    _generator(self.seed, _NOISE, s, k, device=device)
                    for k in range(first, last + 1)
                ]
                shape = (CHUNK, self.channels, s, s)
                eps = torch.cat([torch.randn(shape, generator=g, device=device) for g in gens])
                eps = eps[lo : lo + stop - start]
                images[s] = (images[s] + self.noise * eps).clamp(0.0, 1.0)
        return {s: (images[s].contiguous(), y) for s in wanted}

    def batch_size(self, device: torch.device | str = "cpu") -> int:
        """Samples per batch that keep the working set near ``BATCH_BYTES``: a multiple of CHUNK."""
        kind = torch.device(device).type
        per_sample = 16 * self.channels * self.top**2 + 8 * self.channels * sum(
            s * s for s in self.sides
        )
        return max(1, BATCH_BYTES.get(kind, BATCH_BYTES["cpu"]) // (per_sample * CHUNK)) * CHUNK

    def batches(
        self,
        n: int,
        device: torch.device | str = "cpu",
        batch_size: int | None = None,
        sides: tuple[int, ...] | None = None,
    ) -> Iterator[tuple[int, dict[int, tuple[torch.Tensor, torch.Tensor]]]]:
        """Yield (start, render(start, stop, device, sides)) over samples 0 .. n - 1 in
        memory-bounded batches."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Scenes.batches: expected n to be a positive int, got {n!r}")
        size = self.batch_size(device) if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"Scenes.batches: expected batch_size to be a positive int, got {size!r}"
            )
        for start in range(0, n, size):
            yield start, self.render(start, min(n, start + size), device, sides)
