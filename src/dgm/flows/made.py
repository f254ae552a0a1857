"""MADE: a masked MLP whose i-th outputs depend only on inputs before i (Germain et al. 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.get_buffer("mask"), self.bias)


class MADE(nn.Module):
    """Autoregressive network: ``[..., D] -> [..., outputs_per_dim, D]``.

    Output ``[..., k, i]`` depends on inputs ``x_j`` with ``j < i`` only (in the natural order
    0..D-1), and on the optional context (added to the first hidden layer, unmasked).

    Args:
        dim: D.
        hidden: hidden widths (each >= D - 1 so that every input can reach later outputs).
        outputs_per_dim: how many numbers per coordinate (2 for a shift and a scale).
        context_size: size of a conditioning vector, or ``None``.
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...] = (64, 64),
        outputs_per_dim: int = 2,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        if any(h < dim - 1 for h in hidden):
            raise ValueError(
                f"every MADE width must be >= latent size - 1 ({dim - 1}) so that each input "
                f"reaches the later outputs; got widths {list(hidden)}"
            )
        self.dim, self.outputs_per_dim = dim, outputs_per_dim
        degrees = [torch.arange(dim)]  # input degrees 0..D-1
        for h in hidden:
            degrees.append(torch.arange(h) % max(dim - 1, 1))
        layers = []
        for i, h in enumerate(hidden):
            mask = degrees[i + 1].unsqueeze(-1) >= degrees[i].unsqueeze(0)
            layers.append(MaskedLinear(degrees[i].numel(), h, mask))
        out_degrees = torch.arange(dim).repeat(outputs_per_dim)
        mask = out_degrees.unsqueeze(-1) > degrees[-1].unsqueeze(0)
        self.layers = nn.ModuleList(layers)
        self.out = MaskedLinear(degrees[-1].numel(), dim * outputs_per_dim, mask)
        self.context = nn.Linear(context_size, hidden[0]) if context_size and hidden else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i == 0 and self.context is not None:
                if context is None:
                    raise ValueError("this MADE is conditional: call it with context=")
                h = h + self.context(context)
            h = torch.relu(h)
        out = self.out(h)
        return out.reshape(*out.shape[:-1], self.outputs_per_dim, self.dim)
