"""``relax``: replace discrete latent sites by their concrete (Gumbel-softmax) relaxations."""

from __future__ import annotations

import torch
from torch.distributions import (
    Bernoulli,
    Distribution,
    Independent,
    OneHotCategorical,
    RelaxedBernoulli,
    RelaxedOneHotCategorical,
)

from .runtime import Handler
from .site import Site


def relaxed(fn: Distribution, temperature: float) -> Distribution:
    """The concrete relaxation of a Bernoulli or one-hot categorical (also inside ``Independent``).

    Other distributions come back unchanged. A ``Categorical`` (integer-valued) site has no
    relaxation with the same values: write it as ``OneHotCategorical``.
    """
    if isinstance(fn, Independent):
        base = relaxed(fn.base_dist, temperature)
        return fn if base is fn.base_dist else Independent(base, fn.reinterpreted_batch_ndims)
    if isinstance(fn, Bernoulli | OneHotCategorical):
        logits = fn.logits
        t = torch.tensor(temperature, dtype=logits.dtype, device=logits.device)
        cls = RelaxedBernoulli if isinstance(fn, Bernoulli) else RelaxedOneHotCategorical
        return cls(t, logits=logits, validate_args=False)
    if isinstance(fn, torch.distributions.Categorical):
        raise TypeError(
            "relax: a Categorical site's values are indices, which have no continuous "
            "relaxation; write the site as OneHotCategorical (values are one-hot vectors)"
        )
    return fn


class relax(Handler):
    """Give every latent Bernoulli / one-hot categorical site its concrete relaxation.

    Within ``relax(temperature)`` such sites draw reparameterized values in (0, 1) (resp. on
    the simplex) and score them under the relaxed density, so the ELBO or IWAE bound of a
    discrete model can be trained with reparameterization gradients (Maddison, Mnih & Teh
    2017; Jang, Gu & Poole 2017). Run the guide and the model under the same handler: both
    densities are then relaxed at the same value. Outside it the programs are discrete again
    (evaluate there).

    Args:
        temperature: lambda > 0; lower is closer to discrete and has higher-variance gradients.
    """

    def __init__(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"relax: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def process(self, site: Site) -> None:
        if not site.is_observed:
            site.fn = relaxed(site.fn, self.temperature)
