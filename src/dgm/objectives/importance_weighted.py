"""The importance-weighted bound (IWAE), with VIMCO control variates and the DReG gradient."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..ppl import replay, trace
from ..registry import at_least
from ._surrogate import (
    check_fresh,
    fit_baselines,
    frozen,
    leave_one_out_baseline,
    magic_box,
    split_baselines,
)
from .weights import LogWeights, log_weights


def iwae(lw: LogWeights, dreg: bool = False) -> Tensor:
    """Per-data-point importance-weighted bound.

        L_K(x) = log (1/K) sum_k w_k,   w_k = p(x, z_k) / q(z_k | x),   z_k ~ q(z | x)

    L_1 is the ELBO; L_K increases with K and tends to log p(x) (Burda et al. 2016, Thm. 1).

    Gradients: reparameterized sites get sum_k w~_k grad log w_k (w~ the normalized weights).
    Non-reparameterized guide sites add the score-function term with the VIMCO per-particle
    control variate (Mnih & Rezende 2016, Eq. 10): log L_K - log L_K^{-k}, where the k-th
    weight is replaced by the geometric mean of the others.

    A guide site sampled with ``dgm.sample(..., infer={"baseline": b})`` uses its ``b``
    instead of VIMCO's control variate: its term is sum_k (log L_K - b_k) grad log q_site(z_k
    | x), i.e. ``b`` stands in for log L_K^{-k} and is subtracted from the same learning
    signal (log L_K, before any control variate) that VIMCO centres. With K = 1, log L_1 =
    log w_1 and the term is the ELBO's, exactly as ``elbo`` computes it. ``b`` is detached in
    that term, must broadcast to ``[K, B]`` and must not depend on the site's own value; one
    that carries a gradient is fitted to log L_K by least squares (as in ``elbo``). The other
    score-function sites keep VIMCO's control variate. Score terms use each site's unscaled
    (but masked) log q, as in ``elbo``.

    With ``dreg=True`` the guide gets the doubly-reparameterized gradient (Tucker et al. 2018,
    Eq. 7), sum_k w~_k^2 d log w_k / dz_k dz_k / dphi with the density of q held fixed, which
    removes the score term whose variance grows with K; the model keeps the IWAE gradient.
    It re-runs the guide once with its parameters detached.

    References:
        Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", 2016.
        Tucker, Lawson, Gu & Maddison, "Doubly Reparameterized Gradient Estimators for Monte
        Carlo Objectives", 2018.
        Mnih & Rezende, "Variational Inference for Monte Carlo Objectives", 2016.

    Args:
        lw: weights from ``log_weights``, ``[K, B]``.
        dreg: use the doubly-reparameterized guide gradient (all guide sites must be
            reparameterized and unscaled).

    Returns:
        The per-data-point bound, shape ``[B]``.
    """
    check_fresh(lw)
    log_w = lw.log_w
    k = log_w.shape[0]
    bound = torch.logsumexp(log_w, 0) - math.log(k)
    if dreg:
        return bound.detach() + magic_box(_dreg_surrogate(lw))
    sites = lw.score_sites
    if sites:
        signal = log_w.detach()
        log_l = bound.detach()  # the learning signal of every particle, before control variates
        shared, own = split_baselines(sites, signal)
        score = lw.score_log_q(shared)
        if score is not None:
            if k > 1:
                signal = vimco_signal(signal)
            else:
                signal = signal - leave_one_out_baseline(signal)
            bound = bound + magic_box(signal * score).sum(0)
        for s, b_s in own:
            bound = bound + magic_box((log_l - b_s.detach()) * s.unscaled_log_prob).sum(0)
        fit = fit_baselines(own, log_l.expand_as(signal))
        if fit is not None:
            bound = bound + fit.mean(0)
    return bound


def vimco_signal(log_w: Tensor) -> Tensor:
    """VIMCO's per-particle learning signal log L_K - log L_K^{-k}, shape ``[K, *batch]``.

    L_K^{-k} is the IWAE estimate with log w_k replaced by the mean of the other K - 1
    log-weights (Mnih & Rezende 2016, Eq. 9); it does not depend on z_k. Computed in O(K)
    time and memory: the sum of the other weights is the total minus w_k, shifted by the
    largest weight (so at least one term of the remainder is 1 and nothing cancels), except
    for the largest weight itself, whose remainder is summed directly under the second
    largest.
    """
    k = log_w.shape[0]
    others_mean = (log_w.sum(0, keepdim=True) - log_w) / (k - 1)
    top = log_w.topk(2, dim=0)
    m1, m2 = top.values[:1], top.values[1:2]
    is_max = torch.zeros_like(log_w, dtype=torch.bool).scatter_(0, top.indices[:1], True)
    scaled = torch.exp(log_w - m1)
    rest = (scaled.sum(0, keepdim=True) - scaled).clamp(min=torch.finfo(log_w.dtype).tiny)
    rest_of_max = torch.where(is_max, 0.0, torch.exp(log_w - m2)).sum(0, keepdim=True)
    log_others = torch.where(is_max, m2 + rest_of_max.log(), m1 + rest.log())
    log_l_minus = torch.logaddexp(log_others, others_mean)
    return torch.logsumexp(log_w, 0, keepdim=True).squeeze(0) - log_l_minus


def _dreg_surrogate(lw: LogWeights) -> Tensor:
    """sum_k w~_k (log p - log q_stopgrad) with the gradient into every z_k scaled by w~_k."""
    not_reparam = [s.name for s in lw.guide_trace.latent if not s.is_reparameterized]
    if not_reparam:
        raise ValueError(
            f"iwae(dreg=True) needs reparameterized guide sites; {not_reparam} are not. "
            "Use iwae(lw) (VIMCO control variates) for discrete latents."
        )
    scaled = [s.name for s in lw.guide_trace.latent if s.scale is not None]
    if scaled:
        # DReG's identity turns E[w~_k dlog q/dphi] into a pathwise term, which yields the
        # w~_k^2 weights only when log q enters log w with coefficient 1
        raise ValueError(
            f"iwae(dreg=True) needs unscaled guide sites; {scaled} are scaled (dgm.scale), "
            "which changes DReG's weights; use iwae(lw) or scale only the model's sites"
        )
    w = torch.softmax(lw.log_w.detach(), 0)
    lw.hooked = True
    _scale_value_gradients(lw.model_trace.latent, w)
    with trace() as rescored, replay(lw.guide_trace, alias=True):
        frozen(lw.guide)(*lw.args, **lw.kwargs)
    for s in rescored.latent:
        # re-score under the first run's mask (and its scale: none), also when the handlers
        # were entered around log_weights only, or only around this call
        first = lw.guide_trace[s.name]
        s.mask, s.scale = first.mask, first.scale
    log_q_frozen = rescored.log_prob_sum(rescored.latent)
    # hooks act in the backward pass only, so they may come after the densities; registered
    # before them, torch.compile loses the sites' cached log-densities (torch 2.13)
    _scale_value_gradients(rescored.latent, w)
    return (w * (lw.log_p - log_q_frozen)).sum(0)


def _scale_value_gradients(sites: list[Any], w: Tensor) -> None:
    for s in sites:
        v = s.value
        if v.shape[: w.dim()] != w.shape:
            raise ValueError(
                f"iwae(dreg=True): site {s.name!r} has value shape {list(v.shape)}, which does "
                f"not start with the weights' shape {list(w.shape)}; DReG needs one latent "
                "value per particle and data point"
            )
        if v.requires_grad:
            scale = w.reshape(w.shape + (1,) * (v.dim() - w.dim()))
            v.register_hook(lambda g, scale=scale: g * scale)


class IWAE:
    """The IWAE bound as a training objective: ``IWAE(K)(model, guide, x) -> [B]``."""

    def __init__(self, num_particles: int = 5, dreg: bool = False) -> None:
        at_least("num_particles", num_particles, 1)
        self.num_particles = num_particles
        self.dreg = dreg

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=self.num_particles, **kwargs)
        return iwae(lw, dreg=self.dreg)

    def __repr__(self) -> str:
        return f"IWAE(num_particles={self.num_particles}, dreg={self.dreg})"
