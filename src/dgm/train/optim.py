"""``adam``: the optimizer of every dgm task, ``torch.optim.Adam`` fused where it can be.

The default ``torch.optim.Adam`` on CPU updates one parameter tensor at a time, about ten
kernel launches each: for the small networks of this field that loop is a quarter to a third
of a training step (``benchmarks/results/step_time.md``). ``fused=True`` updates every
parameter in one kernel with the same arithmetic. It needs floating-point parameters on a
CPU or CUDA device; anything else gets the default implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

FUSED_DEVICES = ("cpu", "cuda")


def adam(
    params: Iterable[Any],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, betas, eps)``, fused when every parameter allows it.

    Args:
        params: parameters, or parameter groups (dicts with ``"params"`` and their own
            settings), as ``torch.optim.Adam`` takes them.
    """
    params = list(params)
    flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(flat) and all(
        p.is_floating_point() and p.device.type in FUSED_DEVICES for p in flat
    )
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True if fused else None)


__all__ = ["FUSED_DEVICES", "adam"]
