"""Bits per dimension of a flow density model: honest test numbers for discrete images.

For an integer image x with D dimensions and a model whose ``log_prob(x)`` is a bound on
log P(x) (dequantization and every preprocessing log-determinant included, as
``dgm.models.flow_model.FlowDensity`` computes it), bits/dim = -log2 P(x) / D. With several
dequantization draws u_1..u_K the importance-weighted bound

    log P(x) >= log (1/K) sum_k exp(log_prob(x; u_k))

is tighter than one draw's (Theis et al. 2016; Ho et al. 2019, Sec. 3.1), and never looser.

References:
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models", 2016.
    Ho, Chen, Srinivas, Duan & Abbeel, "Flow++", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..progress import tracked


@torch.no_grad()
def bits_per_dim(
    log_prob: Callable[[Tensor], Tensor], x: Tensor, draws: int = 1, batch_size: int = 256
) -> Tensor:
    """Per-point bits/dim ``[N]`` of ``x`` ``[N, ...]`` (each point has ``x[0].numel()`` dims).

    Args:
        log_prob: ``x -> [B]`` log-probability bound (a fresh dequantization per call), e.g.
            ``model.log_prob``.
        draws: dequantization draws K for the importance-weighted bound (1: the plain bound).
        batch_size: points per call.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    dims = x[0].numel()
    out = []
    what = f"bits/dim of {len(x)} points, K={draws}"
    for chunk in tracked(x.split(batch_size), what, unit="batch"):
        lp = torch.stack([log_prob(chunk) for _ in range(draws)])  # [K, B]
        bound = torch.logsumexp(lp, 0) - math.log(draws)
        out.append(-bound / (dims * math.log(2)))
    return torch.cat(out)


@torch.no_grad()
def negative_log_likelihood(
    log_prob: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 1024
) -> Tensor:
    """Per-point -log p(x) in nats ``[N]`` for continuous data (no dequantization)."""
    chunks = tracked(x.split(batch_size), f"-log p(x) of {len(x)} points", unit="batch")
    return torch.cat([-log_prob(chunk) for chunk in chunks])


__all__ = ["bits_per_dim", "negative_log_likelihood"]
