"""The concrete (Gumbel-softmax) relaxation of a discrete model's bound, for comparison."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..ppl import relax
from ..registry import at_least
from .evidence_bound import elbo
from .importance_weighted import iwae
from .weights import log_weights


class Concrete:
    """Train a discrete model through its concrete relaxation (Maddison et al. 2017; Jang et al. 2017).

    The guide and the model run under ``dgm.ppl.relax(temperature)``: Bernoulli and one-hot
    categorical latents become their relaxations, drawn with reparameterization, and the
    relaxed ELBO (K = 1) or IWAE bound (K > 1) is maximized with pathwise gradients. That
    objective is not a bound on the discrete model's likelihood (the value logged during
    training is the relaxed one); evaluate the trained programs without the handler.

    Args:
        num_particles: K.
        temperature: lambda of the relaxation (Maddison et al. recommend 2/3 for Bernoulli
            latents).
    """

    def __init__(self, num_particles: int = 1, temperature: float = 2 / 3) -> None:
        at_least("num_particles", num_particles, 1)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_particles = num_particles
        self.temperature = temperature

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        with relax(self.temperature):
            lw = log_weights(model, guide, *args, num_particles=self.num_particles, **kwargs)
        return elbo(lw) if self.num_particles == 1 else iwae(lw)

    def __repr__(self) -> str:
        return f"Concrete(num_particles={self.num_particles}, temperature={self.temperature:.3g})"
