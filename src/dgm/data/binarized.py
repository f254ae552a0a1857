"""Statically binarized MNIST (Larochelle & Murray 2011): 50000 / 10000 / 10000 digits.

The fixed binarization used by the likelihood tables of IWAE, RWS, VIMCO and VampPrior.
Read from ``binarized_mnist.npz`` (keys train/valid/test, uint8 0/1, [N, 784]) or from the
original ``binarized_mnist_{train,valid,test}.amat`` text files, downloaded if absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .files import RemoteFile, find_or_download, search_dirs

SPLITS = {"train": 50000, "valid": 10000, "test": 10000}
_BASE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
# sha256 of the original files (as recorded by tensorflow_datasets' url_checksums).
AMAT_FILES = {
    "train": RemoteFile(
        "binarized_mnist_train.amat",
        (_BASE + "binarized_mnist_train.amat",),
        sha256="ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    ),
    "valid": RemoteFile(
        "binarized_mnist_valid.amat",
        (_BASE + "binarized_mnist_valid.amat",),
        sha256="1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    ),
    "test": RemoteFile(
        "binarized_mnist_test.amat",
        (_BASE + "binarized_mnist_test.amat",),
        sha256="e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
    ),
}
NPZ_NAME = "binarized_mnist.npz"


def binarized_mnist(
    split: str = "train", data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> Tensor:
    """Load one split of statically binarized MNIST as a float32 tensor ``[N, 784]`` of 0/1.

    Args:
        split: ``"train"`` (50000), ``"valid"`` (10000) or ``"test"`` (10000).
        data_dir: directory to look in first (then ``DGM_DATA_DIR``, then the cache).
        download: fetch the ``.amat`` file (checksum-verified) when no copy is found.

    Raises:
        DataNotFoundError: no copy, and it could not be downloaded; says which file goes where.
        ChecksumError: a file on disk differs from the published one.
        ValueError: a file has the wrong shape or non-binary values.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    for d in search_dirs(data_dir):
        if (d / NPZ_NAME).is_file():
            return _from_npz(d / NPZ_NAME, split)
    path = find_or_download(
        AMAT_FILES[split], data_dir, f"binarized MNIST ({split} split)", download
    )
    return _check(read_amat(path), split, path)


def _from_npz(path: Path, split: str) -> Tensor:
    with np.load(path) as archive:
        if split not in archive:
            raise ValueError(f"{path} has no array {split!r} (it has {sorted(archive.files)})")
        return _check(torch.from_numpy(archive[split].astype(np.float32)), split, path)


def _check(x: Tensor, split: str, path: Path) -> Tensor:
    if tuple(x.shape) != (SPLITS[split], 784):
        raise ValueError(
            f"{path}: the {split} split should be [{SPLITS[split]}, 784], got {list(x.shape)}"
        )
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{path}: binarized MNIST must hold only 0 and 1")
    return x


def read_amat(path: Path) -> Tensor:
    """Parse an ``.amat`` file: one digit per line, 784 space-separated 0/1 values."""
    raw = np.fromfile(path, dtype=np.uint8)
    line = 2 * 784
    # Fast path: "d d d ... d\n", so the digits sit at the even byte offsets.
    if raw.size % line == 0 and raw.size > 0:
        rows = raw.reshape(-1, line)
        seps = rows[:, 1::2]
        if (seps[:, :-1] == ord(" ")).all() and (seps[:, -1] == ord("\n")).all():
            return torch.from_numpy((rows[:, 0::2] - ord("0")).astype(np.float32))
    values = np.loadtxt(path, dtype=np.float32, ndmin=2)
    return torch.from_numpy(values)
