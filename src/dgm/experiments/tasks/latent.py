"""What the latent-variable tasks share: a model p(x, z) and a guide q(z | x) trained on image
data by an objective of importance weights, validated and evaluated by importance sampling.

``vae.py`` and ``sbn.py`` subclass ``LatentVariableTask`` with their programs and their
configuration sections; data, the update, validation, evaluation and pictures are here.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ...compiling import use_compile
from ...data import DATASETS, Splits
from ...infer.annealed import SCHEDULES, STARTS, ais, bdmc
from ...metrics import (
    active_units,
    effective_sample_size,
    elbo_terms,
    gradient_stats,
    log_likelihood,
)
from ...metrics.diagnostics import MIN_GRADIENT_DRAWS
from ...models.posteriors import POSTERIORS
from ...models.priors import PRIORS
from ...nn import MLP
from ...objectives import OBJECTIVES, MCMCFromQ, iwae, log_weights
from ...objectives.registry import NVILOptions, ObjectiveContext
from ...options import Options, option_names, read_when
from ...ppl import replay, trace
from ...report import image_grid
from ...train import Step, SurrogateStep
from ...train.optim import adam
from ...train.state import Stateless, callable_of
from ..config import (
    ConfigError,
    RunConfig,
    TrainConfig,
    above,
    at_least,
    choice,
    component,
    config_errors,
    resumable,
)
from ..task import Parts, Picture, Task, Wrap, points_per_chunk
from .data import ImageDataConfig


def data_objectives() -> list[str]:
    """The objectives that train a model on data (the latent-variable tasks' choices)."""
    return OBJECTIVES.names(learns_model=True, disentangle=False)


def objective_section(
    default: str, variants: dict[str, type] | None = None, names: Any = data_objectives
) -> Any:
    """The ``objective`` section: one of ``OBJECTIVES`` with its own options."""
    return component(OBJECTIVES, default, names, variants)


@dataclass(kw_only=True)
class LatentTrainConfig(TrainConfig):
    """The loop, plus a separate learning rate for the guide and the validation budget."""

    guide_lr: float | None = above(0, None, resumable=True)  # the guide's own Adam (None: one)
    valid_particles: int = at_least(1, 50)
    grad_stats_draws: int = at_least(MIN_GRADIENT_DRAWS, 10)  # for the guide's gradient SNR


ESTIMATORS = ("iwae", "ais")


@dataclass(kw_only=True)
class EvalConfig:
    """Final evaluation: importance-sampled log-likelihood and latent statistics."""

    num_particles: int = at_least(1, 5000)
    batch_size: int = at_least(1, 100)


def _ais(spec: Any) -> Any:
    """A setting of AIS, read only with ``eval.estimator=ais``."""
    return read_when(lambda e: e.estimator == "ais", "eval.estimator=ais", spec)


@dataclass(kw_only=True)
class AISEvalConfig(EvalConfig):
    """Final evaluation, and for models with continuous latents that HMC can move, with
    ``estimator: ais`` also annealed importance sampling on the first ``ais_points`` test
    points (beside the importance-sampled estimate on the same points) and the BDMC gap on
    ``bdmc_points`` points simulated from the model (``dgm.infer.ais``, ``dgm.infer.bdmc``)."""

    estimator: str = choice(ESTIMATORS, "iwae")
    ais_points: int = _ais(at_least(1, 500))
    ais_steps: int = _ais(at_least(1, 500))  # transitions from q (or the prior) to p(z | x)
    ais_chains: int = _ais(at_least(1, 8))
    ais_leapfrog: int = _ais(at_least(1, 5))
    ais_schedule: str = _ais(choice(SCHEDULES, "sigmoidal"))
    ais_start: str = _ais(choice(STARTS, "guide"))
    bdmc_points: int = _ais(at_least(0, 100))  # simulated points for the BDMC gap (0: none)


@dataclass(kw_only=True)
class LatentConfig(RunConfig):
    """The sections every latent-variable run has; tasks add ``model`` (and extend these)."""

    data: ImageDataConfig
    objective: Options = objective_section("iwae")
    train: LatentTrainConfig = field(default_factory=LatentTrainConfig)
    eval: EvalConfig = resumable(factory=EvalConfig)


C = TypeVar("C", bound=LatentConfig)
# constructor arguments that the configuration names differently
RENAMES = {
    "num_steps": "hmc_steps",
    "num_leapfrog": "hmc_leapfrog",
    "step_size": "hmc_step_size",
    "target_accept": "hmc_target_accept",
}


class LatentVariableTask(Task[C]):
    """A model and a guide on image data, trained by one objective of their log weights."""

    activation = "tanh"  # of NVIL's baseline network
    # pathwise gradients through the latents (objective.dreg applies)
    continuous_latents = True

    def programs(self, data_size: int) -> tuple[nn.Module, nn.Module]:
        """The model and the guide for points of ``data_size``."""
        raise NotImplementedError

    def objective(self, data_size: int) -> Any:
        """The training objective that ``objective`` chooses, built from its options (NVIL
        with its baseline network C(x) of ``objective.baseline_hidden`` units)."""
        o = self.cfg.objective
        baseline = None
        if isinstance(o, NVILOptions):
            baseline = MLP((data_size, o.baseline_hidden, 1), self.activation)
        return OBJECTIVES.create(o, ObjectiveContext(baseline=baseline))

    @classmethod
    def upgrade(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        data = raw.setdefault("data", {})
        if isinstance(data, dict):
            data.setdefault("name", "binarized_mnist")  # the default before tasks
        return super().upgrade(raw, resolved)

    @classmethod
    def check(cls, cfg: C) -> None:
        d = cfg.data
        if d.binarize is not None and not DATASETS[d.name].binarize:
            choices = ", ".join(DATASETS.names(binarize=True))
            raise ConfigError(
                f"data.binarize applies to data.name={choices}; {d.name} is already binary "
                "(set data.binarize to null)"
            )
        if getattr(cfg.objective, "dreg", False) and not cls.continuous_latents:
            raise ConfigError(
                f"objective.dreg: the doubly-reparameterized gradient differentiates through "
                f"the latents, and the {cls.name} task's are discrete; set objective.dreg=false"
            )
        points = d.train_points or DATASETS[d.name].train_size
        if cfg.train.batch_size > points:
            raise ConfigError(
                f"train.batch_size {cfg.train.batch_size} is larger than the training set "
                f"({points} points of {d.name}); lower it or raise data.train_points"
            )
        # a dry build: the constructors hold the rules, and a bad value fails before any data
        task = cls(cfg)
        size = math.prod(DATASETS[d.name].shape)
        with torch.random.fork_rng():
            with _errors(cfg, "model"):
                task.programs(size)
            with _errors(cfg, "objective"):
                task.objective(size)

    def data(self) -> Splits:
        return self.cfg.data.load(self.cfg.train.seed)

    def build(self, data: Splits, training: bool = True) -> Parts:
        model, guide = self.programs(data.data_size)
        parts: Parts = {"model": model, "guide": guide}
        if training:
            set_bias = getattr(model, "set_output_bias", None)
            if set_bias is not None and getattr(model, "likelihood", "bernoulli") == "bernoulli":
                set_bias(data.train.mean(0))
            parts["objective"] = objective_part(self.objective(data.data_size))
        return parts

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        t = self.cfg.train
        model_params = [*parts["model"].parameters(), *parts["objective"].parameters()]
        if t.guide_lr is None:
            params = [*model_params, *parts["guide"].parameters()]
            return [adam(params, lr=t.lr, eps=t.adam_eps)]
        # the model and the guide each with their own Adam (wake-sleep style)
        return [
            adam(model_params, lr=t.lr, eps=t.adam_eps),
            adam(parts["guide"].parameters(), lr=t.guide_lr, eps=t.adam_eps),
        ]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        order = [parts["model"], parts["guide"], parts["objective"]]
        params = [p for m in order for p in m.parameters() if p.requires_grad]
        programs = (wrap(parts["model"]), wrap(parts["guide"]))
        objective = callable_of(parts["objective"])
        return SurrogateStep(objective, programs, optimizers, params, self.cfg.train.grad_clip)

    def validate(self, parts: Parts, data: Splits) -> Callable[[], dict[str, float]]:
        t = self.cfg.train
        model, guide, part = parts["model"], parts["guide"], parts["objective"]
        objective = callable_of(part)
        device = _device(model)
        valid = data.valid.to(device)
        probe = data.train[: min(t.batch_size, 100)].to(device)
        if data.transform is not None:  # as training sees it (a dynamic binarization), drawn
            with torch.random.fork_rng(devices=[]):  # once and off the run's own RNG
                torch.manual_seed(t.seed)
                probe = data.transform(probe)

        def validate() -> dict[str, float]:
            k = t.valid_particles
            # in chunks: the whole validation set at once would hold every particle's decoder
            # activations (gigabytes)
            chunk = points_per_chunk(valid[0].numel(), k)
            bounds, ess = [], []
            with torch.no_grad():
                for x in valid.split(chunk):
                    lw = log_weights(model, guide, x, num_particles=k)
                    bounds.append(iwae(lw))
                    ess.append(effective_sample_size(lw.log_w))
            metrics = {
                f"valid/iwae_k{k}": torch.cat(bounds).mean().item(),
                f"valid/ess_k{k}": torch.cat(ess).mean().item(),
            }
            part.eval()  # measuring must not move NVIL's running statistics
            stats = gradient_stats(objective, model, guide, probe, num_draws=t.grad_stats_draws)
            if isinstance(objective, MCMCFromQ):
                metrics.update({f"valid/{k}": v for k, v in objective.diagnostics().items()})
            metrics["valid/guide_grad_snr"] = stats.snr
            metrics["valid/guide_grad_variance"] = stats.total_variance
            return metrics

        return validate

    def evaluate(self, parts: Parts, data: Splits) -> dict[str, Any]:
        model, guide = parts["model"], parts["guide"]
        k, e = self.cfg.eval.num_particles, self.cfg.eval
        test = data.test.to(_device(model))
        t0 = time.perf_counter()
        # the chunks compiled where training compiles (train.compile)
        compiled = use_compile(self.cfg.train.compile, test.device)
        ll = log_likelihood(
            model, guide, test, num_particles=k, batch_size=e.batch_size, compile=compiled
        )
        terms = elbo_terms(model, guide, test, batch_size=e.batch_size)
        metrics = {
            f"test_log_likelihood_k{k}": ll.mean().item(),
            "test_log_likelihood_stderr": _stderr(ll),
            "test_elbo": terms.elbo.mean().item(),
            "test_reconstruction": terms.reconstruction.mean().item(),
            "test_kl": terms.kl.mean().item(),
            "active_units": active_units(guide, test),
            "test_points": len(test),
            "eval_seconds": round(time.perf_counter() - t0, 1),
            "eval_compiled": compiled,
        }
        if isinstance(e, AISEvalConfig) and e.estimator == "ais":
            metrics.update(self.evaluate_ais(model, guide, test, ll))
        return metrics

    def evaluate_ais(
        self, model: nn.Module, guide: nn.Module, test: torch.Tensor, iwae_ll: torch.Tensor
    ) -> dict[str, Any]:
        """AIS on the first ``eval.ais_points`` test points beside the importance-sampled
        estimate there (a paired difference), and BDMC forward/reverse on simulated data."""
        e, t0 = self.cfg.eval, time.perf_counter()
        assert isinstance(e, AISEvalConfig)
        options: dict[str, Any] = {
            "num_steps": e.ais_steps,
            "num_chains": e.ais_chains,
            "num_leapfrog": e.ais_leapfrog,
            "schedule": e.ais_schedule,
            "start": e.ais_start,
            "batch_size": e.batch_size,
        }
        points = test[: e.ais_points]
        r = ais(model, guide, points, seed=self.cfg.train.seed, **options)
        paired = r.log_marginal - iwae_ll[: len(points)].to(r.log_marginal)
        k = e.num_particles
        metrics: dict[str, Any] = {
            "test_log_likelihood_ais": r.log_marginal.mean().item(),
            "test_log_likelihood_ais_stderr": _stderr(r.log_marginal),
            f"test_log_likelihood_k{k}_on_ais_points": iwae_ll[: len(points)].mean().item(),
            f"ais_minus_k{k}": paired.mean().item(),
            f"ais_minus_k{k}_stderr": _stderr(paired),
            "ais_points": len(points),
            "ais_steps": e.ais_steps,
            "ais_chains": e.ais_chains,
            "ais_acceptance": r.acceptance.mean().item() if len(r.acceptance) else math.nan,
            "ais_ess": r.ess.mean().item(),
        }
        if e.bdmc_points:
            b = bdmc(model, guide, test[: e.bdmc_points], seed=self.cfg.train.seed, **options)
            metrics.update(
                {
                    "bdmc_forward": b.forward.log_marginal.mean().item(),
                    "bdmc_reverse": b.reverse.log_marginal.mean().item(),
                    "bdmc_gap": b.gap.mean().item(),
                    "bdmc_gap_stderr": _stderr(b.gap),
                    "bdmc_points": len(b.data),
                }
            )
        metrics["ais_seconds"] = round(time.perf_counter() - t0, 1)
        return metrics

    @torch.no_grad()
    def pictures(self, parts: Parts, data: Splits, run: Path) -> list[Picture]:
        """samples.png (pixel means of x ~ p(x | z), z ~ p(z)) and reconstructions.png."""
        model, guide = parts["model"], parts["guide"]
        self.sample(parts, data, 64, run / "samples.png")
        x = data.test[:32].to(_device(model))
        with trace() as q:
            guide(x)
        with trace() as p, replay(q):
            model(x)
        pairs = torch.stack([x, p["x"].fn.mean], 1).reshape(2 * len(x), -1)
        caption = "data (left) | reconstruction (right)"
        image_grid(pairs, data.image_shape, run / "reconstructions.png", caption, columns=16)
        return [
            Picture("samples.png", "Samples from the model"),
            Picture("reconstructions.png", "Data and reconstructions"),
        ]

    @torch.no_grad()
    def sample(self, parts: Parts, data: Splits, n: int, path: Path) -> Path:
        """Draw ``n`` samples from the model and save their pixel means as a grid."""
        with trace() as tr:
            parts["model"](num_samples=n)
        return image_grid(tr["x"].fn.mean, data.image_shape, path, f"{n} samples (pixel means)")


# settings of a model section before issue 27, and the component (and option) each set
FLAT_SETTINGS = {
    "flow_length": [("posterior", "flow_length")],
    # the MADE widths served an IAF posterior and a MAF prior alike
    "flow_hidden": [("posterior", "flow_hidden"), ("prior", "flow_hidden")],
    "prior_components": [("prior", "components")],
    "prior_flow_length": [("prior", "flow_length")],
}
TABLES = {"posterior": POSTERIORS, "prior": PRIORS}


def nest_posterior_and_prior(raw: dict[str, Any], resolved: bool, prior: bool) -> None:
    """Before issue 27 ``model.posterior`` and ``model.prior`` were names and their settings
    flat keys of ``model`` (``flow_length``, ``flow_hidden``, ``prior_components``,
    ``prior_flow_length``). Each moves into the component that reads it; one that no chosen
    component reads is dropped from a run directory's configuration and left for a file's
    to be refused (with the key it now has)."""
    model = raw.get("model")
    if not isinstance(model, dict) or not any(k in model for k in FLAT_SETTINGS):
        return
    sections = {"posterior": model.get("posterior", "diagonal")}
    if prior:
        sections["prior"] = model.get("prior", "normal")
    sections = {k: {"name": v} if isinstance(v, str) else v for k, v in sections.items()}
    for key in [k for k in FLAT_SETTINGS if k in model]:
        read = False
        for section, option in FLAT_SETTINGS[key]:
            target = sections.get(section)
            if not isinstance(target, dict) or target.get("name") not in TABLES[section]:
                continue
            options = TABLES[section][target["name"]].options
            if options is not None and option in option_names(options):
                read = True
                if model[key] is not None:  # null: the component's default
                    target.setdefault(option, model[key])
        if read or resolved:
            del model[key]
    model.update(sections)


def _stderr(values: torch.Tensor) -> float:
    return (values.std() / math.sqrt(len(values))).item() if len(values) > 1 else 0.0


def objective_part(objective: Any) -> nn.Module:
    """The objective as a part: itself if it is a module (it has state), else wrapped."""
    return objective if isinstance(objective, nn.Module) else Stateless(objective)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@contextlib.contextmanager
def _errors(cfg: LatentConfig, section: str) -> Iterator[None]:
    keys = [f for f in vars(getattr(cfg, section))]
    with config_errors(section, keys, RENAMES):
        yield


__all__ = [
    "AISEvalConfig",
    "EvalConfig",
    "LatentConfig",
    "LatentTrainConfig",
    "LatentVariableTask",
    "data_objectives",
    "objective_part",
    "objective_section",
]
