"""The evidence lower bound (ELBO) with score-function terms for discrete latent sites."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..registry import at_least
from ._surrogate import (
    check_fresh,
    fit_baselines,
    leave_one_out_baseline,
    magic_box,
    split_baselines,
)
from .weights import LogWeights, log_weights


def elbo(lw: LogWeights, baseline: Tensor | None = None) -> Tensor:
    """Per-data-point ELBO, averaged over the particles.

        ELBO(x) = E_q[log p(x, z) - log q(z | x)] ~ (1/K) sum_k log w_k

    The value is the Monte Carlo estimate. Its gradient is the reparameterization gradient
    for reparameterized sites plus, for non-reparameterized (e.g. discrete) guide sites, the
    score-function term (log w_k - b_k) * grad log q(z_k | x) with a baseline b_k that does
    not depend on z_k (Williams 1992; Mnih & Gregor 2014, Eq. 5).

    A guide site sampled with ``dgm.sample(..., infer={"baseline": b})`` gets its own term
    (log w_k - b_k) * grad log q_site(z_k | x) with its ``b`` (detached, broadcastable to
    ``[K, B]``; it must not depend on the site's own value, e.g. a network of the data and of
    earlier sites, as Attend-Infer-Repeat has per step). A ``b`` that carries a gradient is
    a learned baseline: it is fitted to the signal log w_k by least squares, where the site
    is not masked, in the same backward pass (zero in value; ``fit_baselines``). The other
    score-function sites share one term with ``baseline`` or the default. Score terms use each
    site's unscaled (but masked) log q: ``dgm.ppl.scale`` reweights a site in the bound, not
    its sampling.

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", 2014.

    Args:
        lw: weights from ``log_weights``, ``[K, B]``.
        baseline: control variate for the score-function term of the sites without their
            own, broadcastable to ``[K, B]``; by default the leave-one-out mean of the other
            particles (or, with one particle, of the other data points).

    Returns:
        The per-data-point bound, shape ``[B]``.
    """
    check_fresh(lw)
    log_w = lw.log_w
    bound = log_w.mean(0)
    sites = lw.score_sites
    if sites:
        signal = log_w.detach()
        shared, own = split_baselines(sites, signal)
        score = lw.score_log_q(shared)
        if score is not None:
            b = leave_one_out_baseline(signal) if baseline is None else baseline.detach()
            bound = bound + magic_box((signal - b) * score).mean(0)
        for s, b_s in own:
            bound = bound + magic_box((signal - b_s.detach()) * s.unscaled_log_prob).mean(0)
        fit = fit_baselines(own, signal)
        if fit is not None:
            bound = bound + fit.mean(0)
    return bound


class ELBO:
    """The ELBO as a training objective: ``ELBO(K)(model, guide, x) -> [B]`` bound."""

    def __init__(self, num_particles: int = 1) -> None:
        at_least("num_particles", num_particles, 1)
        self.num_particles = num_particles

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        return elbo(log_weights(model, guide, *args, num_particles=self.num_particles, **kwargs))

    def __repr__(self) -> str:
        return f"ELBO(num_particles={self.num_particles})"
