"""Squeeze: space-to-depth, trading spatial resolution for channels in multi-scale flows."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .bijection import Bijection


class Squeeze(Bijection):
    """``[..., C, H, W] -> [..., 4C, H/2, W/2]``: each 2x2 patch becomes 4 channels.

    ``call_and_ladj`` scores data (data x -> noise z) and ``inverse_and_ladj`` samples
    (noise -> data, depth-to-space), as for every image bijection here; both are
    permutations, so log|det| = 0. Output channel 4c + 2i + j holds input channel c at offset
    (i, j) of each patch (``torch.nn.functional.pixel_unshuffle``), so a ``"channel"``
    coupling after it keeps the first half of the original channels, all four offsets.

    References:
        Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017
        (section 3.6, the squeezing operation).
    """

    event_dims = 3

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Space to depth; H and W must be even."""
        if x.dim() < 3 or x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(
                f"Squeeze needs images [..., C, H, W] with even H and W, got shape {list(x.shape)}"
            )
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[:-3])

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Depth to space; the channels must be a multiple of 4."""
        if y.dim() < 3 or y.shape[-3] % 4:
            raise ValueError(
                f"Squeeze's inverse needs images [..., C, H, W] with C a multiple of 4, got shape "
                f"{list(y.shape)}"
            )
        return F.pixel_shuffle(y, 2), y.new_zeros(y.shape[:-3])
