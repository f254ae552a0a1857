"""The AIR task: Attend-Infer-Repeat on multi-MNIST (``dgm.models.air``), counting and locating
digits, with the discrete "is there another object" decision trained by any of dgm's
discrete-latent estimators: one setting, ``objective.name``.

- ``reinforce`` (default; also ``elbo``): the ELBO's score-function gradient for every
  z_pres_t, each with its own data-dependent baseline from the guide's baseline LSTM
  (NVIL-style per-step baselines, ``objective.baselines``), fitted to the learning signal by
  least squares with their own learning rate ``train.baseline_lr``: Pyro's AIR recipe.
- ``nvil``: NVIL's image-level baseline network C(x) and running normalization instead.
- ``vimco`` / ``iwae``: the K-particle bound with VIMCO's per-particle control variates.
- ``rws``: reweighted wake-sleep; the guide by wake-phi (``objective.phi``).
- ``concrete``: the relaxed bound (z_pres relaxed; masks threshold the relaxed presence).

Validation: count accuracy on the validation images (the score that picks ``best.pt``), the
ELBO and an importance-weighted bound. Evaluation: count accuracy on training and test images
with the confusion matrices, box IoU against the true digit boxes, the ELBO and the
importance-weighted bound with ``eval.num_particles``. Pictures: reconstructions with each
step's window drawn in its own colour.

YAML: ``task: air`` with ``data`` (``multi_mnist`` or ``multi_mnist_32``), ``model``,
``objective``, ``train`` and ``eval``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...data import DATASETS, Splits
from ...metrics import count_report
from ...models.air import LIKELIHOODS, AIRGuide, AIRModel, Steps, read_steps
from ...nn.mlp import ACTIVATIONS
from ...nn.spatial import where_to_box
from ...objectives import OBJECTIVES, elbo, iwae, log_weights
from ...options import Options, read_when
from ...ppl import condition, replay, trace
from ...report import boxes_grid
from ...train.optim import adam
from ..config import ConfigError, TrainConfig, above, at_least, choice, extended, resumable
from ..task import Parts, Picture, points_per_chunk
from .data import ImageDataConfig
from .latent import (
    EvalConfig,
    LatentConfig,
    LatentVariableTask,
    objective_part,
    objective_section,
)


@dataclass(kw_only=True)
class AIRModelConfig:
    """The model's and the guide's sizes and the recipe's priors (Pyro's example's defaults,
    with the settings its issue threads found necessary: ``z_pres_prior`` 0.01, a sigmoid
    decoder with output bias -2, a scale prior of standard deviation 0.2)."""

    num_steps: int = at_least(1, 3)  # the most objects an image can hold
    window_size: int = at_least(2, 28)
    z_what_size: int = at_least(1, 50)
    rnn_hidden: int = at_least(1, 256)
    encoder_hidden: list[int] = at_least(1, factory=lambda: [200])
    decoder_hidden: list[int] = at_least(1, factory=lambda: [200])
    predict_hidden: list[int] = at_least(1, factory=lambda: [200])
    embed_hidden: list[int] = at_least(1, factory=list)  # empty: the LSTM reads raw pixels
    z_pres_prior: float = above(0, 0.01)  # k of p(n) ~ k^n (or each step's, with _raw)
    z_pres_prior_raw: bool = False
    scale_prior: list[float] = field(default_factory=lambda: [3.0, 0.2])
    shift_prior: list[float] = field(default_factory=lambda: [0.0, 1.0])
    likelihood: str = choice(LIKELIHOODS, "normal")
    likelihood_std: float = above(0, 0.3)
    decoder_bias: float = -2.0
    activation: str = choice(ACTIVATIONS, "relu")


@dataclass(kw_only=True)
class StepBaselineOptions:
    """The guide's per-step baselines for the z_pres decisions (NVIL-style, one per step from
    the guide's baseline LSTM), for the estimators that honour a site's own baseline."""

    # None: on for the single-particle score-function objectives (elbo, reinforce)
    baselines: bool | None = None
    # hidden units of the baseline LSTM and its head
    baseline_hidden: int = read_when(
        lambda o: uses_baselines(o),
        "the guide has per-step baselines (objective.baselines, on by default for elbo and "
        "reinforce)",
        at_least(1, 256),
    )


# the estimators that honour a site's baseline take the per-step baselines' settings
AIR_OBJECTIVES = extended(OBJECTIVES, OBJECTIVES.names(site_baselines=True), StepBaselineOptions)


@dataclass(kw_only=True)
class AIRTrainConfig(TrainConfig):
    """The loop, Pyro's learning rates (1e-4; 1e-3 for the baselines) and batch size (64),
    the guide's own learning rate, and the validation budget."""

    batch_size: int = at_least(1, 64)
    lr: float = above(0, 1e-4, resumable=True)
    guide_lr: float | None = above(0, None, resumable=True)  # None: train.lr
    baseline_lr: float = above(0, 1e-3, resumable=True)
    count_points: int = at_least(1, 1000, resumable=True)
    valid_particles: int = at_least(1, 10)


@dataclass(kw_only=True)
class AIREvalConfig(EvalConfig):
    """Final evaluation: count accuracy on ``train_points`` training images and the test
    set, and the importance-weighted bound with ``num_particles``."""

    num_particles: int = at_least(1, 100)
    train_points: int = at_least(1, 1000)


@dataclass(kw_only=True)
class AIRConfig(LatentConfig):
    """An Attend-Infer-Repeat run."""

    task: str = "air"
    data: ImageDataConfig = field(default_factory=lambda: ImageDataConfig(name="multi_mnist_32"))
    model: AIRModelConfig = field(default_factory=AIRModelConfig)
    objective: Options = objective_section("reinforce", AIR_OBJECTIVES)
    train: AIRTrainConfig = field(default_factory=AIRTrainConfig)  # type: ignore[assignment]
    eval: AIREvalConfig = resumable(factory=AIREvalConfig)

    def check(self) -> None:
        super().check()
        d, m = self.data, self.model
        entry = DATASETS[d.name]
        objects = entry.capabilities.get("max_objects")
        if objects is None:
            choices = ", ".join(DATASETS.names(max_objects=2))
            raise ConfigError(
                f"the air task counts objects in images with known counts: data.name must be "
                f"one of {choices}, not {d.name}"
            )
        canvas = entry.shape[-1]
        if m.window_size > canvas:
            raise ConfigError(
                f"model.window_size {m.window_size} is larger than the {canvas}x{canvas} "
                f"canvas of {d.name}; use at most {canvas}"
            )
        if m.num_steps < objects:
            raise ConfigError(
                f"model.num_steps {m.num_steps} is below the largest count of {d.name} "
                f"({objects} objects): the guide could never count them; use at least {objects}"
            )
        for key, pair in (("scale_prior", m.scale_prior), ("shift_prior", m.shift_prior)):
            if len(pair) != 2 or not pair[1] > 0:
                raise ConfigError(f"model.{key} is [mean, standard deviation > 0], got {pair}")
        if m.z_pres_prior_raw and not m.z_pres_prior < 1:
            raise ConfigError("model.z_pres_prior with z_pres_prior_raw is a probability < 1")
        if not m.z_pres_prior_raw and m.z_pres_prior > 1:
            raise ConfigError("model.z_pres_prior (k of p(n) ~ k^n) must be in (0, 1]")


def uses_baselines(o: Options) -> bool:
    """Whether the guide computes per-step baselines: ``objective.baselines``, by default
    for the single-particle score-function objectives (``elbo``, ``reinforce``)."""
    if not isinstance(o, StepBaselineOptions):
        return False
    if o.baselines is not None:
        return o.baselines
    return o.name in ("elbo", "reinforce")


class AIRTask(LatentVariableTask[AIRConfig]):
    """Attend-Infer-Repeat: the model and the guide of ``dgm.models.air`` on multi-MNIST."""

    name = "air"
    continuous_latents = False
    Config = AIRConfig

    @property
    def activation(self) -> str:  # type: ignore[override]
        return self.cfg.model.activation

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """``model.baseline_hidden`` (before issue 27) is ``objective.baseline_hidden`` where
        the objective has per-step baselines; elsewhere it was never read."""
        model, objective = raw.get("model"), raw.get("objective")
        if isinstance(model, dict) and "baseline_hidden" in model:
            if objective is None:
                objective = raw["objective"] = {}
            name = objective.get("name", "reinforce") if isinstance(objective, dict) else None
            if name in AIR_OBJECTIVES:
                # an old objective.baseline_hidden was NVIL's, never read by these objectives
                objective["baseline_hidden"] = model.pop("baseline_hidden")
            elif resolved:
                del model["baseline_hidden"]
        return super().migrate(raw, resolved)

    def programs(self, data_size: int) -> tuple[nn.Module, nn.Module]:
        m, o = self.cfg.model, self.cfg.objective
        canvas = math.isqrt(data_size)
        if canvas * canvas != data_size:
            raise ValueError(f"AIR needs square images; a point has {data_size} values")
        scale, shift = tuple(m.scale_prior), tuple(m.shift_prior)
        model = AIRModel(
            canvas,
            m.window_size,
            m.num_steps,
            m.z_what_size,
            tuple(m.decoder_hidden),
            m.z_pres_prior,
            m.z_pres_prior_raw,
            scale,  # type: ignore[arg-type]
            shift,  # type: ignore[arg-type]
            m.likelihood,
            m.likelihood_std,
            m.decoder_bias,
            m.activation,
        )
        guide = AIRGuide(
            canvas,
            m.window_size,
            m.num_steps,
            m.z_what_size,
            m.rnn_hidden,
            tuple(m.encoder_hidden),
            tuple(m.predict_hidden),
            tuple(m.embed_hidden),
            scale,  # type: ignore[arg-type]
            shift,  # type: ignore[arg-type]
            uses_baselines(o),
            o.baseline_hidden if isinstance(o, StepBaselineOptions) else 1,
            m.activation,
        )
        return model, guide

    def build(self, data: Splits, training: bool = True) -> Parts:
        for split in ("train", "valid", "test"):
            x = getattr(data, split)
            lo, hi = x.aminmax()
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"the air task models images in [0, 1]; the {split} split has values in "
                    f"[{lo.item():.3g}, {hi.item():.3g}]"
                )
        model, guide = self.programs(data.data_size)
        parts: Parts = {"model": model, "guide": guide}
        if training:
            parts["objective"] = objective_part(self.objective(data.data_size))
        return parts

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        """One fused Adam: the baselines (the guide's ``baseline_*`` modules) at
        ``train.baseline_lr``, everything else at ``train.lr`` (the guide at ``train.guide_lr``
        when it is set)."""
        t = self.cfg.train
        guide = parts["guide"]
        baseline = [p for n, p in guide.named_parameters() if n.startswith("baseline")]
        own = [p for n, p in guide.named_parameters() if not n.startswith("baseline")]
        rest = [*parts["model"].parameters(), *parts["objective"].parameters()]
        groups: list[dict[str, Any]] = [{"params": rest, "lr": t.lr}]
        groups.append({"params": own, "lr": t.lr if t.guide_lr is None else t.guide_lr})
        if baseline:
            groups.append({"params": baseline, "lr": t.baseline_lr})
        return [adam(groups, eps=t.adam_eps)]

    def counts(self, guide: nn.Module, x: Tensor, batch_size: int = 100) -> tuple[Tensor, Tensor]:
        """The guide's inferred counts ``[N]`` and boxes ``[N, T, 4]`` for images ``x``."""
        counts, boxes = [], []
        canvas = math.isqrt(x.shape[-1])
        with torch.no_grad():
            for chunk in x.split(batch_size):
                with trace() as q:
                    guide(chunk)
                steps = read_steps(q, self.cfg.model.num_steps)
                counts.append(steps.count)
                boxes.append(where_to_box(steps.z_where, canvas))
        return torch.cat(counts), torch.cat(boxes)

    def validate(self, parts: Parts, data: Splits) -> Callable[[], dict[str, float]]:
        t = self.cfg.train
        model, guide = parts["model"], parts["guide"]
        device = next(model.parameters()).device
        valid = data.valid[: t.count_points].to(device)
        true = data.side["counts"]["valid"][: t.count_points]

        def validate() -> dict[str, float]:
            k = t.valid_particles
            counts, _ = self.counts(guide, valid)
            report = count_report(counts, true)
            bounds, elbos = [], []
            with torch.no_grad():  # in chunks: every particle's canvases at once is too many
                most = self.cfg.eval.batch_size
                for chunk in valid.split(points_per_chunk(valid[0].numel(), k, most)):
                    lw = log_weights(model, guide, chunk, num_particles=k)
                    bounds.append(iwae(lw))
                    elbos.append(elbo(lw))
            return {
                "valid/count_accuracy": report.accuracy,
                "valid/elbo": torch.cat(elbos).mean().item(),
                f"valid/iwae_k{k}": torch.cat(bounds).mean().item(),
                "valid/mean_count": counts.mean().item(),
            }

        return validate

    def evaluate(self, parts: Parts, data: Splits) -> dict[str, Any]:
        model, guide = parts["model"], parts["guide"]
        e = self.cfg.eval
        device = next(model.parameters()).device
        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        for split, points in (("train", e.train_points), ("test", None)):
            x = getattr(data, split)[:points].to(device)
            counts, boxes = self.counts(guide, x)
            report = count_report(
                counts,
                data.side["counts"][split][: len(x)],
                boxes,
                data.side["boxes"][split][: len(x)],
                max_count=self.cfg.model.num_steps,
            )
            metrics[f"{split}_count_accuracy"] = report.accuracy
            metrics[f"{split}_count_confusion"] = report.confusion.tolist()
            metrics[f"{split}_box_iou"] = report.box_iou
            metrics[f"{split}_box_centre_error"] = report.centre_error
            metrics[f"{split}_points"] = len(x)
        test = data.test.to(device)
        k = e.num_particles
        bounds, elbos = [], []
        with torch.no_grad():
            for chunk in test.split(points_per_chunk(test[0].numel(), k, e.batch_size)):
                lw = log_weights(model, guide, chunk, num_particles=k)
                bounds.append(iwae(lw))
                elbos.append(elbo(lw))
        bound, first = torch.cat(bounds), torch.cat(elbos)
        metrics[f"test_iwae_k{k}"] = bound.mean().item()
        metrics["test_elbo"] = first.mean().item()
        metrics["eval_seconds"] = round(time.perf_counter() - t0, 1)
        if "digit_source" in data.info:  # which MNIST digits the canvases were made of
            metrics["digit_source"] = data.info["digit_source"]
        return metrics

    @torch.no_grad()
    def pictures(self, parts: Parts, data: Splits, run: Path) -> list[Picture]:
        """reconstructions.png (data and reconstructions with each step's window) and
        samples.png (images from the model with their windows)."""
        model, guide = parts["model"], parts["guide"]
        device = next(model.parameters()).device
        x = data.test[:16].to(device)
        canvas = data.image_shape[-1]
        with trace() as q:
            guide(x)
        with replay(q):
            recon = model(x)
        steps = read_steps(q, self.cfg.model.num_steps)
        boxes = where_to_box(steps.z_where, canvas)
        images = torch.stack([x, recon], 1).reshape(2 * len(x), canvas, canvas)
        both = torch.stack([boxes, boxes], 1).reshape(2 * len(x), *boxes.shape[1:])
        present = torch.stack([steps.presence] * 2, 1).reshape(2 * len(x), -1)
        caption = (
            "data (left) | reconstruction (right), each step's window in its own colour "
            "(red, green, blue ...)"
        )
        boxes_grid(images, both, present, run / "reconstructions.png", caption, columns=8)
        self.sample(parts, data, 32, run / "samples.png")
        pictures = [
            Picture("reconstructions.png", "Test images and reconstructions, with the windows"),
            Picture(
                "samples.png",
                "Samples from the model, with their windows (the count drawn from the prior: "
                "a prior that favours few objects draws many empty canvases)",
            ),
        ]
        for count in range(1, min(2, self.cfg.model.num_steps) + 1):
            file = f"samples_{count}_object{'s' if count > 1 else ''}.png"
            self.sample(parts, data, 16, run / file, count=count)
            pictures.append(
                Picture(file, f"Samples with the count fixed at {count}, with their windows")
            )
        return pictures

    @torch.no_grad()
    def draw(self, parts: Parts, n: int, count: int | None = None) -> tuple[Tensor, Steps]:
        """``n`` canvases from the model (pixel means) and their steps; ``count`` fixes the
        number of objects (each step's presence) instead of drawing it from the prior."""
        num_steps = self.cfg.model.num_steps
        model = parts["model"]
        fixed: dict[str, Tensor] = {}
        if count is not None:
            if not 0 <= count <= num_steps:
                raise ValueError(f"count must be in 0..{num_steps} (model.num_steps), got {count}")
            ref = next(model.parameters())
            fixed = {
                f"z_pres_{t}": ref.new_full((n, 1), float(t < count)) for t in range(num_steps)
            }
        with trace() as p, condition(fixed):
            means = model(num_samples=n)
        return means, read_steps(p, num_steps)

    @torch.no_grad()
    def sample(
        self, parts: Parts, data: Splits, n: int, path: Path, count: int | None = None
    ) -> Path:
        """``n`` images drawn from the model (pixel means), with their windows; ``count``
        fixes the number of objects (the presence of each step) instead of drawing it."""
        means, steps = self.draw(parts, n, count)
        canvas = data.image_shape[-1]
        boxes = where_to_box(steps.z_where, canvas)
        images = means.reshape(n, canvas, canvas)
        caption = f"{n} samples (pixel means) with their windows"
        if count is not None:
            caption += f", {count} object{'s' if count > 1 else ''} each"
        return boxes_grid(images, boxes, steps.presence, path, caption, columns=8)


__all__ = ["AIRConfig", "AIRTask", "uses_baselines"]
