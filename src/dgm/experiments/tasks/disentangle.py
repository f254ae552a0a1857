"""The disentangle task: VAEs that separate the factors of variation, and the metrics that say
whether they did (``dgm.objectives`` entries with ``disentangle=True``, ``dgm.metrics``).

Objectives: ``beta-vae`` (Higgins et al. 2017; beta=1 is the VAE), ``annealed-capacity``
(Burgess et al. 2018), ``beta-tcvae`` (Chen et al. 2018, with either estimator of log q(z)),
``factor-vae`` (Kim & Mnih 2018: a discriminator, trained in the alternating step, estimates
the total correlation) and ``dip-vae-i`` / ``dip-vae-ii`` (Kumar et al. 2018). The programs
are ``dgm.models.image_vae`` (the papers' conv network, or Chen et al.'s MLP); the data set
size N that the total-correlation estimators need is the training split's, from the data.

Evaluation adds the disentanglement metrics (``eval.metrics``, ``dgm eval RUN --metrics``)
on fresh draws from the data set's factor grid, with the published protocol's sizes as
defaults; the report adds latent traversals and the code-factor mutual-information heatmap.

YAML: ``task: disentangle`` with ``data`` (``dsprites`` or ``dsprites32`` for the metrics),
``model``, ``objective``, ``train`` and ``eval``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data import DATASETS, Splits
from ...metrics import posterior_means
from ...metrics.disentanglement import mig
from ...metrics.disentanglement_suite import (
    DISENTANGLEMENT_METRICS,
    MetricSettings,
    code_factor_information,
    disentanglement_metrics,
)
from ...models.image_vae import ARCHITECTURES, ImageVAEGuide, ImageVAEModel
from ...models.posteriors import POSTERIORS
from ...objectives import OBJECTIVES, log_weights
from ...objectives.factor_vae import Discriminator, factor_vae_critic_loss
from ...objectives.registry import FactorVAEOptions, ObjectiveContext
from ...objectives.total_correlation import tc_decomposition
from ...options import Options
from ...ppl import condition, trace
from ...report import image_grid
from ...report.figures import heatmap
from ...train import AlternatingStep, Step, Update
from ...train.optim import adam
from ...train.state import callable_of
from ...train.step import Data
from ..config import ConfigError, at_least, choice, component, resumable
from ..task import Parts, Picture, Wrap
from .latent import (
    AISEvalConfig,
    LatentConfig,
    LatentVariableTask,
    nest_posterior_and_prior,
    objective_part,
    objective_section,
)

TC_POINTS = 1000  # validation points the total-correlation terms are estimated from


@dataclass(kw_only=True)
class DisentangleModelConfig:
    """The programs (``dgm.models.image_vae``)."""

    latent_size: int = at_least(1, 10)
    architecture: str = choice(ARCHITECTURES, "conv")
    posterior: Options = component(POSTERIORS, "diagonal")  # and its options


def disentangling() -> list[str]:
    """The disentangling objectives (the task's choices)."""
    return OBJECTIVES.names(disentangle=True)


@dataclass(kw_only=True)
class DisentangleEvalConfig(AISEvalConfig):
    """Final evaluation: the test bound and the disentanglement metrics (published sizes)."""

    num_particles: int = at_least(1, 100)  # importance-sampled test log p(x)
    metrics: list[str] = choice(
        DISENTANGLEMENT_METRICS, factory=lambda: list(DISENTANGLEMENT_METRICS)
    )
    num_train: int = at_least(2, 10000)  # points the metrics' predictors are fitted on
    num_test: int = at_least(2, 5000)  # points they are scored on
    # the metrics' sizes stay settable whichever metrics a run (or `dgm eval --metrics`)
    # computes: a file sets them for its protocol, a command may narrow the metrics
    score_batch: int = at_least(2, 64)  # factor-vae / beta-vae scores: images per vote
    # mig, modularity, the validation MIG and the report's heatmap: bins per code dimension
    bins: int = at_least(2, 20)
    chen_points: int = at_least(2, 10000)  # mig[chen2018]: the data set q(z) is mixed over
    chen_samples: int = at_least(1, 10000)  # mig[chen2018]: entropy samples
    seed: int = at_least(0, 0)  # the metrics' own random draws


@dataclass(kw_only=True)
class DisentangleConfig(LatentConfig):
    """A disentanglement run."""

    task: str = "disentangle"
    model: DisentangleModelConfig = field(default_factory=DisentangleModelConfig)
    objective: Options = objective_section("beta-vae", names=disentangling)
    eval: DisentangleEvalConfig = resumable(factory=DisentangleEvalConfig)

    def check(self) -> None:
        super().check()
        m, o, e = self.model, self.objective, self.eval
        entry = OBJECTIVES[o.name]
        if entry.factorized and not POSTERIORS[m.posterior.name].factorized:
            raise ConfigError(
                f"objective.name={o.name} needs q(z | x) to factorize over the coordinates of "
                f"z with closed-form marginals (its estimates use q(z_d | x) per dimension); "
                f"model.posterior={m.posterior.name} does not: use model.posterior="
                f"{' or '.join(POSTERIORS.names(factorized=True))}"
            )
        if e.metrics and not DATASETS[self.data.name].factors:
            raise ConfigError(
                f"eval.metrics ({', '.join(e.metrics)}) compare the code with ground-truth "
                f"factors, and data.name={self.data.name} has none: use data.name="
                f"{' or '.join(DATASETS.names(factors=True))}, or eval.metrics=[]"
            )
        if entry.capabilities.get("batch_statistics") and self.train.batch_size < 2:
            raise ConfigError(
                f"train.batch_size={self.train.batch_size}: objective.name={o.name} estimates "
                "its penalty across the points of a batch (it compares each with the others): "
                "give train.batch_size >= 2 (the papers use 64)"
            )
        if entry.critic and self.train.guide_lr is not None:
            raise ConfigError(
                f"train.guide_lr: objective.name={o.name} trains the VAE with one Adam (and its "
                "discriminator with objective.critic_lr); set train.guide_lr to null"
            )
        if "mig_chen" in e.metrics and not POSTERIORS[m.posterior.name].factorized:
            raise ConfigError(
                "eval.metrics: mig_chen estimates entropies from q(z_d | x) per dimension; "
                f"model.posterior={m.posterior.name} has no closed-form marginals"
            )


class DisentangleTask(LatentVariableTask[DisentangleConfig]):
    """Disentangling VAEs on image data, evaluated against ground-truth factors."""

    name = "disentangle"
    Config = DisentangleConfig

    def programs(self, data_size: int) -> tuple[nn.Module, nn.Module]:
        m = self.cfg.model
        shape = DATASETS[self.cfg.data.name].shape
        model = ImageVAEModel(shape, m.latent_size, m.architecture)
        guide = ImageVAEGuide(shape, m.latent_size, m.architecture, m.posterior)
        return model, guide

    @property
    def adversarial(self) -> bool:
        """Whether the objective needs a discriminator (FactorVAE)."""
        return bool(OBJECTIVES[self.cfg.objective.name].critic)

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """Before issue 27 FactorVAE's settings were ``model.discriminator_hidden``,
        ``model.discriminator_layers`` and ``train.critic_lr``: they move to ``objective``
        (for other objectives they were never read: a run directory's are dropped, a file's
        refused), and a weight ``null`` (the published default) is the objective's default."""
        nest_posterior_and_prior(raw, resolved, prior=False)
        objective = raw.get("objective")
        if isinstance(objective, dict):
            for key in ("beta", "gamma"):
                if key in objective and objective[key] is None:
                    del objective[key]
            moves = [("model", "discriminator_hidden"), ("model", "discriminator_layers")]
            for section, key in [*moves, ("train", "critic_lr")]:
                old = raw.get(section)
                if isinstance(old, dict) and key in old:
                    if objective.get("name") == "factor-vae":
                        objective.setdefault(key, old.pop(key))
                    elif resolved:
                        del old[key]
        return super().migrate(raw, resolved)

    def discriminator(self) -> Discriminator:
        o = self.cfg.objective
        assert isinstance(o, FactorVAEOptions)
        hidden, layers = o.discriminator_hidden, o.discriminator_layers
        return Discriminator(self.cfg.model.latent_size, hidden, layers)

    def objective(
        self,
        data_size: int,
        dataset_size: int | None = None,
        discriminator: nn.Module | None = None,
    ) -> Any:
        d = self.cfg.data
        if dataset_size is None:  # the dry build of check(): the size the data will have
            dataset_size = d.train_points or DATASETS[d.name].train_size
        if discriminator is None and self.adversarial:
            discriminator = self.discriminator()
        context = ObjectiveContext(dataset_size=dataset_size, discriminator=discriminator)
        return OBJECTIVES.create(self.cfg.objective, context)

    def build(self, data: Splits, training: bool = True) -> Parts:
        model, guide = self.programs(data.data_size)
        parts: Parts = {"model": model, "guide": guide}
        if training:
            assert isinstance(model, ImageVAEModel)
            model.set_output_bias(data.train.mean(0))
            critic = self.discriminator() if self.adversarial else None
            objective = self.objective(data.data_size, len(data.train), critic)
            if critic is not None:
                parts["discriminator"] = critic
            parts["objective"] = objective_part(objective)
        return parts

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        if not self.adversarial:
            return super().optimizers(parts)
        t, o = self.cfg.train, self.cfg.objective
        assert isinstance(o, FactorVAEOptions)
        vae = [*parts["model"].parameters(), *parts["guide"].parameters()]
        return [
            adam(vae, lr=t.lr, eps=t.adam_eps),
            adam(parts["discriminator"].parameters(), lr=o.critic_lr, betas=(0.5, 0.9)),
        ]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        if not self.adversarial:
            return super().step(parts, optimizers, wrap)
        model, guide = wrap(parts["model"]), wrap(parts["guide"])
        critic = wrap(parts["discriminator"])
        objective = callable_of(parts["objective"])
        vae_opt, critic_opt = optimizers
        clip = self.cfg.train.grad_clip

        def critic_loss(x: Data) -> torch.Tensor:
            assert isinstance(x, torch.Tensor)  # image data: one tensor per batch
            return factor_vae_critic_loss(model, guide, critic, x)

        def vae_loss(x: Data) -> torch.Tensor:
            return -objective(model, guide, x).mean()

        return AlternatingStep(
            Update("discriminator", critic_loss, critic_opt, clip),
            Update("vae", vae_loss, vae_opt, clip),
        )

    def validate(self, parts: Parts, data: Splits) -> Any:
        bound = super().validate(parts, data)
        model, guide = parts["model"], parts["guide"]
        factors = data.side.get("factor_indices", {}).get("valid")
        factorized = POSTERIORS[self.cfg.model.posterior.name].factorized
        valid = data.valid

        def validate() -> dict[str, float]:
            metrics = bound()
            device = next(model.parameters()).device
            x = valid.to(device)
            with torch.no_grad():
                if factorized and len(x) > 1:
                    # the validation points as one minibatch of the data distribution (at most
                    # TC_POINTS: the estimator holds an M x M x D matrix)
                    lw = log_weights(model, guide, x[:TC_POINTS])
                    terms = tc_decomposition(lw, max(len(data.train), TC_POINTS), "mss")
                    metrics["valid/index_code_mi"] = terms.index_code_mi.mean().item()
                    metrics["valid/total_correlation"] = terms.total_correlation.mean().item()
                    metrics["valid/dimensionwise_kl"] = terms.dimensionwise_kl.mean().item()
                if factors is not None and all(len(f.unique()) > 1 for f in factors.T):
                    codes = posterior_means(guide, x)["z"]
                    result = mig(codes.cpu(), factors, bins=self.cfg.eval.bins)
                    metrics["valid/mig[disentanglement_lib]"] = float(result.score)
            return metrics

        return validate

    def evaluate(self, parts: Parts, data: Splits) -> dict[str, Any]:
        out = super().evaluate(parts, data)
        e = self.cfg.eval
        if e.metrics:
            t0 = time.perf_counter()
            out.update(
                disentanglement_metrics(
                    parts["guide"], data.info["factor_data"], e.metrics, self.settings()
                )
            )
            out["metrics_seconds"] = round(time.perf_counter() - t0, 1)
        return out

    def settings(self) -> MetricSettings:
        """The metrics' protocol (``eval``'s sizes)."""
        e = self.cfg.eval
        return MetricSettings(
            num_train=e.num_train,
            num_test=e.num_test,
            batch_size=e.score_batch,
            bins=e.bins,
            chen_points=e.chen_points,
            chen_samples=e.chen_samples,
            seed=e.seed,
        )

    @torch.no_grad()
    def pictures(self, parts: Parts, data: Splits, run: Path) -> list[Picture]:
        """The VAE's samples and reconstructions, latent traversals, and (with factors) the
        code-factor mutual-information heatmap."""
        pictures = super().pictures(parts, data, run)
        pictures.append(self.traversals(parts, data, run / "traversals.png"))
        factor_data = data.info.get("factor_data")
        if factor_data is not None:
            path = run / "mutual_information.png"
            matrix, score = code_factor_information(parts["guide"], factor_data, self.settings())
            rows = [f"z{d}" for d in range(len(matrix))]
            title = f"I(z_d; v_k) / H(v_k)   (MIG[disentanglement_lib] {score:.3f})"
            heatmap(matrix, rows, list(factor_data.factor_names), path, title)
            pictures.append(
                Picture(
                    path.name,
                    "Normalized mutual information between code dimensions (means of q(z | x), "
                    f"{self.cfg.eval.bins}-bin histograms) and the factors: a disentangled code "
                    "has one bright cell per column",
                )
            )
        return pictures

    def traversals(self, parts: Parts, data: Splits, path: Path, steps: int = 9) -> Picture:
        """Each row moves one latent dimension from -2.5 to 2.5 around a test image's code."""
        model, guide = parts["model"], parts["guide"]
        device = next(model.parameters()).device
        code = posterior_means(guide, data.test[:1].to(device))["z"][0]
        d = code.numel()
        values = torch.linspace(-2.5, 2.5, steps, device=device)
        z = code.expand(d, steps, d).clone()
        for i in range(d):
            z[i, :, i] = values
        z = z.reshape(d * steps, d)
        with trace() as tr, condition({"z": z}):
            model(num_samples=len(z))
        caption = f"latent traversals: row i sets z_i to {steps} values in [-2.5, 2.5]"
        image_grid(tr["x"].fn.mean, data.image_shape, path, caption, columns=steps)
        return Picture(path.name, "Latent traversals (one row per code dimension)")


__all__ = ["DisentangleConfig", "DisentangleTask"]
