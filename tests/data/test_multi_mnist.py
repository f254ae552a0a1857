"""Multi-MNIST: uniform counts, digits inside their boxes, Pyro's overlap rejection, held-out
digits, the 32x32 variant's smaller digits, the loader's splits and side information."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

import dgm.data.idx as idx

# the module, not the function that dgm.data exports under its name
import dgm.data.multi_digit as multi_mnist_module
from dgm.data import DATASETS, MultiMNIST, mnist, multi_mnist, multi_mnist_set
from dgm.data.multi_digit import clear_memory_cache, frame_sizes
from dgm.data.stacked import held_out_parts
from tests.data.test_stacked import (
    T10K,
    TRAIN,
    fake_mnist,
    isolated,  # noqa: F401 (a fixture)
    real_mnist_dir,
    tagged_digits,
    write_idx,
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_memory_cache()


def noise_pool(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """``tagged_digits`` as a pool: [n, 784] float32 in [0, 1] (noise: no pixel is zero, so
    two digits that overlap are rejected) and labels ``index % 10``."""
    images, labels = tagged_digits(n)
    return torch.from_numpy(images).float().reshape(n, 784) / 255, torch.from_numpy(labels).long()


def render(pool: torch.Tensor, m: MultiMNIST, canvas: int) -> torch.Tensor:
    """The images again, one digit at a time: each pool digit resized to its box, added there."""
    out = torch.zeros(len(m), canvas, canvas)
    for i in range(len(m)):
        for k in range(int(m.counts[i])):
            x0, y0, x1, y1 = (int(v) for v in m.boxes[i, k])
            digit = pool[int(m.digit_indices[i, k])].view(1, 1, 28, 28)
            frame = F.interpolate(
                digit, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False, antialias=True
            )
            out[i, y0:y1, x0:x1] += frame[0, 0].clamp(0, 1)
    return out


def assert_same(a: MultiMNIST, b: MultiMNIST) -> None:
    for name in ("images", "counts", "boxes", "digit_labels", "digit_indices"):
        torch.testing.assert_close(
            getattr(a, name), getattr(b, name), rtol=0, atol=0, equal_nan=True
        )


def test_counts_are_uniform_over_none_one_and_two_digits() -> None:
    pool, labels = noise_pool()
    n = 3000
    m = multi_mnist(pool, labels, n, np.random.default_rng(0), 32)
    observed = torch.bincount(m.counts, minlength=3)
    assert len(observed) == 3, observed
    statistic = float(((observed - n / 3) ** 2 / (n / 3)).sum())
    assert statistic < chi2.ppf(1 - 1e-3, 2), (observed, statistic)


@pytest.mark.parametrize("canvas", [50, 32])
def test_each_image_is_its_digits_resized_into_their_boxes(canvas: int) -> None:
    pool, labels = noise_pool()
    m = multi_mnist(pool, labels, 400, np.random.default_rng(1), canvas)
    assert m.images.shape == (400, canvas, canvas) and m.images.dtype == torch.float32
    assert m.counts.dtype == torch.int64 and m.boxes.shape == (400, 2, 4)
    assert m.digit_labels.shape == (400, 2) and m.digit_labels.dtype == torch.int64
    # rows beyond the count: NaN boxes, -1 labels and indices; within it: real digits
    used = torch.arange(2)[None, :] < m.counts[:, None]
    assert torch.equal(m.boxes.isnan().all(-1), ~used) and not m.boxes[used].isnan().any()
    assert torch.equal(m.digit_labels >= 0, used) and torch.equal(m.digit_indices >= 0, used)
    assert torch.equal(m.digit_labels[used], labels[m.digit_indices[used]])
    # boxes: squares of whole pixels inside the canvas, their size the frame size
    b = m.boxes[used]
    assert torch.equal(b, b.round()) and (b[:, :2] >= 0).all() and (b[:, 2:] <= canvas).all()
    assert torch.equal(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) and (b[:, 2] - b[:, 0] >= 2).all()
    # the image is the sum of its digits, each resized to its box: zero outside the boxes
    torch.testing.assert_close(m.images, render(pool, m, canvas), rtol=0, atol=1e-6)
    inside = torch.zeros_like(m.images, dtype=torch.bool)
    for i, k in used.nonzero().tolist():
        x0, y0, x1, y1 = (int(v) for v in m.boxes[i, k])
        inside[i, y0:y1, x0:x1] = True
        assert float(m.images[i, y0:y1, x0:x1].sum()) > 0  # the digit's mass is in its box
    assert (m.images[~inside] == 0).all() and (m.images[m.counts == 0] == 0).all()
    assert float(m.images.min()) >= 0 and float(m.images.max()) <= 1 + 1e-6


def test_an_image_with_a_pixel_above_one_is_drawn_again() -> None:
    # full-white digits: any overlap makes a pixel 2, so no two boxes of an image may meet
    pool, labels = torch.ones(10, 784), torch.arange(10)
    m = multi_mnist(pool, labels, 600, np.random.default_rng(2), 32)
    assert float(m.images.max()) <= 1 + 1e-6
    two = m.boxes[m.counts == 2]
    assert len(two) > 100
    apart = (
        (two[:, 0, 2] <= two[:, 1, 0])
        | (two[:, 1, 2] <= two[:, 0, 0])
        | (two[:, 0, 3] <= two[:, 1, 1])
        | (two[:, 1, 3] <= two[:, 0, 1])
    )
    assert apart.all(), f"{int((~apart).sum())} of {len(two)} two-digit images overlap"
    torch.testing.assert_close(
        m.images.sum((1, 2)), (m.boxes[..., 2] - m.boxes[..., 0]).nan_to_num().pow(2).sum(1)
    )


def test_the_set_is_a_function_of_the_generator_and_draws_only_among() -> None:
    pool, labels = noise_pool()
    a = multi_mnist(pool, labels, 300, np.random.default_rng(7), 32)
    assert_same(a, multi_mnist(pool, labels, 300, np.random.default_rng(7), 32))
    c = multi_mnist(pool, labels, 300, np.random.default_rng(8), 32)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.counts, c.counts)
    # a uint8 pool is the same digits / 255
    uint8 = torch.from_numpy(tagged_digits(40)[0])
    assert_same(a, multi_mnist(uint8, labels, 300, np.random.default_rng(7), 32))
    among = torch.tensor([3, 11, 29])
    x = multi_mnist(pool, labels, 300, np.random.default_rng(0), 32, among=among)
    assert set(x.digit_indices[x.digit_indices >= 0].tolist()) == {3, 11, 29}
    assert set(x.digit_labels[x.digit_labels >= 0].tolist()) == {1, 3, 9}


def test_digits_scale_with_the_canvas() -> None:
    # Pyro's int(28 * (1 / scale)) on 50x50, in proportion on 32x32, between 2 and the canvas
    scales = np.array([1.3, 1.0, 28 / 22, 0.01, -1.0, 100.0])
    assert frame_sizes(scales, 50).tolist() == [int(28 * (1 / s)) for s in scales[:3]] + [50, 50, 2]
    assert frame_sizes(scales[:3], 32).tolist() == [13, 17, 14]
    pool, labels = noise_pool()
    widths = {}
    for canvas in (50, 32):
        # one digit at most: nothing is rejected (rejection favours small pairs of digits)
        m = multi_mnist(pool, labels, 2000, np.random.default_rng(3), canvas, max_digits=1)
        b = m.boxes[~m.boxes[..., 0].isnan()]
        widths[canvas] = float((b[:, 2] - b[:, 0]).mean())
    # E[28 / scale] for scale ~ N(1.3, 0.1) is 28 / 1.3 * (1 + (0.1 / 1.3) ** 2 + ...) = 21.67,
    # less 0.5 on average for the truncation; 32 / 50 of that (13.87) less 0.5 on 32x32
    assert abs(widths[50] - 21.17) < 0.3, widths
    assert abs(widths[32] - 13.37) < 0.3, widths


def test_offsets_are_uniform_and_independent_inside_the_canvas() -> None:
    pool, labels = noise_pool()
    m = multi_mnist(pool, labels, 6000, np.random.default_rng(4), 32, max_digits=1)
    b = m.boxes[m.counts == 1, 0]
    x0, y0, width = b[:, 0], b[:, 1], b[:, 2] - b[:, 0]
    assert (x0 < 32 - width).all() and (y0 < 32 - width).all()  # Pyro's [0, canvas - size)
    common = int(width.mode().values)
    for offset in (x0[width == common], y0[width == common]):
        observed = torch.bincount(offset.long(), minlength=32 - common)
        assert len(observed) == 32 - common
        expected = len(offset) / (32 - common)
        statistic = float(((observed - expected) ** 2 / expected).sum())
        assert statistic < chi2.ppf(1 - 1e-3, 31 - common), (common, observed)
    assert abs(float(torch.corrcoef(torch.stack([x0, y0]))[0, 1])) < 0.1
    assert float((x0 == y0).float().mean()) < 0.15


def test_no_digits_and_more_digits() -> None:
    pool, labels = noise_pool()
    none = multi_mnist(pool, labels, 20, np.random.default_rng(0), 32, max_digits=0)
    assert (none.counts == 0).all() and (none.images == 0).all() and none.boxes.shape == (20, 0, 4)
    three = multi_mnist(pool, labels, 200, np.random.default_rng(0), 50, max_digits=3)
    assert set(three.counts.tolist()) == {0, 1, 2, 3} and three.boxes.shape == (200, 3, 4)
    torch.testing.assert_close(three.images, render(pool, three, 50), rtol=0, atol=1e-6)


def test_multi_mnist_rejects_bad_arguments() -> None:
    pool, labels = noise_pool(10)
    g = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        multi_mnist(pool, labels, 0, g)
    with pytest.raises(ValueError, match="canvas_size must be >= 8"):
        multi_mnist(pool, labels, 5, g, 7)
    with pytest.raises(ValueError, match="max_digits must be >= 0"):
        multi_mnist(pool, labels, 5, g, max_digits=-1)
    with pytest.raises(ValueError, match="scale_mean must be > 0"):
        multi_mnist(pool, labels, 5, g, scale_mean=0.0)
    with pytest.raises(ValueError, match="scale_std >= 0"):
        multi_mnist(pool, labels, 5, g, scale_std=-0.1)
    with pytest.raises(ValueError, match=r"\[P, 784\]"):
        multi_mnist(pool[:, :100], labels, 5, g)
    with pytest.raises(ValueError, match="one label per digit"):
        multi_mnist(pool, labels[:9], 5, g)
    with pytest.raises(ValueError, match=r"must be 0\.\.9"):
        multi_mnist(pool, labels + 1, 5, g)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        multi_mnist(pool * 255, labels, 5, g)
    with pytest.raises(ValueError, match="floating point in"):
        multi_mnist(pool.long(), labels, 5, g)
    with pytest.raises(ValueError, match="among"):
        multi_mnist(pool, labels, 5, g, among=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="among"):
        multi_mnist(pool, labels, 5, g, among=torch.tensor([], dtype=torch.long))
    # white digits as large as the canvas always overlap: an error, not an endless loop
    with pytest.raises(ValueError, match="could not place 2 digits on a 8x8 canvas"):
        multi_mnist(torch.ones(3, 784), torch.arange(3), 30, g, 8, scale_mean=0.5)
    with pytest.raises(ValueError, match="pool must be one of all, train, held_out"):
        multi_mnist_set(3, pool="test")
    with pytest.raises(ValueError, match="n must be >= 1"):
        multi_mnist_set(0)


def relabel_held_out(d: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> np.ndarray:
    """Give the held-out digits of ``d``'s fake training file the label 9, the others
    ``index % 9`` (and make the new file canonical); returns the labels."""
    labels = (np.arange(size) % 9).astype(np.uint8)
    labels[held_out_parts(size)["held_out"].numpy()] = 9
    path = d / "mnist" / TRAIN[1]
    write_idx(path, labels)
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest()}
    monkeypatch.setattr(idx, "_MNIST_MD5", {**idx._MNIST_MD5, **md5})
    return labels


def test_the_loader_draws_validation_and_test_from_held_out_digits(
    isolated: list[str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, canvas, train_size in (("multi_mnist", 50, 60000), ("multi_mnist_32", 32, 20000)):
        entry = DATASETS[name]
        assert (entry.kind, entry.shape, entry.levels, entry.binarize) == (
            "image",
            (canvas, canvas),
            256,
            False,
        )
        assert (entry.train_size, entry.factors, entry.download) == (train_size, False, "auto")
        assert entry.max_objects == 2 and "Pyro" in entry.summary
    plain, relabelled = tmp_path / "plain", tmp_path / "relabelled"
    options = {"seed": 0, "train_points": 200, "valid_points": 50, "test_points": 50}
    fake_mnist(plain, monkeypatch, train=200, test=20)
    before = DATASETS.build("multi_mnist_32", data_dir=str(plain), **options)
    fake_mnist(relabelled, monkeypatch, train=200, test=20)  # the same digits, ...
    relabel_held_out(relabelled, monkeypatch, 200)  # ... other labels (now the canonical ones)
    s = DATASETS.build("multi_mnist_32", data_dir=str(relabelled), **options)
    assert (s.train.shape, s.valid.shape, s.test.shape) == ((200, 1024), (50, 1024), (50, 1024))
    assert s.image_shape == (32, 32) and s.data_size == 1024 and s.train.dtype == torch.float32
    assert s.info == {
        "digit_source": "mnist train (200 digits)",
        "canvas_size": 32,
        "max_objects": 2,
    }
    assert set(s.side) == {"counts", "boxes", "labels"}
    for split, n in (("train", 200), ("valid", 50), ("test", 50)):
        counts, boxes, labels = (s.side[key][split] for key in ("counts", "boxes", "labels"))
        assert counts.shape == (n,) and boxes.shape == (n, 2, 4) and labels.shape == (n, 2)
        assert torch.equal(labels >= 0, torch.arange(2)[None, :] < counts[:, None])
        placed = labels[labels >= 0]
        # held-out digits (label 9) in validation and test images only, all of them there
        assert (placed == 9).all() if split != "train" else (placed != 9).all()
        assert len(placed) > n // 2
    # the cache tells the pools apart: the plain pool's labels (index % 10) have 9s in training
    assert (before.side["labels"]["train"] == 9).any()
    # the same arguments give the same splits (from the memory cache: the same tensors) ...
    again = DATASETS.build("multi_mnist_32", data_dir=str(relabelled), **options)
    assert again.train.data_ptr() == s.train.data_ptr()
    clear_memory_cache()  # ... and so does generating them again
    fresh = DATASETS.build("multi_mnist_32", data_dir=str(relabelled), **options)
    assert fresh.train.data_ptr() != s.train.data_ptr()
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(fresh, split), getattr(s, split))
        assert torch.equal(fresh.side["counts"][split], s.side["counts"][split])
    other = DATASETS.build("multi_mnist_32", data_dir=str(relabelled), **{**options, "seed": 1})
    assert not torch.equal(other.train, s.train)
    assert not torch.equal(s.valid, s.test)  # independent streams
    assert isolated == []


def test_the_rejection_test_fails_without_the_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multi_mnist_module, "OVERLAP_TOLERANCE", float("inf"))
    m = multi_mnist(torch.ones(10, 784), torch.arange(10), 300, np.random.default_rng(2), 32)
    assert float(m.images.max()) > 1.5  # overlapping white digits, kept


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST test files are not at hand")
def test_real_digits_make_multi_mnist(
    isolated: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    source_dir = real_mnist_dir()
    assert source_dir is not None
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for name in T10K:
        shutil.copy(source_dir / name, tmp_path / "data" / "mnist" / name)
    m, source = multi_mnist_set(1000, seed=0, data_dir=tmp_path / "data")
    assert source == "mnist t10k (10000 digits): the training files were not found"
    assert isolated == []
    digits, labels = mnist("test", tmp_path / "data", download=False)
    used = m.digit_indices >= 0
    assert torch.equal(m.digit_labels[used], labels[m.digit_indices[used]])
    assert float(m.images.max()) <= 1 + 1e-6
    two = m.boxes[m.counts == 2]
    meet = (
        torch.minimum(two[:, 0, 2:], two[:, 1, 2:]) > torch.maximum(two[:, 0, :2], two[:, 1, :2])
    ).all(-1)
    assert meet.any()  # real strokes may share a frame: only sums above 1 are rejected
    torch.testing.assert_close(m.images[:100], render(digits, m, 50)[:100], rtol=0, atol=1e-6)
    again, _ = multi_mnist_set(1000, seed=0, data_dir=tmp_path / "data", cache=False)
    assert_same(m, again)


def test_pyros_multi_mnist_follows_its_seeded_draws_image_by_image() -> None:
    from PIL import Image

    from dgm.data.multi_digit import PYRO_SEED, pyro_multi_mnist

    rng = np.random.default_rng(3)
    pool = torch.from_numpy(rng.integers(0, 120, (50, 28, 28)).astype(np.uint8))  # dim digits
    labels = torch.arange(50) % 10
    found = pyro_multi_mnist(pool, labels, n=40)
    again = pyro_multi_mnist(pool.float() / 255, labels, n=40)  # a [0, 1] pool: the same
    assert torch.equal(found.images, again.images)
    # the first image, redrawn from Pyro's seed in Pyro's order: count, then per digit the
    # pool index, the scale, the row and the column (no redraw: these dim digits never sum
    # past 255)
    rs = np.random.RandomState(PYRO_SEED)
    for i in range(3):
        count = rs.randint(3)
        assert found.counts[i] == count
        expected = np.zeros((50, 50))
        for slot in range(count):
            j = rs.randint(50)
            w = int(28 / (0.1 * rs.randn() + 1.3))
            row, col = rs.randint(0, 50 - w), rs.randint(0, 50 - w)
            resized = np.array(Image.fromarray(pool[j].numpy()).resize((w, w)))
            expected[row : row + w, col : col + w] += resized
            assert found.digit_indices[i, slot] == j and found.digit_labels[i, slot] == j % 10
            assert found.boxes[i, slot].tolist() == [col, row, col + w, row + w]
        assert torch.equal((found.images[i] * 255).round(), torch.from_numpy(expected).float())
    assert found.counts.bincount(minlength=3).min() >= 5
    assert ((found.images * 255).round() == found.images * 255).all()  # 8-bit levels
