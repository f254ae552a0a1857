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

from ..ppl import posterior_log_density
from ..registry import at_least

__all__ = ["HMC", "posterior_log_density"]


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
            (unnormalized; differentiable in the state); ``None`` if every ``step`` call
            brings its own target.
        event_dims: trailing dimensions of the state that form one chain's position.
        num_leapfrog: L, leapfrog steps per transition.
        step_size: the initial step size (every chain starts with it).
        target_accept: the acceptance probability the adaptation aims at.
        adapt: adapt step sizes in ``step`` (turn off after warm-up so the kernel is fixed
            and leaves the target exactly invariant).
        shared_step_size: one step size for all chains, adapted on their mean acceptance
            (for a kernel that keeps running while the chains change, as in training, where
            every batch brings new chains).
        min_adapt_rate: a floor on the adaptation's decaying rate, so that a kernel used
            through training keeps following a target that changes (0: the usual schedule).
    """

    def __init__(
        self,
        log_prob: Callable[[Tensor], Tensor] | None = None,
        event_dims: int = 1,
        num_leapfrog: int = 5,
        step_size: float = 0.1,
        target_accept: float = 0.8,
        adapt: bool = True,
        shared_step_size: bool = False,
        min_adapt_rate: float = 0.0,
    ) -> None:
        at_least("num_leapfrog", num_leapfrog, 1)
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
        self.log_prob = log_prob
        self.event_dims = event_dims
        self.num_leapfrog = num_leapfrog
        self.initial_step_size = step_size
        self.target_accept = target_accept
        self.adapt = adapt
        self.shared_step_size = shared_step_size
        self.min_adapt_rate = min_adapt_rate
        self.log_step_size: Tensor | None = None
        self._iteration = 0

    def _batch_shape(self, z: Tensor) -> torch.Size:
        return z.shape[: z.dim() - self.event_dims]

    def _step_shape(self, z: Tensor) -> torch.Size:
        return torch.Size() if self.shared_step_size else self._batch_shape(z)

    def _expand(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape + (1,) * self.event_dims) if t.dim() else t

    def _kinetic(self, p: Tensor) -> Tensor:
        dims = tuple(range(-self.event_dims, 0)) if self.event_dims else ()
        return 0.5 * (p * p).sum(dims) if dims else 0.5 * p * p

    @property
    def step_size(self) -> Tensor | None:
        """Current step sizes, ``[*batch]`` or one shared ``[]`` (``None`` before the first step)."""
        return None if self.log_step_size is None else self.log_step_size.exp()

    def state_dict(self) -> dict[str, Any]:
        """The adaptation's state (step sizes, iteration), for checkpoints."""
        return {"log_step_size": self.log_step_size, "iteration": self._iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_step_size = state["log_step_size"]
        self._iteration = int(state["iteration"])

    def init(self, z: Tensor) -> Tensor:
        """Start chains at ``z``: every chain's step size is reset to the initial one."""
        self.log_step_size = torch.full(
            self._step_shape(z), math.log(self.initial_step_size), dtype=z.dtype, device=z.device
        )
        self._iteration = 0
        return z

    @torch.no_grad()
    def step(
        self,
        z: Tensor,
        log_prob: Callable[[Tensor], Tensor] | None = None,
        momentum: Tensor | None = None,
        uniform: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One transition for every chain: returns the new state and the acceptance probabilities.

        ``log_prob`` replaces the kernel's target for this call (e.g. p(z | x) for a new batch).
        ``momentum`` (standard normal, shaped like ``z``) and ``uniform`` (``[*batch]`` in
        (0, 1), for the accept test) replace the kernel's own draws, for callers that need
        random numbers independent of how the chains are batched (``dgm.infer.ais``).
        """
        target = self.log_prob if log_prob is None else log_prob
        if target is None:
            raise ValueError("HMC.step: this kernel has no target; pass log_prob=")
        if self.log_step_size is None or self.log_step_size.shape != self._step_shape(z):
            self.init(z)
        assert self.log_step_size is not None
        eps = self._expand(self.log_step_size.exp())
        lp0, g = _grad(target, z)
        p0 = torch.randn_like(z) if momentum is None else momentum
        q, p = z, p0 + 0.5 * eps * g
        for i in range(self.num_leapfrog):
            q = q + eps * p
            lp, g = _grad(target, q)
            if i < self.num_leapfrog - 1:
                p = p + eps * g
        p = p + 0.5 * eps * g
        log_accept = (lp - self._kinetic(p)) - (lp0 - self._kinetic(p0))
        log_accept = torch.nan_to_num(log_accept, nan=-math.inf).clamp(max=0.0)
        accept_prob = log_accept.exp()
        accept = (torch.rand_like(accept_prob) if uniform is None else uniform) < accept_prob
        new = torch.where(self._expand(accept), q, z)
        if self.adapt:
            self._iteration += 1
            rate = max(1.0 / (self._iteration + 10) ** 0.6, self.min_adapt_rate)
            observed = accept_prob.mean() if self.shared_step_size else accept_prob
            self.log_step_size = self.log_step_size + rate * (observed - self.target_accept)
        return new, accept_prob
