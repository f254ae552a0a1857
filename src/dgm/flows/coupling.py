"""Affine coupling layers (RealNVP) on vectors and images, optionally conditional on a context."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..nn import MLP
from ..registry import at_least
from .bijection import Bijection

MASKS = ("half", "checkerboard", "channel")


class ResNet(nn.Module):
    """conv3x3 -> residual blocks -> conv3x3: ``[N, C_in, H, W] -> [N, C_out, H, W]``.

    The last convolution starts at zero, so a coupling built on it starts as the identity.
    Batch normalisation is left out on purpose: it would make the bijection depend on the
    batch and on the training mode.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        hidden: feature channels.
        num_blocks: residual blocks, each ``h + conv(relu(conv(relu(h))))``.
        context_size: with a size, a context ``[N, context_size]`` is mapped by a linear layer
            to a per-channel bias added to the first feature map.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        num_blocks: int = 2,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(hidden, hidden, 3, padding=1),
            )
            for _ in range(num_blocks)
        )
        self.conv_out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None
        nn.init.zeros_(self.conv_out.bias)
        self.context = nn.Linear(context_size, hidden) if context_size else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.conv_in(x)
        if self.context is not None and context is not None:
            h = h + self.context(context)[..., None, None]
        for block in self.blocks:
            h = h + block(h)
        return self.conv_out(torch.relu(h))


class AffineCoupling(Bijection):
    """Affine coupling: half a of the event is kept and sets an affine map of half b.

    ``call_and_ladj`` scores data (data x -> noise z): with a kept by the binary mask m,
    z = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)), log|det dz/dx| = sum (1 - m) * s,
    so a density model computes ``z, ladj = flow.call_and_ladj(x)`` and
    log p(x) = log N(z; 0, I) + ladj. ``inverse_and_ladj`` samples (noise -> data):
    x = m * z + (1 - m) * (z - t) * exp(-s), as cheap as the forward pass.

    The log-scales are bounded, s = tanh(raw) * exp(log_scale) with a learned log_scale per
    channel (per coordinate for vectors), a learned rescaling of tanh as in RealNVP's code:
    an outlying conditioner output can never overflow exp(s), yet the bound is learned
    instead of fixed by hand (a soft clamp ``c * tanh(raw / c)`` would need c chosen). The
    conditioner's last layer starts at zero, so the layer starts as the identity.

    References:
        Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017.

    Args:
        features: D for ``mask="half"`` (events ``[..., D]``), C for the image masks (events
            ``[..., C, H, W]``, any H and W).
        mask: ``"half"`` (vectors: the first D // 2 coordinates are kept), ``"checkerboard"``
            (images: pixels with even i + j are kept, all channels) or ``"channel"`` (images:
            the first C // 2 channels are kept).
        flip: keep the other part instead (the second half; odd i + j; the last channels):
            alternate it between consecutive couplings so that every coordinate changes.
        hidden: conditioner width (MLP hidden units, ResNet feature channels).
        depth: MLP hidden layers, or ResNet residual blocks.
        context_size: size of a context vector ``[..., context_size]`` (broadcasting against
            the leading dimensions), concatenated to the MLP's input or added as a
            per-channel bias in the ResNet; ``None`` for an unconditional layer.
    """

    def __init__(
        self,
        features: int,
        mask: Literal["half", "checkerboard", "channel"] = "half",
        *,
        flip: bool = False,
        hidden: int = 64,
        depth: int = 2,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {list(MASKS)}, got {mask!r}")
        at_least("features", features, 1 if mask == "checkerboard" else 2)
        at_least("hidden", hidden, 1)
        at_least("depth", depth, 1)
        if context_size is not None:
            at_least("context_size", context_size, 1)
        self.features, self.mask, self.flip, self.context_size = features, mask, flip, context_size
        self.event_dims = 1 if mask == "half" else 3
        self.net: nn.Module
        if mask == "half":
            self.net = MLP(
                (features + (context_size or 0), *[hidden] * depth, 2 * features), "relu"
            )
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.log_scale = nn.Parameter(torch.zeros(features))
        else:
            self.net = ResNet(features, 2 * features, hidden, depth, context_size)
            self.log_scale = nn.Parameter(torch.zeros(features, 1, 1))

    def keep_mask(self, x: Tensor) -> Tensor:
        """m: 1 where the event is kept (and conditions the rest), 0 where it is transformed."""
        if self.mask == "checkerboard":
            i = torch.arange(x.shape[-2], device=x.device)
            j = torch.arange(x.shape[-1], device=x.device)
            keep = (i[:, None] + j) % 2 == 0
        else:
            keep = torch.arange(self.features, device=x.device) < self.features // 2
            if self.mask == "channel":
                keep = keep[:, None, None]
        # ~keep rather than keep != flip: inductor cannot generate code for the latter
        # (a bool tensor compared with a Python bool; torch 2.13)
        return (~keep if self.flip else keep).to(x.dtype)

    def _shift_log_scale(
        self, x: Tensor, keep: Tensor, context: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(t, s) from the kept part, zero on the kept part itself."""
        if x.dim() < self.event_dims or x.shape[-self.event_dims] != self.features:
            event = (
                f"[..., {self.features}]"
                if self.mask == "half"
                else f"[..., {self.features}, H, W]"
            )
            raise ValueError(
                f"AffineCoupling({self.features}, mask={self.mask!r}) expects events {event}, "
                f"got shape {list(x.shape)}"
            )
        if self.context_size is None:
            context = None
        elif context is None:
            raise ValueError("this AffineCoupling is conditional: call it with context=")
        lead = x.shape[: x.dim() - self.event_dims]
        if context is not None:
            lead = torch.broadcast_shapes(lead, context.shape[:-1])
            context = context.expand(*lead, -1)
        h = (x * keep).expand(*lead, *x.shape[x.dim() - self.event_dims :])
        if self.mask == "half":
            raw, t = self.net(h if context is None else torch.cat([h, context], -1)).chunk(2, -1)
        else:
            flat_context = None if context is None else context.reshape(-1, context.shape[-1])
            out = self.net(h.reshape(-1, *h.shape[-3:]), flat_context)
            raw, t = out.reshape(*lead, *out.shape[-3:]).chunk(2, -3)
        free = 1 - keep
        return t * free, torch.tanh(raw) * self.log_scale.exp() * free

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise: z and log|det dz/dx|, shapes ``[..., *event]`` and ``[...]``."""
        t, s = self._shift_log_scale(x, self.keep_mask(x), context)
        return x * torch.exp(s) + t, s.flatten(-self.event_dims).sum(-1)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data: x and log|det dx/dz| (the kept part of z is the kept part of x)."""
        t, s = self._shift_log_scale(y, self.keep_mask(y), context)
        return (y - t) * torch.exp(-s), -s.flatten(-self.event_dims).sum(-1)
