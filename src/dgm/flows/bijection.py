"""Bijections: ``call_and_ladj(x) -> (y, log|det dy/dx|)``, and the inverse where it is cheap.

Every bijection maps an event of ``event_dims`` trailing dimensions (1: vectors ``[..., D]``;
3: images ``[..., C, H, W]``) and broadcasts over leading dimensions (particles, data
points); its log-determinant has the leading shape. A conditional bijection takes a
``context`` (e.g. an encoder feature ``[B, C]``) that broadcasts against those dimensions.

Directions: the VAE-side flows (``IAF``, ``Planar``, ``MAF`` as a prior) call from noise to
data, as ``FlowDistribution`` samples; the density-model layers (couplings, ActNorm, 1x1
convolutions, squeeze, splines) call from data to noise, the direction that scores data.
``dgm.models.flow_model.Inverse`` swaps the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Bijection(nn.Module):
    """Base class: subclasses implement ``call_and_ladj`` and, where cheap, ``inverse_and_ladj``."""

    event_dims: int = 1  # trailing dimensions of one event: 1 for vectors [..., D], 3 for images

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
    """f_n o ... o f_1: the log-determinants add up; the parts share their ``event_dims``."""

    def __init__(self, bijections: Sequence[Bijection]) -> None:
        super().__init__()
        parts = list(bijections)
        self.parts = nn.ModuleList(parts)
        dims = {f.event_dims for f in parts}
        if len(dims) > 1:
            found = ", ".join(f"{type(f).__name__}: {f.event_dims}" for f in parts)
            raise ValueError(
                f"Compose needs parts that act on events of the same number of dimensions "
                f"(event_dims), got {found}"
            )
        if dims:
            self.event_dims = dims.pop()

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total: Tensor | None = None
        for f in self.parts:
            assert isinstance(f, Bijection)
            x, ladj = f.call_and_ladj(x, context)
            total = ladj if total is None else total + ladj
        return x, total if total is not None else x.new_zeros(x.shape[: x.dim() - self.event_dims])

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total: Tensor | None = None
        for f in reversed(self.parts):
            assert isinstance(f, Bijection)
            y, ladj = f.inverse_and_ladj(y, context)
            total = ladj if total is None else total + ladj
        return y, total if total is not None else y.new_zeros(y.shape[: y.dim() - self.event_dims])


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
