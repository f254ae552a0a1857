"""Sigmoid belief networks: layers of binary latent units, as model/guide programs.

Model (L layers, h_L on top; sites ``h1`` next to x ... ``hL``):
    h_L ~ Bernoulli(sigmoid(b_L)),   h_{l-1} ~ Bernoulli(sigmoid(W_l h_l + b_{l-1})),
    x ~ Bernoulli(sigmoid(W_1 h_1 + b_x))
Guide (mirror image): h_1 ~ Bernoulli(sigmoid(V_1 x + c_1)), h_{l+1} ~ Bernoulli(sigmoid(V h_l + c)).

The layers are linear, as in the SBN experiments of NVIL, VIMCO and reweighted wake-sleep
(e.g. 200-200-200 on MNIST). No latent is reparameterizable: train with ``RWS``, ``WakeSleep``,
``NVIL``, ``IWAE`` (VIMCO control variates), ``ELBO`` (REINFORCE with a leave-one-out
baseline) or ``Concrete`` (relaxation).

References:
    Neal, "Connectionist learning of belief networks", 1992.
    Mnih & Gregor, "Neural Variational Inference and Learning in Belief Networks", 2014.
    Bornschein & Bengio, "Reweighted Wake-Sleep", 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..checks import validating
from ..distributions import IndependentBernoulli, is_binary
from ..ppl import sample
from .vae import check_shape


def _bernoulli(logits: Tensor) -> Distribution:
    return IndependentBernoulli(logits)


def _names(num_layers: int) -> list[str]:
    return [f"h{i + 1}" for i in range(num_layers)]


class SBNModel(nn.Module):
    """p(x, h_1..h_L) of a sigmoid belief network with a factorized Bernoulli prior on top.

    Args:
        data_size: dimension of a flattened binary data point.
        layer_sizes: units of h_1 (next to x) ... h_L (top), e.g. ``(200, 200, 200)``.
    """

    def __init__(self, data_size: int = 784, layer_sizes: Sequence[int] = (200,)) -> None:
        super().__init__()
        if not layer_sizes:
            raise ValueError("an SBN needs at least one latent layer")
        self.data_size = data_size
        self.layer_sizes = tuple(layer_sizes)
        self.names = _names(len(layer_sizes))
        self.top_logits = nn.Parameter(torch.zeros(layer_sizes[-1]))
        sizes = (data_size, *layer_sizes)
        # generative[l] maps h_{l+1} to the logits of layer l (layer 0 is x)
        self.generative = nn.ModuleList(
            nn.Linear(sizes[i + 1], sizes[i]) for i in range(len(layer_sizes))
        )

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> Tensor:
        """Score binary ``x`` (``[B, data_size]``) or, with ``x=None``, generate ``num_samples``."""
        if x is not None:
            check_binary(self, x, self.data_size)
            batch = x.shape[:-1]
        else:
            batch = torch.Size((num_samples,))
        top = self.top_logits.expand(*batch, self.layer_sizes[-1])
        h = sample(self.names[-1], _bernoulli(top))
        for i in reversed(range(1, len(self.layer_sizes))):
            h = sample(self.names[i - 1], _bernoulli(self.generative[i](h)))
        return sample("x", _bernoulli(self.generative[0](h)), obs=x)

    @torch.no_grad()
    def set_output_bias(self, data_mean: Tensor) -> None:
        """Start p(x | h_1) at the data's marginal (logit of the pixel means)."""
        out = self.generative[0]
        assert isinstance(out, nn.Linear)
        out.bias.copy_(torch.logit(data_mean.clamp(1e-3, 1 - 1e-3)))


class SBNGuide(nn.Module):
    """q(h_1..h_L | x) of a sigmoid belief network, mirroring ``SBNModel``."""

    def __init__(self, data_size: int = 784, layer_sizes: Sequence[int] = (200,)) -> None:
        super().__init__()
        self.data_size = data_size
        self.names = _names(len(layer_sizes))
        sizes = (data_size, *layer_sizes)
        self.recognition = nn.ModuleList(
            nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(layer_sizes))
        )

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> None:
        if x is None:
            raise ValueError("the guide q(h | x) needs data x")
        check_shape(self, x, self.data_size)
        h = x
        for name, layer in zip(self.names, self.recognition, strict=True):
            h = sample(name, _bernoulli(layer(h)))


def check_binary(program: nn.Module, x: Tensor, data_size: int) -> None:
    """Data must be binary ``[batch, data_size]``: say how to get there."""
    check_shape(program, x, data_size)
    if validating() and not is_binary(x):
        raise ValueError(
            f"{type(program).__name__} models binary data (0/1), but the batch has values in "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]; binarize it (statically, or "
            "dynamically with dgm.data.dynamic_binarize)"
        )


def sbn(layer_sizes: Sequence[int] = (200,), data_size: int = 784) -> tuple[SBNModel, SBNGuide]:
    """A sigmoid belief network and its guide, e.g. ``sbn((200, 200, 200))``."""
    return SBNModel(data_size, layer_sizes), SBNGuide(data_size, layer_sizes)
