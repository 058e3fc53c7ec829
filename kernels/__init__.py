"""hdbench compute layer: fused Triton kernels with pure-torch twins (see ``kernels.reference``)."""

from kernels.attack import Norms, fgsm, linear_fgsm, perturbation_norms, pgd_step

__all__ = ["Norms", "fgsm", "linear_fgsm", "perturbation_norms", "pgd_step"]
