"""Objectives: ``log_weights`` and pure per-data-point bounds computed from it; the
adversarial losses and penalties of GANs."""

from .adversarial import (
    CRITIC_LOSSES,
    GENERATOR_LOSSES,
    gradient_penalty,
    r1_penalty,
    unrolled_generator_loss,
)
from .concrete import Concrete
from .dip_vae import DIPVAE, dip_covariance, dip_penalty
from .evidence_bound import ELBO, elbo
from .factor_vae import FactorVAE, factor_vae_critic_loss, permute_dims
from .importance_weighted import IWAE, iwae, vimco_signal
from .kl_weighted import AnnealedCapacity, BetaVAE, beta_vae, kl_terms
from .mcmc_from_q import MCMCFromQ
from .nvil import NVIL
from .registry import OBJECTIVES
from .total_correlation import BetaTCVAE, log_qz_estimates, tc_decomposition
from .wake_sleep import RWS, Sleep, WakeSleep, sleep_phi, wake_phi, wake_theta
from .weights import LogWeights, log_weights

__all__ = [
    "CRITIC_LOSSES",
    "DIPVAE",
    "ELBO",
    "GENERATOR_LOSSES",
    "IWAE",
    "NVIL",
    "OBJECTIVES",
    "RWS",
    "AnnealedCapacity",
    "BetaTCVAE",
    "BetaVAE",
    "Concrete",
    "FactorVAE",
    "LogWeights",
    "MCMCFromQ",
    "Sleep",
    "WakeSleep",
    "beta_vae",
    "dip_covariance",
    "dip_penalty",
    "elbo",
    "factor_vae_critic_loss",
    "gradient_penalty",
    "iwae",
    "kl_terms",
    "log_qz_estimates",
    "log_weights",
    "permute_dims",
    "r1_penalty",
    "sleep_phi",
    "tc_decomposition",
    "unrolled_generator_loss",
    "vimco_signal",
    "wake_phi",
    "wake_theta",
]
