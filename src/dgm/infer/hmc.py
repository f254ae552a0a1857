"""Hamiltonian Monte Carlo, vectorized: every chain (data point, particle) moves at once.

The state is a tensor ``[*batch, *event]``; the target gives one log-density per chain,
``[*batch]``. Each call to ``HMC.step`` runs L leapfrog steps for every chain and accepts or
rejects each chain on its own; step sizes are per chain and, while ``adapt`` is on, move
toward a target acceptance probability (Robbins-Monro on log step size). This is the kernel
for refining samples of q(z | x) on p(z | x) (Hoffman 2017) and for any other continuous target.

References:
    Neal, "MCMC using Hamiltonian dynamics", 2011.
    Hoffman, "Learning Deep Latent Gaussian Models with Markov Chain Monte Carlo", 2017.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..ppl import condition, trace


def _grad(log_prob: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lp = log_prob(z)
        (g,) = torch.autograd.grad(lp.sum(), z)
    return lp.detach(), g


class HMC:
    """An HMC transition kernel with per-chain adaptive step sizes.

    Args:
        log_prob: maps a state ``[*batch, *event]`` to log-densities ``[*batch]``
            (unnormalized; differentiable in the state).
        event_dims: trailing dimensions of the state that form one chain's position.
        num_leapfrog: L, leapfrog steps per transition.
        step_size: the initial step size (every chain starts with it).
        target_accept: the acceptance probability the adaptation aims at.
        adapt: adapt step sizes in ``step`` (turn off after warm-up so the kernel is fixed
            and leaves the target exactly invariant).
    """

    def __init__(
        self,
        log_prob: Callable[[Tensor], Tensor],
        event_dims: int = 1,
        num_leapfrog: int = 5,
        step_size: float = 0.1,
        target_accept: float = 0.8,
        adapt: bool = True,
    ) -> None:
        if num_leapfrog < 1:
            raise ValueError(f"HMC: num_leapfrog must be >= 1, got {num_leapfrog}")
        if not 0 < target_accept < 1:
            raise ValueError(f"HMC: target_accept must be in (0, 1), got {target_accept}")
        self.log_prob = log_prob
        self.event_dims = event_dims
        self.num_leapfrog = num_leapfrog
        self.initial_step_size = step_size
        self.target_accept = target_accept
        self.adapt = adapt
        self.log_step_size: Tensor | None = None
        self._iteration = 0

    def _batch_shape(self, z: Tensor) -> torch.Size:
        return z.shape[: z.dim() - self.event_dims]

    def _expand(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape + (1,) * self.event_dims)

    def _kinetic(self, p: Tensor) -> Tensor:
        dims = tuple(range(-self.event_dims, 0)) if self.event_dims else ()
        return 0.5 * (p * p).sum(dims) if dims else 0.5 * p * p

    @property
    def step_size(self) -> Tensor | None:
        """Current per-chain step sizes ``[*batch]`` (``None`` before the first step)."""
        return None if self.log_step_size is None else self.log_step_size.exp()

    def init(self, z: Tensor) -> Tensor:
        """Start chains at ``z``: every chain's step size is reset to the initial one."""
        self.log_step_size = torch.full(
            self._batch_shape(z), math.log(self.initial_step_size), dtype=z.dtype, device=z.device
        )
        self._iteration = 0
        return z

    @torch.no_grad()
    def step(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """One transition for every chain: returns the new state and the acceptance probabilities."""
        if self.log_step_size is None or self.log_step_size.shape != self._batch_shape(z):
            self.init(z)
        assert self.log_step_size is not None
        eps = self._expand(self.log_step_size.exp())
        lp0, g = _grad(self.log_prob, z)
        p0 = torch.randn_like(z)
        q, p = z, p0 + 0.5 * eps * g
        for i in range(self.num_leapfrog):
            q = q + eps * p
            lp, g = _grad(self.log_prob, q)
            if i < self.num_leapfrog - 1:
                p = p + eps * g
        p = p + 0.5 * eps * g
        log_accept = (lp - self._kinetic(p)) - (lp0 - self._kinetic(p0))
        log_accept = torch.nan_to_num(log_accept, nan=-math.inf).clamp(max=0.0)
        accept_prob = log_accept.exp()
        accept = torch.rand_like(accept_prob) < accept_prob
        new = torch.where(self._expand(accept), q, z)
        if self.adapt:
            self._iteration += 1
            rate = 1.0 / (self._iteration + 10) ** 0.6
            self.log_step_size = self.log_step_size + rate * (accept_prob - self.target_accept)
        return new, accept_prob


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
