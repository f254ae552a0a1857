"""The training objectives by name: the one table the configuration chooses from.

Every entry is built as ``build(num_particles=..., dreg=..., phi=..., temperature=...,
baseline=...)`` and takes the options it uses. Capabilities:

- ``bound``: the bound whose samples ``MCMCFromQ`` can refine (``"elbo"``, ``"iwae"``) or
  ``None``;
- ``dreg``: accepts the doubly-reparameterized guide gradient;
- ``learns_model``: trains the model on data (``False``: the guide alone, on simulations);
- ``baseline``: needs a baseline network ``C(x)`` (NVIL).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import Registry
from .concrete import Concrete
from .elbo import ELBO
from .iwae import IWAE
from .nvil import NVIL
from .wake_sleep import RWS, Sleep, WakeSleep


def _elbo(*, num_particles: int = 1, **_: Any) -> Any:
    return ELBO(num_particles)


def _iwae(*, num_particles: int = 5, dreg: bool = False, **_: Any) -> Any:
    return IWAE(num_particles, dreg)


def _rws(*, num_particles: int = 5, phi: str = "wake", **_: Any) -> Any:
    return RWS(num_particles, phi)


def _wake_sleep(**_: Any) -> Any:
    return WakeSleep()


def _nvil(*, num_particles: int = 1, baseline: nn.Module | None = None, **_: Any) -> Any:
    return NVIL(baseline, num_particles)


def _concrete(*, num_particles: int = 1, temperature: float = 2 / 3, **_: Any) -> Any:
    return Concrete(num_particles, temperature)


def _sleep(*, observed: list[str] | None = None, **_: Any) -> Any:
    return Sleep(observed)


OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.add(
    "elbo",
    _elbo,
    "the ELBO (score-function terms with a leave-one-out baseline for discrete latents)",
    bound="elbo",
    dreg=False,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "reinforce",
    _elbo,
    "the ELBO with score-function gradients (same as elbo; named for discrete models)",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "iwae",
    _iwae,
    "the importance-weighted bound (VIMCO control variates for discrete latents)",
    bound="iwae",
    dreg=True,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "vimco",
    _iwae,
    "the importance-weighted bound with VIMCO control variates (same as iwae)",
    bound=None,
    dreg=True,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "rws",
    _rws,
    "reweighted wake-sleep: wake-theta, and objective.phi for the guide",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "wake-sleep",
    _wake_sleep,
    "the wake-sleep algorithm (one particle, sleep-phi)",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "nvil",
    _nvil,
    "the ELBO with NVIL's learned baseline and variance normalization",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=True,
)
OBJECTIVES.add(
    "concrete",
    _concrete,
    "the concrete relaxation of the ELBO (K=1) or IWAE bound",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
)
OBJECTIVES.add(
    "sleep",
    _sleep,
    "inference compilation: the guide fitted to the model's simulations",
    bound=None,
    dreg=False,
    learns_model=False,
    baseline=False,
)

__all__ = ["OBJECTIVES"]
