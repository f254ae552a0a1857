"""Minibatches by step number, so that a resumed run sees exactly the batches it would have."""

from __future__ import annotations

import torch
from torch import Tensor

from .distributed import SINGLE, World
from .step import Data


def leading(data: Data) -> int:
    """The number of points of a tensor, or of every tensor of a tuple or dict (checked)."""
    tensors = (
        list(data.values())
        if isinstance(data, dict)
        else (list(data) if isinstance(data, tuple) else [data])
    )
    if not tensors:
        raise ValueError("fit: the data holds no tensors")
    sizes = {int(t.shape[0]) for t in tensors}
    if len(sizes) != 1:
        raise ValueError(
            f"fit: the data's tensors have different numbers of points {sorted(sizes)}; "
            "every tensor of a tuple or dict must index the same points in its first dimension"
        )
    return sizes.pop()


def index(data: Data, idx: Tensor) -> Data:
    """The points ``idx`` of every tensor of ``data``."""
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(v[idx] for v in data)
    return data[idx]


def to(data: Data, device: torch.device) -> Data:
    """Every tensor of ``data`` on ``device``."""
    if isinstance(data, dict):
        return {k: v.to(device, non_blocking=True) for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(v.to(device, non_blocking=True) for v in data)
    return data.to(device, non_blocking=True)


class Batches:
    """Minibatches by draw number: epoch e is a permutation drawn from ``(seed, e)`` alone.

    Draw s of any run with the same seed is the same global batch, which makes resuming
    exact. With several processes, rank r takes every ``world.size``-th point of it. Data is
    a tensor, or a tuple or dict of tensors indexed alike (e.g. inputs and a padding mask).
    """

    def __init__(self, data: Data, batch_size: int, seed: int, world: World = SINGLE) -> None:
        n = leading(data)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size:
            raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} points)")
        if batch_size % world.size:
            raise ValueError(
                f"the global batch_size {batch_size} must be divisible by the {world.size} processes"
            )
        self.data, self.batch_size, self.seed, self.world = data, batch_size, seed, world
        self.size = n
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, draw: int) -> Data:
        """The batch of 0-based ``draw`` (this process's share of it)."""
        epoch, i = divmod(draw, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=g)
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        return index(self.data, idx[self.world.rank :: self.world.size])


__all__ = ["Batches", "index", "leading", "to"]
