"""Multi-MNIST: 0, 1 or 2 MNIST digits, scaled and put at random places on a 50x50 canvas.

The data set of Attend-Infer-Repeat (Eslami et al. 2016), generated as Pyro's AIR
example generates it (github.com/pyro-ppl/pyro, ``examples/air/multi_mnist.py``,
``mk_dataset``): for each image the number of digits is drawn uniformly from
``0..max_digits`` (0, 1 or 2); each digit is a pool digit drawn uniformly, with a scale
``0.1 * randn + 1.3``; its 28x28 image is resized to a square of ``28 / scale`` pixels and put
at a uniformly random integer offset (row and column independently, in
``[0, canvas - size)``); the digits are summed into the canvas. An image whose sum exceeds 1
anywhere (255 in Pyro's uint8: the example's "crude check for overlapping digits") is drawn
again, with the same number of digits and new digits, scales and offsets.

Besides the images, the generator returns what AIR is scored against: each image's number of
digits (``counts``; AIR's count accuracy), the box of each digit's resized square frame
(``boxes``, ``(x0, y0, x1, y1)`` in pixels, ``x`` the column) and its class
(``digit_labels``).

``pyro_multi_mnist`` (data set ``multi_mnist_pyro``) generates Pyro's 60000 images exactly
instead: its seed, its draws in its order, PIL's resize (identical to Pyro's code on the first
3000 images of MNIST's training digits, checked against its ``mk_dataset``), so that AIR's
count accuracy can be compared on the very images Pyro's example reports. ``multi_mnist``
below differs from Pyro's code:

- The digits are resized in float32 by ``torch.nn.functional.interpolate`` (bilinear,
  antialiased, clamped to [0, 1]), not by PIL on uint8 (bicubic today; ``scipy.misc.imresize``
  in older versions of the example), and the canvas is kept in float32, not rounded to uint8;
  the draws come from a ``numpy.random.Generator`` in batches, not Pyro's global state.
- On a canvas other than 50x50 the frame is ``28 / scale * canvas_size / 50`` pixels,
  truncated as Pyro truncates ``28 / scale`` (``frame_sizes``), between 2 and ``canvas_size``:
  a 32x32 canvas (``multi_mnist_32``, for CPU budgets) gets proportionally smaller digits.
- The pool is ``stacked.digit_pool``'s (MNIST's training digits, or its test digits when the
  training files are absent), and the loader (``splits.py``) keeps the fixed held-out 10%
  (``stacked.held_out_parts``) for the validation and test images, so that no digit of a
  validation or test image is in a training image; Pyro draws from all 60000 training digits.

Generated sets are cached in memory (``cached_multi_mnist``), so that a second load in the
same process costs only reading the pool. There is no cache on disk: generating 60000 50x50
images takes about 1.5 s on one core, and reading them back from a compressed ``.npz`` took
twice that (3 s; 34 MB on disk), so a file would only cost space.

References:
    Eslami, Heess, Weber, Tassa, Szepesvari, Kavukcuoglu & Hinton, "Attend, Infer, Repeat:
    Fast Scene Understanding with Generative Models", NeurIPS 2016.
    Pyro's AIR example, https://pyro.ai/examples/air.html.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .stacked import _check_pool, digit_pool, held_out_parts

CANVAS_SIZE = 50  # Pyro's (and Eslami et al.'s) canvas
MAX_DIGITS = 2
SCALE_MEAN, SCALE_STD = 1.3, 0.1  # a digit's scale: SCALE_STD * randn + SCALE_MEAN
MIN_CANVAS = 8  # the smallest canvas accepted
MIN_FRAME = 2  # the smallest digit frame, in pixels
OVERLAP_TOLERANCE = 1e-6  # a pixel above 1 + this rejects the image
MAX_ROUNDS = 1000  # redraws of an image before its digits are declared impossible to place
CHUNK = 4096  # images composed at a time (bounds the working memory)
POOLS = ("all", "train", "held_out")
MEMORY_CACHE_BYTES = 2 << 30  # the in-memory cache keeps the newest sets up to this size


@dataclass(frozen=True)
class MultiMNIST:
    """Multi-MNIST images and what they hold.

    Attributes:
        images: ``[n, canvas, canvas]`` float32 in [0, 1].
        counts: ``[n]`` int64, the number of digits of each image (0..max_digits).
        boxes: ``[n, max_digits, 4]`` float32, each digit's frame ``(x0, y0, x1, y1)`` =
            ``(col, row, col + size, row + size)`` in pixels (``x`` the column); NaN in the
            rows beyond the image's count.
        digit_labels: ``[n, max_digits]`` int64, each digit's class 0..9; -1 beyond the count.
        digit_indices: ``[n, max_digits]`` int64, each digit's index into the pool; -1 beyond
            the count.
    """

    images: Tensor
    counts: Tensor
    boxes: Tensor
    digit_labels: Tensor
    digit_indices: Tensor

    def __len__(self) -> int:
        return len(self.images)


def frame_sizes(scales: np.ndarray, canvas_size: int) -> np.ndarray:
    """The side in pixels (int64) of a digit of scale ``scales`` on a ``canvas_size`` canvas:
    ``floor(28 * (1 / scale) * canvas_size / 50)``, between ``MIN_FRAME`` and ``canvas_size``
    (a scale at or below zero, possible only for a large ``scale_std``, gives the largest).

    On the 50x50 canvas this is Pyro's size to the bit (``scipy.misc.imresize(digit,
    1. / scale)`` truncates ``28 * (1 / scale)``)."""
    with np.errstate(divide="ignore"):
        sizes = 28.0 * (1.0 / scales) * (canvas_size / CANVAS_SIZE)
    sizes = np.where(scales > 0, sizes, np.inf)
    return np.floor(np.clip(sizes, MIN_FRAME, canvas_size)).astype(np.int64)


def multi_mnist(
    digits: Tensor,
    labels: Tensor,
    n: int,
    generator: np.random.Generator,
    canvas_size: int = CANVAS_SIZE,
    *,
    max_digits: int = MAX_DIGITS,
    among: Tensor | None = None,
    scale_mean: float = SCALE_MEAN,
    scale_std: float = SCALE_STD,
) -> MultiMNIST:
    """``n`` multi-MNIST images of ``canvas_size`` squared pixels, as Pyro's AIR example draws
    them (see the module's docstring), with their counts, boxes and digit classes.

    The draws, in order: every image's count; then, ``CHUNK`` images at a time and for every
    image of the chunk still to place, one pool digit, scale, row and column offset per slot
    (``max_digits`` slots, those beyond the count unused), drawn again for the images that a
    pixel above 1 rejects, until none is left. The result is a function of ``generator``'s
    state (and the arguments).

    Args:
        digits: the pool, ``[P, 784]`` or ``[P, 28, 28]``, floating point in [0, 1] or uint8
            (divided by 255).
        labels: their classes ``[P]``, 0..9.
        generator: the source of every draw.
        canvas_size: the image side; digit frames are ``28 / scale * canvas_size / 50``
            pixels, truncated (``frame_sizes``).
        max_digits: the largest number of digits in an image (counts are uniform on
            ``0..max_digits``).
        among: the pool indices to draw from (default: all ``P``).
        scale_mean, scale_std: a digit's scale is ``scale_std * randn + scale_mean``.

    Raises:
        ValueError: ``n < 1``, ``canvas_size < 8``, ``max_digits < 0``, ``scale_mean <= 0``,
            ``scale_std < 0``, a pool that is empty, not 28x28 digits in [0, 1] with one label
            0..9 each, ``among`` empty or outside the pool, or digits that could not be placed
            without a pixel above 1 in ``MAX_ROUNDS`` draws of an image.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if canvas_size < MIN_CANVAS:
        raise ValueError(
            f"canvas_size must be >= {MIN_CANVAS} pixels (to hold a digit), got {canvas_size}"
        )
    if max_digits < 0:
        raise ValueError(f"max_digits must be >= 0, got {max_digits}")
    if not scale_mean > 0 or not scale_std >= 0:
        raise ValueError(
            f"scale_mean must be > 0 and scale_std >= 0, got {scale_mean}, {scale_std}"
        )
    pool = _float_pool(_check_pool(digits, labels))
    if among is None:
        among_np = np.arange(len(pool))
    else:
        among = among.long()
        if len(among) == 0 or int(among.min()) < 0 or int(among.max()) >= len(pool):
            raise ValueError(f"among must hold pool indices 0..{len(pool) - 1}, and at least one")
        among_np = among.numpy()
    pool_labels = labels.long().numpy()

    k = max_digits
    counts = generator.integers(0, k + 1, n)
    images = torch.zeros(n, canvas_size, canvas_size)
    boxes = np.full((n, k, 4), np.nan, dtype=np.float32)
    indices = np.full((n, k), -1, dtype=np.int64)
    slot = np.arange(k)
    for start in range(0, n, CHUNK):
        chunk = np.arange(start, min(start + CHUNK, n))
        pending = chunk[counts[chunk] > 0]  # an empty canvas needs no draws
        rounds = 0
        while len(pending):
            if rounds == MAX_ROUNDS:
                raise ValueError(
                    f"could not place {int(counts[pending[0]])} digits on a {canvas_size}x"
                    f"{canvas_size} canvas without a pixel above 1 in {MAX_ROUNDS} draws: the "
                    "digits are too large or too bright for the canvas"
                )
            rounds += 1
            m = len(pending)
            chosen = among_np[generator.integers(0, len(among_np), (m, k))]
            sizes = frame_sizes(
                scale_std * generator.standard_normal((m, k)) + scale_mean, canvas_size
            )
            room = np.maximum(canvas_size - sizes, 1)  # offsets in [0, canvas - size)
            rows = generator.integers(0, room)
            cols = generator.integers(0, room)
            active = slot[None, :] < counts[pending][:, None]
            canvas = _compose(pool, chosen, sizes, rows, cols, active, canvas_size)
            bad = (canvas.amax(dim=(1, 2)) > 1 + OVERLAP_TOLERANCE).numpy()
            ok = ~bad
            done = pending[ok]
            images[torch.from_numpy(done)] = canvas[torch.from_numpy(ok)]
            placed = active[ok]
            frame = np.stack([cols, rows, cols + sizes, rows + sizes], axis=-1)[ok]
            boxes[done] = np.where(placed[..., None], frame.astype(np.float32), np.nan)
            indices[done] = np.where(placed, chosen[ok], -1)
            pending = pending[bad]
    digit_labels = np.where(indices >= 0, pool_labels[np.maximum(indices, 0)], -1)
    return MultiMNIST(
        images,
        torch.from_numpy(counts.astype(np.int64)),
        torch.from_numpy(boxes),
        torch.from_numpy(digit_labels.astype(np.int64)),
        torch.from_numpy(indices),
    )


PYRO_SEED = 681307  # np.random.seed in Pyro's multi_mnist.load
PYRO_IMAGES = 60000


def pyro_multi_mnist(
    digits: Tensor, labels: Tensor, n: int = PYRO_IMAGES, seed: int = PYRO_SEED
) -> MultiMNIST:
    """Pyro's multi-MNIST, draw for draw: the ``n`` 50x50 images of Pyro's AIR example
    (``pyro.contrib.examples.multi_mnist``: ``np.random.seed(681307)``, then
    ``mk_dataset(60000, mnist, 2, 50)`` on MNIST's training digits), from the same pool.

    Each image: a count ``randint(3)``; per digit a pool index ``randint(P)``, a scale
    ``0.1 * randn() + 1.3``, the uint8 digit resized by PIL to ``int(28 / scale)`` pixels
    (``Image.resize``'s default filter for 8-bit images, bicubic), a row offset then a column
    offset ``randint(0, 50 - size)``; the digits summed in float64 and the image drawn again
    (same count, new digits) while a pixel exceeds 255; stored as uint8. The legacy
    ``RandomState`` seeded as Pyro seeds NumPy's global one gives the same numbers.

    Args:
        digits: MNIST's training digits, ``[P, 28, 28]`` (or ``[P, 784]``), uint8 or in [0, 1]
            (then multiplied by 255 and rounded: exact for digits read from the IDX files).
        labels: their classes ``[P]``.
    """
    from PIL import Image

    pool = digits.reshape(len(digits), 28, 28)
    if pool.dtype != torch.uint8:
        pool = (pool.double() * 255).round().clamp(0, 255).to(torch.uint8)
    pool_np, label_np = pool.numpy(), labels.long().numpy()
    rs = np.random.RandomState(seed)  # Pyro's (legacy) generator: its draws, number for number
    size = CANVAS_SIZE
    images = np.zeros((n, size, size), np.uint8)
    boxes = np.full((n, MAX_DIGITS, 4), np.nan, dtype=np.float32)
    indices = np.full((n, MAX_DIGITS), -1, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        count = rs.randint(MAX_DIGITS + 1)
        counts[i] = count
        while True:
            canvas = np.zeros((size, size))
            placed = []
            for _ in range(count):
                j = rs.randint(len(pool_np))
                scale = 0.1 * rs.randn() + 1.3
                w = int(28 / scale)
                resized = np.array(Image.fromarray(pool_np[j]).resize((w, w)))
                row = rs.randint(0, size - w)
                col = rs.randint(0, size - w)
                canvas[row : row + w, col : col + w] += resized
                placed.append((j, col, row, w))
            if canvas.max() <= 255:
                break
        images[i] = canvas.astype(np.uint8)
        for slot, (j, col, row, w) in enumerate(placed):
            indices[i, slot] = j
            boxes[i, slot] = (col, row, col + w, row + w)
    digit_labels = np.where(indices >= 0, label_np[np.maximum(indices, 0)], -1)
    return MultiMNIST(
        torch.from_numpy(images).float() / 255,
        torch.from_numpy(counts),
        torch.from_numpy(boxes),
        torch.from_numpy(digit_labels.astype(np.int64)),
        torch.from_numpy(indices),
    )


def _float_pool(pool: Tensor) -> Tensor:
    """The pool ``[P, 784]`` as float32 in [0, 1] (uint8 divided by 255), checked."""
    if pool.dtype == torch.uint8:
        return pool.float() / 255
    if not pool.is_floating_point():
        raise ValueError(
            f"the digit pool must be floating point in [0, 1] or uint8, got {pool.dtype}"
        )
    pool = pool.float()
    low, high = float(pool.min()), float(pool.max())
    if not (0 <= low and high <= 1):
        raise ValueError(f"the digit pool's intensities must be in [0, 1], got {low}..{high}")
    return pool


def _compose(
    pool: Tensor,
    chosen: np.ndarray,
    sizes: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    active: np.ndarray,
    canvas_size: int,
) -> Tensor:
    """Canvases ``[m, canvas, canvas]``: the sum of each image's active digits, each resized
    to its frame (one ``interpolate`` call per frame size) and added at its offset."""
    m = len(chosen)
    canvas = torch.zeros(m, canvas_size, canvas_size)
    image = np.broadcast_to(np.arange(m)[:, None], chosen.shape)[active]
    chosen, sizes, rows, cols = chosen[active], sizes[active], rows[active], cols[active]
    for size in np.unique(sizes).tolist():
        sel = sizes == size
        frames = F.interpolate(
            pool[torch.from_numpy(chosen[sel])].view(-1, 1, 28, 28),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        ).clamp_(0, 1)[:, 0]
        span = torch.arange(size)
        where = (
            torch.from_numpy(image[sel]).view(-1, 1, 1),
            torch.from_numpy(rows[sel]).view(-1, 1, 1) + span.view(1, -1, 1),
            torch.from_numpy(cols[sel]).view(-1, 1, 1) + span.view(1, 1, -1),
        )
        canvas.index_put_(where, frames, accumulate=True)
    return canvas


# ---------------------------------------------------------------------------------------------
# Cached sets of the MNIST pool


_MEMORY: OrderedDict[str, MultiMNIST] = OrderedDict()


def pool_tag(digits: Tensor, labels: Tensor, source: str) -> str:
    """A name for a pool in cache keys: its MNIST set, size and a digest of its contents.

    The digest reads every label and every 16th digit (25 ms for 60000 digits, where all of
    them take 0.36 s): MNIST's files are checksum-verified, so pools of one set and size
    differ only where a test makes them, and such pools differ in most digits."""
    pool = digits.reshape(len(digits), -1)
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((list(pool.shape), str(pool.dtype))).encode())
    h.update(np.ascontiguousarray(pool[::16].numpy()).data)
    h.update(np.ascontiguousarray(labels.long().numpy()).data)
    kind = "train" if source.startswith("mnist train") else "t10k"
    return f"{kind}{len(digits)}-{h.hexdigest()}"


def cached_multi_mnist(
    digits: Tensor,
    labels: Tensor,
    n: int,
    seed: int,
    canvas_size: int = CANVAS_SIZE,
    *,
    part: str = "all",
    tag: str,
    cache: bool = True,
) -> MultiMNIST:
    """``multi_mnist(digits, labels, n, default_rng(seed), canvas_size, among=...)`` with the
    default digit count and scales, drawing from the pool's ``part`` (``"all"``, or
    ``held_out_parts``' ``"train"`` or ``"held_out"``), cached in memory.

    ``tag`` names the pool (``pool_tag``); the cache key is ``canvas, part, n, seed, tag``.
    The cache keeps the newest sets up to ``MEMORY_CACHE_BYTES`` of images; the returned
    tensors are shared with it: do not modify them in place. ``cache=False`` neither reads
    nor fills it.
    """
    if part not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {part!r}")
    key = f"c{canvas_size}-{part}-n{n}-seed{seed}-{tag}"
    if cache and key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    among = None if part == "all" else held_out_parts(len(digits))[part]
    found = multi_mnist(digits, labels, n, np.random.default_rng(seed), canvas_size, among=among)
    if cache:
        _MEMORY[key] = found
        while len(_MEMORY) > 1 and sum(map(_nbytes, _MEMORY.values())) > MEMORY_CACHE_BYTES:
            _MEMORY.popitem(last=False)
    return found


def multi_mnist_set(
    n: int,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    canvas_size: int = CANVAS_SIZE,
    pool: str = "all",
    cache: bool = True,
) -> tuple[MultiMNIST, str]:
    """``n`` multi-MNIST images of MNIST digits (``stacked.digit_pool``'s pool) and the pool's
    description; the draws are ``numpy.random.default_rng(seed)``'s, the set is cached
    (``cached_multi_mnist``).

    Args:
        pool: ``"all"`` (every digit of the pool), ``"train"`` (the 90% not held out) or
            ``"held_out"`` (the fixed 10% that the validation and test splits use).

    Raises:
        ValueError: ``n < 1``, ``canvas_size < 8`` or an unknown ``pool``.
        DataNotFoundError: neither MNIST set is on disk and the test set cannot be downloaded.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    digits, labels, source = digit_pool(data_dir)
    tag = pool_tag(digits, labels, source)
    found = cached_multi_mnist(
        digits, labels, n, seed, canvas_size, part=pool, tag=tag, cache=cache
    )
    return found, source


def clear_memory_cache() -> None:
    """Forget the sets cached in memory."""
    _MEMORY.clear()


def _nbytes(found: MultiMNIST) -> int:
    return found.images.numel() * found.images.element_size()


__all__ = [
    "CANVAS_SIZE",
    "MAX_DIGITS",
    "MultiMNIST",
    "cached_multi_mnist",
    "clear_memory_cache",
    "frame_sizes",
    "multi_mnist",
    "multi_mnist_set",
    "pool_tag",
]
