"""FactorVAE: the ELBO minus a discriminator's density-ratio estimate of the total correlation.

A discriminator D(z) learns to tell samples of the aggregate posterior q(z) (class 0) from
samples of prod_d q(z_d) (class 1, made by permuting each coordinate across a batch). At its
optimum, log D/(1 - D) = log q(z) - log prod_d q(z_d), whose mean under q(z) is the total
correlation TC(z) = KL(q(z) || prod_d q(z_d)).

Training alternates two updates (Kim & Mnih 2018, Algorithm 1): the VAE maximizes
``FactorVAE(discriminator)(model, guide, x)`` (the discriminator held fixed), and the
discriminator minimizes ``factor_vae_critic_loss(model, guide, discriminator, x)`` (the
programs held fixed).

References:
    Kim & Mnih, "Disentangling by Factorising", ICML 2018 (Sec. 3, Algorithm 1, App. A).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..ppl import Trace, particles, trace
from ..registry import at_least
from ._surrogate import frozen
from .kl_weighted import kl_terms
from .weights import LogWeights, log_weights


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Permute every column of ``z`` (``[B, D]``) independently across the batch.

    The result's rows are samples of prod_d q(z_d) when the rows of ``z`` are samples of q(z)
    (Kim & Mnih 2018, Algorithm 1, ``PERMUTE-DIMS``): each column keeps its values, the
    dependence between columns is broken.
    """
    if z.dim() != 2:
        raise ValueError(f"permute_dims expects codes shaped [batch, latent], got {list(z.shape)}")
    device = generator.device if generator is not None else z.device
    keys = torch.rand(z.shape, generator=generator, device=device).to(z.device)
    return torch.gather(z, 0, keys.argsort(dim=0))


class Discriminator(nn.Module):
    """The TC discriminator: an MLP from a code ``[B, D]`` to two logits ``[B, 2]``.

    Class 0: "drawn from q(z)", class 1: "drawn from prod_d q(z_d)". ``layers`` hidden layers
    of ``hidden`` units with LeakyReLU(0.2), then a linear layer to the 2 logits (Kim & Mnih
    2018, App. A: 6 layers of 1000 units).
    """

    def __init__(self, latent_size: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        at_least("latent_size", latent_size, 1)
        at_least("hidden", hidden, 1)
        at_least("layers", layers, 1)
        parts: list[nn.Module] = []
        width = latent_size
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        parts.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*parts)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def density_ratio_tc(logits: Tensor) -> Tensor:
    """log D(z) / (1 - D(z)) = logits[:, 0] - logits[:, 1], ``[B]``: per-sample TC estimate."""
    return logits[..., 0] - logits[..., 1]


def discriminator_loss(logits_q: Tensor, logits_permuted: Tensor) -> Tensor:
    """0.5 * (CE(logits_q, class 0) + CE(logits_permuted, class 1)), each a batch mean."""
    zeros = torch.zeros(logits_q.shape[0], dtype=torch.long, device=logits_q.device)
    ones = torch.ones(logits_permuted.shape[0], dtype=torch.long, device=logits_permuted.device)
    return 0.5 * (F.cross_entropy(logits_q, zeros) + F.cross_entropy(logits_permuted, ones))


def _site_sample(guide_trace: Trace, site: str) -> Tensor:
    """The guide's one-particle sample at ``site`` as ``[B, D]``."""
    if site not in guide_trace or guide_trace[site].is_observed:
        names = [s.name for s in guide_trace.latent]
        raise ValueError(
            f"FactorVAE needs a latent site {site!r} in the guide (its latent sites: {names})"
        )
    value = guide_trace[site].value
    assert value is not None
    if value.dim() != 3 or value.shape[0] != 1:
        raise ValueError(
            f"FactorVAE needs one particle of a vector latent at site {site!r}, values shaped "
            f"[num_particles=1, batch, latent]; got {list(value.shape)}"
        )
    return value[0]


def factor_vae(
    lw: LogWeights, discriminator: nn.Module, gamma: float = 35.0, site: str = "z"
) -> Tensor:
    """Per-data-point FactorVAE objective: ELBO_b - gamma * log D(z_b) / (1 - D(z_b)).

    The ELBO uses the analytic KL where it exists (``kl_terms``). The discriminator is
    called with its parameters detached: gradients reach the guide through z, not the
    discriminator (it is trained by ``factor_vae_critic_loss``).

    References:
        Kim & Mnih, "Disentangling by Factorising", 2018, Eq. 3 and Algorithm 1.

    Returns:
        ``[B]``.
    """
    z = _site_sample(lw.guide_trace, site)
    t = kl_terms(lw)
    tc = density_ratio_tc(frozen(discriminator)(z))
    return t.reconstruction + t.rest - t.kl - gamma * tc


class FactorVAE:
    """FactorVAE's VAE update as a training objective: ``FactorVAE(D)(model, guide, x) -> [B]``.

    Not an ``nn.Module``: the discriminator's parameters must not be trained by this
    objective (``dgm.fit`` trains a module objective's parameters with it); train them with
    ``factor_vae_critic_loss`` in an alternating update, and checkpoint the discriminator as
    its own part. The guide's site needs only reparameterized samples (any family).

    Args:
        discriminator: e.g. ``Discriminator(latent_size)``.
        gamma: weight of the TC estimate (Kim & Mnih report a range of values; it is a
            hyperparameter to tune per data set).
        site: the latent site whose code the discriminator sees.
    """

    def __init__(self, discriminator: nn.Module, gamma: float = 35.0, site: str = "z") -> None:
        at_least("gamma", gamma, 0)
        self.discriminator = discriminator
        self.gamma = gamma
        self.site = site

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=1, **kwargs)
        return factor_vae(lw, self.discriminator, self.gamma, self.site)

    def __repr__(self) -> str:
        return f"FactorVAE(gamma={self.gamma}, site={self.site!r})"


def factor_vae_critic_loss(
    model: Any,
    guide: Any,
    discriminator: nn.Module,
    x: Tensor,
    generator: torch.Generator | None = None,
    site: str = "z",
) -> Tensor:
    """The discriminator's loss on one batch (a scalar to minimize).

    Encodes ``x`` with the guide under ``no_grad`` (one sample per point; the model is not
    run, it is taken for the objectives' calling convention) and splits the batch in two
    halves: the discriminator sees the first half's codes as class 0 (samples of q(z)) and
    ``permute_dims`` of the second half's codes as class 1 (samples of prod_d q(z_d)). Kim &
    Mnih draw a second batch for the permuted samples; the second half plays that role, so
    that the two classes come from independent data points. With an odd batch the last
    point is left out.

    Raises:
        ValueError: a batch of fewer than 2 points.
    """
    del model
    with torch.no_grad(), trace("guide") as guide_trace, particles(1):
        guide(x)
    z = _site_sample(guide_trace, site)
    half = z.shape[0] // 2
    if half < 1:
        raise ValueError(
            f"factor_vae_critic_loss splits the batch in two halves; it needs at least 2 "
            f"points, got {z.shape[0]}"
        )
    logits_q = discriminator(z[:half])
    logits_permuted = discriminator(permute_dims(z[half : 2 * half], generator))
    return discriminator_loss(logits_q, logits_permuted)
