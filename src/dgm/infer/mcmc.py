"""Metropolis-Hastings on a program's posterior: random walk with adaptive scale, or independence.

The target is p(z | x) up to a constant, log p(x, z) computed by running the model with its
latent sites conditioned on the chain state. Chains and data sets are tensor dimensions:
a state is ``{site: [C, B, *event]}`` and one call updates every chain of every data set, each
with its own accept/reject.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import biject_to

from ..ppl import condition, particles, trace
from .diagnostics import effective_sample_size, r_hat


@dataclass
class Chains:
    """MCMC output: draws ``{site: [S, C, B, *event]}`` and per-chain acceptance rates ``[C, B]``."""

    samples: dict[str, Tensor]
    accept_rate: Tensor
    seconds: float = 0.0
    scales: Tensor | None = field(default=None, repr=False)

    def r_hat(self, name: str) -> Tensor:
        """Split R-hat of a site over the chains, ``[B, *event]``."""
        return r_hat(self.samples[name])

    def ess(self, name: str) -> Tensor:
        """Effective sample size of a site, pooled over chains, ``[B, *event]``."""
        return effective_sample_size(self.samples[name])

    def mean(self, name: str) -> Tensor:
        """Posterior mean over draws and chains, ``[B, *event]``."""
        return self.samples[name].mean((0, 1))

    def flat(self, name: str) -> Tensor:
        """All draws of a site as one sample dimension, ``[S * C, B, *event]``."""
        v = self.samples[name]
        return v.reshape(-1, *v.shape[2:])


def log_joint(
    model: Callable[..., Any], values: dict[str, Tensor], *args: Any, **kwargs: Any
) -> Tensor:
    """log p(x, z) with the latent sites set to ``values`` (each ``[C, B, *event]``), ``[C, B]``."""
    with torch.no_grad(), trace() as tr, condition(values):
        model(*args, **kwargs)
    total = tr.log_prob_sum()
    lead = next(iter(values.values())).shape[:2]
    return total.expand(lead) if total.shape != lead else total


def _latent_sites(
    model: Callable[..., Any], num_chains: int, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """A draw from the prior for every latent site, ``[C, B, *event]``, with its support."""
    with torch.no_grad(), trace() as tr, particles(num_chains):
        model(*args, **kwargs)
    sites = {}
    for s in tr.latent:
        support = s.fn.support
        assert support is not None
        if support.is_discrete:
            raise ValueError(
                f"random-walk Metropolis-Hastings needs continuous latents, but site {s.name!r} "
                f"has discrete support {support}; use proposal=<a guide> (independence "
                "sampler) for models with discrete latents"
            )
        sites[s.name] = (s.value, support)
    return sites


def metropolis_hastings(
    model: Callable[..., Any],
    *args: Any,
    num_samples: int = 1000,
    warmup: int = 500,
    num_chains: int = 4,
    proposal: Callable[..., Any] | None = None,
    init: dict[str, Tensor] | None = None,
    target_accept: float = 0.3,
    thin: int = 1,
    **kwargs: Any,
) -> Chains:
    """Run ``num_chains`` Metropolis-Hastings chains per data set on p(z | x).

    Random walk (``proposal=None``): each site moves in its unconstrained space
    (``biject_to(support)``, with the Jacobian in the target) by ``scale * N(0, I)``; during
    warm-up every chain's scale is adapted by Robbins-Monro steps toward ``target_accept``
    (0.234 is optimal for many dimensions, about 0.44 for one). Chains start at prior draws
    unless ``init`` gives values ``[C, B, *event]``.

    Independence sampler (``proposal=guide``): z' ~ q(z | x) fresh each step, accepted with
    probability min(1, w(z') / w(z)), w = p(x, z) / q(z | x). A proposal close to the posterior
    gives high acceptance and nearly independent draws.

    Args:
        model: the program; ``*args, **kwargs`` its call (B data sets in a leading dimension).
        num_samples: kept draws per chain (after warm-up and thinning).
        warmup: discarded steps (adaptation happens here).
        num_chains: C.
        proposal: a guide program for the independence sampler.
        init: starting values.
        target_accept: the random walk's adaptation target.
        thin: keep every ``thin``-th draw.

    Returns:
        ``Chains`` with draws ``[S, C, B, *event]``, acceptance rates and wall time.
    """
    start = time.perf_counter()
    if proposal is None:
        state, total_accept, scales = _random_walk(
            model, args, kwargs, num_samples, warmup, num_chains, init, target_accept, thin
        )
    else:
        state, total_accept, scales = _independence(
            model, proposal, args, kwargs, num_samples, warmup, num_chains, init, thin
        )
    return Chains(state, total_accept, time.perf_counter() - start, scales)


def _random_walk(
    model: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    num_samples: int,
    warmup: int,
    num_chains: int,
    init: dict[str, Tensor] | None,
    target_accept: float,
    thin: int,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    sites = _latent_sites(model, num_chains, *args, **kwargs)
    transforms = {n: biject_to(support) for n, (_, support) in sites.items()}
    values = dict(init) if init is not None else {n: v for n, (v, _) in sites.items()}
    u = {n: transforms[n].inv(v) for n, v in values.items()}

    def target(u: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        z = {n: transforms[n](v) for n, v in u.items()}
        lp = log_joint(model, z, *args, **kwargs)
        for n, v in u.items():
            ladj = transforms[n].log_abs_det_jacobian(v, z[n])
            extra = ladj.dim() - lp.dim()
            lp = lp + (ladj.sum(tuple(range(-extra, 0))) if extra > 0 else ladj)
        return lp, z

    lp, z = target(u)
    lead = lp.shape
    dim = sum(v[0, 0].numel() for v in u.values())
    log_scale = torch.full(lead, math.log(2.38 / math.sqrt(max(dim, 1))))
    kept: dict[str, list[Tensor]] = {n: [] for n in u}
    accepted = torch.zeros(lead)
    total = warmup + num_samples * thin
    for i in range(total):
        scale = log_scale.exp()
        proposal = {
            n: v + scale.reshape(lead + (1,) * (v.dim() - 2)) * torch.randn_like(v)
            for n, v in u.items()
        }
        lp_new, z_new = target(proposal)
        log_alpha = (lp_new - lp).nan_to_num(nan=-math.inf)
        accept = torch.rand(lead).log() < log_alpha
        u = {n: _where(accept, proposal[n], v) for n, v in u.items()}
        z = {n: _where(accept, z_new[n], v) for n, v in z.items()}
        lp = torch.where(accept, lp_new, lp)
        if i < warmup:  # Robbins-Monro on log scale, per chain and data set
            rate = log_alpha.clamp(max=0).exp()
            log_scale = log_scale + (rate - target_accept) / (i + 1) ** 0.6
        else:
            accepted += accept.float()
            if (i - warmup) % thin == 0:
                for n, v in z.items():
                    kept[n].append(v)
    samples = {n: torch.stack(vs) for n, vs in kept.items()}
    return samples, accepted / (total - warmup), log_scale.exp()


def _independence(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    num_samples: int,
    warmup: int,
    num_chains: int,
    init: dict[str, Tensor] | None,
    thin: int,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    from ..objectives import log_weights

    def draw() -> tuple[dict[str, Tensor], Tensor]:
        with torch.no_grad():
            lw = log_weights(model, guide, *args, num_particles=num_chains, **kwargs)
        z = {s.name: s.value for s in lw.guide_trace.latent if s.value is not None}
        return z, lw.log_w

    z, log_w = draw()
    if init is not None:
        z = dict(init)
        with torch.no_grad(), trace() as q, condition(z):
            guide(*args, **kwargs)
        log_w = log_joint(model, z, *args, **kwargs) - q.log_prob_sum()
    lead = log_w.shape
    kept: dict[str, list[Tensor]] = {n: [] for n in z}
    accepted = torch.zeros(lead)
    total = warmup + num_samples * thin
    for i in range(total):
        z_new, log_w_new = draw()
        accept = torch.rand(lead).log() < (log_w_new - log_w).nan_to_num(nan=-math.inf)
        z = {n: _where(accept, z_new[n], v) for n, v in z.items()}
        log_w = torch.where(accept, log_w_new, log_w)
        if i >= warmup:
            accepted += accept.float()
            if (i - warmup) % thin == 0:
                for n, v in z.items():
                    kept[n].append(v)
    samples = {n: torch.stack(vs) for n, vs in kept.items()}
    return samples, accepted / (total - warmup), torch.ones(lead)


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.reshape(mask.shape + (1,) * (a.dim() - mask.dim())), a, b)


__all__ = ["Chains", "log_joint", "metropolis_hastings"]
