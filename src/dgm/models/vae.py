"""Variational autoencoders as model/guide programs: the IWAE paper's architectures.

Model (L stochastic layers, z_L on top):
    z_L ~ N(0, I),   z_l ~ N(mu_l(z_{l+1}), sigma_l(z_{l+1})),   x ~ p(x | z_1)
Guide (mirror image):
    z_1 ~ N(mu(x), sigma(x)),   z_{l+1} ~ N(mu(z_l), sigma(z_l))

References:
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", 2016, Sec. 5 and App. C.
    Kingma & Welling, "Auto-Encoding Variational Bayes", 2014.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from ..checks import validating
from ..distributions import IndependentBernoulli, StandardNormalPrior, is_binary
from ..nn import MLP
from ..ppl import sample
from .posteriors import GaussianLayer, Posterior, posterior_layer

LIKELIHOODS = ("bernoulli", "gaussian")


def latent_names(num_layers: int) -> list[str]:
    """Site names, bottom (next to x) first: ``["z"]`` for one layer, else ``z1 ... zL``."""
    return ["z"] if num_layers == 1 else [f"z{i + 1}" for i in range(num_layers)]


class VAEModel(nn.Module):
    """Generative model p(x, z_1..z_L) with a Bernoulli or Gaussian likelihood.

    Args:
        data_size: dimension of a flattened data point (784 for MNIST).
        latent_sizes: sizes of z_1 (next to x) ... z_L (top).
        hidden_sizes: deterministic widths between consecutive layers, x-z_1 first; the
            decoder mirrors them (``((200, 200), (100, 100))`` is the IWAE two-layer net).
        likelihood: ``"bernoulli"`` (binary data; logits) or ``"gaussian"`` (mean and scale).
        activation: hidden activation (the IWAE paper uses tanh).
        prior: a module ``prior(batch_shape) -> Distribution`` over z_L (``dgm.distributions``:
            standard normal by default, mixture of Gaussians, VampPrior, autoregressive).
    """

    def __init__(
        self,
        data_size: int = 784,
        latent_sizes: Sequence[int] = (50,),
        hidden_sizes: Sequence[Sequence[int]] = ((200, 200),),
        likelihood: str = "bernoulli",
        activation: str = "tanh",
        prior: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        check_sizes(latent_sizes, hidden_sizes)
        self.data_size = data_size
        self.latent_sizes = tuple(latent_sizes)
        self.likelihood = likelihood
        self.names = latent_names(len(latent_sizes))
        out = data_size if likelihood == "bernoulli" else 2 * data_size
        self.decoder = MLP((latent_sizes[0], *reversed(hidden_sizes[0]), out), activation)
        self.layers = nn.ModuleList(
            GaussianLayer(
                latent_sizes[i + 1],
                tuple(reversed(hidden_sizes[i + 1])),
                latent_sizes[i],
                activation,
            )
            for i in range(len(latent_sizes) - 1)
        )
        self.prior = StandardNormalPrior(latent_sizes[-1]) if prior is None else prior
        self._register_load_state_dict_pre_hook(_upgrade_prior_buffers)

    def likelihood_dist(self, z1: Tensor) -> Distribution:
        """p(x | z_1): independent Bernoulli (logits) or Gaussian pixels."""
        out = self.decoder(z1)
        if self.likelihood == "bernoulli":
            return IndependentBernoulli(out)
        loc, raw_scale = out.chunk(2, dim=-1)
        scale = nn.functional.softplus(raw_scale) + 1e-3
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> Tensor:
        """Score ``x`` (shape ``[B, data_size]``) or, with ``x=None``, generate ``num_samples``."""
        if x is not None:
            self.check_data(x)
            batch = x.shape[:-1]
        else:
            batch = torch.Size((num_samples,))
        z = sample(self.names[-1], self.prior(batch))
        for i in reversed(range(len(self.layers))):
            z = sample(self.names[i], self.layers[i](z))
        return sample("x", self.likelihood_dist(z), obs=x)

    def check_data(self, x: Tensor) -> None:
        """Raise a ValueError that says what to do for data this model cannot score."""
        check_shape(self, x, self.data_size)
        if self.likelihood == "bernoulli" and validating() and not is_binary(x):
            raise ValueError(
                "a Bernoulli likelihood needs binary data (0/1), but the batch has values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]; binarize it (statically, or "
                "dynamically with dgm.data.dynamic_binarize) or use likelihood='gaussian'"
            )

    @torch.no_grad()
    def set_output_bias(self, data_mean: Tensor) -> None:
        """Start the decoder's output at the data's marginal (logit of the pixel means)."""
        last = self.decoder[-1]
        assert isinstance(last, nn.Linear)
        if self.likelihood == "bernoulli":
            last.bias.copy_(torch.logit(data_mean.clamp(1e-3, 1 - 1e-3)))
        else:
            last.bias[: self.data_size].copy_(data_mean)


def _upgrade_prior_buffers(state: dict[str, Tensor], prefix: str, *_: object) -> None:
    """Checkpoints from before priors were modules kept N(0, I) as two buffers of the model."""
    loc = state.pop(prefix + "prior_loc", None)
    state.pop(prefix + "prior_scale", None)
    if loc is not None and prefix + "prior.loc" not in state:
        state[prefix + "prior.loc"] = loc


def check_sizes(latent_sizes: Sequence[int], hidden_sizes: Sequence[Sequence[int]]) -> None:
    """One list of hidden widths per stochastic layer, and at least one layer."""
    if not latent_sizes:
        raise ValueError("latent_sizes needs at least one stochastic layer")
    if len(hidden_sizes) != len(latent_sizes):
        raise ValueError(
            f"hidden_sizes needs one list of widths per entry of latent_sizes (got "
            f"{len(latent_sizes)} latent layer(s) and {len(hidden_sizes)} list(s))"
        )


def check_shape(program: nn.Module, x: Tensor, data_size: int) -> None:
    """Data must be ``[batch, data_size]``: say how to get there."""
    if x.dim() != 2 or x.shape[-1] != data_size:
        raise ValueError(
            f"{type(program).__name__} expects data shaped [batch, {data_size}] "
            f"(flattened), got {list(x.shape)}; flatten images with x.reshape(len(x), -1)"
        )


class VAEGuide(nn.Module):
    """Amortized posterior q(z_1..z_L | x), mirroring ``VAEModel``'s sizes.

    Args:
        posterior: the family of every stochastic layer (``dgm.models.posteriors``):
            ``"diagonal"`` Gaussian, ``"full"`` covariance, ``"planar"`` or ``"iaf"`` flow,
            by name (its defaults) or with its options
            (``POSTERIORS.options("iaf", flow_length=4, flow_hidden=[100, 100])``).
    """

    def __init__(
        self,
        data_size: int = 784,
        latent_sizes: Sequence[int] = (50,),
        hidden_sizes: Sequence[Sequence[int]] = ((200, 200),),
        activation: str = "tanh",
        posterior: Posterior = "diagonal",
    ) -> None:
        super().__init__()
        check_sizes(latent_sizes, hidden_sizes)
        sizes = (data_size, *latent_sizes)
        self.data_size = data_size
        self.names = latent_names(len(latent_sizes))
        self.layers = nn.ModuleList(
            posterior_layer(posterior, sizes[i], hidden_sizes[i], sizes[i + 1], activation)
            for i in range(len(latent_sizes))
        )

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> None:
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        check_shape(self, x, self.data_size)
        h = x
        for name, layer in zip(self.names, self.layers, strict=True):
            h = sample(name, layer(h))


def one_layer(likelihood: str = "bernoulli", data_size: int = 784) -> tuple[VAEModel, VAEGuide]:
    """IWAE paper, one stochastic layer: 784-200-200-50, tanh."""
    return (
        VAEModel(data_size, (50,), ((200, 200),), likelihood),
        VAEGuide(data_size, (50,), ((200, 200),)),
    )


def two_layer(likelihood: str = "bernoulli", data_size: int = 784) -> tuple[VAEModel, VAEGuide]:
    """IWAE paper, two stochastic layers: x-200-200-z1(100)-100-100-z2(50), tanh."""
    latent, hidden = (100, 50), ((200, 200), (100, 100))
    return VAEModel(data_size, latent, hidden, likelihood), VAEGuide(data_size, latent, hidden)
