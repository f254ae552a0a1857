"""Convolutional encoder and decoder for square images, over any leading dimensions.

The disentanglement papers' network (Higgins et al. 2017; Kim & Mnih 2018; Locatello et al.
2019, Table 1 of the appendix, the one disentanglement_lib trains): 4x4 convolutions of
stride 2 with 32, 32, 64, 64 channels down to 4x4, a fully connected layer of 256 and the
output; the decoder mirrors it with transposed convolutions. Images smaller than 64x64 drop
the first convolutions (32x32: 32, 64, 64 channels), so every size ends at 4x4.

Both take flattened images ``[..., C * H * W]``, as the data sets hold them, and keep any
leading (particle, batch) dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

CHANNELS = (32, 32, 64, 64)  # the 64x64 network's convolutions, input side first


def _levels(size: int) -> int:
    levels = round(math.log2(size / 4)) if size >= 8 else 0
    if levels < 1 or 4 * 2**levels != size:
        raise ValueError(
            f"the convolutional networks need square images of side 4 * 2^n (8, 16, 32, 64, "
            f"128), got {size}"
        )
    return levels


def _channels(size: int, channels: Sequence[int] | None) -> tuple[int, ...]:
    levels = _levels(size)
    if channels is None:
        base = CHANNELS if levels <= len(CHANNELS) else (32,) * (levels - 4) + CHANNELS
        return tuple(base[len(base) - levels :])
    if len(channels) != levels:
        raise ValueError(
            f"a {size}x{size} image needs {levels} convolutions down to 4x4, got channels "
            f"{list(channels)}"
        )
    return tuple(channels)


class ConvEncoder(nn.Module):
    """Images ``[..., C*H*W]`` -> features ``[..., out_features]``.

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)``, square, side 4 * 2^n.
        out_features: the output size (e.g. 2 x latent size for a Gaussian's parameters);
            ``None``: the flattened 4x4 feature maps of the last convolution (after its
            ReLU), without the fully connected layers, for a head of one's own.
        channels: one per convolution (default: the published ones for the size).
        hidden: the fully connected layer's width (256 in the papers).

    Attributes:
        out_features: the size of the output.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        out_features: int | None = None,
        channels: Sequence[int] | None = None,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.image_shape = _chw(image_shape)
        c, h, _ = self.image_shape
        chans = _channels(h, channels)
        layers: list[nn.Module] = []
        for n_in, n_out in zip((c, *chans[:-1]), chans, strict=True):
            layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        if out_features is not None:
            head += [nn.Linear(chans[-1] * 16, hidden), nn.ReLU(), nn.Linear(hidden, out_features)]
        self.head = nn.Sequential(*head)
        self.in_features = math.prod(self.image_shape)
        self.out_features = chans[-1] * 16 if out_features is None else out_features

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"ConvEncoder expects flattened {list(self.image_shape)} images "
                f"[..., {self.in_features}], got shape {list(x.shape)}"
            )
        lead = x.shape[:-1]
        out = self.head(self.conv(x.reshape(-1, *self.image_shape)))
        return out.reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Features ``[..., in_features]`` -> flattened image outputs ``[..., C*H*W]`` (e.g. logits).

    Args: as ``ConvEncoder``'s, mirrored (``channels`` input side first, as the encoder's).
    """

    def __init__(
        self,
        in_features: int,
        image_shape: Sequence[int],
        channels: Sequence[int] | None = None,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.image_shape = _chw(image_shape)
        c, h, _ = self.image_shape
        chans = _channels(h, channels)[::-1]
        self.in_features = in_features
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, chans[0] * 16),
            nn.ReLU(),
            nn.Unflatten(1, (chans[0], 4, 4)),
        )
        layers: list[nn.Module] = []
        outs = (*chans[1:], c)
        for i, (n_in, n_out) in enumerate(zip(chans, outs, strict=True)):
            layers.append(nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1))
            if i < len(chans) - 1:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if z.shape[-1] != self.in_features:
            raise ValueError(
                f"ConvDecoder expects inputs [..., {self.in_features}], got shape {list(z.shape)}"
            )
        lead = z.shape[:-1]
        out = self.deconv(self.head(z.reshape(-1, self.in_features)))
        return out.reshape(*lead, -1)

    @property
    def output_bias(self) -> Tensor:
        """The last layer's per-channel bias (a data mean can only set it per channel)."""
        last = self.deconv[-1]
        assert isinstance(last, nn.ConvTranspose2d) and last.bias is not None
        return last.bias


def _chw(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"image_shape must be (H, W) or (C, H, W) with H == W, got {list(shape)}")
    c, h, w = (int(s) for s in shape)
    return c, h, w


__all__ = ["CHANNELS", "ConvDecoder", "ConvEncoder"]
