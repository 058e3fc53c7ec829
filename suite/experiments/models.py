"""Classifier families of the scaling experiment (SCIENCE.md, E1), trained at each resolution.

Families, all taking images (B, C, S, S) in [0, 1] and returning logits (B, K):
- ``"linear"``: logistic regression on the centred pixels, ``logits = W (x - 1/2) + b``; its
  minimal perturbations are exact (``suite.experiments.attacks.linear_distances``);
- ``"mlp"``: one tanh hidden layer of ``HIDDEN`` units on the centred pixels (smooth, so its
  input gradient and DeepFool's linearisation are well defined everywhere);
- ``"cnn"``: three 3x3 convolutions (the second with stride 2), ReLU, global average pooling and a
  linear head: the same parameters at every resolution.

Training regimes, by the ratio of training samples to pixels N = C * S^2 at each side:
``"more"`` trains on 2 N samples, ``"fewer"`` on N / 8 (at least ``MIN_TRAIN``). Training is
seeded: minibatch Adam for a fixed number of steps, cycling through the samples, which are
rendered once when they fit ``MATERIALISE_BYTES`` and streamed from the seeded scenes otherwise
(the "more" regime at large sides), so memory stays bounded at any side.

A model whose test accuracy is below ``learned_threshold`` did not learn: the experiment reports
its accuracy and does not attack it.

The linear and MLP families split as ``model(x) == tail(stem(x))`` with ``stem`` affine in x
(``affine_stem``): along a segment the stem's output is the same segment between its ends' outputs,
so the attacks' line searches evaluate points of a segment without the pixel-sized first layer;
``stem.weight`` is its matrix W (``stem(x) = W x + const``), with which the attacks' DeepFool
steps run in the stem's outputs too. The forward pass is the same ``tail(stem(x))``, bit for bit,
and makes no centred copy of the image. The CNN has no such method: its first convolution's
output is larger than the image.
"""

from __future__ import annotations

import dataclasses
import io
import time
import weakref
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from hdbench.results.atomic import write_atomic
from hdbench.suite.experiments.data import Scenes

MODELS = ("linear", "mlp", "cnn")
REGIMES = ("more", "fewer")
HIDDEN = 32
CNN_WIDTH = 16
MIN_TRAIN = 16
REF_PIXELS = 64  # the side-8 grey image: the first layer's learning rate is set for it
MATERIALISE_BYTES = 256 << 20
# the most pixels (samples x C x S^2) one forward and backward pass carries: larger batches run
# in slices (training accumulates their gradients), so memory stays bounded at any side; 2^25
# pixels hold about 8 GB of the CNN's activations (32 images at side 1024)
BATCH_PIXELS = 1 << 25
# a training run with a checkpoint file also saves its state this often, so that a process
# killed outright (out of time, out of memory) loses at most this much of its training
CHECKPOINT_EVERY_S = 60.0
# Training and test samples come from disjoint index ranges of the same seeded scenes.
TEST_OFFSET = 1 << 24


def train_samples(regime: str, pixels: int) -> int:
    """Training-set size of `regime` for inputs of `pixels` values (C * S^2)."""
    if regime not in REGIMES:
        raise ValueError(f"train_samples: expected regime in {REGIMES}, got {regime!r}")
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"train_samples: expected pixels a positive int, got {pixels!r}")
    return 2 * pixels if regime == "more" else max(MIN_TRAIN, pixels // 8)


def learned_threshold(classes: int) -> float:
    """The test accuracy below which a model counts as not having learned: chance + 0.1."""
    return 1.0 / classes + 0.1


class LinearClassifier(nn.Module):
    """logits = W (x - 1/2) + b on flattened images."""

    def __init__(self, pixels: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(pixels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _centred_linear(self.fc, x)

    def affine_stem(self) -> tuple[nn.Module, nn.Module]:
        """(stem, tail): the whole map is affine."""
        return _Stem(self.fc), nn.Identity()

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W (K, D), b (K,)) of logits = W x + b on the raw pixels."""
        with torch.no_grad():
            return self.fc.weight.detach(), _raw_bias(self.fc)


class MLPClassifier(nn.Module):
    """logits = W2 tanh(W1 (x - 1/2) + b1) + b2 on flattened images."""

    def __init__(self, pixels: int, classes: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[1:](_centred_linear(self.net[0], x))

    def affine_stem(self) -> tuple[nn.Module, nn.Module]:
        """(stem, tail): the first linear layer, then tanh and the output layer."""
        return _Stem(self.net[0]), self.net[1:]


class CNNClassifier(nn.Module):
    """Three 3x3 convolutions (stride 1, 2, 1), ReLU, global average pooling, linear head."""

    def __init__(self, channels: int, classes: int, width: int = CNN_WIDTH) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5).mean(dim=(2, 3)))


def _raw_bias(layer: nn.Linear) -> torch.Tensor:
    """``b - W 1 / 2``: the bias of ``layer(x - 1/2)`` as an affine map of the raw pixels x."""
    return layer.bias - 0.5 * layer.weight.sum(dim=1)


def _centred_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x.flatten(1) - 1/2)`` computed as ``W x + (b - W 1 / 2)``: (B, ...) ->
    (B, out_features) with no centred copy of x, a pixel-sized buffer per forward pass."""
    return nn.functional.linear(x.flatten(1), layer.weight, _raw_bias(layer))


class _Stem(nn.Module):
    """The centring and first linear layer of a classifier on flattened images (see
    ``_centred_linear``), the same computation as the model's own forward pass, so that
    ``tail(stem(x))`` equals ``model(x)`` bit for bit."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _centred_linear(self.layer, x)

    @property
    def weight(self) -> torch.Tensor:
        """W (out_features, D) of ``stem(x) = W x.flatten(1) + const``, detached."""
        return self.layer.weight.detach()

    def gram(self) -> torch.Tensor:
        """``W W^T`` (out_features, out_features), kept per weight until the weight changes (its
        version counter moves with every in-place update, an optimiser's step included)."""
        w = self.layer.weight
        kept = _GRAMS.get(self.layer)  # (weight, its version, W W^T)
        if kept is None or kept[0]() is not w or kept[1] != w._version:
            kept = _GRAMS[self.layer] = (weakref.ref(w), w._version, self.weight @ self.weight.T)
        return kept[2]


# the stems' Gram matrices by layer: a pixel-sized product the attacks need per call
_GRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def build(model: str, channels: int, side: int, classes: int) -> nn.Module:
    """An untrained classifier of family `model` for (B, channels, side, side) inputs."""
    pixels = channels * side * side
    if model == "linear":
        return LinearClassifier(pixels, classes)
    if model == "mlp":
        return MLPClassifier(pixels, classes)
    if model == "cnn":
        return CNNClassifier(channels, classes)
    raise ValueError(f"build: expected model in {MODELS}, got {model!r}")


@dataclasses.dataclass(frozen=True)
class Training:
    """Fixed-budget minibatch Adam: ``steps`` steps of ``batch`` samples at learning rate ``lr``
    (per family; the linear model's loss is convex and takes a larger step)."""

    steps: int = 200
    batch: int = 128
    lr: dict = dataclasses.field(default_factory=lambda: {"linear": 1e-2, "mlp": 3e-3, "cnn": 3e-3})
    weight_decay: float = 1e-4


class Trained(NamedTuple):
    """A trained classifier and what it scored."""

    model: nn.Module
    train_samples: int
    train_accuracy: float
    final_loss: float
    seconds: float  # wall time of the training steps, summed over every resumed part


class DeadlineReached(RuntimeError):
    """A deadline passed before the work it stopped was done; what was done is saved."""


def _groups(model: nn.Module, lr: float) -> list[dict]:
    """Adam's parameter groups: the first layer over the pixels at lr * REF_PIXELS / N.

    Adam moves every weight by about lr per step whatever its gradient's size, so a layer summing
    N pixels moves its outputs by about lr * N per step; scaling its rate by 1 / N makes training
    do the same thing at every resolution, as the image read as a function on the unit square
    does (without it the MLP's tanh units saturate at large sides).
    """
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if isinstance(model, CNNClassifier) or first is None:
        return [{"params": list(model.parameters()), "lr": lr}]
    scaled = lr * min(1.0, REF_PIXELS / first.in_features)
    rest = [p for p in model.parameters() if p is not first.weight]
    return [{"params": [first.weight], "lr": scaled}, {"params": rest, "lr": lr}]


def _cycle(scenes: Scenes, side: int, n: int, batch: int, steps: range, device: torch.device):
    """Yield the minibatches (x, y) of `steps` (step t holds samples t * batch, t * batch + 1,
    ... modulo n of `scenes` at `side`), so that a resumed run sees what an unbroken one does."""
    if not steps:  # nothing to render: a resumed run that had finished
        return
    per_sample = 4 * scenes.channels * side * side
    if n * per_sample <= MATERIALISE_BYTES:
        parts = [r[side] for _, r in scenes.batches(n, device, sides=(side,))]
        xs, ys = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        for t in steps:
            idx = (torch.arange(batch, device=device) + t * batch) % n
            yield xs[idx], ys[idx]
        return
    for t in steps:
        start = (t * batch) % n
        stop = min(n, start + batch)  # a short batch at the wrap point keeps rendering simple
        x, y = scenes.render(start, stop, device, (side,))[side]
        yield x, y


def train(
    model_name: str,
    scenes: Scenes,
    side: int,
    regime: str,
    *,
    training: Training = Training(),
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_pixels: int = BATCH_PIXELS,
    checkpoint: str | Path | None = None,
    deadline: float | None = None,
) -> Trained:
    """Train a `model_name` classifier on `scenes` at `side` in `regime`, seeded; a minibatch of
    more than `batch_pixels` pixels runs in slices whose gradients add up to the minibatch's.

    With a `checkpoint` file, training starts from the state saved there (if the file exists)
    and saves its state there every ``CHECKPOINT_EVERY_S`` seconds and when it ends, and,
    should `deadline` (a ``time.monotonic()`` value) pass before a step, before that step, then
    raises ``DeadlineReached``. Minibatch t depends on t alone, so a run stopped and resumed
    trains the same model as one that was not stopped: bit for bit on a CPU, and on a GPU up to
    the nondeterminism of its kernels, which an unbroken run has too. The caller deletes the
    file once it has kept what it needs.

    Returns:
        ``Trained(model (eval mode, on device), train_samples, train_accuracy, final_loss,
        seconds)``; the training accuracy is measured on the last 8 minibatches.
    """
    if side not in scenes.sides:
        raise ValueError(f"train: expected side in {scenes.sides}, got {side!r}")
    if deadline is not None and checkpoint is None:
        raise ValueError("train: expected a checkpoint file with a deadline, got none")
    device = torch.device(device)
    n = train_samples(regime, scenes.channels * side * side)
    torch.manual_seed(seed)
    model = build(model_name, scenes.channels, side, scenes.classes).to(device)
    opt = torch.optim.AdamW(
        _groups(model, training.lr[model_name]), weight_decay=training.weight_decay
    )
    rows = rows_per_pass(batch_pixels, scenes.channels * side * side)
    # the state a stopped run saves: step (the next one), and the tallies kept so far
    state = {"step": 0, "correct": 0, "seen": 0, "loss": torch.tensor(float("nan")), "seconds": 0.0}
    if checkpoint is not None and Path(checkpoint).exists():
        state = _resume(checkpoint, model, opt, device, training.steps)
    c0 = time.perf_counter()

    def save() -> None:
        done = state["step"] == training.steps  # the optimiser is needed no more
        kept = {
            **state,
            "seconds": state["seconds"] + time.perf_counter() - c0,
            "steps": training.steps,
            "model": model.state_dict(),
            "opt": {} if done else opt.state_dict(),
        }
        buf = io.BytesIO()
        torch.save(kept, buf)
        write_atomic(Path(checkpoint), buf.getvalue())

    saved = time.perf_counter()
    steps = range(state["step"], training.steps)
    for t, (x, y) in enumerate(_cycle(scenes, side, n, training.batch, steps, device), steps.start):
        if deadline is not None and time.monotonic() > deadline:
            save()
            raise DeadlineReached(
                f"train: stopped before step {t} of {training.steps} of "
                f"{model_name} at side {side}; its state is in {checkpoint}"
            )
        opt.zero_grad(set_to_none=True)
        parts, loss = [], 0.0
        for i in range(0, len(y), rows):  # the minibatch's mean loss, slice by slice
            part, ys = model(x[i : i + rows]), y[i : i + rows]
            piece = nn.functional.cross_entropy(part, ys) * (len(ys) / len(y))  # its share
            piece.backward()
            parts.append(part.detach())
            loss = loss + piece.detach()
        logits = torch.cat(parts)
        opt.step()
        state["step"], state["loss"] = t + 1, loss.detach()
        if t >= training.steps - 8:
            state["correct"] += int((logits.argmax(dim=1) == y).sum())
            state["seen"] += y.numel()
        if checkpoint is not None and time.perf_counter() - saved > CHECKPOINT_EVERY_S:
            save()
            saved = time.perf_counter()
    if checkpoint is not None and steps:
        save()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Trained(
        model,
        n,
        state["correct"] / max(state["seen"], 1),
        float(state["loss"]),
        state["seconds"] + time.perf_counter() - c0,
    )


def _resume(
    checkpoint: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    device: torch.device,
    steps: int,
) -> dict:
    """Load the model and optimiser state saved by ``train`` in `checkpoint`; returns the rest
    of it (step, tallies, seconds)."""
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    if state.get("steps") != steps:
        raise ValueError(
            f"train: expected a checkpoint of a {steps}-step run in {checkpoint}, "
            f"got one of {state.get('steps')!r} steps"
        )
    model.load_state_dict(state.pop("model"))
    if state["step"] < steps:
        opt.load_state_dict(state["opt"])
    del state["opt"]
    return state


def test_set(
    scenes: Scenes, n: int, device: torch.device | str = "cpu"
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """{side: (images, labels)} of `n` test scenes, disjoint from every training set."""
    return scenes.render(TEST_OFFSET, TEST_OFFSET + n, device)


def rows_per_pass(batch_pixels: int, pixels: int) -> int:
    """Samples of `pixels` values each that one pass of `batch_pixels` pixels carries (>= 1)."""
    if isinstance(batch_pixels, bool) or not isinstance(batch_pixels, int) or batch_pixels < 1:
        raise ValueError(
            f"rows_per_pass: expected batch_pixels a positive int, got {batch_pixels!r}"
        )
    return max(1, batch_pixels // pixels)


@torch.no_grad()
def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_pixels: int = BATCH_PIXELS
) -> torch.Tensor:
    """(B,) bool: which samples `model` classifies correctly (x in slices of `batch_pixels`)."""
    rows = rows_per_pass(batch_pixels, x[0].numel())
    return torch.cat(
        [
            model(x[i : i + rows]).argmax(dim=1) == y[i : i + rows]
            for i in range(0, x.shape[0], rows)
        ]
    )
