"""The ``Examples:`` of the public ops' docstrings run, on whichever backend this machine has
(the Triton interpreter without a GPU, as every kernel test)."""

from __future__ import annotations

import doctest

import pytest

from hdbench.kernels import attack, hvp, pyramid


@pytest.mark.parametrize("module", [attack, pyramid, hvp], ids=lambda m: m.__name__)
def test_the_examples_in_the_docstrings_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    public = [n for n in module.__dict__ if not n.startswith("_")]
    assert result.failed == 0
    assert result.attempted >= 3, f"{module.__name__}: {result.attempted} examples of {public}"
