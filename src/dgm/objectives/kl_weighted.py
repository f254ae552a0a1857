"""beta-VAE: the ELBO with a weighted KL term, and its annealed-capacity variant.

References:
    Higgins, Matthey, Pal, Burgess, Glorot, Botvinick, Mohamed & Lerchner, "beta-VAE:
    Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR 2017.
    Burgess, Higgins, Pal, Matthey, Watters, Desjardins & Lerchner, "Understanding
    disentangling in beta-VAE", 2018 (arXiv:1804.03599), Sec. 5 (controlled capacity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import kl_divergence

from ..ppl import Site
from ..registry import at_least
from ._surrogate import check_fresh
from .weights import LogWeights, log_weights


@dataclass(eq=False)
class KLTerms:
    """Per-data-point terms of the ELBO, each ``[B]``: ``elbo = reconstruction + rest - kl``.

    Attributes:
        reconstruction: the observed sites' log-density, averaged over the particles.
        kl: KL(q || p) of the chosen latent sites: analytic where ``kl_divergence`` has the
            pair (and neither factor depends on particled latents), else the Monte Carlo
            estimate log q - log p.
        rest: log p - log q of the other latent sites (zero when all are chosen).
    """

    reconstruction: Tensor
    kl: Tensor
    rest: Tensor


def kl_terms(lw: LogWeights, site: str | None = None) -> KLTerms:
    """The reconstruction and the KL of ``site`` (``None``: every latent site) per data point.

    Args:
        lw: weights from ``log_weights``; every guide latent must be reparameterized.
        site: the latent site whose KL is separated out; ``None``: all of them.

    Raises:
        ValueError: a non-reparameterized guide site (these objectives have no
            score-function terms), or no latent site named ``site``.
    """
    check_fresh(lw)
    if lw.score_sites:
        names = [s.name for s in lw.score_sites]
        raise ValueError(
            f"the weighted-KL objectives need reparameterized latent sites; {names} are not "
            "(for discrete latents use dgm.ELBO, with dgm.ppl.scale for a weighted KL)"
        )
    mt, gt = lw.model_trace, lw.guide_trace
    shape = lw.log_p.shape
    latent = gt.latent
    if site is not None and site not in [s.name for s in latent]:
        raise ValueError(
            f"no latent site {site!r} in the guide (its latent sites: {[s.name for s in latent]})"
        )
    reconstruction = mt.log_prob_sum(mt.observed).expand(shape).mean(0)
    kl = torch.zeros_like(reconstruction)
    rest = torch.zeros_like(reconstruction)
    for q_site in latent:
        p_site = mt[q_site.name]
        if site is None or q_site.name == site:
            k = analytic_kl(q_site, p_site, shape)
            if k is None:
                k = (q_site.log_prob - p_site.log_prob).expand(shape).mean(0)
            kl = kl + k
        else:
            rest = rest + (p_site.log_prob - q_site.log_prob).expand(shape).mean(0)
    return KLTerms(reconstruction, kl, rest)


def analytic_kl(q_site: Site, p_site: Site, shape: torch.Size) -> Tensor | None:
    """KL(q || p) of one latent site in closed form, ``shape[1:]``, or ``None``.

    Closed form only when ``kl_divergence`` has the pair, neither factor is conditioned on
    particled latents (their batch shapes have no particle dimension, as for the top layer's
    prior and first layer's posterior of a one-layer VAE), and neither site is scaled or
    masked; ``None`` tells the caller to use the Monte Carlo estimate instead (as
    ``dgm.metrics.elbo_terms`` does).
    """
    q, p = q_site.fn, p_site.fn
    if not len(q.batch_shape) == len(p.batch_shape) == len(shape) - 1:
        return None
    if any(s.scale is not None or s.mask is not None for s in (q_site, p_site)):
        return None
    try:
        kl = kl_divergence(q, p)
    except NotImplementedError:
        return None
    try:
        return kl.expand(shape[1:])
    except RuntimeError:
        return None


def beta_vae(lw: LogWeights, beta: float = 4.0, site: str | None = None) -> Tensor:
    """Per-data-point beta-VAE objective: reconstruction - beta * KL(q(z|x) || p(z)).

    With ``site`` only that site's KL is weighted (the others keep their ELBO terms). beta = 1
    is the ELBO (with the KL analytic where it can be).

    References:
        Higgins et al., "beta-VAE", ICLR 2017, Eq. 4.

    Returns:
        ``[B]``.
    """
    t = kl_terms(lw, site)
    return t.reconstruction + t.rest - beta * t.kl


class BetaVAE:
    """beta-VAE as a training objective: ``BetaVAE(beta)(model, guide, x) -> [B]``.

    One guide sample per data point; the KL is analytic for a one-layer Gaussian VAE.

    Args:
        beta: weight of the KL term (> 1 for disentangling; Higgins et al. use e.g. 4).
        site: the latent site whose KL is weighted; ``None``: all of them.
    """

    def __init__(self, beta: float = 4.0, site: str | None = None) -> None:
        at_least("beta", beta, 0)
        self.beta = beta
        self.site = site

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=1, **kwargs)
        return beta_vae(lw, self.beta, self.site)

    def __repr__(self) -> str:
        return f"BetaVAE(beta={self.beta}, site={self.site!r})"


def annealed_capacity(
    lw: LogWeights, gamma: float, capacity: float | Tensor, site: str | None = None
) -> Tensor:
    """Per-data-point objective of the controlled-capacity beta-VAE (Burgess et al. 2018, Eq. 8).

        L_b = log p(x_b | z_b) - gamma * | mean_b' KL_b' - C |

    The capacity penalty is on the batch-mean KL, as in the paper's implementation, so it is
    the same for every data point; the batch mean of ``L`` is the paper's objective.

    Returns:
        ``[B]``.
    """
    t = kl_terms(lw, site)
    return t.reconstruction + t.rest - gamma * (t.kl.mean() - capacity).abs()


class AnnealedCapacity(nn.Module):
    """beta-VAE with a linearly increasing KL target (Burgess et al. 2018, Sec. 5).

    The KL is pushed towards a capacity C(t) = ``capacity`` * min(1, t / ``capacity_steps``),
    where t counts the calls made in training mode (``self.training``); calls in ``eval()``
    mode use the current C(t) and do not advance t. t is a buffer (``step``, long), saved in
    the state dict, so a resumed run continues the schedule. The first training call uses
    C(0) = 0.

    References:
        Burgess et al., "Understanding disentangling in beta-VAE", 2018: gamma = 1000 and C
        increased linearly from 0 to 25 nats over 100,000 iterations (dSprites).

    Args:
        gamma: weight of |KL - C|.
        capacity: C_max in nats.
        capacity_steps: training calls over which C grows from 0 to C_max.
        site: the latent site whose KL is controlled; ``None``: all of them.
    """

    step: Tensor

    def __init__(
        self,
        gamma: float = 1000.0,
        capacity: float = 25.0,
        capacity_steps: int = 100000,
        site: str | None = None,
    ) -> None:
        super().__init__()
        at_least("gamma", gamma, 0)
        at_least("capacity", capacity, 0)
        at_least("capacity_steps", capacity_steps, 1)
        self.gamma = gamma
        self.capacity = capacity
        self.capacity_steps = capacity_steps
        self.site = site
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def current_capacity(self) -> Tensor:
        """C(t) for the current count t (a 0-dimensional tensor on the buffer's device)."""
        frac = (self.step.double() / self.capacity_steps).clamp(max=1.0)
        return (self.capacity * frac).float()

    def forward(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=1, **kwargs)
        c = self.current_capacity().to(lw.log_p.dtype)
        out = annealed_capacity(lw, self.gamma, c, self.site)
        if self.training:
            with torch.no_grad():
                self.step += 1
        return out

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, capacity={self.capacity}, "
            f"capacity_steps={self.capacity_steps}, site={self.site!r}"
        )
