import gzip
import hashlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dgm.data.binarized as bm
import dgm.data.idx as idx
from dgm.data import (
    DATASETS,
    ChecksumError,
    DataNotFoundError,
    RemoteFile,
    binarized_mnist,
    mnist,
    read_amat,
    read_idx,
)
from tests.conftest import shared_data_dir


def write_amat(path: Path, rows: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(str(int(v)) for v in row) for row in rows) + "\n")


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DGM_DATA_DIR, an empty cache, no Debian Fashion-MNIST, and no network."""
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "FASHION_DEBIAN_DIR", tmp_path / "no-debian-package")
    return tmp_path


def small_splits(monkeypatch: pytest.MonkeyPatch, n: int = 6) -> dict[str, np.ndarray]:
    """Random n-digit splits, made the canonical ones (sizes and content digests)."""
    monkeypatch.setattr(bm, "SPLITS", {"train": n, "valid": n, "test": n})
    rng = np.random.default_rng(0)
    splits = {s: (rng.random((n, 784)) < 0.3).astype(np.uint8) for s in ("train", "valid", "test")}
    digests = {s: hashlib.sha256(a.tobytes()).hexdigest() for s, a in splits.items()}
    monkeypatch.setattr(bm, "CONTENT_SHA256", digests)
    return splits


def test_read_amat_parses_the_original_format(tmp_path: Path) -> None:
    rows = (np.random.default_rng(0).random((4, 784)) < 0.5).astype(np.uint8)
    write_amat(tmp_path / "a.amat", rows)
    np.testing.assert_array_equal(read_amat(tmp_path / "a.amat").numpy(), rows)
    # the generic parser handles other whitespace too
    (tmp_path / "b.amat").write_text("\n".join("  ".join(str(v) for v in r) for r in rows))
    np.testing.assert_array_equal(read_amat(tmp_path / "b.amat").numpy(), rows)


def test_binarized_mnist_reads_amat_with_checksum(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "data"
    d.mkdir()
    write_amat(d / "binarized_mnist_test.amat", splits["test"])
    digest = hashlib.sha256((d / "binarized_mnist_test.amat").read_bytes()).hexdigest()
    monkeypatch.setitem(
        bm.AMAT_FILES,
        "test",
        RemoteFile("binarized_mnist_test.amat", ("http://127.0.0.1:9/x",), sha256=digest),
    )
    x = binarized_mnist("test", data_dir=d)
    assert x.dtype == torch.float32 and x.shape == (6, 784)
    np.testing.assert_array_equal(x.numpy(), splits["test"])


def test_binarized_mnist_prefers_npz_from_env_var(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "env"
    d.mkdir()
    np.savez(d / "binarized_mnist.npz", **splits)
    monkeypatch.setenv("DGM_DATA_DIR", str(d))
    np.testing.assert_array_equal(binarized_mnist("valid").numpy(), splits["valid"])


def test_checksum_mismatch_says_what_to_do(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = small_splits(monkeypatch)
    d = isolated / "data"
    d.mkdir()
    write_amat(d / "binarized_mnist_train.amat", splits["train"])  # not the published bytes
    with pytest.raises(
        ChecksumError,
        match=r"has sha256 [0-9a-f]{64}, but the published binarized_mnist_train.amat has ad693b29.*delete it",
    ):
        binarized_mnist("train", data_dir=d)


def test_missing_data_offline_names_files_and_directories(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        bm.AMAT_FILES,
        "valid",
        RemoteFile(
            "binarized_mnist_valid.amat",
            ("http://127.0.0.1:9/binarized_mnist_valid.amat",),
            sha256="0" * 64,
        ),
    )
    d = isolated / "empty"
    with pytest.raises(DataNotFoundError) as info:
        binarized_mnist("valid", data_dir=d)
    msg = str(info.value)
    assert "binarized MNIST (valid split) not found" in msg and "could not download" in msg
    assert str(d) in msg and str(isolated / "cache" / "dgm") in msg
    assert "binarized_mnist_valid.amat" in msg and "DGM_DATA_DIR" in msg
    with pytest.raises(DataNotFoundError, match="download=False"):
        binarized_mnist("valid", data_dir=d, download=False)


def test_wrong_split_and_corrupt_npz_are_reported(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        binarized_mnist("training")
    small_splits(monkeypatch)
    d = isolated / "bad"
    d.mkdir()
    np.savez(d / "binarized_mnist.npz", train=np.full((6, 784), 2, np.uint8))
    with pytest.raises(ValueError, match="holds values other than 0 and 1 in its train split"):
        binarized_mnist("train", data_dir=d)
    with pytest.raises(ValueError, match="has no array 'test'"):
        binarized_mnist("test", data_dir=d)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of uint8 ``array``: gzip-compressed when ``path`` ends in ``.gz``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_idx_reader_and_mnist_loader_with_binarization(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = isolated / "idx" / "mnist"
    d.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    write_idx(d / "t10k-images-idx3-ubyte.gz", images)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx(d / "t10k-images-idx3-ubyte.gz"), images)
    md5 = {
        n: hashlib.md5((d / n).read_bytes()).hexdigest()
        for n in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    }
    monkeypatch.setattr(idx, "_MNIST_MD5", md5)
    x, y = mnist("test", data_dir=isolated / "idx")  # found in the mnist/ subfolder
    assert x.shape == (5, 784) and y.tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(x, torch.from_numpy(images.reshape(5, -1) / 255.0).float())
    xt, _ = mnist("test", data_dir=isolated / "idx", binarize="threshold")
    assert set(xt.unique().tolist()) <= {0.0, 1.0}
    xd, _ = mnist(
        "test",
        data_dir=isolated / "idx",
        binarize="dynamic",
        generator=torch.Generator().manual_seed(0),
    )
    assert set(xd.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(xd.mean() - x.mean())) < 0.05
    with pytest.raises(ValueError, match="binarize must be one of"):
        mnist("test", data_dir=isolated / "idx", binarize="otsu")


def test_idx_reader_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"abc")
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


@pytest.mark.skipif(shared_data_dir() is None, reason="DGM_DATA_DIR is not set to the real data")
def test_real_data_sets_load_with_published_checksums() -> None:
    test = binarized_mnist("test", download=False)
    assert test.shape == (10000, 784) and 0.1 < float(test.mean()) < 0.15
    x, y = mnist("test", download=False)
    assert x.shape == (10000, 784) and y.bincount().tolist()[:2] == [980, 1135]
    d = shared_data_dir()
    assert d is not None
    if any((d / "mnist" / f"train-images-idx3-ubyte{s}").is_file() for s in ("", ".gz")):
        x, y = mnist("train", download=False)  # the 60000 training digits, either form
        assert x.shape == (60000, 784) and y.bincount().tolist()[:2] == [5923, 6742]


def test_mnist_t10k_cuts_the_test_set_into_disjoint_splits_fixed_across_seeds(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = isolated / "idx" / "mnist"
    d.mkdir(parents=True)
    # every image distinct (its first pixel is its index) so the splits can be told apart
    images = np.zeros((50, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(50)
    write_idx(d / "t10k-images-idx3-ubyte.gz", images)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(50, dtype=np.uint8) % 10)
    md5 = {
        n: hashlib.md5((d / n).read_bytes()).hexdigest()
        for n in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    }
    monkeypatch.setattr(idx, "_MNIST_MD5", md5)
    options = {"data_dir": str(isolated / "idx"), "valid_points": 5, "test_points": 7}
    a = DATASETS.build("mnist_t10k", seed=0, train_points=None, **options)
    b = DATASETS.build("mnist_t10k", seed=3, train_points=10, **options)
    ids = {
        k: (getattr(a, k)[:, 0] * 255).round().long().tolist() for k in ("train", "valid", "test")
    }
    assert [len(ids[k]) for k in ("train", "valid", "test")] == [38, 5, 7]
    assert sorted(ids["train"] + ids["valid"] + ids["test"]) == list(range(50))
    assert ids["valid"] != list(range(5))  # shuffled, not the file's first digits
    torch.testing.assert_close(b.test, a.test)  # the held-out digits do not follow the run seed
    torch.testing.assert_close(b.train, a.train[:10])
    assert a.side["labels"]["test"].tolist() == [i % 10 for i in ids["test"]]
    with pytest.raises(ValueError, match="leave none to train on"):
        DATASETS.build(
            "mnist_t10k",
            seed=0,
            train_points=None,
            **{**options, "valid_points": 25, "test_points": 25},
        )


def test_fashion_mnist_is_found_in_the_debian_folder_when_dgm_data_dir_is_set_elsewhere(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = isolated / "usr-share-datasets-fashion-mnist"
    debian.mkdir()
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    write_idx(debian / "t10k-images-idx3-ubyte.gz", images)
    write_idx(debian / "t10k-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8))
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    md5 = {n: hashlib.md5((debian / n).read_bytes()).hexdigest() for n in names}
    monkeypatch.setattr(idx, "_FASHION_DEBIAN_MD5", {**idx._FASHION_DEBIAN_MD5, **md5})
    monkeypatch.setattr(idx, "FASHION_DEBIAN_DIR", debian)
    elsewhere = isolated / "mnist-only"
    elsewhere.mkdir()
    monkeypatch.setenv("DGM_DATA_DIR", str(elsewhere))  # set for MNIST: must not hide Debian's
    x, y = idx.fashion_mnist("test", download=False)
    assert x.shape == (4, 784) and y.tolist() == [0, 1, 2, 3]
    monkeypatch.setattr(idx, "FASHION_DEBIAN_DIR", isolated / "absent")
    with pytest.raises(DataNotFoundError, match="absent"):  # the fallback is listed as looked in
        idx.fashion_mnist("test", download=False)


def test_holdout_and_dynamic_binarization_follow_the_iwae_protocol(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dgm.data import DATASETS
    from tests.data.test_stacked import fake_mnist

    arrays = fake_mnist(isolated / "data", monkeypatch, train=30, test=12)
    tags = arrays["train"][:, 0, 0]  # each digit's first pixel is its index

    def load(seed: int = 0, **options: object) -> Any:
        return DATASETS.build(
            "mnist",
            data_dir=str(isolated / "data"),
            seed=seed,
            train_points=None,
            valid_points=5,
            test_points=12,
            **options,
        )

    held = load(holdout=10)  # the last 10 training digits held out: 20 train
    assert (
        len(held.train) == 20 and (held.valid[:, 0] * 255).round().tolist() == tags[20:25].tolist()
    )
    every = load(holdout=0)  # all 30 train; validation watches the first training digits
    assert len(every.train) == 30 and torch.equal(every.valid, every.train[:5])
    a, b = load(0, holdout=0, binarize="dynamic"), load(1, holdout=0, binarize="dynamic")
    assert torch.equal(a.test, b.test)  # one binarization of the test digits for every run
    assert set(a.test.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a.valid, b.valid)
    assert a.transform is not None and torch.equal(a.train, b.train)  # grayscale, drawn per batch
    with pytest.raises(ValueError, match=r"holdout must be in 0\.\.29"):
        load(holdout=30)
