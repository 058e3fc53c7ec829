"""hdbench: Triton kernels and an asv benchmark suite that test Dube's claims on adversarial
examples in high dimensions (arXiv 1801.00634).

The installed package has four layers, each a folder of the repository:

- ``hdbench.kernels`` (``kernels/``): the fused Triton kernels and their pure-torch twins;
- ``hdbench.suite`` (``suite/``): the asv benchmark suite and the experiments it runs;
- ``hdbench.results`` (``results/``): record types, the scaling cell store, the shared vocabulary
  and atomic writes, written by the suite and read by the report;
- ``hdbench.reports`` (``reports/``): the HTML report built from the results.
"""

from pkgutil import extend_path

# A checkout's ``hdbench/`` folder shadows an installed copy when the checkout is the current
# folder; extending the path lets ``hdbench.kernels`` and the rest be found in either.
__path__ = extend_path(__path__, __name__)

__version__ = "0.2.0"
