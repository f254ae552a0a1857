"""Log-densities of programs as functions of their latent values (targets for MCMC)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from .handlers import condition, trace


def posterior_log_density(
    model: Callable[..., Any], name: str, *args: Any, **kwargs: Any
) -> Callable[[Tensor], Tensor]:
    """log p(x, z) as a function of one latent site's value (for ``HMC``).

    The model is run on ``*args, **kwargs`` with site ``name`` set to the given value; a value
    with leading particle dimensions ``[K, B, *event]`` gives log-densities ``[K, B]``. Other
    latent sites must be fixed too (wrap the model in ``dgm.condition``) or absent.
    """

    def log_density(z: Tensor) -> Tensor:
        with trace() as tr, condition({name: z}):
            model(*args, **kwargs)
        free = [s.name for s in tr.latent]
        if free:
            raise ValueError(
                f"posterior_log_density: latent site(s) {free} besides {name!r} are not fixed; "
                "condition them (dgm.condition) or target them together"
            )
        return tr.log_prob_sum()

    return log_density
