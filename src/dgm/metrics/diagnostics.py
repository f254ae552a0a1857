"""Estimator diagnostics: effective sample size of importance weights, gradient signal-to-noise."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

MIN_GRADIENT_DRAWS = 2  # a variance needs two draws


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = (sum_k w_k)^2 / sum_k w_k^2 over the leading (particle) dimension: ``[K, *B] -> [*B]``.

    Between 1 (one weight dominates) and K (equal weights); computed from log-weights stably.
    """
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


@dataclass
class GradientStats:
    """Moments of a stochastic gradient over repeated draws on one fixed batch.

    Attributes:
        mean: the average gradient, flattened over the chosen parameters.
        variance: its per-coordinate variance.
        snr: ||mean||_2 / sqrt(total variance): the signal-to-noise ratio of the gradient
            vector (Rainforth et al. 2018 use |mean| / std per coordinate; the norm ratio is
            not dominated by coordinates whose gradient happens to be deterministic).
        total_variance: sum of the per-coordinate variances (trace of the covariance).
    """

    mean: Tensor
    variance: Tensor
    snr: float
    total_variance: float


def gradient_stats(
    objective: Callable[..., Tensor],
    model: nn.Module,
    guide: nn.Module,
    *args: Any,
    params: Iterable[nn.Parameter] | None = None,
    num_draws: int = 20,
    **kwargs: Any,
) -> GradientStats:
    """Draw the gradient of ``-objective(model, guide, *args).mean()`` ``num_draws`` times.

    The spread across draws at fixed parameters and data is the estimator's own noise: the
    quantity that separates REINFORCE, NVIL, VIMCO, RWS and relaxations on discrete models.

    Args:
        objective: a training objective, e.g. ``dgm.objectives.RWS(5)``.
        model, guide, *args, **kwargs: as the objective takes them (``args`` is the batch).
        params: whose gradient to measure; default the guide's parameters.
        num_draws: repetitions (>= 2).
    """
    if num_draws < MIN_GRADIENT_DRAWS:
        raise ValueError(
            f"gradient_stats needs num_draws >= {MIN_GRADIENT_DRAWS} to estimate a variance"
        )
    chosen = [p for p in (guide.parameters() if params is None else params) if p.requires_grad]
    if not chosen:
        raise ValueError("gradient_stats: no parameters that require gradients")
    draws = []
    for _ in range(num_draws):
        loss = -objective(model, guide, *args, **kwargs).mean()
        grads = torch.autograd.grad(loss, chosen, allow_unused=True)
        flat = [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, chosen, strict=True)
        ]
        draws.append(torch.cat(flat))
    g = torch.stack(draws)
    mean, var = g.mean(0), g.var(0)
    total = var.sum()
    snr = (mean.norm() / total.sqrt()).item() if total > 0 else float("inf")
    return GradientStats(mean, var, snr, total.item())
