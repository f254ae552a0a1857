"""Stacked MNIST: three MNIST digits as the channels of one image, 1000 modes.

Each image ``[3, 28, 28]`` holds in channel ``c`` a digit drawn uniformly, independently of
the other channels, from a pool of labelled MNIST digits; its label is
``100 * d0 + 10 * d1 + d2`` for the channels' digit classes ``d0, d1, d2`` (1000 classes, all
equally likely up to the pool's class frequencies). A GAN's mode coverage is the number of
these classes a digit classifier finds among its samples.

The pool is MNIST's training set (60000 digits) when its files are on disk; otherwise MNIST's
test set (10000 digits), which the loader downloads when it is missing, as ``mnist`` does.
The training files are only looked for, never downloaded to decide (put them in the data
directory, or download them once with ``dgm.data.mnist("train")``, to use them). The
returned ``source`` says which pool was used.

Held-out digits: a fixed 10% of the pool (``held_out_parts``: a permutation with seed
``HELD_OUT_SEED``, the same for every run) is kept for the validation and test images, the
other 90% for the training images, so that no digit of a validation or test image appears in
a training image. ``stacked_mnist(..., pool="all")`` draws from the whole pool.

PacGAN's code (github.com/fjxmlzn/PacGAN, ``stacked_MNIST_experiments/VEEGAN_experiment/
model.py``, ``load_mnist``) draws each channel's digit uniformly with replacement from MNIST's
70000 training and test digits together and puts it in channel ``j`` unchanged (intensities
/ 255); this module does the same draw from the pools above.

References:
    Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled Generative Adversarial Networks", ICLR 2017.
    Lin, Khetan, Fanti & Oh, "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018 (Section 4.2, Table 2).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from .files import DataNotFoundError
from .idx import mnist

CHANNELS = 3
HELD_OUT_FRACTION = 0.1  # of the pool, kept for validation and test images
HELD_OUT_SEED = 0  # the permutation that picks them, the same for every run
POOLS = ("all", "train", "held_out")


def stack_digits(
    digits: Tensor,
    labels: Tensor,
    n: int,
    generator: np.random.Generator,
    among: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` stacked images ``[n, 3, 28, 28]`` and their labels ``[n]`` (int64, 0..999).

    Channel ``c`` of image ``i`` is the pool digit ``digits[j]`` for ``j`` drawn uniformly
    from the pool (from ``among``, a tensor of pool indices, when given), independently for
    every channel; the label is ``100 * labels[j0] + 10 * labels[j1] + labels[j2]``. The
    images are gathered straight into the result (no copy of the pool, no intermediate).

    Args:
        digits: the pool, ``[P, 784]`` or ``[P, 28, 28]`` images (MNIST's: float32 in
            [0, 1]; the result has the pool's dtype).
        labels: their classes ``[P]``, 0..9.
        generator: the source of the draws (the result is a function of its state).
        among: the pool indices to draw from (default: all ``P``).

    Raises:
        ValueError: ``n < 1``, a pool that is empty or not 28x28 digits with one label
            0..9 each, or ``among`` empty or outside the pool.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pool = _check_pool(digits, labels)
    if among is None:
        chosen = torch.from_numpy(generator.integers(0, len(pool), (n, CHANNELS)))
    else:
        among = among.long()
        if len(among) == 0 or int(among.min()) < 0 or int(among.max()) >= len(pool):
            raise ValueError(f"among must hold pool indices 0..{len(pool) - 1}, and at least one")
        chosen = among[torch.from_numpy(generator.integers(0, len(among), (n, CHANNELS)))]
    images = torch.empty(n, CHANNELS, 28, 28, dtype=pool.dtype)
    torch.index_select(pool, 0, chosen.reshape(-1), out=images.view(n * CHANNELS, 784))
    d = labels.long()[chosen]
    return images, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]


def _check_pool(digits: Tensor, labels: Tensor) -> Tensor:
    """The pool as ``[P, 784]`` (a view), after checking it holds labelled 28x28 digits."""
    if len(digits) == 0 or digits[0].numel() != 784:
        raise ValueError(
            f"the digit pool must be a non-empty [P, 784] or [P, 28, 28] tensor, got "
            f"{list(digits.shape)}"
        )
    if labels.shape != (len(digits),):
        raise ValueError(
            f"the digit pool needs one label per digit: {len(digits)} digits, labels "
            f"{list(labels.shape)}"
        )
    if int(labels.min()) < 0 or int(labels.max()) > 9:
        raise ValueError(f"digit labels must be 0..9, got {int(labels.min())}..{int(labels.max())}")
    return digits.reshape(len(digits), 784)


def digit_pool(data_dir: str | os.PathLike[str] | None = None) -> tuple[Tensor, Tensor, str]:
    """MNIST digits ``[P, 784]`` in [0, 1], their labels ``[P]`` and a line naming the pool.

    MNIST's training set when its files are on disk (looked for with ``download=False``:
    finding them out never starts a download); otherwise its test set, loaded as ``mnist``
    loads it (downloaded when missing and possible, else a ``DataNotFoundError`` that says
    which files to put where). A corrupt training file is an error, not a reason to fall back.
    """
    try:
        digits, labels = mnist("train", data_dir, download=False)
        return digits, labels, f"mnist train ({len(digits)} digits)"
    except DataNotFoundError:
        digits, labels = mnist("test", data_dir)
        return (
            digits,
            labels,
            f"mnist t10k ({len(digits)} digits): the training files were not found",
        )


def held_out_parts(size: int) -> dict[str, Tensor]:
    """Pool indices ``{"train": ..., "held_out": ...}``: a fixed ``HELD_OUT_FRACTION`` of a
    pool of ``size`` digits (at least one, and at least one left), by a permutation with seed
    ``HELD_OUT_SEED``."""
    if size < 2:
        raise ValueError(f"a pool of {size} digits cannot be cut into training and held-out parts")
    order = torch.from_numpy(np.random.default_rng(HELD_OUT_SEED).permutation(size))
    k = min(max(1, round(HELD_OUT_FRACTION * size)), size - 1)
    return {"held_out": order[:k], "train": order[k:]}


def stacked_mnist(
    n: int,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    pool: str = "all",
) -> tuple[Tensor, Tensor, str]:
    """``n`` stacked MNIST images ``[n, 3, 28, 28]`` (float32 in [0, 1]), their labels ``[n]``
    (int64, ``100 * d0 + 10 * d1 + d2``) and the digit pool's description (``digit_pool``).

    Args:
        seed: the draws are a function of it (``numpy.random.default_rng(seed)``).
        pool: ``"all"`` (every digit of the pool), ``"train"`` (the 90% not held out) or
            ``"held_out"`` (the fixed 10% that the validation and test splits use).

    Raises:
        ValueError: ``n < 1`` or an unknown ``pool``.
        DataNotFoundError: neither MNIST set is on disk and the test set cannot be downloaded.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    digits, labels, source = digit_pool(data_dir)
    among = None if pool == "all" else held_out_parts(len(digits))[pool]
    images, stacked_labels = stack_digits(digits, labels, n, np.random.default_rng(seed), among)
    return images, stacked_labels, source


__all__ = ["HELD_OUT_SEED", "digit_pool", "held_out_parts", "stack_digits", "stacked_mnist"]
