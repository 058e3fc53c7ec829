"""Pure-torch twins of every public op: the test oracle, the eager baseline and the CPU backend.

Never imports triton.
"""

from hdbench.kernels.reference import hvp, pyramid
from hdbench.kernels.reference.attack import Norms, fgsm, linear_fgsm, perturbation_norms, pgd_step

__all__ = ["Norms", "fgsm", "linear_fgsm", "perturbation_norms", "pgd_step", "pyramid", "hvp"]
