"""Data sets as train / validation / test splits, by name: the table that configurations use.

``DATASETS`` maps a name to a loader ``load(data_dir=..., seed=..., train_points=...,
valid_points=..., test_points=..., binarize=...) -> Splits``; its capabilities say what a
configuration can know without loading anything: ``kind`` (``"image"`` or ``"points"``),
``shape`` (one data point's shape), ``levels`` (how many intensity levels an image has:
256 for 8-bit, 17 for the 4-bit 8x8 digits, 2 for binary; ``None`` for continuous points),
``binarize`` (whether the ``binarize`` option applies), ``train_size`` (the points of the
full training split; ``train_points`` takes fewer) and ``factors`` (whether the splits come
with ground-truth factors: ``side["factor_indices"]`` and a ``dgm.data.FactorData`` in
``info["factor_data"]`` that renders any factor combination, as the disentanglement metrics
need) and ``download`` (how missing files are obtained: ``"auto"``, fetched, checksum-verified,
when missing, as the MNIST sets are; ``"opt-in"``, fetched only when asked, by the
configuration's ``data.download=true`` or a loader's ``download=True``, as MAF's tabular sets
are (about 1 GB); ``"none"``, nothing to download: generated, or bundled with a package).

The tabular sets (``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300``; see
``tabular.py``) honour ``train_points``, ``valid_points`` and ``test_points`` as the first
points of their published splits; a number at least a split's size takes all of it (as
``binarized_mnist`` and ``mnist`` slice theirs), which is how a configuration scores the whole
published test split, as the published protocol does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..registry import Registry
from .binarized import binarized_mnist
from .idx import dynamic_binarize, fashion_mnist, mnist
from .maf_tables import TABULAR_SETS, tabular
from .mixtures import MIXTURES, mixture
from .multi_digit import (
    CANVAS_SIZE,
    MAX_DIGITS,
    PYRO_IMAGES,
    PYRO_SEED,
    MultiMNIST,
    cached_multi_mnist,
    pool_tag,
    pyro_multi_mnist,
)
from .sprites import FACTOR_NAMES, FACTOR_SIZES, DSpritesFactors, dsprites
from .stacked import digit_pool, held_out_parts, stack_digits
from .toy2d import TOY_DENSITIES, toy2d

BINARIZE = ("dynamic", "threshold")  # how grayscale images become binary (see ``_idx``)
HOLDOUT = 10000  # MNIST's last training digits, held out for validation (the usual 50000 / 10000)
TEST_BINARIZATION_SEED = 0  # the one dynamic binarization of the test digits every run shares


@dataclass
class Splits:
    """Train / validation / test tensors ``[N, D]`` and what is known about them.

    Attributes:
        image_shape: the shape of one point as an image (for pictures), e.g. ``(28, 28)``.
        transform: applied to every training batch (e.g. a fresh dynamic binarization).
        side: side information per split, indexed like the data: ``side["labels"]["test"]``
            (MNIST classes; stacked MNIST's 0..999; multi-MNIST's ``[N, 2]`` digit classes,
            -1 beyond the count, beside its ``side["counts"]`` and ``side["boxes"]``),
            ``side["factors"]["train"]`` (dSprites factor values ``[N, 5]``),
            ``side["factor_indices"]["train"]`` (their indices into the factor grid).
        info: anything else, e.g. ``info["factor_names"]``, ``info["factor_data"]`` (a
            ``dgm.data.FactorData`` that renders observations for chosen factors),
            ``info["mode_centers"]`` ``[M, 2]`` and ``info["mode_std"]`` (a Gaussian mixture's
            modes, ``ring8`` / ``grid25``), ``info["digit_source"]`` (stacked and multi-MNIST's
            pool), ``info["canvas_size"]`` and ``info["max_objects"]`` (multi-MNIST's).
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    image_shape: tuple[int, ...]
    transform: Callable[[Tensor], Tensor] | None = None
    side: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def data_size(self) -> int:
        """The dimension of one flattened point."""
        return math.prod(self.image_shape)


def _dsprites(size: int) -> Callable[..., Splits]:
    def load(
        *, seed: int, train_points: int | None, valid_points: int, test_points: int, **_: Any
    ) -> Splits:
        return _dsprites_splits(size, seed, train_points, valid_points, test_points)

    return load


def _dsprites_splits(
    size: int, seed: int, train_points: int | None, valid_points: int, test_points: int
) -> Splits:
    total = (train_points or 50000) + valid_points + test_points
    ds = dsprites(total, seed=seed, size=size)
    n_valid, n_test = valid_points, test_points
    # the generated subset is in grid order (shape first): shuffle before cutting, or the
    # validation and test splits would hold squares only
    order = torch.randperm(len(ds.index), generator=torch.Generator().manual_seed(seed + 1))

    def cut(t: Tensor) -> dict[str, Tensor]:
        t = t[order]
        return {
            "train": t[n_valid + n_test :],
            "valid": t[:n_valid],
            "test": t[n_valid : n_valid + n_test],
        }

    images = cut(ds.images)
    return Splits(
        images["train"],
        images["valid"],
        images["test"],
        (size, size),
        side={"factors": cut(ds.values), "factor_indices": cut(ds.factors)},
        info={
            "factor_names": FACTOR_NAMES,
            "factor_sizes": FACTOR_SIZES,
            "factor_data": DSpritesFactors(size),
        },
    )


def _binarized_mnist(
    *,
    data_dir: str | None,
    train_points: int | None,
    valid_points: int,
    test_points: int,
    **_: Any,
) -> Splits:
    train = binarized_mnist("train", data_dir)
    valid = binarized_mnist("valid", data_dir)[:valid_points]
    test = binarized_mnist("test", data_dir)[:test_points]
    return Splits(train[:train_points], valid, test, (28, 28))


def _idx(loader: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., Splits]:
    def load(
        *,
        data_dir: str | None,
        seed: int,
        train_points: int | None,
        valid_points: int,
        test_points: int,
        binarize: str | None = None,
        holdout: int = HOLDOUT,
        **_: Any,
    ) -> Splits:
        gen = torch.Generator().manual_seed(seed)
        train_all, train_labels = loader("train", data_dir)
        test_all, test_labels = loader("test", data_dir)
        if not 0 <= holdout < len(train_all):
            raise ValueError(f"holdout must be in 0..{len(train_all) - 1}, got {holdout}")
        cut = len(train_all) - holdout
        # holdout=0: every training digit trains (the IWAE paper's 60000); validation then
        # watches the first training digits, as a paper without a validation set would
        held = slice(cut, None) if holdout else slice(0, None)
        train, valid = train_all[:cut], train_all[held][:valid_points]
        test = test_all[:test_points]
        labels = {
            "train": train_labels[:cut][:train_points],
            "valid": train_labels[held][:valid_points],
            "test": test_labels[:test_points],
        }
        return _grayscale_splits(train[:train_points], valid, test, labels, binarize, gen)

    return load


def _grayscale_splits(
    train: Tensor,
    valid: Tensor,
    test: Tensor,
    labels: dict[str, Tensor],
    binarize: str | None,
    gen: torch.Generator,
) -> Splits:
    transform = None
    if binarize == "dynamic":
        # a fresh binarization of every training batch (the run's RNG: seeded, resumable);
        # one fixed draw of the validation digits (the run's seed) and of the test digits
        # (TEST_BINARIZATION_SEED: every run scored on the same binary test digits)
        transform = dynamic_binarize
        valid = dynamic_binarize(valid, gen)
        test = dynamic_binarize(test, torch.Generator().manual_seed(TEST_BINARIZATION_SEED))
    elif binarize == "threshold":
        train, valid, test = ((t > 0.5).float() for t in (train, valid, test))
    elif binarize is not None:
        raise ValueError(f"binarize must be one of {', '.join(BINARIZE)} or null, got {binarize!r}")
    return Splits(train, valid, test, (28, 28), transform, side={"labels": labels})


MNIST_T10K_SPLIT_SEED = 0  # the permutation that cuts the test set, the same for every run


def _mnist_t10k(
    *,
    data_dir: str | None,
    seed: int,
    train_points: int | None,
    valid_points: int,
    test_points: int,
    binarize: str | None = None,
    **_: Any,
) -> Splits:
    """MNIST's 10000 test digits alone, cut by a fixed permutation into validation, test and
    training parts (the rest: 8000 with the default 1000 + 1000 held out). For machines that
    have only the test set; its numbers are not comparable with models trained on 50000."""
    images, targets = mnist("test", data_dir)
    x, labels = _held_out_cut(
        images,
        targets,
        MNIST_T10K_SPLIT_SEED,
        train_points,
        valid_points,
        test_points,
        "mnist_t10k has",
    )
    gen = torch.Generator().manual_seed(seed)
    return _grayscale_splits(x["train"], x["valid"], x["test"], labels, binarize, gen)


def _held_out_cut(
    x: Tensor,
    y: Tensor,
    seed: int,
    train_points: int | None,
    valid_points: int,
    test_points: int,
    owner: str,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Points and labels permuted by ``seed``, cut into validation (first), test (next) and
    training (the rest, its first ``train_points``) parts; ``owner`` starts the error
    ("the 8x8 digits have")."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    v, t = valid_points, test_points
    if v + t >= len(x):
        raise ValueError(
            f"{owner} {len(x)} images: data.valid_points + data.test_points ({v} + {t}) leave "
            "none to train on"
        )
    parts = {"valid": slice(0, v), "test": slice(v, v + t), "train": slice(v + t, None)}
    points = {k: x[s] for k, s in parts.items()}
    labels = {k: y[s] for k, s in parts.items()}
    points["train"], labels["train"] = (
        points["train"][:train_points],
        labels["train"][:train_points],
    )
    return points, labels


def _digits(
    *, seed: int, train_points: int | None, valid_points: int, test_points: int, **_: Any
) -> Splits:
    """scikit-learn's 8x8 digits (1797, intensities 0..16), split by a seeded permutation."""
    from sklearn.datasets import load_digits  # imported when used: it is slow to import

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.reshape(len(bunch.images), -1)).float() / 16
    y = torch.from_numpy(bunch.target).long()
    points, labels = _held_out_cut(
        x, y, seed, train_points, valid_points, test_points, "the 8x8 digits have"
    )
    return Splits(points["train"], points["valid"], points["test"], (8, 8), side={"labels": labels})


def _toy(name: str) -> Callable[..., Splits]:
    def load(
        *, seed: int, train_points: int | None, valid_points: int, test_points: int, **_: Any
    ) -> Splits:
        # three independent streams: the splits never share points
        return Splits(
            toy2d(name, train_points or 50000, seed),
            toy2d(name, valid_points, seed + 1_000_003),
            toy2d(name, test_points, seed + 2_000_006),
            (2,),
        )

    return load


def _mixture(name: str) -> Callable[..., Splits]:
    def load(
        *, seed: int, train_points: int | None, valid_points: int, test_points: int, **_: Any
    ) -> Splits:
        mix = MIXTURES[name]
        # three independent streams, as the toy densities; the modes travel with the splits
        return Splits(
            mixture(name, train_points or MIXTURE_TRAIN_SIZE, seed),
            mixture(name, valid_points, seed + 1_000_003),
            mixture(name, test_points, seed + 2_000_006),
            (2,),
            info={"mode_centers": mix.centers, "mode_std": mix.std},
        )

    return load


MIXTURE_TRAIN_SIZE = 100000  # PacGAN's num_sample
STACKED_TRAIN_SIZE = 50000


def _stacked_mnist(
    *,
    data_dir: str | None,
    seed: int,
    train_points: int | None,
    valid_points: int,
    test_points: int,
    **_: Any,
) -> Splits:
    """Stacked MNIST (``stacked.py``), flattened ``[N, 3 * 784]``: training images from the
    pool's digits outside its fixed held-out 10%, validation and test images from that 10%;
    three independent streams of ``seed``."""
    digits, labels, source = digit_pool(data_dir)
    parts = held_out_parts(len(digits))
    streams = {
        "train": (train_points or STACKED_TRAIN_SIZE, seed, parts["train"]),
        "valid": (valid_points, seed + 1_000_003, parts["held_out"]),
        "test": (test_points, seed + 2_000_006, parts["held_out"]),
    }
    images, stacked = {}, {}
    for split, (n, split_seed, among) in streams.items():
        x, stacked[split] = stack_digits(
            digits, labels, n, np.random.default_rng(split_seed), among
        )
        images[split] = x.view(n, -1)  # a view: no copy of the (up to 470 MB) training images
    return Splits(
        images["train"],
        images["valid"],
        images["test"],
        (3, 28, 28),
        side={"labels": stacked},
        info={"digit_source": source},
    )


MULTI_MNIST_TRAIN_SIZES = {CANVAS_SIZE: 60000, 32: 20000}  # Pyro's 60000; fewer at 32x32


def _multi_mnist(canvas_size: int) -> Callable[..., Splits]:
    def load(
        *,
        data_dir: str | None,
        seed: int,
        train_points: int | None,
        valid_points: int,
        test_points: int,
        **_: Any,
    ) -> Splits:
        """Multi-MNIST (``multi_mnist.py``), flattened ``[N, canvas * canvas]``: training
        images from the pool's digits outside its fixed held-out 10%, validation and test
        images from that 10%; three independent streams of ``seed``; each split cached in
        memory. ``side`` holds each split's ``counts`` ``[N]``, ``boxes`` ``[N, 2, 4]`` and
        digit ``labels`` ``[N, 2]`` (NaN / -1 beyond the count)."""
        digits, labels, source = digit_pool(data_dir)
        tag = pool_tag(digits, labels, source)
        streams = {
            "train": (train_points or MULTI_MNIST_TRAIN_SIZES[canvas_size], seed, "train"),
            "valid": (valid_points, seed + 1_000_003, "held_out"),
            "test": (test_points, seed + 2_000_006, "held_out"),
        }
        sets = {
            split: cached_multi_mnist(
                digits, labels, n, split_seed, canvas_size, part=part, tag=tag
            )
            for split, (n, split_seed, part) in streams.items()
        }
        images = {split: s.images.view(len(s), -1) for split, s in sets.items()}  # views
        return Splits(
            images["train"],
            images["valid"],
            images["test"],
            (canvas_size, canvas_size),
            side={
                "counts": {split: s.counts for split, s in sets.items()},
                "boxes": {split: s.boxes for split, s in sets.items()},
                "labels": {split: s.digit_labels for split, s in sets.items()},
            },
            info={
                "digit_source": source,
                "canvas_size": canvas_size,
                "max_objects": MAX_DIGITS,
            },
        )

    return load


_PYRO_SETS: dict[str, MultiMNIST] = {}  # generated once per process and pool


def _multi_mnist_pyro(
    *,
    data_dir: str | None,
    train_points: int | None,
    valid_points: int,
    test_points: int,
    **_: Any,
) -> Splits:
    """Pyro's 60000 multi-MNIST images, draw for draw (``multi_digit.pyro_multi_mnist``),
    from MNIST's 60000 training digits. Pyro's example trains and reports its count accuracy
    on these images and holds none out: validation and test are their first images."""
    digits, labels = mnist("train", data_dir, download=False)
    key = pool_tag(digits, labels, "mnist train")
    if key not in _PYRO_SETS:
        _PYRO_SETS.clear()
        _PYRO_SETS[key] = pyro_multi_mnist(digits, labels)
    found = _PYRO_SETS[key]
    flat = found.images.view(len(found), -1)
    cuts = {"train": slice(0, train_points), "valid": slice(0, valid_points)}
    cuts["test"] = slice(0, test_points)
    return Splits(
        flat[cuts["train"]],
        flat[cuts["valid"]],
        flat[cuts["test"]],
        (CANVAS_SIZE, CANVAS_SIZE),
        side={
            "counts": {k: found.counts[c] for k, c in cuts.items()},
            "boxes": {k: found.boxes[c] for k, c in cuts.items()},
            "labels": {k: found.digit_labels[c] for k, c in cuts.items()},
        },
        info={
            "digit_source": f"mnist train ({len(digits)} digits), Pyro's draws (seed {PYRO_SEED})",
            "canvas_size": CANVAS_SIZE,
            "max_objects": MAX_DIGITS,
        },
    )


def _tabular(name: str) -> Callable[..., Splits]:
    def load(
        *,
        data_dir: str | None,
        train_points: int | None,
        valid_points: int | None,
        test_points: int | None,
        download: bool = False,
        **_: Any,
    ) -> Splits:
        train, valid, test = tabular(name, data_dir, download)

        def first(x: np.ndarray, n: int | None) -> Tensor:  # None, or more than there are: all
            return torch.from_numpy(np.ascontiguousarray(x[:n]))

        return Splits(
            first(train, train_points),
            first(valid, valid_points),
            first(test, test_points),
            (TABULAR_SETS[name].dim,),
        )

    return load


DATASETS: Registry[Splits] = Registry("data set")
# MNIST and Fashion-MNIST (and the test digits alone): 8-bit 28x28 IDX files, fetched when missing
_GRAYSCALE_28: dict[str, Any] = {
    "kind": "image",
    "shape": (28, 28),
    "levels": 256,
    "binarize": True,
    "factors": False,
    "download": "auto",
}
DATASETS.add(
    "binarized_mnist",
    _binarized_mnist,
    "statically binarized MNIST (Larochelle & Murray 2011), 50000 / 10000 / 10000",
    kind="image",
    shape=(28, 28),
    levels=2,
    binarize=False,
    train_size=50000,
    factors=False,
    download="auto",
)
DATASETS.add(
    "mnist",
    _idx(mnist),
    "MNIST in [0, 1] (binarize: dynamic or threshold), with labels",
    **_GRAYSCALE_28,
    train_size=50000,
)
DATASETS.add(
    "mnist_t10k",
    _mnist_t10k,
    "MNIST's 10000 test digits alone, cut 8000 / 1000 / 1000 (when only the test set is at hand)",
    **_GRAYSCALE_28,
    train_size=8000,  # 10000 less the default 1000 + 1000 held out
)
DATASETS.add(
    "fashion_mnist",
    _idx(fashion_mnist),
    "Fashion-MNIST in [0, 1] (binarize: dynamic or threshold), with labels",
    **_GRAYSCALE_28,
    train_size=50000,
)
DATASETS.add(
    "dsprites",
    _dsprites(64),
    "dSprites generated procedurally (no download), with its five factors",
    kind="image",
    shape=(64, 64),
    levels=2,
    binarize=False,
    train_size=50000,  # generated: train_points of the grid (default 50000)
    factors=True,
    download="none",
)
DATASETS.add(
    "dsprites32",
    _dsprites(32),
    "dSprites' factor grid rendered at 32x32 (for CPU budgets), with its five factors",
    kind="image",
    shape=(32, 32),
    levels=2,
    binarize=False,
    train_size=50000,
    factors=True,
    download="none",
)
DATASETS.add(
    "digits",
    _digits,
    "scikit-learn's 8x8 digits (1797 images, 17 intensity levels), with labels",
    kind="image",
    shape=(8, 8),
    levels=17,
    binarize=False,
    train_size=1257,  # 1797 less the default 180 + 360 held out
    factors=False,
    download="none",
)
for _name in TOY_DENSITIES:
    DATASETS.add(
        _name,
        _toy(_name),
        f"the 2-D toy density {_name!r} (FFJORD's), generated",
        kind="points",
        shape=(2,),
        levels=None,
        binarize=False,
        train_size=50000,
        factors=False,
        download="none",
    )
for _name, _mix in MIXTURES.items():
    DATASETS.add(
        _name,
        _mixture(_name),
        f"{_mix.summary}, generated; modes in info['mode_centers'], info['mode_std']",
        kind="points",
        shape=(2,),
        levels=None,
        binarize=False,
        train_size=MIXTURE_TRAIN_SIZE,
        factors=False,
        download="none",
    )
DATASETS.add(
    "stacked_mnist",
    _stacked_mnist,
    "stacked MNIST: 3 digits as channels, 1000 labels 100*d0+10*d1+d2 (Metz et al. 2017), "
    "from MNIST's training digits (its test digits when those are absent); held-out digits "
    "for validation and test",
    kind="image",
    shape=(3, 28, 28),
    levels=256,
    binarize=False,
    train_size=STACKED_TRAIN_SIZE,
    factors=False,
    download="auto",
)
for _canvas, _name in ((CANVAS_SIZE, "multi_mnist"), (32, "multi_mnist_32")):
    DATASETS.add(
        _name,
        _multi_mnist(_canvas),
        f"multi-MNIST (Eslami et al. 2016, AIR) as Pyro's AIR example generates it: 0, 1 or 2 "
        f"scaled MNIST digits, uniformly, on a {_canvas}x{_canvas} canvas"
        + ("" if _canvas == CANVAS_SIZE else " (digits scaled with it; for CPU budgets)")
        + "; counts, boxes and digit labels in side; held-out digits for validation and test",
        kind="image",
        shape=(_canvas, _canvas),
        levels=256,  # continuous after resizing, but 8-bit digits, as stacked_mnist's
        binarize=False,
        train_size=MULTI_MNIST_TRAIN_SIZES[_canvas],
        factors=False,
        download="auto",
        max_objects=MAX_DIGITS,
    )
DATASETS.add(
    "multi_mnist_pyro",
    _multi_mnist_pyro,
    "Pyro's AIR example's 60000 multi-MNIST images exactly (its seed, draws and PIL resize), "
    "from MNIST's training digits; no held-out images: validation and test are its first ones",
    kind="image",
    shape=(CANVAS_SIZE, CANVAS_SIZE),
    levels=256,
    binarize=False,
    train_size=PYRO_IMAGES,
    factors=False,
    download="none",
    max_objects=MAX_DIGITS,
)
for _name, _set in TABULAR_SETS.items():
    DATASETS.add(
        _name,
        _tabular(_name),
        f"{_set.summary}; MAF's preprocessing, {' / '.join(map(str, _set.sizes))} x "
        f"{_set.dim} (opt-in download: data.download=true)",
        kind="points",
        shape=(_set.dim,),
        levels=None,
        binarize=False,
        train_size=_set.sizes[0],
        factors=False,
        download="opt-in",
    )

__all__ = ["BINARIZE", "DATASETS", "Splits"]
