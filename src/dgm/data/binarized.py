"""Statically binarized MNIST (Larochelle & Murray 2011): 50000 / 10000 / 10000 digits.

The fixed binarization used by the likelihood tables of IWAE, RWS, VIMCO and VampPrior.
Read from ``binarized_mnist.npz`` (keys train/valid/test, uint8 0/1, [N, 784]) or from the
original ``binarized_mnist_{train,valid,test}.amat`` text files, downloaded if absent.

Whatever the container, every split is verified by *content*: the sha256 of its uint8
``[N, 784]`` array in C order must be the canonical one (``CONTENT_SHA256``), so a modified
copy (digits blanked, noise added, another binarization) is refused, not silently used. A
verified file is remembered for the rest of the process (keyed by its path, size,
modification time and zip CRC), so repeated loads do not hash again.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from zipfile import BadZipFile

import numpy as np
import torch
from torch import Tensor

from .files import CorruptDataError, RemoteFile, find_or_download, search_dirs

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
# sha256 of each split's content: the uint8 [N, 784] array of 0/1 (row-major 28x28 digits)
# in C order, i.e. hashlib.sha256(np.ascontiguousarray(a[split], np.uint8).tobytes()).
# Computed from the workplace's binarized_mnist.npz (sha256 7a049ae3...bb3514b), whose arrays,
# written back out as .amat text (784 "d " per line, the last space a newline), reproduce
# the published .amat files byte for byte (the sha256 values of AMAT_FILES above): so these
# are the digests of the canonical data. To recompute them from a verified copy:
#   python -c "import hashlib, numpy as np; a = np.load('binarized_mnist.npz');
#     print({s: hashlib.sha256(np.ascontiguousarray(a[s], np.uint8).tobytes()).hexdigest()
#            for s in ('train', 'valid', 'test')})"
CONTENT_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
_NPZ_HELP = (
    "Delete it (dgm then reads the original binarized_mnist_{{train,valid,test}}.amat files, "
    "downloading them from {base} if needed) or replace it with a good copy: arrays train "
    "[50000, 784], valid [10000, 784] and test [10000, 784] of uint8 0/1 (row-major 28x28 "
    "digits), converted losslessly from those .amat files"
)
# The splits verified in this process: (resolved path, split, size, mtime, inode, device,
# [zip CRC and size of the member], expected digest). Verifying costs little next to reading:
# on one core, sha256 of the train split takes about 0.03 s (valid, test: 0.006 s each), its
# decompression about 0.08 s; a repeated load skips the hash and the 0/1 check.
_VERIFIED: set[tuple[object, ...]] = set()
# what each container's errors look like: (path, split, problem) -> the exception to raise
_Error = Callable[[Path, str, str], CorruptDataError]


def binarized_mnist(
    split: str = "train", data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> Tensor:
    """Load one split of statically binarized MNIST as a float32 tensor ``[N, 784]`` of 0/1.

    Args:
        split: ``"train"`` (50000), ``"valid"`` (10000) or ``"test"`` (10000).
        data_dir: directory to look in first (then ``DGM_DATA_DIR``, then the cache).
        download: fetch the ``.amat`` file (checksum-verified) when no copy is found.

    Raises:
        DataNotFoundError: no copy, and it could not be downloaded; names every file to put
            where, and the ``.npz`` alternative.
        CorruptDataError: a file on disk is not the canonical data (checksum or content
            digest differs, truncated or unreadable, wrong shape, dtype or values); names
            the file and what to do.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    for d in search_dirs(data_dir):
        if (d / NPZ_NAME).is_file():
            return _from_npz(d / NPZ_NAME, split)
    path = find_or_download(
        AMAT_FILES[split],
        data_dir,
        f"binarized MNIST ({split} split)",
        download,
        needed=list(AMAT_FILES.values()),
        alternative=(
            f"or, instead of the .amat files, {NPZ_NAME} with arrays train [50000, 784], "
            "valid [10000, 784] and test [10000, 784] of uint8 0/1, converted losslessly "
            "from them"
        ),
    )
    key = _file_key(path, split)
    try:
        array = _read_amat_array(path)
    except ValueError as e:
        raise _amat_error(path, split, f"cannot be parsed as .amat text ({e})") from None
    return _torch(_canonical(array, split, path, key, _amat_error))


def _file_key(path: Path, split: str, *extra: object) -> tuple[object, ...]:
    st = path.stat()
    return (str(path.resolve()), split, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, *extra)


def _npz_error(path: Path, split: str, problem: str) -> CorruptDataError:
    return CorruptDataError(
        f"{path} {problem}, so it is not the canonical statically binarized MNIST. "
        + _NPZ_HELP.format(base=_BASE)
    )


def _amat_error(path: Path, split: str, problem: str) -> CorruptDataError:
    remote = AMAT_FILES[split]
    return CorruptDataError(
        f"{path} {problem}, so it is not the canonical {remote.name}. Delete it and let dgm "
        f"download it again, or replace it with the file from {remote.urls[0]}"
    )


def _from_npz(path: Path, split: str) -> Tensor:
    # np.load is given an open file (closed here): given a path, it leaks it on a BadZipFile
    with open(path, "rb") as f:
        head = f.read(64)
        f.seek(0)
        if not head:
            raise _npz_error(path, split, "is empty")
        if head.startswith(b"\x93NUMPY"):
            raise _npz_error(path, split, "holds a single .npy array, not an .npz archive")
        if not head.startswith(b"PK"):
            raise _npz_error(path, split, f"is not an .npz (zip) archive: it begins {head[:32]!r}")
        key, array = _read_npz_member(f, path, split)
    return _torch(_canonical(array, split, path, key, _npz_error))


def _read_npz_member(f: BinaryIO, path: Path, split: str) -> tuple[tuple[object, ...], np.ndarray]:
    try:
        with np.load(f, allow_pickle=False) as archive:
            if split not in archive.files:
                raise _npz_error(path, split, f"has no array {split!r} (it has {archive.files})")
            member = f"{split}.npy" if f"{split}.npy" in archive.zip.namelist() else split
            info = archive.zip.getinfo(member)
            key = _file_key(path, split, info.CRC, info.file_size)
            return key, archive[split]
    except CorruptDataError:
        raise
    except (BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise _npz_error(
            path, split, f"is truncated or corrupt ({type(e).__name__}: {e})"
        ) from None


def _canonical(
    array: np.ndarray, split: str, path: Path, key: tuple[object, ...], error: _Error
) -> np.ndarray:
    """The split as a C-ordered uint8 array, after checking dtype, shape, values and digest.

    Any boolean, integer or float array of 0/1 is accepted (the digest is of its uint8 copy).
    """
    shape = (SPLITS[split], 784)
    if array.dtype.kind not in "biuf":
        raise error(path, split, f"holds the {split} split as {array.dtype}, not uint8 0/1")
    if array.shape != shape:
        raise error(
            path, split, f"holds the {split} split as {list(array.shape)}, not {list(shape)}"
        )
    verified = (*key, CONTENT_SHA256[split])
    if array.dtype == np.uint8:
        binary = verified in _VERIFIED or int(array.max(initial=0)) <= 1
    else:
        binary = bool(((array == 0) | (array == 1)).all())
    if not binary:
        bad = array[(array != 0) & (array != 1)]
        raise error(
            path, split, f"holds values other than 0 and 1 in its {split} split (e.g. {bad[0]})"
        )
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if verified not in _VERIFIED:
        actual = hashlib.sha256(array.data).hexdigest()
        if actual != CONTENT_SHA256[split]:
            raise error(
                path,
                split,
                f"has different {split} digits from the canonical ones (the sha256 of its "
                f"uint8 {list(shape)} array is {actual}, the canonical one "
                f"{CONTENT_SHA256[split]}): it was modified (e.g. parts of digits blanked or "
                "noise added) or is another binarization",
            )
        _VERIFIED.add(verified)
    return array


def _torch(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _read_amat_array(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise ValueError("the file is empty")
    line = 2 * 784
    # Fast path: "d d d ... d\n", so the digits sit at the even byte offsets.
    if raw.size % line == 0 and raw.size > 0:
        rows = raw.reshape(-1, line)
        seps = rows[:, 1::2]
        digits = rows[:, 0::2] - ord("0")
        if (
            (seps[:, :-1] == ord(" ")).all()
            and (seps[:, -1] == ord("\n")).all()
            and int(digits.max()) <= 1
        ):
            return digits
    return np.loadtxt(path, dtype=np.float32, ndmin=2)


def read_amat(path: Path) -> Tensor:
    """Parse an ``.amat`` file: one digit per line, 784 space-separated 0/1 values.

    Raises ``CorruptDataError`` (naming the file) when it is not such a text file.
    """
    path = Path(path)
    try:
        values = _read_amat_array(path)
    except ValueError as e:
        raise CorruptDataError(
            f"{path} cannot be parsed as .amat text ({e}): it is truncated, corrupt or not an "
            ".amat file"
        ) from None
    return torch.from_numpy(values.astype(np.float32))
