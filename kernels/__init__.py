"""hdbench compute layer: fused Triton kernels with pure-torch twins (see ``kernels.reference``)."""

from hdbench.kernels._backend import CompileFallbackWarning, compiled, eager
from hdbench.kernels.attack import Norms, fgsm, linear_fgsm, perturbation_norms, pgd_step
from hdbench.kernels.hvp import input_hvp, mlp_hvp
from hdbench.kernels.pyramid import (
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
    "CompileFallbackWarning",
    "compiled",
    "eager",
    "Norms",
    "fgsm",
    "gaussian_pyramid",
    "input_hvp",
    "laplacian_pyramid",
    "level_energy",
    "linear_fgsm",
    "max_levels",
    "mlp_hvp",
    "perturbation_norms",
    "pgd_step",
    "pyr_down",
    "pyr_up",
    "pyramid_sizes",
    "reconstruct",
    "resample",
]
