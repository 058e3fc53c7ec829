"""hdbench compute layer: fused Triton kernels with pure-torch twins (see ``kernels.reference``)."""

from kernels.attack import Norms, fgsm, linear_fgsm, perturbation_norms, pgd_step
from kernels.pyramid import (
    gaussian_pyramid,
    laplacian_pyramid,
    level_energy,
    max_levels,
    pyr_down,
    pyr_up,
    pyramid_sizes,
    reconstruct,
    resample,
)

__all__ = [
    "Norms",
    "fgsm",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "level_energy",
    "linear_fgsm",
    "max_levels",
    "perturbation_norms",
    "pgd_step",
    "pyr_down",
    "pyr_up",
    "pyramid_sizes",
    "reconstruct",
    "resample",
]
