"""The training objectives by name: the one table the configuration chooses from.

Every entry is built as ``build(num_particles=..., dreg=..., phi=..., temperature=...,
baseline=...)`` and takes the options it uses. Capabilities:

- ``bound``: the bound whose samples ``MCMCFromQ`` can refine (``"elbo"``, ``"iwae"``) or
  ``None``;
- ``dreg``: accepts the doubly-reparameterized guide gradient;
- ``learns_model``: trains the model on data (``False``: the guide alone, on simulations);
- ``baseline``: needs a baseline network ``C(x)`` (NVIL);
- ``site_baselines``: honours a site's own control variate ``infer={"baseline": b}`` (and
  fits a learned one: ``elbo``, ``iwae``);
- ``disentangle``: a disentangling VAE objective (beta-VAE and its successors), built with
  ``dataset_size``, ``beta``, ``alpha``, ``gamma``, ``estimator``, ``capacity``,
  ``capacity_steps``, ``lambda_od``, ``lambda_d``, ``discriminator`` (a weight given as
  ``None`` takes the method's published default); such objectives use one particle;
- ``factorized``: needs q(z | x) to factorize with closed-form marginals (its estimates use
  q(z_d | x) per coordinate: beta-TCVAE's total correlation, DIP-VAE's covariance);
- ``critic``: trains a discriminator beside the VAE, in the alternating step (FactorVAE).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import Registry
from .beta_vae import AnnealedCapacity, BetaVAE
from .concrete import Concrete
from .dip_vae import DIPVAE
from .elbo import ELBO
from .factor_vae import FactorVAE
from .iwae import IWAE
from .nvil import NVIL
from .total_correlation import BetaTCVAE
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


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _beta_vae(*, beta: float | None = None, **_: Any) -> Any:
    return BetaVAE(_or(beta, 4.0))


def _annealed(
    *, gamma: float | None = None, capacity: float = 25.0, capacity_steps: int = 100000, **_: Any
) -> Any:
    return AnnealedCapacity(_or(gamma, 1000.0), capacity, capacity_steps)


def _beta_tcvae(
    *,
    dataset_size: int,
    alpha: float = 1.0,
    beta: float | None = None,
    gamma: float | None = None,
    estimator: str = "mss",
    **_: Any,
) -> Any:
    return BetaTCVAE(dataset_size, alpha, _or(beta, 6.0), _or(gamma, 1.0), estimator)


def _factor_vae(*, discriminator: nn.Module, gamma: float | None = None, **_: Any) -> Any:
    return FactorVAE(discriminator, _or(gamma, 35.0))


def _dip(kind: str) -> Any:
    def build(*, lambda_od: float = 10.0, lambda_d: float | None = None, **_: Any) -> Any:
        return DIPVAE(kind, lambda_od, lambda_d)

    return build


OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.add(
    "elbo",
    _elbo,
    "the ELBO (score-function terms with a leave-one-out baseline for discrete latents)",
    bound="elbo",
    dreg=False,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=True,
)
OBJECTIVES.add(
    "reinforce",
    _elbo,
    "the ELBO with score-function gradients (same as elbo; named for discrete models)",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=True,
)
OBJECTIVES.add(
    "iwae",
    _iwae,
    "the importance-weighted bound (VIMCO control variates for discrete latents)",
    bound="iwae",
    dreg=True,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=True,
)
OBJECTIVES.add(
    "vimco",
    _iwae,
    "the importance-weighted bound with VIMCO control variates (same as iwae)",
    bound=None,
    dreg=True,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=True,
)
OBJECTIVES.add(
    "rws",
    _rws,
    "reweighted wake-sleep: wake-theta, and objective.phi for the guide",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=False,
)
OBJECTIVES.add(
    "wake-sleep",
    _wake_sleep,
    "the wake-sleep algorithm (one particle, sleep-phi)",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=False,
)
OBJECTIVES.add(
    "nvil",
    _nvil,
    "the ELBO with NVIL's learned baseline and variance normalization",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=True,
    disentangle=False,
    site_baselines=False,
)
OBJECTIVES.add(
    "concrete",
    _concrete,
    "the concrete relaxation of the ELBO (K=1) or IWAE bound",
    bound=None,
    dreg=False,
    learns_model=True,
    baseline=False,
    disentangle=False,
    site_baselines=False,
)
OBJECTIVES.add(
    "sleep",
    _sleep,
    "inference compilation: the guide fitted to the model's simulations",
    bound=None,
    dreg=False,
    learns_model=False,
    baseline=False,
    disentangle=False,
    site_baselines=False,
)
_DISENTANGLE = {
    "bound": None,
    "dreg": False,
    "learns_model": True,
    "baseline": False,
    "site_baselines": False,
}
OBJECTIVES.add(
    "beta-vae",
    _beta_vae,
    "beta-VAE: reconstruction - beta KL (Higgins et al. 2017; beta=1 is the VAE)",
    **_DISENTANGLE,
    disentangle=True,
    factorized=False,
    critic=False,
)
OBJECTIVES.add(
    "annealed-capacity",
    _annealed,
    "reconstruction - gamma |KL - C|, C rising linearly (Burgess et al. 2018)",
    **_DISENTANGLE,
    disentangle=True,
    factorized=False,
    critic=False,
)
OBJECTIVES.add(
    "beta-tcvae",
    _beta_tcvae,
    "beta-TCVAE: the KL split into index-code MI, total correlation and dimension-wise KL, "
    "each weighted (Chen et al. 2018)",
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
)
OBJECTIVES.add(
    "factor-vae",
    _factor_vae,
    "FactorVAE: ELBO - gamma TC, TC from a discriminator's density ratio (Kim & Mnih 2018)",
    **_DISENTANGLE,
    disentangle=True,
    factorized=False,
    critic=True,
)
OBJECTIVES.add(
    "dip-vae-i",
    _dip("i"),
    "DIP-VAE-I: ELBO - penalty on Cov[mu(x)] away from I (Kumar et al. 2018)",
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
)
OBJECTIVES.add(
    "dip-vae-ii",
    _dip("ii"),
    "DIP-VAE-II: ELBO - penalty on Cov[z] = Cov[mu] + E[diag sigma^2] away from I",
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
)

__all__ = ["OBJECTIVES"]
