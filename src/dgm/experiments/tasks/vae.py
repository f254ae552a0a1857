"""The VAE task: any posterior family x any prior x ELBO / IWAE / the other objectives, and
MCMC from q (``objective.hmc_steps``), on image data (``dgm.models.vae``).

YAML: ``task: vae`` (or no ``task:``: files written before tasks are VAE runs) with the
sections ``data``, ``model``, ``objective``, ``train`` and ``eval``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ...infer import HMC
from ...models.posteriors import POSTERIORS
from ...models.priors import PRIORS
from ...models.vae import LIKELIHOODS, VAEGuide, VAEModel
from ...nn.mlp import ACTIVATIONS
from ...objectives import OBJECTIVES, MCMCFromQ
from ...objectives.registry import ParticleOptions
from ...options import Options, read_when
from ..config import ConfigError, above, at_least, choice, component, extended, resumable
from .latent import (
    AISEvalConfig,
    LatentConfig,
    LatentVariableTask,
    nest_posterior_and_prior,
    objective_section,
)


@dataclass(kw_only=True)
class VAEModelConfig:
    """The programs: sizes, likelihood, the posterior family of every layer, the prior on top."""

    latent_sizes: list[int] = at_least(1, factory=lambda: [50])
    hidden_sizes: list[list[int]] = at_least(1, factory=lambda: [[200, 200]])
    likelihood: str = choice(LIKELIHOODS, "bernoulli")
    activation: str = choice(ACTIVATIONS, "tanh")
    # every layer's family and its options (e.g. {name: iaf, flow_length: 2})
    posterior: Options = component(POSTERIORS, "diagonal")
    # the prior on the top layer and its options (e.g. {name: vamp, components: 500})
    prior: Options = component(PRIORS, "normal")


def _hmc(spec: Any) -> Any:
    """A setting of the HMC kernel, read only with ``objective.hmc_steps`` > 0."""
    return read_when(lambda o: o.hmc_steps > 0, "objective.hmc_steps > 0", spec)


@dataclass(kw_only=True)
class MCMCFromQOptions:
    """The bound, optionally with its samples refined by HMC on p(z | x) before the decoder
    learns from them (Hoffman 2017; ``dgm.objectives.MCMCFromQ``)."""

    hmc_steps: int = at_least(0, 0)  # HMC transitions per training step (0: no refinement)
    hmc_leapfrog: int = _hmc(at_least(1, 5))  # leapfrog steps per transition
    # the initial step size (adapted toward hmc_target_accept)
    hmc_step_size: float = _hmc(above(0, 0.05))
    hmc_target_accept: float = _hmc(above(0, 0.8))


# the objectives that are a bound (which MCMC from q refines) take its settings too
VAE_OBJECTIVES = extended(
    OBJECTIVES, [n for n in OBJECTIVES.names() if OBJECTIVES[n].bound], MCMCFromQOptions
)


@dataclass(kw_only=True)
class VAEConfig(LatentConfig):
    """A VAE run."""

    task: str = "vae"
    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    objective: Options = objective_section("iwae", VAE_OBJECTIVES)
    eval: AISEvalConfig = resumable(factory=AISEvalConfig)

    def check(self) -> None:
        super().check()
        m, o = self.model, self.objective
        dreg = getattr(o, "dreg", False)
        if dreg and not POSTERIORS[m.posterior.name].rescorable:
            raise ConfigError(
                f"objective.dreg re-scores the guide's samples under a detached copy of q, which "
                f"needs q's inverse; a {m.posterior.name} flow has none (or a slow one): use "
                f"model.posterior={' or '.join(POSTERIORS.names(rescorable=True))}, or "
                "objective.dreg=false"
            )
        if PRIORS[m.prior.name].single_layer and len(m.latent_sizes) != 1:
            raise ConfigError(
                f"model.prior={m.prior.name} mixes the encoder's posteriors at pseudo-inputs: it needs "
                "one stochastic layer (model.latent_sizes with one entry)"
            )
        e = self.eval
        if (
            e.estimator == "ais"
            and e.ais_start == "guide"
            and not POSTERIORS[m.posterior.name].rescorable
        ):
            raise ConfigError(
                f"eval.estimator=ais from the guide scores q(z | x) at every HMC state, and a "
                f"{m.posterior.name} flow cannot score values it did not draw (no inverse, or a slow "
                "one): set eval.ais_start=prior (it needs more eval.ais_steps), or "
                f"model.posterior={' or '.join(POSTERIORS.names(rescorable=True))}"
            )
        if isinstance(o, MCMCFromQOptions) and o.hmc_steps:
            if len(m.latent_sizes) != 1:
                raise ConfigError(
                    "objective.hmc_steps moves one latent site: use one stochastic layer "
                    "(model.latent_sizes with one entry)"
                )
            if dreg:
                raise ConfigError("objective.hmc_steps and objective.dreg do not combine")


class VAETask(LatentVariableTask[VAEConfig]):
    """Variational autoencoders (``dgm.models.vae``) with the posteriors, priors and objectives
    of ``POSTERIORS``, ``PRIORS`` and ``OBJECTIVES``."""

    name = "vae"
    Config = VAEConfig
    legacy_model = "vae"

    @property
    def activation(self) -> str:  # type: ignore[override]
        return self.cfg.model.activation

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        nest_posterior_and_prior(raw, resolved, prior=True)
        return super().migrate(raw, resolved)

    def programs(self, data_size: int) -> tuple[nn.Module, nn.Module]:
        m = self.cfg.model
        hidden = [tuple(h) for h in m.hidden_sizes]
        guide = VAEGuide(data_size, m.latent_sizes, hidden, m.activation, m.posterior)
        # the VampPrior mixes the Gaussian part of q: a flow posterior's base (a mixture needs
        # closed-form parts)
        encoder = guide.layers[0].base
        prior = PRIORS.create(m.prior, m.latent_sizes[-1], data_size, encoder)
        model = VAEModel(data_size, m.latent_sizes, hidden, m.likelihood, m.activation, prior)
        return model, guide

    def objective(self, data_size: int) -> Any:
        o = self.cfg.objective
        if not (isinstance(o, MCMCFromQOptions) and o.hmc_steps):
            return super().objective(data_size)
        assert isinstance(o, ParticleOptions)
        kernel = HMC(
            num_leapfrog=o.hmc_leapfrog,
            step_size=o.hmc_step_size,
            target_accept=o.hmc_target_accept,
            shared_step_size=True,
            min_adapt_rate=0.01,
        )
        return MCMCFromQ(kernel, o.hmc_steps, o.num_particles, OBJECTIVES[o.name].bound)
