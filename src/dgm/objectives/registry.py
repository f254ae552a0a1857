"""The training objectives by name: the one table the configuration chooses from.

Every entry has its own ``Options`` dataclass (the settings it takes, each read) and is
built as ``OBJECTIVES.create(options, context)``; ``ObjectiveContext`` carries what an
objective needs beyond its settings (NVIL's baseline network, FactorVAE's discriminator, the
training set's size). ``OBJECTIVES.build("rws", num_particles=3)`` does both at once.
Capabilities:

- ``bound``: the bound whose samples ``MCMCFromQ`` can refine (``"elbo"``, ``"iwae"``) or
  ``None``;
- ``dreg``: accepts the doubly-reparameterized guide gradient;
- ``learns_model``: trains the model on data (``False``: the guide alone, on simulations);
- ``baseline``: needs a baseline network ``C(x)`` (NVIL);
- ``site_baselines``: honours a site's own control variate ``infer={"baseline": b}`` (and
  fits a learned one: ``elbo``, ``iwae``);
- ``disentangle``: a disentangling VAE objective (beta-VAE and its successors); such
  objectives use one particle;
- ``factorized``: needs q(z | x) to factorize with closed-form marginals (its estimates use
  q(z_d | x) per coordinate: beta-TCVAE's total correlation, DIP-VAE's covariance);
- ``critic``: trains a discriminator beside the VAE, in the alternating step (FactorVAE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..options import Options, above, at_least, choice
from ..registry import Registry
from .concrete import Concrete
from .dip_vae import DIPVAE
from .evidence_bound import ELBO
from .factor_vae import FactorVAE
from .importance_weighted import IWAE
from .kl_weighted import AnnealedCapacity, BetaVAE
from .nvil import NVIL
from .total_correlation import ESTIMATORS, BetaTCVAE
from .wake_sleep import PHI_MODES, RWS, Sleep, WakeSleep


@dataclass(frozen=True)
class ObjectiveContext:
    """What an objective needs beyond its settings: parts that others own or build."""

    baseline: nn.Module | None = None  # nvil: the baseline network C(x)
    discriminator: nn.Module | None = None  # factor-vae: the density-ratio discriminator
    dataset_size: int | None = None  # beta-tcvae: N, the training set's size


@dataclass(kw_only=True)
class ParticleOptions(Options):
    """An objective of K importance samples per data point."""

    num_particles: int = at_least(1, 1)


@dataclass(kw_only=True)
class IWAEOptions(ParticleOptions):
    """The importance-weighted bound; ``dreg``: the doubly-reparameterized guide gradient."""

    num_particles: int = at_least(1, 5)
    dreg: bool = False


@dataclass(kw_only=True)
class RWSOptions(ParticleOptions):
    """Reweighted wake-sleep; ``phi``: the guide's update (wake, sleep or both)."""

    num_particles: int = at_least(1, 5)
    phi: str = choice(PHI_MODES, "wake")


@dataclass(kw_only=True)
class NVILOptions(ParticleOptions):
    """NVIL; ``baseline_hidden``: hidden units of its baseline network C(x)."""

    baseline_hidden: int = at_least(1, 100)


@dataclass(kw_only=True)
class ConcreteOptions(ParticleOptions):
    """The concrete relaxation at ``temperature``."""

    temperature: float = above(0, 2 / 3)


@dataclass(kw_only=True)
class SleepOptions(Options):
    """Inference compilation; ``observed``: the model's data sites (None: its obs= sites)."""

    observed: list[str] | None = None


@dataclass(kw_only=True)
class BetaVAEOptions(Options):
    """beta on the KL (Higgins et al.: 4; 1 is the VAE)."""

    beta: float = at_least(0, 4.0)


@dataclass(kw_only=True)
class AnnealedCapacityOptions(Options):
    """gamma on |KL - C|, C rising to ``capacity`` nats over ``capacity_steps`` steps."""

    gamma: float = at_least(0, 1000.0)
    capacity: float = at_least(0, 25.0)
    capacity_steps: int = at_least(1, 100000)


@dataclass(kw_only=True)
class BetaTCVAEOptions(Options):
    """alpha on the index-code MI, beta on the total correlation, gamma on the dimension-wise
    KL (Chen et al.: 1, 6, 1), and the estimator of log q(z)."""

    alpha: float = at_least(0, 1.0)
    beta: float = at_least(0, 6.0)
    gamma: float = at_least(0, 1.0)
    estimator: str = choice(ESTIMATORS, "mss")


@dataclass(kw_only=True)
class FactorVAEOptions(Options):
    """gamma on the discriminator's total correlation (Kim & Mnih: 35), the discriminator
    (6 layers of 1000 units, leaky ReLU) and its Adam's learning rate."""

    gamma: float = at_least(0, 35.0)
    discriminator_hidden: int = at_least(1, 1000)
    discriminator_layers: int = at_least(1, 6)
    critic_lr: float = above(0, 1e-4, resumable=True)  # betas (0.5, 0.9), as published


@dataclass(kw_only=True)
class DIPVAEOptions(Options):
    """The off-diagonal and diagonal weights (None: 10 lambda_od, for the identity)."""

    lambda_od: float = at_least(0, 10.0)
    lambda_d: float | None = at_least(0, None)


def _elbo(o: ParticleOptions, c: ObjectiveContext | None = None) -> Any:
    return ELBO(o.num_particles)


def _iwae(o: IWAEOptions, c: ObjectiveContext | None = None) -> Any:
    return IWAE(o.num_particles, o.dreg)


def _rws(o: RWSOptions, c: ObjectiveContext | None = None) -> Any:
    return RWS(o.num_particles, o.phi)


def _wake_sleep(o: Options, c: ObjectiveContext | None = None) -> Any:
    return WakeSleep()


def _nvil(o: NVILOptions, c: ObjectiveContext | None = None) -> Any:
    return NVIL(c.baseline if c else None, o.num_particles)


def _concrete(o: ConcreteOptions, c: ObjectiveContext | None = None) -> Any:
    return Concrete(o.num_particles, o.temperature)


def _sleep(o: SleepOptions, c: ObjectiveContext | None = None) -> Any:
    return Sleep(o.observed)


def _beta_vae(o: BetaVAEOptions, c: ObjectiveContext | None = None) -> Any:
    return BetaVAE(o.beta)


def _annealed(o: AnnealedCapacityOptions, c: ObjectiveContext | None = None) -> Any:
    return AnnealedCapacity(o.gamma, o.capacity, o.capacity_steps)


def _beta_tcvae(o: BetaTCVAEOptions, c: ObjectiveContext | None = None) -> Any:
    if c is None or c.dataset_size is None:
        raise ValueError("beta-tcvae needs the training set's size: ObjectiveContext.dataset_size")
    return BetaTCVAE(c.dataset_size, o.alpha, o.beta, o.gamma, o.estimator)


def _factor_vae(o: FactorVAEOptions, c: ObjectiveContext | None = None) -> Any:
    if c is None or c.discriminator is None:
        raise ValueError("factor-vae needs its discriminator: ObjectiveContext.discriminator")
    return FactorVAE(c.discriminator, o.gamma)


def _dip(kind: str) -> Any:
    def build(o: DIPVAEOptions, c: ObjectiveContext | None = None) -> Any:
        return DIPVAE(kind, o.lambda_od, o.lambda_d)

    return build


OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.add(
    "elbo",
    _elbo,
    "the ELBO (score-function terms with a leave-one-out baseline for discrete latents)",
    options=ParticleOptions,
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
    options=ParticleOptions,
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
    options=IWAEOptions,
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
    options=IWAEOptions,
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
    options=RWSOptions,
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
    options=Options,
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
    options=NVILOptions,
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
    options=ConcreteOptions,
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
    options=SleepOptions,
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
    options=BetaVAEOptions,
    **_DISENTANGLE,
    disentangle=True,
    factorized=False,
    critic=False,
)
OBJECTIVES.add(
    "annealed-capacity",
    _annealed,
    "reconstruction - gamma |KL - C|, C rising linearly (Burgess et al. 2018)",
    options=AnnealedCapacityOptions,
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
    options=BetaTCVAEOptions,
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
    batch_statistics=True,  # estimated across the batch: needs two or more points
)
OBJECTIVES.add(
    "factor-vae",
    _factor_vae,
    "FactorVAE: ELBO - gamma TC, TC from a discriminator's density ratio (Kim & Mnih 2018)",
    options=FactorVAEOptions,
    **_DISENTANGLE,
    disentangle=True,
    factorized=False,
    critic=True,
    batch_statistics=True,  # estimated across the batch: needs two or more points
)
OBJECTIVES.add(
    "dip-vae-i",
    _dip("i"),
    "DIP-VAE-I: ELBO - penalty on Cov[mu(x)] away from I (Kumar et al. 2018)",
    options=DIPVAEOptions,
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
    batch_statistics=True,  # estimated across the batch: needs two or more points
)
OBJECTIVES.add(
    "dip-vae-ii",
    _dip("ii"),
    "DIP-VAE-II: ELBO - penalty on Cov[z] = Cov[mu] + E[diag sigma^2] away from I",
    options=DIPVAEOptions,
    **_DISENTANGLE,
    disentangle=True,
    factorized=True,
    critic=False,
    batch_statistics=True,  # estimated across the batch: needs two or more points
)

__all__ = [
    "OBJECTIVES",
    "AnnealedCapacityOptions",
    "BetaTCVAEOptions",
    "BetaVAEOptions",
    "ConcreteOptions",
    "DIPVAEOptions",
    "FactorVAEOptions",
    "IWAEOptions",
    "NVILOptions",
    "ObjectiveContext",
    "ParticleOptions",
    "RWSOptions",
    "SleepOptions",
]
