"""Stacked MNIST: channels are pool digits, labels name them, held-out digits, the pool's source."""

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2

import dgm.data.files as files
import dgm.data.idx as idx
from dgm.data import DATASETS, DataNotFoundError, mnist, stack_digits, stacked_mnist
from dgm.data.stacked import held_out_parts
from tests.conftest import shared_data_dir

T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


def real_mnist_dir() -> Path | None:
    """A directory holding the real MNIST test files: DGM_DATA_DIR's, or the project's
    ``../shared/data`` (see its README)."""
    candidates = [shared_data_dir(), Path(__file__).resolve().parents[3] / "shared" / "data"]
    for d in candidates:
        if d is not None and all((d / "mnist" / name).is_file() for name in T10K):
            return d / "mnist"
    return None


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """No DGM_DATA_DIR, an empty cache, and every download recorded and refused."""
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    downloads: list[str] = []

    def refuse(remote: files.RemoteFile, directory: Path, timeout: float = 30.0) -> Path:
        downloads.append(remote.name)
        raise OSError("offline (test)")

    monkeypatch.setattr(files, "download", refuse)
    return downloads


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def tagged_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 digits whose first pixel is their index, and labels ``index % 10``."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images, (np.arange(n) % 10).astype(np.uint8)


def fake_mnist(
    d: Path, monkeypatch: pytest.MonkeyPatch, train: int | None, test: int
) -> dict[str, np.ndarray]:
    """Tagged IDX files in ``d/mnist`` (no training files when ``train`` is None), made the
    canonical ones by their md5; returns the arrays."""
    (d / "mnist").mkdir(parents=True)
    arrays = {}
    for prefix, n, names in (("train", train, TRAIN), ("t10k", test, T10K)):
        if n is None:
            continue
        images, labels = tagged_digits(n, seed=len(prefix))
        write_idx(d / "mnist" / names[0], images)
        write_idx(d / "mnist" / names[1], labels)
        arrays[prefix] = images
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (d / "mnist").glob("*.gz")}
    monkeypatch.setattr(idx, "_MNIST_MD5", {**idx._MNIST_MD5, **md5})
    return arrays


def channel_ids(images: torch.Tensor, scale: float = 255.0) -> torch.Tensor:
    """The pool index of each channel of tagged images ``[n, 3, 28, 28]`` or ``[n, 2352]``
    (intensities in [0, 1]: ``scale`` 255; uint8: 1)."""
    return (images.reshape(len(images), 3, 784)[:, :, 0].double() * scale).round().long()


def test_each_channel_is_a_pool_digit_and_the_label_names_all_three() -> None:
    images, labels = tagged_digits(40)
    pool = torch.from_numpy(images).float() / 255
    pool_labels = torch.from_numpy(labels).long()
    x, y = stack_digits(pool, pool_labels, 3000, np.random.default_rng(0))
    assert x.shape == (3000, 3, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    ids = channel_ids(x)
    for c in range(3):  # the whole channel is that digit, not just its tag
        torch.testing.assert_close(x[:, c], pool[ids[:, c]], rtol=0, atol=0)
    d = pool_labels[ids]
    assert torch.equal(y, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
    # every pool digit is drawn, in each channel, and the channels are not the same draw
    assert all(len(torch.unique(ids[:, c])) == 40 for c in range(3))
    assert (ids[:, 0] != ids[:, 1]).float().mean() > 0.9
    # a [P, 784] pool gives the same images
    again, _ = stack_digits(pool.reshape(40, 784), pool_labels, 3000, np.random.default_rng(0))
    assert torch.equal(again, x)


def test_the_thousand_labels_are_covered_uniformly() -> None:
    images, labels = tagged_digits(20)  # two digits of each class
    n = 30000
    _, y = stack_digits(
        torch.from_numpy(images), torch.from_numpy(labels), n, np.random.default_rng(1)
    )
    counts = torch.bincount(y, minlength=1000)
    assert len(counts) == 1000 and (counts > 0).all()
    statistic = float(((counts - n / 1000) ** 2 / (n / 1000)).sum())
    assert statistic < chi2.ppf(0.999, 999), statistic
    for position in (100, 10, 1):  # each channel's digit is uniform over 0..9
        digit_counts = torch.bincount(y // position % 10, minlength=10)
        assert (digit_counts - n / 10).abs().max() < 4 * (n * 0.09) ** 0.5


def test_stack_digits_is_a_function_of_the_generator_and_draws_only_among() -> None:
    images, labels = tagged_digits(30)
    pool, pool_labels = torch.from_numpy(images), torch.from_numpy(labels)
    a = stack_digits(pool, pool_labels, 200, np.random.default_rng(7))
    b = stack_digits(pool, pool_labels, 200, np.random.default_rng(7))
    c = stack_digits(pool, pool_labels, 200, np.random.default_rng(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    among = torch.tensor([3, 11, 29])
    x, _ = stack_digits(pool, pool_labels, 500, np.random.default_rng(0), among)
    assert set(channel_ids(x, scale=1).flatten().tolist()) == {3, 11, 29}


def test_stack_digits_rejects_what_is_not_a_labelled_pool() -> None:
    images, labels = tagged_digits(10)
    pool, pool_labels = torch.from_numpy(images), torch.from_numpy(labels)
    g = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        stack_digits(pool, pool_labels, 0, g)
    with pytest.raises(ValueError, match=r"\[P, 784\]"):
        stack_digits(pool[:, :14], pool_labels, 5, g)
    with pytest.raises(ValueError, match="one label per digit"):
        stack_digits(pool, pool_labels[:9], 5, g)
    with pytest.raises(ValueError, match=r"must be 0\.\.9"):
        stack_digits(pool, pool_labels.long() + 1, 5, g)
    with pytest.raises(ValueError, match="among"):
        stack_digits(pool, pool_labels, 5, g, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="pool must be one of all, train, held_out"):
        stacked_mnist(3, pool="test")
    with pytest.raises(ValueError, match="n must be >= 1"):
        stacked_mnist(0)


def test_held_out_parts_are_a_fixed_tenth() -> None:
    parts = held_out_parts(1000)
    assert len(parts["held_out"]) == 100 and len(parts["train"]) == 900
    assert sorted(torch.cat([parts["held_out"], parts["train"]]).tolist()) == list(range(1000))
    assert torch.equal(held_out_parts(1000)["held_out"], parts["held_out"])
    assert parts["held_out"].tolist() != list(range(100))  # shuffled, not the first digits
    assert len(held_out_parts(5)["held_out"]) == 1  # at least one on each side
    with pytest.raises(ValueError, match="cannot be cut"):
        held_out_parts(1)


def test_the_training_set_is_the_pool_when_its_files_are_there(
    isolated: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path / "data", monkeypatch, train=60, test=20)
    x, y, source = stacked_mnist(300, seed=2, data_dir=tmp_path / "data")
    assert source == "mnist train (60 digits)"
    assert x.shape == (300, 3, 28, 28) and y.shape == (300,)
    assert channel_ids(x).max() >= 20  # digits only the (60-digit) training file has
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert isolated == []


def test_without_training_files_the_test_set_is_the_pool_and_nothing_is_downloaded(
    isolated: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path / "data", monkeypatch, train=None, test=20)
    x, y, source = stacked_mnist(300, seed=2, data_dir=tmp_path / "data")
    assert source == "mnist t10k (20 digits): the training files were not found"
    assert channel_ids(x).max() < 20 and y.shape == (300,)
    assert isolated == []  # the training set's absence was found out, not downloaded


def test_with_no_files_only_the_test_set_is_downloaded(isolated: list[str], tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"t10k-images-idx3-ubyte\.gz"):
        stacked_mnist(3, data_dir=tmp_path / "empty")
    assert isolated == ["t10k-images-idx3-ubyte.gz"]


def test_stacked_mnist_splits_draw_validation_and_test_from_held_out_digits(
    isolated: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = DATASETS["stacked_mnist"]
    assert (entry.kind, entry.shape, entry.levels, entry.binarize) == (
        "image",
        (3, 28, 28),
        256,
        False,
    )
    assert (entry.train_size, entry.factors, entry.download) == (50000, False, "auto")
    fake_mnist(tmp_path / "data", monkeypatch, train=200, test=20)
    options = {"data_dir": str(tmp_path / "data"), "valid_points": 40, "test_points": 60}
    s = DATASETS.build("stacked_mnist", seed=1, train_points=500, **options)
    assert (s.train.shape, s.valid.shape, s.test.shape) == ((500, 2352), (40, 2352), (60, 2352))
    assert s.image_shape == (3, 28, 28) and s.data_size == 2352
    assert s.info["digit_source"] == "mnist train (200 digits)"
    held_out = set(held_out_parts(200)["held_out"].tolist())
    train_ids = set(channel_ids(s.train).flatten().tolist())
    assert train_ids.isdisjoint(held_out) and len(train_ids) == 180
    for split in ("valid", "test"):
        ids = channel_ids(getattr(s, split))
        assert set(ids.flatten().tolist()) <= held_out
        d = ids % 10  # the tagged digits' labels
        assert torch.equal(s.side["labels"][split], 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
    assert s.side["labels"]["train"].shape == (500,)
    again = DATASETS.build("stacked_mnist", seed=1, train_points=500, **options)
    other = DATASETS.build("stacked_mnist", seed=2, train_points=500, **options)
    assert torch.equal(again.train, s.train) and torch.equal(again.test, s.test)
    assert not torch.equal(other.train, s.train)
    assert not torch.equal(s.valid, s.test[:40])  # independent streams


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST test files are not at hand")
def test_real_test_digits_stack_into_labelled_images(isolated: list[str], tmp_path: Path) -> None:
    source_dir = real_mnist_dir()
    assert source_dir is not None
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for name in T10K:
        shutil.copy(source_dir / name, tmp_path / "data" / "mnist" / name)
    x, y, source = stacked_mnist(500, seed=0, data_dir=tmp_path / "data")
    assert source == "mnist t10k (10000 digits): the training files were not found"
    assert isolated == []
    digits, labels = mnist("test", tmp_path / "data", download=False)
    label_of = {}
    for image, label in zip(digits, labels.tolist(), strict=True):
        label_of.setdefault(image.numpy().tobytes(), set()).add(label)
    for image, stacked in zip(x, y.tolist(), strict=True):
        classes = [label_of[image[c].reshape(784).numpy().tobytes()] for c in range(3)]
        assert stacked in {
            100 * a + 10 * b + c for a in classes[0] for b in classes[1] for c in classes[2]
        }
