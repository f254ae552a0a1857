"""dgm's own digit / garment classifier: the feature network of FID, KID and PRDC, offline.

Inception features need weights downloaded from the internet; this classifier needs none.
The first call of ``feature_classifier(dataset)`` trains a small CNN on data already at hand,
deterministically (fixed seed, fixed data order, ``RECIPE``), on the CPU, and caches its
weights atomically under ``dgm.data.files.cache_dir()/classifiers/``; every later call loads
them. The file name is a hash of the data set, the training source and the recipe
(``RECIPE_VERSION`` counts changes to the architecture or the procedure), so a different
recipe trains a new classifier and the same key always gives the same weights (on one
machine and torch version: CPU kernels may round differently elsewhere). Training says so on
stderr (``dgm.progress.say``), shows its progress, and takes one to two minutes on one CPU
thread.

Training data:

- ``"mnist"``: MNIST's training set (60000 digits; tested on the 10000 test digits) when its
  files are on disk, compressed or not. They are only looked for where ``dgm.data.mnist``
  looks (``dgm.data.idx.mnist_split_present``), never downloaded to decide;
  otherwise the training part of ``mnist_t10k`` (8000 of MNIST's test digits, the data set's
  fixed cut; tested on its held-out 1000 test digits).
- ``"fashion_mnist"``: Fashion-MNIST's training set (60000; tested on its 10000 test images),
  found as ``dgm.data.fashion_mnist`` finds it.

The network (``FeatureClassifier``): 3x3 convolutions of 16 and 32 channels, each followed by
BatchNorm, ReLU and 2x2 max-pooling, a fully connected layer of 128 units with ReLU -- the
*features*, ``forward``'s output -- and a linear layer to the 10 classes. Recipe: Adam
(lr 1e-3) with a cosine decay to 0 over 2000 steps of 128 images (4.3 epochs of 60000),
cross-entropy, the data reshuffled each epoch by a seeded generator. Test accuracy, as the
``gan_images_*`` and ``classifier`` benchmark results record it: MNIST's 60000 training
digits, 99.05% on its 10000 test digits; Fashion-MNIST's 60000, 90.8%; mnist_t10k's 8000
digits, 98.3% on its 1000 held-out digits (one to two minutes of training on one CPU thread).

Inputs are float images in [0, 1], ``[N, 1, 28, 28]`` or ``[N, 784]``: one grayscale
channel. Stacked MNIST's three channels are classified one at a time (``ChannelFeatures``
concatenates the features of each channel).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.files import cache_dir
from ..progress import Progress, say

RECIPE_VERSION = 1
"""Bump when the architecture or the training procedure changes: it retrains every cache."""

IMAGE_SHAPE = (1, 28, 28)
NUM_FEATURES = 128
NUM_CLASSES = 10
FEATURE_DATASETS = ("mnist", "fashion_mnist")
_RANGE_SLACK = 1e-4  # how far outside [0, 1] a pixel may be (rounding) before it is an error


@dataclass(frozen=True)
class Recipe:
    """How the classifier is trained (every field is part of the cache key)."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


RECIPE = Recipe()


class FeatureClassifier(nn.Module):
    """A small CNN for 28x28 grayscale images; ``forward`` gives its penultimate features.

    Built by ``feature_classifier``: frozen (``freeze``: evaluation mode for good, no
    gradients for its parameters). torchmetrics' FID and KID call ``forward`` and read
    ``num_features``.

    Attributes:
        num_features: the size of the features (128).
        image_shape: ``(1, 28, 28)``, the images it takes.
        dataset: ``"mnist"`` or ``"fashion_mnist"``: whose classes it predicts.
        source: the training data, e.g. ``"MNIST training set (60000 images)"``.
        test_split: the data ``test_accuracy`` was measured on.
        test_accuracy: the fraction of ``test_split`` predicted correctly.
        test_points: the size of ``test_split``.
        train_seconds: how long training took (when this classifier was trained).
    """

    num_features: int = NUM_FEATURES
    image_shape: tuple[int, int, int] = IMAGE_SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, NUM_FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(NUM_FEATURES, NUM_CLASSES)
        self.dataset = ""
        self.source = "untrained"
        self.test_split = ""
        self.test_accuracy = math.nan
        self.test_points = 0
        self.train_seconds = math.nan
        self.frozen = False

    def freeze(self) -> FeatureClassifier:
        """Evaluation mode for good (``train()`` is then a no-op: BatchNorm keeps its running
        statistics, so an image's features never depend on its batch), parameters frozen."""
        self.frozen = True
        return self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureClassifier:
        """``nn.Module.train``, except that a frozen classifier stays in evaluation mode (a
        parent module's ``.train()`` cannot switch its BatchNorm to batch statistics)."""
        return super().train(mode and not self.frozen)

    def forward(self, images: Tensor) -> Tensor:
        """Features ``[N, 128]`` of images ``[N, 1, 28, 28]`` or ``[N, 784]`` in [0, 1]."""
        return self.body(check_images(images).to(self.head.weight.dtype))

    def logits(self, images: Tensor) -> Tensor:
        """Class scores ``[N, 10]``."""
        return self.head(self.forward(images))

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 2048) -> Tensor:
        """The most likely class of each image, ``[N]`` (int64), in batches."""
        if len(images) == 0:
            check_images(images)
            return torch.zeros(0, dtype=torch.long, device=images.device)
        return torch.cat([self.logits(b).argmax(1) for b in images.split(batch_size)])

    def extra_repr(self) -> str:
        return f"source={self.source!r}, test_accuracy={self.test_accuracy:.4f}"


def check_images(images: Tensor) -> Tensor:
    """``images`` as ``[N, 1, 28, 28]``, or a ``ValueError`` that says what is expected."""
    expected = (
        "this classifier's features are for 28x28 grayscale images: it expects float images "
        "in [0, 1] of shape [N, 1, 28, 28] or [N, 784]"
    )
    if not isinstance(images, Tensor):
        raise ValueError(f"{expected}, got {type(images).__name__}")
    shape = list(images.shape)
    if images.dim() == 2 and images.shape[1] == 784:
        images = images.reshape(len(images), *IMAGE_SHAPE)
    elif not (images.dim() == 4 and tuple(images.shape[1:]) == IMAGE_SHAPE):
        hint = ""
        if images.dim() == 4 and images.shape[1] > 1 and tuple(images.shape[2:]) == (28, 28):
            hint = (
                f" ({images.shape[1]} channels: score each channel on its own, e.g. "
                "with dgm.metrics.ChannelFeatures)"
            )
        raise ValueError(f"{expected}, got shape {shape}{hint}")
    if not images.is_floating_point():
        raise ValueError(
            f"{expected}, got dtype {images.dtype} (8-bit images: divide by 255 first)"
        )
    if images.numel():
        lo, hi = (float(v) for v in images.aminmax())
        if not (lo >= -_RANGE_SLACK and hi <= 1 + _RANGE_SLACK):  # NaN fails too
            raise ValueError(
                f"{expected}, got values in [{lo:.3g}, {hi:.3g}] (a tanh generator's [-1, 1]: "
                "map it with (x + 1) / 2; or clamp to [0, 1])"
            )
    return images


class ChannelFeatures(nn.Module):
    """The features of each channel of ``[N, C, 28, 28]`` images, concatenated: ``[N, C * F]``.

    For stacked MNIST (three digits as channels): a 28x28 grayscale classifier scores each
    channel on its own. ``num_features`` is ``C * F`` (torchmetrics reads it).
    """

    def __init__(self, classifier: nn.Module, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.classifier = classifier
        self.channels = channels
        inner = getattr(classifier, "num_features", None)
        if not isinstance(inner, int):
            raise ValueError("ChannelFeatures needs a classifier with an integer num_features")
        self.num_features = channels * inner

    def forward(self, images: Tensor) -> Tensor:
        c = self.channels
        if images.dim() == 2 and images.shape[1] == c * 784:
            images = images.reshape(len(images), c, 28, 28)
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, 28, 28):
            raise ValueError(
                f"ChannelFeatures expects images [N, {c}, 28, 28] or [N, {c * 784}] "
                f"({c} channels of 28x28), got shape {list(images.shape)}"
            )
        return torch.cat([self.classifier(images[:, i : i + 1]) for i in range(c)], 1)


# --------------------------------------------------------------------------- training data


@dataclass
class TrainingData:
    """Labelled images ``[N, 784]`` in [0, 1] to train on and to test on, and what they are."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str
    test_split: str


@dataclass(frozen=True)
class TrainingSource:
    """Where a classifier's data come from: ``name`` (part of the cache key) and a loader.

    Attributes:
        dataset: whose classes it predicts (``"mnist"``, ``"fashion_mnist"``, or any tag).
        name: identifies the data exactly (e.g. ``"mnist:train"``): the cache key uses it, so
            two sources with one name must give the same data.
        load: returns the ``TrainingData``; called only when the classifier is trained.
    """

    dataset: str
    name: str
    load: Callable[[], TrainingData]


def mnist_train_available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether MNIST's training files are on disk, in either form (``.gz`` or uncompressed),
    wherever ``dgm.data.mnist`` looks for them (presence only: nothing is read or
    downloaded)."""
    from ..data.idx import mnist_split_present

    return mnist_split_present("train", data_dir)


def training_source(
    dataset: str = "mnist", data_dir: str | os.PathLike[str] | None = None
) -> TrainingSource:
    """The data ``feature_classifier(dataset, data_dir)`` trains on (see the module's docstring)."""
    from ..data.idx import fashion_mnist, mnist

    if dataset not in FEATURE_DATASETS:
        raise ValueError(
            f"no feature classifier for {dataset!r}: choose one of {', '.join(FEATURE_DATASETS)}"
        )
    if dataset == "fashion_mnist":

        def fashion() -> TrainingData:
            x, y = fashion_mnist("train", data_dir)
            xt, yt = fashion_mnist("test", data_dir)
            return TrainingData(
                x,
                y,
                xt,
                yt,
                f"Fashion-MNIST training set ({len(x)} images)",
                f"Fashion-MNIST test set ({len(xt)} images)",
            )

        return TrainingSource("fashion_mnist", "fashion_mnist:train", fashion)
    if mnist_train_available(data_dir):

        def full() -> TrainingData:
            x, y = mnist("train", data_dir, download=False)
            xt, yt = mnist("test", data_dir)
            return TrainingData(
                x,
                y,
                xt,
                yt,
                f"MNIST training set ({len(x)} images)",
                f"MNIST test set ({len(xt)} images)",
            )

        return TrainingSource("mnist", "mnist:train", full)

    def t10k() -> TrainingData:
        from ..data.splits import DATASETS

        s = DATASETS.build(
            "mnist_t10k",
            data_dir=None if data_dir is None else str(data_dir),
            seed=0,
            train_points=None,
            valid_points=1000,
            test_points=1000,
        )
        labels = s.side["labels"]
        return TrainingData(
            s.train,
            labels["train"],
            s.test,
            labels["test"],
            f"mnist_t10k training part ({len(s.train)} of MNIST's test images; MNIST's "
            "training files were not found)",
            f"mnist_t10k held-out test part ({len(s.test)} images)",
        )

    return TrainingSource("mnist", "mnist_t10k:train", t10k)


# --------------------------------------------------------------------------- training


def train_classifier(data: TrainingData, recipe: Recipe = RECIPE) -> FeatureClassifier:
    """A ``FeatureClassifier`` trained on ``data`` by ``recipe``, on the CPU, deterministically
    (the global random state is left as it was); frozen, in evaluation mode, with its test
    accuracy measured."""
    x = check_images(data.train_images.cpu())
    y = data.train_labels.cpu().long()
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{len(x)} training images and {len(y)} labels: need as many, >= 1")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = FeatureClassifier()
        order = torch.Generator().manual_seed(recipe.seed)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.steps)
        model.train()
        step = 0
        bar = Progress(recipe.steps, "training the feature classifier", "step")
        while step < recipe.steps:
            perm = torch.randperm(len(x), generator=order)
            for batch in perm.split(recipe.batch_size):
                loss = nn.functional.cross_entropy(model.logits(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                step += 1
                bar.update(1)
                if step == recipe.steps:
                    break
        bar.close()
    model.train_seconds = time.perf_counter() - start
    model.freeze()
    accuracy, points = measure_accuracy(model, data.test_images, data.test_labels)
    model.source, model.test_split = data.source, data.test_split
    model.test_accuracy, model.test_points = accuracy, points
    return model


def measure_accuracy(model: FeatureClassifier, images: Tensor, labels: Tensor) -> tuple[float, int]:
    """The fraction of ``images`` whose predicted class is their label, and their number."""
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"{len(images)} test images and {len(labels)} labels: need as many, >= 1")
    device = next(model.parameters()).device
    predicted = model.predict(images.to(device)).cpu()
    return int((predicted == labels.cpu().long()).sum()) / len(labels), len(labels)


def cache_path(source: TrainingSource, recipe: Recipe = RECIPE) -> Path:
    """Where the classifier of ``source`` and ``recipe`` is cached."""
    key = json.dumps(
        {
            "version": RECIPE_VERSION,
            "dataset": source.dataset,
            "source": source.name,
            "recipe": asdict(recipe),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in source.dataset)
    return cache_dir() / "classifiers" / f"{safe}-{digest}.pt"


_META = ("dataset", "source", "test_split", "test_accuracy", "test_points", "train_seconds")


def _save(model: FeatureClassifier, path: Path) -> None:
    """Write the weights and metadata atomically (concurrent writers cannot corrupt it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": model.state_dict(), **{k: getattr(model, k) for k in _META}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> FeatureClassifier | None:
    """The cached classifier, or ``None`` when the file is missing, unreadable or foreign
    (the cache is ours to rebuild: the caller trains again and replaces it)."""
    if not path.is_file():
        return None
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        model = FeatureClassifier()
        model.load_state_dict(payload["state_dict"])
        for k in _META:
            setattr(model, k, payload[k])
    except Exception:  # truncated, corrupt, an older layout, not a checkpoint at all
        return None
    return model.freeze()


def load_or_train(
    source: TrainingSource,
    recipe: Recipe = RECIPE,
    device: str | torch.device | None = None,
) -> FeatureClassifier:
    """The classifier of ``source`` and ``recipe``: loaded from the cache, or trained (on the
    CPU, saying so) and cached; moved to ``device`` (default: the CPU)."""
    path = cache_path(source, recipe)
    model = _load(path)
    if model is None:
        say(
            f"dgm.metrics: training the {source.dataset} feature classifier on {source.name} "
            f"(once; cached in {path})"
        )
        model = train_classifier(source.load(), recipe)
        model.dataset = source.dataset
        _save(model, path)
    return model.to(device if device is not None else "cpu")


def feature_classifier(
    dataset: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    steps: int | None = None,
) -> FeatureClassifier:
    """dgm's classifier for ``dataset`` (``"mnist"`` or ``"fashion_mnist"``), trained on
    first use from the data at hand and cached (see the module's docstring).

    Its ``source``, ``test_split`` and ``test_accuracy`` say what it was trained and tested
    on: FID and the other sample-quality numbers computed on its features are comparable
    only between runs that used the same classifier.

    ``steps`` trains for fewer (or more) steps than ``RECIPE``'s 2000: another classifier
    (cached under its own key) whose features give other numbers; for smoke tests.

    Raises:
        ValueError: an unknown ``dataset``.
        dgm.data.DataNotFoundError: no training data at hand (the message says which files
            to put where).
    """
    recipe = RECIPE if steps is None else replace(RECIPE, steps=steps)
    return load_or_train(training_source(dataset, data_dir), recipe, device)


__all__ = [
    "FEATURE_DATASETS",
    "RECIPE",
    "RECIPE_VERSION",
    "ChannelFeatures",
    "FeatureClassifier",
    "Recipe",
    "TrainingData",
    "TrainingSource",
    "cache_path",
    "check_images",
    "feature_classifier",
    "load_or_train",
    "measure_accuracy",
    "mnist_train_available",
    "train_classifier",
    "training_source",
]
