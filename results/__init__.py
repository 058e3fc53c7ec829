"""The results stage: what the suite writes and the report reads.

Nothing here imports torch, triton, ``hdbench.kernels``, ``hdbench.suite`` or
``hdbench.reports``: the suite computes (fits and verdicts included) and writes through this
layer; the report reads through it and computes no science of its own.

- ``atomic``: ``write_atomic``, the one way a result reaches the disk;
- ``vocabulary``: the readings of the paper's claim, verdict codes, implementation roles;
- ``cells``: the scaling experiment's cell record (``CellRecord``), the folder that keeps them
  (``CellFolder``), the JSON-lines files they are exported to, and the stored fit
  (``ScalingFit``).
"""
