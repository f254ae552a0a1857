"""Objectives: ``log_weights`` and pure per-data-point bounds computed from it."""

from .concrete import Concrete
from .elbo import ELBO, elbo
from .iwae import IWAE, iwae, vimco_signal
from .log_weights import LogWeights, log_weights
from .mcmc_from_q import MCMCFromQ
from .nvil import NVIL
from .registry import OBJECTIVES
from .wake_sleep import RWS, Sleep, WakeSleep, sleep_phi, wake_phi, wake_theta

__all__ = [
    "ELBO",
    "IWAE",
    "NVIL",
    "OBJECTIVES",
    "RWS",
    "Concrete",
    "LogWeights",
    "MCMCFromQ",
    "Sleep",
    "WakeSleep",
    "elbo",
    "iwae",
    "log_weights",
    "sleep_phi",
    "vimco_signal",
    "wake_phi",
    "wake_theta",
]
