"""Broken data files: each case gives one clear CorruptDataError naming the file (issue 12).

Every case is reproduced first: the broken file is built in tmp_path. The tests marked
``real`` copy the real data from DGM_DATA_DIR and are skipped when it is not set.
"""

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dgm.data.binarized as bm
import dgm.data.idx as idx
from dgm.cli import main
from dgm.cli.commands import USER_ERRORS
from dgm.data import (
    ChecksumError,
    CorruptDataError,
    DataNotFoundError,
    binarized_mnist,
    dsprites,
    fashion_mnist,
    mnist,
    read_amat,
    read_idx,
)
from tests.conftest import shared_data_dir
from tests.data.test_loaders import small_splits, write_amat, write_idx

real = pytest.mark.skipif(
    shared_data_dir() is None, reason="DGM_DATA_DIR is not set to the real data"
)
SPLIT_SIZES = {"train": 50000, "valid": 10000, "test": 10000}


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DGM_DATA_DIR, an empty cache, no Debian Fashion-MNIST, and no network."""
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "FASHION_DEBIAN_DIR", tmp_path / "no-debian-package")
    return tmp_path


def broken_npz(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, name: str, **arrays: np.ndarray
) -> Path:
    """A directory holding a good small binarized_mnist.npz (canonical by monkeypatch)."""
    splits = small_splits(monkeypatch)
    d = isolated / name
    d.mkdir()
    np.savez_compressed(d / "binarized_mnist.npz", **{**splits, **arrays})
    return d


def load_error(d: Path, split: str = "test") -> str:
    with pytest.raises(CorruptDataError) as info:
        binarized_mnist(split, data_dir=d)
    err = info.value
    # the CLI prints it as one line without a traceback; old callers catching these still do
    assert isinstance(err, USER_ERRORS) and isinstance(err, ChecksumError)
    assert isinstance(err, ValueError)
    msg = str(err)
    assert str(d / "binarized_mnist.npz") in msg and "Delete it" in msg, msg
    assert "train [50000, 784], valid [10000, 784] and test [10000, 784]" in msg
    return msg


# --- binarized MNIST in an .npz -----------------------------------------------------------


def test_truncated_npz(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = broken_npz(isolated, monkeypatch, "trunc")
    path = d / "binarized_mnist.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    assert "is truncated or corrupt (BadZipFile: File is not a zip file)" in load_error(d)


def test_corrupt_bytes_inside_the_npz(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = broken_npz(isolated, monkeypatch, "flip")
    path = d / "binarized_mnist.npz"
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF  # inside the first member's compressed data (train)
    path.write_bytes(bytes(raw))
    assert "is truncated or corrupt" in load_error(d, "train")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b"<html><body>404 Not Found</body></html>\n",
            "is not an .npz (zip) archive: it begins b'<html>",
        ),
        (b"", "is empty"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', ...}", "holds a single .npy array"),
    ],
    ids=["html-page", "empty", "npy-file"],
)
def test_a_file_that_is_not_an_npz_under_its_name(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, problem: str
) -> None:
    d = broken_npz(isolated, monkeypatch, "text")
    (d / "binarized_mnist.npz").write_bytes(content)
    assert problem in load_error(d)


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((6, 28, 28), np.uint8), "holds the test split as [6, 28, 28], not [6, 784]"),
        (np.zeros((5, 784), np.uint8), "holds the test split as [5, 784], not [6, 784]"),
        (np.full((6, 784), "0"), "holds the test split as <U1, not uint8 0/1"),
        (
            np.full((6, 784), 255, np.uint8),
            "holds values other than 0 and 1 in its test split (e.g. 255)",
        ),
        (
            np.full((6, 784), 0.5, np.float32),
            "holds values other than 0 and 1 in its test split (e.g. 0.5)",
        ),
    ],
    ids=["images-not-flat", "too-few-digits", "strings", "grayscale", "probabilities"],
)
def test_wrong_shape_dtype_or_values(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, array: np.ndarray, problem: str
) -> None:
    d = broken_npz(isolated, monkeypatch, "wrong", test=array)
    assert problem in load_error(d)


def test_missing_split(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "partial"
    d.mkdir()
    np.savez(d / "binarized_mnist.npz", train=splits["train"])
    assert "has no array 'test' (it has ['train'])" in load_error(d)


def test_modified_digits_fail_the_content_digest(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    blanked = splits["test"].copy()
    blanked[:, :392] = 0  # the top half of every digit
    d = broken_npz(isolated, monkeypatch, "blank", test=blanked)
    msg = load_error(d)
    actual = hashlib.sha256(blanked.tobytes()).hexdigest()
    assert (
        f"has different test digits from the canonical ones (the sha256 of its uint8 [6, 784] array is {actual}, the canonical one {bm.CONTENT_SHA256['test']})"
        in msg
    )
    # the other splits of that file are still the canonical ones
    np.testing.assert_array_equal(binarized_mnist("valid", data_dir=d).numpy(), splits["valid"])


def test_any_numeric_dtype_of_the_canonical_digits_is_accepted(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    d = broken_npz(
        isolated,
        monkeypatch,
        "dtypes",
        train=splits["train"].astype(bool),
        valid=splits["valid"].astype(np.float32),
        test=np.asfortranarray(splits["test"].astype(np.int64)),
    )
    for split in ("train", "valid", "test"):
        x = binarized_mnist(split, data_dir=d)
        assert x.dtype == torch.float32 and x.is_contiguous()
        np.testing.assert_array_equal(x.numpy(), splits[split])


def test_a_verified_file_is_not_hashed_again_until_it_changes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "cached"
    d.mkdir()
    np.savez(d / "binarized_mnist.npz", **splits)
    calls = []
    sha256 = hashlib.sha256

    def counting(*args: Any) -> Any:
        calls.append(1)
        return sha256(*args)

    monkeypatch.setattr(bm.hashlib, "sha256", counting)
    for _ in range(3):
        np.testing.assert_array_equal(binarized_mnist("test", data_dir=d).numpy(), splits["test"])
    assert len(calls) == 1
    # rewritten in place with the same size (and maybe the same mtime): verified again
    blanked = {**splits, "test": np.zeros_like(splits["test"])}
    np.savez(d / "binarized_mnist.npz", **blanked)
    with pytest.raises(CorruptDataError, match="different test digits"):
        binarized_mnist("test", data_dir=d)
    assert len(calls) == 2


# --- binarized MNIST in .amat files ------------------------------------------------------


def test_amat_with_the_wrong_bytes_says_what_to_do(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "amat"
    d.mkdir()
    write_amat(d / "binarized_mnist_test.amat", splits["test"][:3])  # truncated
    with pytest.raises(CorruptDataError) as info:
        binarized_mnist("test", data_dir=d)
    msg = str(info.value)
    assert str(d / "binarized_mnist_test.amat") in msg and "has sha256" in msg
    assert "the published binarized_mnist_test.amat has e6687bfe" in msg
    assert "delete it and let dgm download it again" in msg and bm._BASE in msg


def test_read_amat_of_a_broken_file(tmp_path: Path) -> None:
    rows = np.ones((3, 784), np.uint8)
    write_amat(tmp_path / "a.amat", rows)
    text = (tmp_path / "a.amat").read_text()
    (tmp_path / "cut.amat").write_text(text[: len(text) // 2])  # cut in the middle of a line
    (tmp_path / "empty.amat").write_text("")
    (tmp_path / "junk.amat").write_bytes(b"\x89PNG\r\n\x1a\n" * 10)
    for name in ("cut.amat", "empty.amat", "junk.amat"):
        with pytest.raises(CorruptDataError, match=r"cannot be parsed as \.amat text") as info:
            read_amat(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)


# --- offline: every needed file, and the .npz alternative ---------------------------------


def test_offline_message_names_every_file_and_the_npz(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        binarized_mnist("valid", data_dir=isolated / "empty", download=False)
    msg = str(info.value)
    for split in ("train", "valid", "test"):
        assert f"binarized_mnist_{split}.amat  (from http://" in msg
    assert "binarized_mnist.npz with arrays train [50000, 784]" in msg
    assert isinstance(info.value, USER_ERRORS)


def test_offline_idx_message_names_every_file(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        mnist("test", data_dir=isolated / "empty", download=False)
    msg = str(info.value)
    for name in idx._MNIST_MD5:
        unpacked = name.removesuffix(".gz")
        assert f"  {name}  (from https://" in msg
        assert f", or {unpacked} (the same data, uncompressed)" in msg
    assert "(or its mnist/ or MNIST/raw/ subfolder)" in msg
    with pytest.raises(DataNotFoundError, match="fashion-mnist/ or FashionMNIST/raw/ subfolder"):
        fashion_mnist("test", data_dir=isolated / "empty", download=False)


@pytest.mark.parametrize("folder", ["", "mnist", "MNIST/raw"])
def test_uncompressed_idx_files_are_read_where_users_keep_them(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    d = isolated / "data" / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    write_idx(d / "train-images-idx3-ubyte", images)
    write_idx(d / "train-labels-idx1-ubyte", np.arange(7) % 10)
    raw = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in d.iterdir()}
    monkeypatch.setattr(idx, "_MNIST_RAW_MD5", {**idx._MNIST_RAW_MD5, **raw})
    x, y = mnist("train", data_dir=isolated / "data", download=False)
    assert torch.equal(x, torch.from_numpy(images.reshape(7, -1) / 255.0).float())
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 6]
    # a tampered file is refused, naming it: its md5 is not the canonical one of its form
    path = d / "train-images-idx3-ubyte"
    tampered = bytearray(path.read_bytes())
    tampered[100] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(CorruptDataError, match="but the published train-images-idx3-ubyte has"):
        mnist("train", data_dir=isolated / "data", download=False)
    path.write_bytes(bytes(tampered)[:-30])  # truncated
    with pytest.raises(CorruptDataError, match=f"{path} has md5"):
        mnist("train", data_dir=isolated / "data", download=False)


# --- IDX files (MNIST, Fashion-MNIST) ------------------------------------------------------


def set_md5(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` the published MNIST file of its name (as far as the md5 check goes)."""
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(idx, "_MNIST_MD5", {**idx._MNIST_MD5, path.name: digest})


def mnist_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch, n: int = 5) -> Path:
    d = isolated / "idx" / "mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(n) % 10)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        set_md5(monkeypatch, d / name)
    return d


def test_truncated_gz_fails_its_md5_with_a_clear_message(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = mnist_dir(isolated, monkeypatch)
    path = d / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptDataError, match=r"has md5 .* but the published t10k-images") as info:
        mnist("test", data_dir=isolated / "idx")
    assert str(path) in str(info.value) and "delete it" in str(info.value)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda raw: raw[: len(raw) // 2],
            "is a truncated or corrupt gzip file (Compressed file ended",
        ),
        (lambda raw: raw[:-4], "is a truncated or corrupt gzip file"),
        (
            lambda raw: raw[:100] + bytes(b ^ 0x55 for b in raw[100:120]) + raw[120:],
            "is a truncated or corrupt gzip file",
        ),
        (
            lambda raw: b"<html>404</html>",
            "is a truncated or corrupt gzip file (Not a gzipped file",
        ),
    ],
    ids=["half", "no-trailer", "flipped-bytes", "html-page"],
)
def test_broken_gz_read_directly_gives_the_clear_message(
    tmp_path: Path, damage: Callable[[bytes], bytes], problem: str
) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(path, np.random.default_rng(1).integers(0, 256, (50, 28, 28)))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptDataError) as info:
        read_idx(path)
    msg = str(info.value)
    assert msg.startswith(f"{path} {problem}") and "Delete it" in msg, msg


def test_idx_with_a_header_that_lies(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(60))  # 60 of 100 labels
    with pytest.raises(
        CorruptDataError,
        match=r"is truncated or corrupt: its header says \(100,\) \(100 bytes\) but it holds 60",
    ):
        read_idx(path)
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3, 0, 0]))  # the header itself is cut short
    with pytest.raises(CorruptDataError, match="its header is cut short at 6 bytes"):
        read_idx(path)


def test_images_and_labels_that_do_not_fit(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = mnist_dir(isolated, monkeypatch)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(4))  # one label short
    set_md5(monkeypatch, d / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(
        CorruptDataError, match=r"holds uint8 \[4\] \(largest 3\), not 5 uint8 labels 0..9"
    ):
        mnist("test", data_dir=isolated / "idx")
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((5, 784)))  # flat images
    set_md5(monkeypatch, d / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(
        CorruptDataError, match=r"holds uint8 \[5, 784\], not uint8 \[N, 28, 28\] images"
    ):
        mnist("test", data_dir=isolated / "idx")


# --- dSprites: a broken cache is regenerated ------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:100] + bytes(b ^ 0xFF for b in raw[100:300]) + raw[300:],
        lambda raw: b"not a cache file\n",
        lambda raw: b"",
        "wrong-shape",
    ],
    ids=["truncated", "corrupt", "text", "empty", "wrong-shape"],
)
def test_broken_dsprites_cache_is_regenerated(
    tmp_path: Path, damage: Callable[[bytes], bytes] | str
) -> None:
    good = dsprites(300, seed=5, directory=tmp_path)
    (path,) = tmp_path.glob("dsprites-*.npz")
    if isinstance(damage, str):  # a good .npz, but not of these images
        np.savez_compressed(path, bits=np.zeros((299, 512), np.uint8))
    else:
        path.write_bytes(damage(path.read_bytes()))
    again = dsprites(300, seed=5, directory=tmp_path)  # no error, no warning
    assert torch.equal(again.images, good.images) and torch.equal(again.index, good.index)
    with np.load(path) as f:  # and the cache file is good again
        assert f["bits"].shape == (300, 512)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


# --- the real data ---------------------------------------------------------------------------


@real
def test_real_npz_content_matches_the_published_amat_files(tmp_path: Path) -> None:
    """The content digests are those of the canonical .amat files, byte for byte."""
    shared = shared_data_dir()
    assert shared is not None
    with np.load(shared / "binarized_mnist.npz") as archive:
        test = archive["test"]
    assert (
        hashlib.sha256(np.ascontiguousarray(test).tobytes()).hexdigest()
        == bm.CONTENT_SHA256["test"]
    )
    text = np.full((10000, 2 * 784), ord(" "), np.uint8)
    text[:, 0::2] = test + ord("0")
    text[:, -1] = ord("\n")
    amat = tmp_path / "binarized_mnist_test.amat"
    amat.write_bytes(text.tobytes())
    assert hashlib.sha256(amat.read_bytes()).hexdigest() == bm.AMAT_FILES["test"].sha256
    from_amat = binarized_mnist("test", data_dir=tmp_path, download=False)  # the .amat path
    assert torch.equal(from_amat, binarized_mnist("test", download=False))


@real
def test_real_npz_with_blanked_test_digits_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: the top half of every test digit blanked (55 nats of log-likelihood)."""
    shared = shared_data_dir()
    assert shared is not None
    with np.load(shared / "binarized_mnist.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["test"] = arrays["test"].copy()
    arrays["test"][:, : 14 * 28] = 0
    np.savez(tmp_path / "binarized_mnist.npz", **arrays)
    with pytest.raises(CorruptDataError) as info:
        binarized_mnist("test", data_dir=tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'binarized_mnist.npz'} has different test digits")
    assert bm.CONTENT_SHA256["test"] in msg and "Delete it" in msg
    # the unmodified splits in the same file still load
    assert binarized_mnist("valid", data_dir=tmp_path).shape == (10000, 784)
    # and the command line prints it as one line, no traceback
    out = tmp_path / "run"
    args = ["train", "vae-mnist", "--smoke", "--no-progress", "--out", str(out)]
    assert main([*args, "--set", f"data.data_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dgm: error: ") and "different test digits" in err
    assert "Traceback" not in err


@real
def test_real_truncated_mnist_gz_is_refused(tmp_path: Path) -> None:
    shared = shared_data_dir()
    assert shared is not None
    d = tmp_path / "mnist"
    d.mkdir()
    raw = (shared / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 3])
    shutil.copy(shared / "mnist" / "t10k-labels-idx1-ubyte.gz", d)
    with pytest.raises(CorruptDataError) as info:
        mnist("test", data_dir=tmp_path)
    msg = str(info.value)
    assert str(d / "t10k-images-idx3-ubyte.gz") in msg
    assert "but the published t10k-images-idx3-ubyte.gz has 9fb629c4" in msg
    with pytest.raises(CorruptDataError, match="truncated or corrupt gzip"):
        read_idx(d / "t10k-images-idx3-ubyte.gz")


@real
def test_real_data_is_verified_once_per_process() -> None:
    first = {s: binarized_mnist(s, download=False) for s in SPLIT_SIZES}
    shared = shared_data_dir()
    assert shared is not None
    path = str((shared / "binarized_mnist.npz").resolve())
    assert {k[1] for k in bm._VERIFIED if k[0] == path} == set(SPLIT_SIZES)
    for s, n in SPLIT_SIZES.items():
        assert first[s].shape == (n, 784) and first[s].is_contiguous()


def test_a_file_of_another_known_packaging_is_accepted_and_nothing_else(tmp_path: Path) -> None:
    from dgm.data.files import CorruptDataError, RemoteFile, file_digest, verify

    path = tmp_path / "f.gz"
    path.write_bytes(b"the same data, packaged differently")
    digest = file_digest(path, "md5")
    verify(path, RemoteFile("f.gz", ("http://x/f.gz",), md5="0" * 32, also=(digest,)))
    with pytest.raises(CorruptDataError, match="has md5"):
        verify(path, RemoteFile("f.gz", ("http://x/f.gz",), md5="0" * 32, also=("1" * 32,)))
