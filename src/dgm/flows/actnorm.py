"""Activation normalisation (Glow): a per-channel affine map initialised from the data."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import at_least
from .bijection import Bijection


class ActNorm(Bijection):
    """z = x * exp(log_scale) + bias per channel, initialised so the first batch is standardised.

    ``call_and_ladj`` scores data (data x -> noise z), log|det dz/dx| = H * W * sum(log_scale)
    for images ``[..., C, H, W]`` (one scale and bias per channel, shared over H and W) and
    sum(log_scale) for vectors ``[..., D]`` (one per coordinate); a density model computes
    ``z, ladj = flow.call_and_ladj(x)`` and log p(x) = log N(z; 0, I) + ladj.
    ``inverse_and_ladj`` samples (noise -> data): x = (z - bias) * exp(-log_scale).

    The first batch scored in training mode sets log_scale = -log(std) and
    bias = -mean * exp(log_scale) (statistics per channel over every other dimension), so its
    outputs have zero mean and unit variance per channel. The buffer ``initialized`` records
    that it happened, so a checkpoint restores the initialised layer without initialising it
    again; in evaluation mode, or when sampling, nothing is initialised. Under
    DistributedDataParallel each process would initialise from its own batch: score one batch
    before wrapping (or broadcast the parameters).

    References:
        Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
        NeurIPS 2018.

    Args:
        features: C for images, D for vectors.
        event_dims: 3 for images ``[..., C, H, W]``, 1 for vectors ``[..., D]``.
    """

    def __init__(self, features: int, event_dims: int = 3) -> None:
        super().__init__()
        at_least("features", features, 1)
        if event_dims not in (1, 3):
            raise ValueError(
                f"event_dims must be 1 (vectors [..., D]) or 3 (images [..., C, H, W]), "
                f"got {event_dims}"
            )
        self.features, self.event_dims = features, event_dims
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))
        # A Python copy of the flag, so that a training step need not read the buffer back from
        # the device (a synchronisation per layer); a loaded state dict refreshes it.
        self._initialized = False
        self.register_load_state_dict_post_hook(self._reread_flag)

    @staticmethod
    def _reread_flag(module: nn.Module, incompatible_keys: Any) -> None:
        assert isinstance(module, ActNorm)
        module._initialized = bool(module.get_buffer("initialized"))

    def _check(self, x: Tensor) -> None:
        if x.dim() < self.event_dims or x.shape[-self.event_dims] != self.features:
            event = f"[..., {self.features}" + (", H, W]" if self.event_dims == 3 else "]")
            raise ValueError(
                f"ActNorm({self.features}, event_dims={self.event_dims}) expects events {event}, "
                f"got shape {list(x.shape)}"
            )

    def _per_channel(self, p: Tensor) -> Tensor:
        return p[:, None, None] if self.event_dims == 3 else p

    def _ladj(self, x: Tensor) -> Tensor:
        pixels = x.shape[-2] * x.shape[-1] if self.event_dims == 3 else 1
        return (pixels * self.log_scale.sum()).expand(x.shape[: x.dim() - self.event_dims])

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        channel = x.dim() - self.event_dims
        dims = [d for d in range(x.dim()) if d != channel]
        mean = x.mean(dims)
        std = x.std(dims, correction=0)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.bias.copy_(-mean * self.log_scale.exp())
        self.get_buffer("initialized").fill_(True)
        self._initialized = True

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise: z and log|det dz/dx|; initialises on the first training batch."""
        self._check(x)
        if self.training and not self._initialized:
            self._initialize(x)
        z = x * self._per_channel(self.log_scale.exp()) + self._per_channel(self.bias)
        return z, self._ladj(x)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data: x and log|det dx/dz|."""
        self._check(y)
        x = (y - self._per_channel(self.bias)) * self._per_channel(torch.exp(-self.log_scale))
        return x, -self._ladj(y)
