"""The words the suite writes and the report reads: readings, verdicts, implementation roles.

Declared once here, so that the suite's parameters, the speed-up computation and the report's
labels and colours cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

# --- E1: the readings of "the expected L2 norm is O(1/sqrt(n))" ---------------------------------
PREDICTED = -0.5  # the paper's slope, against the reading's variable, in every reading


class Reading(NamedTuple):
    """One reading of the claim: which norm, against which variable (N pixels or R side)."""

    norm: str
    variable: str
    label: str


READINGS: dict[str, Reading] = {
    "l2_N": Reading("l2", "N", "pixel L2 vs N"),
    "l2_R": Reading("l2", "R", "pixel L2 vs side"),
    "l2_area_N": Reading("l2_area", "N", "area L2 vs N"),
    "l2_area_R": Reading("l2_area", "R", "area L2 vs side"),
}

# --- verdicts: stored as codes (asv tracks numbers), shown as words ----------------------------
VERDICT_CODES = {"agrees": 1, "inconclusive": 0, "disagrees": -1}
VERDICTS = {code: word for word, code in VERDICT_CODES.items()}

# --- implementation roles ----------------------------------------------------------------------
# ours: hdbench's own (Triton kernels, hdbench_* loops); fallback: hdbench's torch backend, which
# stands in for ours where Triton cannot run (a CPU); baseline: what a user would write in plain
# PyTorch; peer: another library's implementation.
ROLES = ("ours", "fallback", "baseline", "peer")


class Implementation(NamedTuple):
    """An ``impl`` parameter value of the suite: its role, and its colour on every figure (None:
    the next free colour of the figure)."""

    role: str
    color: str | None = None


# Legends list the coloured ones in this order (ours first), then the rest by name. An
# implementation keeps its colour on every figure and page: Triton blue, torch.compile green,
# eager orange, peer libraries after.
IMPLEMENTATIONS: dict[str, Implementation] = {
    "triton": Implementation("ours", "C0"),
    "triton_kornia": Implementation("ours", "C9"),
    "hdbench": Implementation("ours", "C0"),
    "hdbench_triton": Implementation("ours", "C0"),
    "hdbench_torch_compile": Implementation("ours", "C2"),
    "hdbench_eager": Implementation("ours", "C1"),
    "torch_compile": Implementation("fallback", "C2"),
    "eager": Implementation("baseline", "C1"),
    "torchattacks": Implementation("peer", "C3"),
    "foolbox": Implementation("peer", "C4"),
    "kornia": Implementation("peer", "C5"),
    "avg_pool": Implementation("baseline", "C7"),
    "torch_func": Implementation("baseline", "C4"),
    "double_backward": Implementation("baseline", "C3"),
    "double_backward_compile": Implementation("baseline", "C8"),
    "pyhessian_loop": Implementation("peer", "C3"),
    "hdbench_deepfool": Implementation("ours"),
    "hdbench_deepfool_refined": Implementation("ours"),
    "hdbench_deepfool_refined_eager": Implementation("ours"),
    "hdbench_deepfool_blackbox": Implementation("ours"),
    "torchattacks_deepfool": Implementation("peer"),
    "foolbox_deepfool": Implementation("peer"),
    "foolbox_fmn": Implementation("peer"),
}
IMPL_COLORS = {k: v.color for k, v in IMPLEMENTATIONS.items() if v.color is not None}
IMPL_ORDER = tuple(IMPL_COLORS)
# the implementation that stands in for ours where none of ours ran
FALLBACK = next(k for k, v in IMPLEMENTATIONS.items() if v.role == "fallback")


def role(impl: object) -> str:
    """The role of an ``impl`` value; an undeclared name starting with ``triton`` or
    ``hdbench`` is ours, any other a baseline."""
    name = str(impl)
    if name in IMPLEMENTATIONS:
        return IMPLEMENTATIONS[name].role
    return "ours" if name.startswith(("triton", "hdbench")) else "baseline"
