"""Adaptive importance sampling: fit a proposal to one data set's posterior, then sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..objectives import log_weights, wake_phi
from .importance import WeightedSamples, importance_sampling


def adaptive_importance_sampling(
    model: Callable[..., Any],
    guide: nn.Module,
    *args: Any,
    num_samples: int = 1000,
    steps: int = 200,
    lr: float = 1e-2,
    **kwargs: Any,
) -> WeightedSamples:
    """Fit q_lambda to p(z | x) by minimizing KL(p || q_lambda), then importance-sample with it.

    Each step draws ``num_samples`` proposals, self-normalizes their weights w~_k and takes an
    Adam step on -sum_k w~_k log q_lambda(z_k) (the wake-phi gradient, an estimate of
    grad KL(p || q)). Only the guide's parameters move (``guide`` is trained in place); start
    it from a learned proposal to refine it for this data set, or from a broad one.

    Args:
        model, guide: the programs; ``*args, **kwargs`` the call (one or more data sets).
        num_samples: K per step and for the final draw.
        steps: adaptation steps.
        lr: Adam's learning rate.

    Returns:
        The final ``WeightedSamples`` from the adapted proposal.
    """
    opt = torch.optim.Adam(guide.parameters(), lr=lr)
    for _ in range(steps):
        lw = log_weights(model, guide, *args, num_particles=num_samples, reparam=False, **kwargs)
        loss = -wake_phi(lw).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return importance_sampling(model, guide, *args, num_samples=num_samples, **kwargs)
