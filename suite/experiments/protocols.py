"""What the minimal-norm searches ask of a model beyond ``model(x) -> logits``.

The searches (``attacks``) take any ``nn.Module``; a model that offers more is searched faster,
and the classifiers of ``models`` offer it:

- ``SplitsAtAffineStem``: ``affine_stem() -> (stem, tail)`` with ``model(x) == tail(stem(x))``
  and ``stem`` affine (the linear and MLP classifiers: their first linear layer), so line
  searches run on the stem's outputs, not on pixels;
- ``AffineStem``: a stem that exposes its matrix ``weight`` (H, D) of ``stem(x) = W
  x.flatten(1) + c``, so DeepFool's steps and corrections run in the stem's outputs, with no
  pixel-sized backward pass; ``KeepsGram`` where it also keeps ``W W^T`` between calls;
- ``Affine``: a whole model that is affine, ``affine() -> (W (K, D), b (K,))`` of logits
  ``W x + b`` (the linear classifier), for exact distances and the fused linear FGSM.

The checks are structural (``isinstance`` against these runtime-checkable protocols looks for
the members): a model of another library needs no base class, only the methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class SplitsAtAffineStem(Protocol):
    def affine_stem(self) -> tuple[nn.Module, nn.Module]:
        """(stem, tail): ``model(x) == tail(stem(x))``, the stem affine."""
        ...


@runtime_checkable
class AffineStem(Protocol):
    @property
    def weight(self) -> torch.Tensor:
        """W (H, D) of ``stem(x) = W x.flatten(1) + const``, detached."""
        ...


@runtime_checkable
class KeepsGram(Protocol):
    def gram(self) -> torch.Tensor:
        """``W W^T`` (H, H), kept between calls while the weight is unchanged."""
        ...


@runtime_checkable
class Affine(Protocol):
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W (K, D), b (K,)) of ``logits = W x + b`` on the raw inputs."""
        ...
