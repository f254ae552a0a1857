"""Learning-rate schedules: a factor of the optimizers' learning rates as a function of progress.

A schedule maps the fraction of the planned steps done, ``t`` in [0, 1], to a factor of every
parameter group's configured learning rate. It holds no state: the loop sets each group's rate
from the step counter before every step, so a resumed run follows the same schedule without
anything extra in the checkpoint, and optimizers with different rates (a critic's, a
baseline's) keep their ratio.

``LR_SCHEDULES`` is the table (``train.lr_schedule``); ``final`` is the factor a decaying
schedule ends at (``train.lr_final``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..registry import Registry

Factor = Callable[[float], float]  # progress t in [0, 1] -> factor of the base learning rate

LR_SCHEDULES: Registry[Factor] = Registry("learning-rate schedule")


def _constant(final: float = 1.0) -> Factor:
    return lambda t: 1.0


def _exponential(final: float = 0.1) -> Factor:
    return lambda t: final ** min(max(t, 0.0), 1.0)


def _cosine(final: float = 0.0) -> Factor:
    return lambda t: final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


IWAE_PHASES = 8  # Burda et al. (2016), App. D: 3^i passes at 10^(-i/7), i = 0..7


def _iwae(final: float = 0.1) -> Factor:
    """The IWAE paper's staircase, compressed to the budget: phase i of 8 takes a share 3^i /
    3280 of the steps at factor final^(i/7) (the paper: final = 0.1, 3280 passes)."""
    total = sum(3**i for i in range(IWAE_PHASES))
    ends = [sum(3**j for j in range(i + 1)) / total for i in range(IWAE_PHASES)]

    def factor(t: float) -> float:
        phase = next((i for i, end in enumerate(ends) if t < end), IWAE_PHASES - 1)
        return final ** (phase / (IWAE_PHASES - 1))

    return factor


LR_SCHEDULES.add("constant", _constant, "the configured rate throughout")
LR_SCHEDULES.add("exponential", _exponential, "rate * final^t: a smooth decay to rate * final")
LR_SCHEDULES.add("cosine", _cosine, "a half cosine from rate to rate * final")
LR_SCHEDULES.add(
    "iwae",
    _iwae,
    "the IWAE paper's 8 phases (3^i shares of the budget at final^(i/7)), compressed",
)


def lr_schedule(name: str, final: float | None = None) -> Factor:
    """The factor function of schedule ``name`` (``final``: its last factor, default its own)."""
    if final is not None:
        lowest = 0.0 if name == "cosine" else None  # a decay by powers cannot reach 0
        if not ((final >= 0 if lowest is not None else final > 0) and final <= 1):
            interval = "[0, 1]" if lowest is not None else "(0, 1]"
            raise ValueError(
                f"lr_final must be in {interval} for the {name} schedule (a factor of the "
                f"rate), got {final}"
            )
    build = LR_SCHEDULES.build
    return build(name) if final is None else build(name, final=final)


__all__ = ["LR_SCHEDULES", "Factor", "lr_schedule"]
