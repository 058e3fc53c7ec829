"""Minimal adversarial perturbations (SCIENCE.md, E1 and E2), batched, on the fused attack kernels.

The searches live in their own modules (``linearise``, ``line_search``, ``deepfool``, ``linf``);
this module is their one public entry point.

- ``linear_distances``: exact distances to the decision boundary of a linear classifier,
  ``L2 = min_j |f_j| / ||w_j||_2`` and ``L-inf = min_j |f_j| / ||w_j||_1``, ``f_j = logit_y -
  logit_j``, ``w_j = W_y - W_j`` (no box constraint: the boundary of the affine map itself).
- ``deepfool``: DeepFool's L2 search (Moosavi-Dezfooli et al. 2016): linearise the nearest class
  boundary, step onto it (one fused ``kernels.pgd_step`` in L2 mode, inactive samples untouched;
  for a model with an affine first layer, in that layer's outputs, where the steps run compiled),
  repeat until the label flips; then a line search back along its direction to the boundary, so
  that the reported point flips the label and a point slightly closer along the same direction
  does not, and tangent-plane corrections where the boundary is curved.
- ``min_linf``: the smallest FGSM or PGD L-inf epsilon per sample, by geometric bisection on a
  per-sample bracket seeded with the linearised distance ``|f| / ||grad f||_1`` (exact for a linear
  model). FGSM steps use ``kernels.fgsm`` (``kernels.linear_fgsm`` for a linear model, logits to
  step in one kernel); PGD steps use ``kernels.pgd_step`` with per-sample early stopping.

Every search returns a ``Search``: the adversarial points, their ``kernels.Norms`` (computed by
``kernels.perturbation_norms``; NaN where the search failed), a success flag per sample and the
iterations run. Points that the model already misclassifies count as found at distance 0. The box
[0, 1] is not imposed unless ``clamp`` is given: the scaling experiment measures the distance to
the decision boundary, which for linear models is then exact.
"""

from hdbench.suite.experiments.deepfool import deepfool
from hdbench.suite.experiments.linearise import (
    Diagnostics,
    Linearisation,
    Search,
    diagnostics,
    energy_concentration,
    gradient_diagnostics,
    linear_distances,
    linearise,
)
from hdbench.suite.experiments.linf import min_linf

__all__ = [
    "Diagnostics",
    "Linearisation",
    "Search",
    "deepfool",
    "diagnostics",
    "energy_concentration",
    "gradient_diagnostics",
    "linear_distances",
    "linearise",
    "min_linf",
]
