"""Bijections: ``call_and_ladj(x) -> (y, log|det dy/dx|)``, and the inverse where it is cheap.

Every bijection maps its last dimension (an event of size D) and broadcasts over leading
dimensions (particles, data points). A conditional bijection takes a ``context`` (e.g. an
encoder feature ``[B, C]``) that broadcasts against those leading dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Bijection(nn.Module):
    """Base class: subclasses implement ``call_and_ladj`` and, where cheap, ``inverse_and_ladj``."""

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """y = f(x) and log|det df/dx|, shapes ``[..., D]`` and ``[...]``."""
        raise NotImplementedError

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x = f^-1(y) and log|det df^-1/dy|; only bijections with a usable inverse have it."""
        raise NotImplementedError(
            f"{type(self).__name__} has no cheap inverse; score samples it drew itself (their "
            "log-density is known from the forward pass) or use a flow with an inverse"
        )

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self.inverse_and_ladj(y, context)[0]

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.call_and_ladj(x, context)[0]


class Compose(Bijection):
    """f_n o ... o f_1: the log-determinants add up."""

    def __init__(self, bijections: Sequence[Bijection]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(bijections)

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total: Tensor | None = None
        for f in self.parts:
            assert isinstance(f, Bijection)
            x, ladj = f.call_and_ladj(x, context)
            total = ladj if total is None else total + ladj
        return x, total if total is not None else x.new_zeros(x.shape[:-1])

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total: Tensor | None = None
        for f in reversed(self.parts):
            assert isinstance(f, Bijection)
            y, ladj = f.inverse_and_ladj(y, context)
            total = ladj if total is None else total + ladj
        return y, total if total is not None else y.new_zeros(y.shape[:-1])


class Permute(Bijection):
    """Reorders the event's coordinates (reverse by default; any fixed permutation)."""

    def __init__(self, dim: int, permutation: Sequence[int] | None = None) -> None:
        super().__init__()
        perm = torch.arange(dim - 1, -1, -1) if permutation is None else torch.tensor(permutation)
        if sorted(perm.tolist()) != list(range(dim)):
            raise ValueError(f"Permute: {perm.tolist()} is not a permutation of 0..{dim - 1}")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[..., self.get_buffer("perm")], x.new_zeros(x.shape[:-1])

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y[..., self.get_buffer("inverse_perm")], y.new_zeros(y.shape[:-1])
