"""IDX files (the MNIST format): MNIST and Fashion-MNIST, grayscale, optionally binarized."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .files import CorruptDataError, RemoteFile, find_or_download, locate, search_dirs

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# md5 sums of the canonical files (as published with torchvision's loaders).
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Where Debian's dataset-fashion-mnist package installs the files. Its version
# 0.0~git20200523.55506a9-1 ships the published compressed streams with the gzip header's file
# name stripped (reproducible builds): each file is exactly len(name) + 1 bytes shorter than the
# published one, so its md5 differs; these are those files' md5 sums.
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_DEBIAN_MD5 = {
    "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
}
# md5 sums of the same files uncompressed, as users keep them (torchvision's MNIST/raw/
# after extraction, or packages that ship the raw IDX files)
_MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
_FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
BINARIZE = (None, "dynamic", "threshold")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Format: two zero bytes, a type code, the number of dimensions, then one big-endian
    uint32 per dimension and the data in row-major order.

    Raises:
        CorruptDataError: the file is a truncated or corrupt gzip file, or not an IDX file,
            or holds fewer or more bytes than its header says; the message names the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise _idx_error(path, f"is a truncated or corrupt gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise _idx_error(path, f"is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise _idx_error(path, f"is not an IDX file (its header is cut short at {len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[data[2]]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise _idx_error(
            path,
            f"is truncated or corrupt: its header says {dims} ({expected} bytes) but it holds "
            f"{len(data) - offset}",
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def _idx_error(path: Path, problem: str) -> CorruptDataError:
    return CorruptDataError(
        f"{path} {problem}. Delete it and let dgm download it again, or replace it with the "
        f"canonical file of that name"
    )


def dynamic_binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw binary pixels with P(1) = intensity: a fresh binarization each call."""
    return torch.bernoulli(x, generator=generator)


def _uncompressed(name: str, raw_md5: dict[str, str]) -> tuple[RemoteFile, ...]:
    """The uncompressed form of the published ``name`` (``.gz``), if its md5 is known."""
    unpacked = name.removesuffix(".gz")
    return (RemoteFile(unpacked, (), md5=raw_md5[unpacked]),) if unpacked in raw_md5 else ()


def _remotes(
    urls: tuple[str, ...],
    md5: dict[str, str],
    also: dict[str, str] | None,
    raw_md5: dict[str, str] | None,
) -> dict[str, RemoteFile]:
    """The published files (and their uncompressed forms) of one data set, by name."""
    raw = raw_md5 or {}
    return {
        name: RemoteFile(
            name,
            tuple(u + name for u in urls),
            md5=md5[name],
            also=(also[name],) if also else (),
            local=_uncompressed(name, raw),
        )
        for name in md5
    }


def mnist_split_present(split: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether both files of MNIST's ``split`` are on disk, in either form, wherever ``mnist``
    looks (presence only: nothing is read, verified or downloaded)."""
    prefix = "train" if split == "train" else "t10k"
    remotes = _remotes(_MNIST_URLS, _MNIST_MD5, None, _MNIST_RAW_MD5)
    dirs = search_dirs(data_dir)
    return all(
        locate(remotes[f"{prefix}-{kind}"], dirs, "mnist", ("MNIST/raw",)) is not None
        for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")
    )


def _load(
    dataset: str,
    urls: tuple[str, ...],
    md5: dict[str, str],
    subdir: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    binarize: str | None,
    download: bool,
    generator: torch.Generator | None,
    also: dict[str, str] | None = None,
    fallback_dirs: tuple[Path, ...] = (),
    raw_md5: dict[str, str] | None = None,
    raw_dir: str = "",
) -> tuple[Tensor, Tensor]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
    prefix = "train" if split == "train" else "t10k"
    remotes = _remotes(urls, md5, also, raw_md5)
    paths = [
        find_or_download(
            remotes[f"{prefix}-{kind}"],
            data_dir,
            f"{dataset} ({split} split)",
            download,
            subdir,
            needed=list(remotes.values()),
            fallback_dirs=fallback_dirs,
            also_in=(raw_dir,) if raw_dir else (),
        )
        for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")
    ]
    image_array, label_array = (read_idx(p) for p in paths)
    if image_array.dtype != np.uint8 or image_array.shape[1:] != (28, 28):
        raise _idx_error(
            paths[0],
            f"holds {image_array.dtype} {list(image_array.shape)}, not uint8 [N, 28, 28] images",
        )
    n = len(image_array)
    if label_array.dtype != np.uint8 or label_array.shape != (n,) or (label_array > 9).any():
        raise _idx_error(
            paths[1],
            f"holds {label_array.dtype} {list(label_array.shape)} (largest "
            f"{label_array.max(initial=0)}), not {n} uint8 labels 0..9 (one per image of "
            f"{paths[0].name})",
        )
    images = torch.from_numpy(image_array.astype(np.float32) / 255.0).reshape(n, -1)
    labels = torch.from_numpy(label_array.astype(np.int64))
    if binarize == "dynamic":
        images = dynamic_binarize(images, generator)
    elif binarize == "threshold":
        images = (images > 0.5).float()
    return images, labels


def mnist(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    binarize: str | None = None,
    download: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Grayscale MNIST: images ``[N, 784]`` in [0, 1] (or binarized) and labels ``[N]``.

    The IDX files, compressed (``train-images-idx3-ubyte.gz`` ...) or not
    (``train-images-idx3-ubyte`` ...), are looked for in ``data_dir``, ``DGM_DATA_DIR`` and
    the cache directory, each directly, in its ``mnist/`` subfolder and in torchvision's
    ``MNIST/raw/``; each form is checked against the canonical md5 of that form.

    Args:
        binarize: ``None``; ``"dynamic"`` (one Bernoulli draw now; for a fresh draw every epoch,
            load grayscale and apply ``dynamic_binarize`` per batch); or ``"threshold"`` (> 0.5).
    """
    return _load(
        "MNIST",
        _MNIST_URLS,
        _MNIST_MD5,
        "mnist",
        split,
        data_dir,
        binarize,
        download,
        generator,
        raw_md5=_MNIST_RAW_MD5,
        raw_dir="MNIST/raw",
    )


def fashion_mnist(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    binarize: str | None = None,
    download: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST, as ``mnist`` (subfolders ``fashion-mnist/`` and torchvision's
    ``FashionMNIST/raw/``); also found where Debian's dataset-fashion-mnist puts it
    (``FASHION_DEBIAN_DIR``, looked at after the search directories: ``DGM_DATA_DIR`` set
    for other data sets does not hide it)."""
    return _load(
        "Fashion-MNIST",
        _FASHION_URLS,
        _FASHION_MD5,
        "fashion-mnist",
        split,
        data_dir,
        binarize,
        download,
        generator,
        _FASHION_DEBIAN_MD5,
        (FASHION_DEBIAN_DIR,),
        raw_md5=_FASHION_RAW_MD5,
        raw_dir="FashionMNIST/raw",
    )
