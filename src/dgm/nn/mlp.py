"""Multi-layer perceptrons that broadcast over any leading (particle, batch) dimensions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """An activation module by name (tanh, relu, elu, softplus, leaky_relu)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last).

    Args:
        sizes: layer widths, input first: ``(784, 200, 200, 100)`` has three linear layers.
        activation_name: the hidden activation.

    Shapes: ``[..., sizes[0]] -> [..., sizes[-1]]``.
    """

    def __init__(self, sizes: Sequence[int], activation_name: str = "tanh") -> None:
        if len(sizes) < 2:
            raise ValueError(
                f"an MLP needs at least an input and an output size, got {list(sizes)}"
            )
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(activation(activation_name))
        super().__init__(*layers)
        self.sizes = tuple(sizes)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"MLP{self.sizes} expects inputs with last dimension {self.sizes[0]}, "
                f"got shape {list(x.shape)}"
            )
        return super().forward(x)
