"""beta-TCVAE: the ELBO's KL term split into index-code MI, total correlation and dimension-wise KL.

For a data set of N points with empirical distribution p(n), the aggregate posterior is
q(z) = (1/N) sum_n q(z | n), and the average KL term of the ELBO decomposes as (Chen et al.
2018, Eq. 2)

    E_p(n) KL(q(z|n) || p(z)) = I_q(z; n) + KL(q(z) || prod_d q(z_d)) + sum_d KL(q(z_d) || p(z_d))
                              =  index-code MI + total correlation     + dimension-wise KL.

Per sample z ~ q(z | x), each term is a log-ratio: mi = log q(z|x) - log q(z), tc = log q(z) -
sum_d log q(z_d), dwkl = sum_d log q(z_d) - log p(z_d), so mi + tc + dwkl = log q(z|x) - log
p(z) exactly. q(z) and q(z_d) are mixtures over the whole data set; they are estimated from the
minibatch (``log_qz_estimates``): minibatch stratified sampling (MSS, unbiased for q(z)) or
minibatch weighted sampling (MWS, as published).

References:
    Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in Variational
    Autoencoders", NeurIPS 2018 (Sec. 3 and 4.1, App. C).
    Hoffman & Johnson, "ELBO surgery: yet another way to carve up the variational evidence
    lower bound", NIPS 2016 Workshop on Advances in Approximate Bayesian Inference.
    rtqichen/beta-tcvae (the authors' code), pull request #1: its importance-weight matrix
    writes the stratified weights into column 0 instead of the diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from ..ppl import Trace
from ..registry import at_least
from .weights import LogWeights, log_weights

ESTIMATORS = ("mss", "mws")
"""Estimators of log q(z) from a minibatch: stratified (``"mss"``) or weighted (``"mws"``)."""


@dataclass(eq=False)
class DiagonalSite:
    """One particle of a diagonal-Gaussian latent site, per data point.

    Attributes:
        z: the guide's sample, ``[B, D]`` (reparameterized: gradients reach the guide).
        loc, scale: the parameters of q(z | x) = prod_d N(z_d; loc_d, scale_d), ``[B, D]``.
        log_prior: per-dimension prior log-density log p(z_d), ``[B, D]``; ``None`` when it
            was not asked for.
        log_q: log q(z | x) = sum_d log N(z_d; loc_d, scale_d), ``[B]``.
    """

    z: Tensor
    loc: Tensor
    scale: Tensor
    log_prior: Tensor | None
    log_q: Tensor


def diagonal_gaussian_site(
    lw: LogWeights, site: str = "z", needed_by: str = "beta-TCVAE", prior: bool = True
) -> DiagonalSite:
    """The sample and the Gaussian parameters of the guide's factorized site ``site``.

    Args:
        lw: weights from ``log_weights(..., num_particles=1)`` with one batch dimension.
        site: the latent site's name.
        needed_by: the objective's name, for error messages.
        prior: also return the per-dimension prior log-density (the model's factor at
            ``site`` must then be ``Independent(base, 1)`` with a per-coordinate ``base``,
            e.g. the standard normal prior).

    Raises:
        ValueError: the guide has no latent site ``site``, its distribution there is not
            ``Independent(Normal(loc, scale), 1)``, the weights have more than one particle
            or batch dimension, the site is scaled or masked, or (with ``prior``) the prior
            does not factorize over the coordinates.
    """
    if lw.batch_dims != 1:
        raise ValueError(
            f"{needed_by} needs weights with one batch dimension ([num_particles, batch]), got "
            f"batch_dims={lw.batch_dims}"
        )
    return _diagonal_site(lw.guide_trace, lw.model_trace if prior else None, site, needed_by)


def _diagonal_site(
    guide_trace: Trace, model_trace: Trace | None, site: str, needed_by: str
) -> DiagonalSite:
    what = f"{needed_by} needs a factorized (diagonal Gaussian) posterior at site {site!r}"
    if site not in guide_trace or guide_trace[site].is_observed:
        names = [s.name for s in guide_trace.latent]
        raise ValueError(
            f"{what}; the guide has no latent site {site!r} (its latent sites: {names})"
        )
    q_site = guide_trace[site]
    fn = q_site.fn
    if not (
        isinstance(fn, Independent)
        and fn.reinterpreted_batch_ndims == 1
        and isinstance(fn.base_dist, Normal)
    ):
        raise ValueError(f"{what}; got {_describe(fn)}: use model.posterior=diagonal")
    value = q_site.value
    assert value is not None
    if value.dim() != 3:
        raise ValueError(
            f"{what} with values shaped [num_particles=1, batch, latent], got {list(value.shape)}"
        )
    if value.shape[0] != 1:
        raise ValueError(
            f"{what} and one particle per data point (num_particles=1), got {value.shape[0]}"
        )
    if q_site.scale is not None or q_site.mask is not None:
        raise ValueError(
            f"{what}; site {site!r} of the guide is scaled or masked (dgm.ppl.scale/mask)"
        )
    base = fn.base_dist
    loc = torch.broadcast_to(base.loc, value.shape)[0]
    scale = torch.broadcast_to(base.scale, value.shape)[0]
    log_q = q_site.unscaled_log_prob.expand(value.shape[:2])[0]
    log_prior = None
    if model_trace is not None:
        p_site = model_trace[site]
        p = p_site.fn
        if not (isinstance(p, Independent) and p.reinterpreted_batch_ndims == 1):
            raise ValueError(
                f"{needed_by} needs a prior that factorizes over the coordinates of {site!r} "
                f"(Independent(base, 1), e.g. the standard normal), got {_describe(p)}"
            )
        if p_site.scale is not None or p_site.mask is not None:
            raise ValueError(f"{needed_by}: site {site!r} of the model is scaled or masked")
        log_prior = torch.broadcast_to(p.base_dist.log_prob(value), value.shape)[0]
    return DiagonalSite(value[0], loc, scale, log_prior, log_q)


def _describe(fn: Any) -> str:
    if isinstance(fn, Independent):
        return (
            f"Independent({type(fn.base_dist).__name__}, "
            f"reinterpreted_batch_ndims={fn.reinterpreted_batch_ndims})"
        )
    return type(fn).__name__


_LOG_2PI = math.log(2 * math.pi)


def log_density_matrix(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """log N(z_{i,d}; loc_{j,d}, scale_{j,d}) for every pair of batch members: ``[..., M, M, D]``.

    Row i holds sample i scored under every member j's posterior; the diagonal is each
    sample's own q(z_i | x_i).

    Args:
        z, loc, scale: ``[..., M, D]`` (leading dimensions are independent batches).
    """
    zi = z.unsqueeze(-2)  # [..., M, 1, D]
    loc_j, scale_j = loc.unsqueeze(-3), scale.unsqueeze(-3)  # [..., 1, M, D]
    return -0.5 * ((zi - loc_j) / scale_j) ** 2 - scale_j.log() - 0.5 * _LOG_2PI


def _check_batch(batch_size: int, dataset_size: int) -> None:
    if batch_size < 2 or batch_size > dataset_size:
        raise ValueError(
            "minibatch stratified sampling needs 2 <= batch size <= dataset size, got batch "
            f"size {batch_size} and dataset_size {dataset_size}"
        )


def importance_weight_matrix(
    batch_size: int,
    dataset_size: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """log W of minibatch stratified sampling (Chen et al. 2018, App. C.2): ``[M, M]``.

    With M = ``batch_size``, N = ``dataset_size`` and M' = M - 1, row i weighs the batch's
    posteriors for the estimate q(z_i) ~ sum_j W_ij q(z_i | x_j):

        W_ii = 1/N,   W_{i,(i+1) mod M} = (N - M') / (N M'),   W_ij = 1/M' otherwise.

    Each row sums to 1 and its off-diagonal weights sum to (N - 1)/N, so when the other
    batch members are uniform draws from the rest of the data set (with or without
    replacement), E[sum_j W_ij q(z_i | x_j)] = q(z_i | x_i)/N + (N - 1)/N * mean_{n != i}
    q(z_i | n) = q(z_i) exactly.

    The widely copied code ``W.view(-1)[::M+1] = 1/N`` with ``M = batch_size - 1`` steps by
    the row length and fills column 0 instead of the diagonal (rtqichen/beta-tcvae PR #1):
    a sample's own posterior then gets weight 1/M' instead of 1/N, which overestimates q(z).

    Raises:
        ValueError: batch size below 2 or above the data set's size.
    """
    _check_batch(batch_size, dataset_size)
    m, n = batch_size, dataset_size
    mp = m - 1
    w = torch.full((m, m), 1.0 / mp, dtype=dtype, device=device)
    i = torch.arange(m, device=w.device)
    w[i, (i + 1) % m] = (n - mp) / (n * mp)
    w[i, i] = 1.0 / n
    return w.log()


def _column0_weight_matrix(batch_size: int, dataset_size: int) -> Tensor:
    """The widely copied, buggy log W (rtqichen/beta-tcvae before PR #1), for tests only.

    ``W.view(-1)[::M+1]`` with M = batch_size - 1 strides by the row length, so the 1/N
    weights land in column 0 and the stratified ones in column 1 (the last row's column 0
    is then overwritten with the stratified weight): not the diagonal.
    """
    n = dataset_size
    m = batch_size - 1
    strat_weight = (n - m) / (n * m)
    w = torch.full((batch_size, batch_size), 1.0 / m)
    w.view(-1)[:: m + 1] = 1.0 / n
    w.view(-1)[1 :: m + 1] = strat_weight
    w[m - 1, 0] = strat_weight
    return w.log()


def log_qz_estimates(
    z: Tensor, loc: Tensor, scale: Tensor, dataset_size: int, estimator: str = "mss"
) -> tuple[Tensor, Tensor]:
    """Minibatch estimates of log q(z_i) and sum_d log q(z_{i,d}) for each batch member.

    ``z[i]`` is a sample of q(z | x_i); q(z) = (1/N) sum_n q(z | n) is the aggregate posterior
    over the N = ``dataset_size`` training points, q(z_d) its marginals.

    ``"mss"`` (minibatch stratified sampling, Chen et al. 2018, App. C.2):
    log q(z_i) ~ logsumexp_j (log W_ij + log q(z_i | x_j)) with W from
    ``importance_weight_matrix``, per dimension likewise. exp of the estimate is unbiased for
    q(z_i) when the batch is x_i plus uniform draws from the rest of the data (a batch drawn
    uniformly without replacement is that, for each of its members); the log is biased low
    at finite M (Jensen) and consistent.

    ``"mws"`` (minibatch weighted sampling, Chen et al. 2018, Sec. 4.1 and App. C.1, as
    published and as in the authors' code): log q(z_i) ~ logsumexp_j log q(z_i | x_j) -
    log(N M), per dimension likewise. It does *not* estimate log q(z): its derivation
    restricts q(z) = E_p(B)[(1/M) sum_j q(z | x_j)] to batches containing x_i, weighed by
    p(B)/r(B | x_i) = 1/N, which gives a lower bound. For a batch of x_i and M - 1 i.i.d.
    uniform draws, E[exp(estimate)] = (q(z_i) + (q(z_i | x_i) - q(z_i))/M) / N <= q(z_i), so
    the estimate tends to log q(z_i) - log N as M grows, and each marginal's to
    log q(z_{i,d}) - log N. Hence, for every batch,

        tc_mws = tc_M + (D - 1) log N,   mi_mws = mi_M + log N,   dwkl_mws = dwkl_M - D log N,

    where the subscript M marks the same estimator with the constant log M instead, which is
    consistent (biased high at finite M by the sample's own term q(z_i | x_i)/M). Numerically
    (``tests/objectives/test_total_correlation.py``: N = 512 posteriors in D = 2, correlated
    locations, batches without replacement, exact q by logsumexp over the data set), the mean
    error of the MWS total correlation is +6.294, +6.249 and +6.238 nats for M = 8, 64 and
    512, against (D - 1) log N = 6.238; MSS's is -0.044, -0.011 and +0.000. With M = N (the
    batch is the data set) MWS gives log q(z) - log N exactly. The constant does not change
    any gradient, so training with MWS is as published; only the logged values are shifted.

    Args:
        z, loc, scale: ``[..., M, D]``: each member's sample and posterior parameters.
        dataset_size: N.
        estimator: ``"mss"`` or ``"mws"``.

    Returns:
        ``(log_qz, log_prod_qzd)``, each ``[..., M]``.

    Raises:
        ValueError: an unknown estimator, or (MSS) a batch of 1 or larger than the data set.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    m = z.shape[-2]
    mat = log_density_matrix(z, loc, scale)  # [..., M, M, D]
    if estimator == "mss":
        log_w = importance_weight_matrix(m, dataset_size, dtype=mat.dtype, device=mat.device)
        log_qz = torch.logsumexp(log_w + mat.sum(-1), dim=-1)
        log_qzd = torch.logsumexp(log_w.unsqueeze(-1) + mat, dim=-2)
        return log_qz, log_qzd.sum(-1)
    at_least("dataset_size", dataset_size, 1)
    const = math.log(dataset_size * m)
    log_qz = torch.logsumexp(mat.sum(-1), dim=-1) - const
    log_qzd = torch.logsumexp(mat, dim=-2) - const
    return log_qz, log_qzd.sum(-1)


@dataclass(eq=False)
class TCTerms:
    """Per-data-point terms of the decomposed ELBO, each ``[B]``.

    ``reconstruction + (other sites' log p - log q) - (index_code_mi + total_correlation +
    dimensionwise_kl)`` is the one-sample ELBO; the three terms sum to log q(z|x) - log p(z).
    With ``estimator="mws"`` they are shifted by log N, (D - 1) log N and -D log N (see
    ``log_qz_estimates``).
    """

    reconstruction: Tensor
    index_code_mi: Tensor
    total_correlation: Tensor
    dimensionwise_kl: Tensor


def tc_decomposition(
    lw: LogWeights, dataset_size: int, estimator: str = "mss", site: str = "z"
) -> TCTerms:
    """Reconstruction, index-code MI, total correlation and dimension-wise KL per data point.

        mi   = log q(z|x) - log q(z)
        tc   = log q(z) - sum_d log q(z_d)
        dwkl = sum_d log q(z_d) - log p(z_d)

    with q(z), q(z_d) from ``log_qz_estimates`` over the batch, and the reconstruction the
    observed sites' log-density. Gradients flow through z, loc and scale (reparameterized).

    References:
        Chen et al., "Isolating Sources of Disentanglement in VAEs", 2018, Eq. 2.

    Args:
        lw: weights from ``log_weights(..., num_particles=1)``; the batch must be drawn
            uniformly from the N training points for the estimates to hold.
        dataset_size: N.
        estimator: ``"mss"`` or ``"mws"``.
        site: the diagonal-Gaussian latent site.
    """
    s = diagonal_gaussian_site(lw, site)
    assert s.log_prior is not None
    log_qz, log_prod_qzd = log_qz_estimates(s.z, s.loc, s.scale, dataset_size, estimator)
    mt = lw.model_trace
    reconstruction = mt.log_prob_sum(mt.observed).expand(lw.log_p.shape)[0]
    return TCTerms(
        reconstruction=reconstruction,
        index_code_mi=s.log_q - log_qz,
        total_correlation=log_qz - log_prod_qzd,
        dimensionwise_kl=log_prod_qzd - s.log_prior.sum(-1),
    )


def beta_tcvae(
    lw: LogWeights,
    dataset_size: int,
    alpha: float = 1.0,
    beta: float = 6.0,
    gamma: float = 1.0,
    estimator: str = "mss",
    site: str = "z",
) -> Tensor:
    """Per-data-point beta-TCVAE objective: ELBO with the KL's three terms reweighted.

        L(x) = log p(x|z) - alpha * mi - beta * tc - gamma * dwkl   (+ other sites' log p - log q)

    computed as log w + (1 - alpha) mi + (1 - beta) tc + (1 - gamma) dwkl, so that with
    alpha = beta = gamma = 1 it is the one-sample ELBO exactly. Chen et al. train with
    alpha = gamma = 1 and tune beta (6 in their dSprites figures).

    Returns:
        ``[B]``.
    """
    t = tc_decomposition(lw, dataset_size, estimator, site)
    return _weighted(lw, t, alpha, beta, gamma)


def _weighted(lw: LogWeights, t: TCTerms, alpha: float, beta: float, gamma: float) -> Tensor:
    out = lw.log_w[0]
    for weight, term in (
        (alpha, t.index_code_mi),
        (beta, t.total_correlation),
        (gamma, t.dimensionwise_kl),
    ):
        if weight != 1:
            out = out + (1 - weight) * term
    return out


class BetaTCVAE:
    """beta-TCVAE as a training objective: ``BetaTCVAE(N)(model, guide, x) -> [B]``.

    One guide sample per data point; the latent site ``site`` must be a diagonal Gaussian
    (``model.posterior=diagonal``) with a factorized prior. The batch must be drawn uniformly
    from the ``dataset_size`` training points (MSS also needs 2 <= batch size <= N: drop a
    last batch of one). After each call ``last_terms`` holds the batch means (detached) of
    the reconstruction and the three KL terms, for logging.

    References:
        Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in Variational
        Autoencoders", NeurIPS 2018.

    Args:
        dataset_size: N, the number of training points.
        alpha, beta, gamma: weights of the index-code MI, total correlation and
            dimension-wise KL (all 1: the ELBO).
        estimator: ``"mss"`` (stratified, unbiased for q(z)) or ``"mws"`` (as published; its
            logged terms are shifted by constants, see ``log_qz_estimates``).
        site: the latent site.
    """

    def __init__(
        self,
        dataset_size: int,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        estimator: str = "mss",
        site: str = "z",
    ) -> None:
        at_least("dataset_size", dataset_size, 2)
        at_least("alpha", alpha, 0)
        at_least("beta", beta, 0)
        at_least("gamma", gamma, 0)
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {ESTIMATORS} (stratified or weighted minibatch "
                f"sampling), got {estimator!r}"
            )
        self.dataset_size = dataset_size
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.estimator = estimator
        self.site = site
        self.last_terms: dict[str, Tensor] = {}

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=1, **kwargs)
        t = tc_decomposition(lw, self.dataset_size, self.estimator, self.site)
        self.last_terms = {
            name: getattr(t, name).detach().mean()
            for name in ("reconstruction", "index_code_mi", "total_correlation", "dimensionwise_kl")
        }
        return _weighted(lw, t, self.alpha, self.beta, self.gamma)

    def __repr__(self) -> str:
        return (
            f"BetaTCVAE(dataset_size={self.dataset_size}, alpha={self.alpha}, beta={self.beta}, "
            f"gamma={self.gamma}, estimator={self.estimator!r}, site={self.site!r})"
        )
