"""DIP-VAE: the ELBO plus a penalty matching the aggregate posterior's covariance to I.

References:
    Kumar, Sattigeri & Balakrishnan, "Variational Inference of Disentangled Latent Concepts
    from Unlabeled Observations", ICLR 2018 (Sec. 3, Eqs. 6-8).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..registry import at_least
from .kl_weighted import kl_terms
from .total_correlation import diagonal_gaussian_site
from .weights import LogWeights, log_weights

DIP_KINDS = ("i", "ii")
"""DIP-VAE-I (covariance of the posterior means) and DIP-VAE-II (of the aggregate posterior)."""


def _kind(kind: str) -> str:
    k = kind.lower() if isinstance(kind, str) else kind
    if k not in DIP_KINDS:
        raise ValueError(f"DIP-VAE kind must be one of {DIP_KINDS}, got {kind!r}")
    return k


def dip_covariance(loc: Tensor, scale: Tensor, kind: str = "i") -> Tensor:
    """The batch estimate of the covariance DIP-VAE regularizes, ``[D, D]``.

        DIP-VAE-I:  Cov_batch[mu(x)]                                (Kumar et al., Eq. 6)
        DIP-VAE-II: Cov_batch[mu(x)] + mean_batch diag(sigma(x)^2)  (= Cov_q(z), Eq. 7)

    The covariance of the means is the batch's own (divided by B, not B - 1).

    Args:
        loc, scale: the diagonal Gaussian posteriors' parameters, ``[B, D]``.
        kind: ``"i"`` or ``"ii"``.
    """
    k = _kind(kind)
    centered = loc - loc.mean(0, keepdim=True)
    cov = centered.T @ centered / loc.shape[0]
    if k == "ii":
        cov = cov + torch.diag((scale**2).mean(0))
    return cov


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    """lambda_od * sum_{i != j} cov_ij^2 + lambda_d * sum_i (cov_ii - 1)^2 (a scalar)."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag_embed(diag)
    return lambda_od * (off**2).sum() + lambda_d * ((diag - 1) ** 2).sum()


def default_lambda_d(kind: str, lambda_od: float) -> float:
    """The paper's setting: lambda_d = 10 lambda_od for DIP-VAE-I, lambda_od for DIP-VAE-II."""
    return 10 * lambda_od if _kind(kind) == "i" else lambda_od


def dip_vae(
    lw: LogWeights,
    kind: str = "i",
    lambda_od: float = 10.0,
    lambda_d: float | None = None,
    site: str = "z",
) -> Tensor:
    """Per-data-point DIP-VAE objective: ELBO_b - penalty(Cov), the penalty shared by all b.

    The ELBO uses the analytic KL where it exists (``kl_terms``); the covariance comes from
    the diagonal-Gaussian site ``site`` of the batch (``dip_covariance``).

    Returns:
        ``[B]``; its batch mean is the paper's objective on the batch.
    """
    lam_d = default_lambda_d(kind, lambda_od) if lambda_d is None else lambda_d
    s = diagonal_gaussian_site(lw, site, needed_by="DIP-VAE", prior=False)
    t = kl_terms(lw)
    penalty = dip_penalty(dip_covariance(s.loc, s.scale, kind), lambda_od, lam_d)
    return t.reconstruction + t.rest - t.kl - penalty


class DIPVAE:
    """DIP-VAE as a training objective: ``DIPVAE("i")(model, guide, x) -> [B]``.

    One guide sample per data point; the site ``site`` must be a diagonal Gaussian.

    Args:
        kind: ``"i"`` (DIP-VAE-I) or ``"ii"`` (DIP-VAE-II).
        lambda_od: weight of the squared off-diagonal covariances.
        lambda_d: weight of the squared deviations of the diagonal from 1; ``None``: the
            paper's setting, 10 * lambda_od for DIP-VAE-I and lambda_od for DIP-VAE-II.
        site: the latent site.
    """

    def __init__(
        self,
        kind: str = "i",
        lambda_od: float = 10.0,
        lambda_d: float | None = None,
        site: str = "z",
    ) -> None:
        self.kind = _kind(kind)
        at_least("lambda_od", lambda_od, 0)
        self.lambda_od = lambda_od
        self.lambda_d = default_lambda_d(self.kind, lambda_od) if lambda_d is None else lambda_d
        at_least("lambda_d", self.lambda_d, 0)
        self.site = site

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=1, **kwargs)
        return dip_vae(lw, self.kind, self.lambda_od, self.lambda_d, self.site)

    def __repr__(self) -> str:
        return (
            f"DIPVAE(kind={self.kind!r}, lambda_od={self.lambda_od}, lambda_d={self.lambda_d}, "
            f"site={self.site!r})"
        )
