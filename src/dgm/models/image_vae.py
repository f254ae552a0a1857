"""A VAE for images with one latent layer: the disentanglement papers' programs.

Model:  z ~ N(0, I_D),  x ~ Bernoulli(logits = decoder(z))
Guide:  z ~ N(mu(x), diag sigma(x)^2)

with either network of the papers: ``"conv"``, the convolutional encoder and decoder of
Higgins et al. (2017) and Kim & Mnih (2018) that disentanglement_lib trains
(``dgm.nn.ConvEncoder``), or ``"mlp"``, Chen et al.'s (2018) fully connected one for
dSprites (encoder 1200-1200 ReLU, decoder 1200-1200-1200 tanh). The guide's family is any of
``dgm.models.posteriors.POSTERIORS`` on the encoder's last hidden layer (diagonal, as in
the papers, by default; the total-correlation objectives and Chen et al.'s MIG need a
factorized one).

References:
    Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
    Framework", 2017. Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in
    Variational Autoencoders", 2018, App. (dSprites networks). Locatello et al., "Challenging
    Common Assumptions in the Unsupervised Learning of Disentangled Representations", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import validating
from ..distributions import IndependentBernoulli, StandardNormalPrior, is_binary
from ..nn import MLP, ConvDecoder, ConvEncoder
from ..ppl import sample
from .posteriors import Posterior, posterior_layer

ARCHITECTURES = ("conv", "mlp")


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}"
        )


def _decoder(architecture: str, image_shape: Sequence[int], latent_size: int) -> nn.Module:
    _check_architecture(architecture)
    if architecture == "conv":
        return ConvDecoder(latent_size, image_shape)
    return MLP((latent_size, 1200, 1200, 1200, math.prod(image_shape)), "tanh")


class ImageVAEModel(nn.Module):
    """p(z) p(x | z) for binary images ``[B, H*W]`` (flattened).

    Args:
        image_shape: ``(H, W)`` (or ``(C, H, W)``).
        latent_size: D (10 in the papers).
        architecture: ``"conv"`` or ``"mlp"``.
    """

    def __init__(
        self, image_shape: Sequence[int], latent_size: int = 10, architecture: str = "conv"
    ) -> None:
        super().__init__()
        if latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {latent_size}")
        self.image_shape = tuple(image_shape)
        self.data_size = math.prod(image_shape)
        self.latent_size = latent_size
        self.architecture = architecture
        self.decoder = _decoder(architecture, image_shape, latent_size)
        self.prior = StandardNormalPrior(latent_size)

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> Tensor:
        """Score ``x`` or, with ``x=None``, generate ``num_samples`` images."""
        if x is not None:
            _check(self, x, self.data_size)
            if validating() and not is_binary(x):
                raise ValueError(
                    "a Bernoulli likelihood needs binary images (0/1), but the batch has values "
                    f"in [{x.min().item():.3g}, {x.max().item():.3g}]"
                )
            batch = x.shape[:-1]
        else:
            batch = torch.Size((num_samples,))
        z = sample("z", self.prior(batch))
        return sample("x", IndependentBernoulli(self.decoder(z)), obs=x)

    @torch.no_grad()
    def set_output_bias(self, data_mean: Tensor) -> None:
        """Start the decoder at the data's marginal: per pixel (mlp) or its mean (conv)."""
        logit = torch.logit(data_mean.clamp(1e-3, 1 - 1e-3))
        if isinstance(self.decoder, ConvDecoder):
            self.decoder.output_bias.fill_(logit.mean().item())
        else:
            assert isinstance(self.decoder, MLP)
            last = self.decoder[-1]
            assert isinstance(last, nn.Linear)
            last.bias.copy_(logit)


class ImageVAEGuide(nn.Module):
    """q(z | x) at the site ``"z"``: the encoder's trunk, then a family of ``POSTERIORS``.

    The conv trunk is the convolutions; the posterior layer adds the papers' fully connected
    layer of 256 (ReLU) and the output, so ``posterior="diagonal"`` is exactly the published
    encoder. The mlp trunk is the identity and the layer the two hidden layers of 1200.

    Args:
        posterior: a name in ``dgm.models.posteriors.POSTERIORS`` (its defaults) or its
            options (``POSTERIORS.options("iaf", flow_length=4)``).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_size: int = 10,
        architecture: str = "conv",
        posterior: Posterior = "diagonal",
    ) -> None:
        super().__init__()
        _check_architecture(architecture)
        self.data_size = math.prod(image_shape)
        self.latent_size = latent_size
        self.trunk: nn.Module
        hidden: tuple[int, ...]
        if architecture == "conv":
            conv = ConvEncoder(image_shape)
            self.trunk, features, hidden = conv, conv.out_features, (256,)
        else:
            self.trunk, features, hidden = nn.Identity(), self.data_size, (1200, 1200)
        self.posterior = posterior_layer(posterior, features, hidden, latent_size, "relu")

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> None:
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        _check(self, x, self.data_size)
        sample("z", self.posterior(self.trunk(x)))


def _check(program: nn.Module, x: Tensor, size: int) -> None:
    if x.dim() != 2 or x.shape[-1] != size:
        raise ValueError(
            f"{type(program).__name__} expects flattened images [batch, {size}], got "
            f"{list(x.shape)}; flatten them with x.reshape(len(x), -1)"
        )


__all__ = ["ARCHITECTURES", "ImageVAEGuide", "ImageVAEModel"]
