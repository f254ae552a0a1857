"""The GAN task: a generator x = G(z), z ~ N(0, I), trained against a discriminator.

Two parts, ``generator`` and ``critic``, each with its own Adam, on the alternating step
(``model.critic_steps`` critic updates, each on a fresh batch, then one generator update).
Every fix for mode collapse and instability is an independent switch on this one
implementation: the loss pair (``model.critic_loss`` / ``model.generator_loss``, from
``dgm.objectives.adversarial``), a gradient penalty (WGAN-GP) or R1, packing (PacGAN),
unrolled critic steps for the generator's update, spectral normalization and minibatch
standard-deviation features on the critic.

Evaluation: on the 2-D mixtures, PacGAN's mode metric (modes covered, high-quality share,
reverse KL to uniform, JSD); on images, FID, KID and precision / recall / density /
coverage on the features of dgm's own classifier (``dgm.metrics.classifier``; *not* Inception
features, not comparable with published FIDs); on stacked MNIST also the modes found among
1000 and their KL to uniform. Validation logs the same on fewer samples (coverage over
training) and records samples from fixed noise for the report's "samples over training".

YAML: ``task: gan`` with ``data``, ``model``, ``train`` and ``eval``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ...data import DATASETS, Splits
from ...metrics.classifier import ChannelFeatures, FeatureClassifier, feature_classifier
from ...metrics.modes import mode_coverage, stacked_mnist_modes
from ...metrics.quality import sample_quality
from ...models.gan import GAN_ARCHITECTURES, Discriminator, Generator, build_gan
from ...objectives.adversarial import (
    CRITIC_LOSSES,
    GENERATOR_LOSSES,
    check_pair,
    gradient_penalty,
    r1_penalty,
    split_scores,
    unrolled_generator_loss,
)
from ...report import image_grid
from ...report.figures import plt
from ...train import AlternatingStep, Step, Update
from ...train.checkpoint import save_atomic
from ...train.optim import adam
from ...train.step import Data
from ..config import ConfigError, RunConfig, above, at_least, choice, config_errors, resumable
from ..task import Parts, Picture, Task, Wrap
from .data import DataConfig

# the classifier whose features score samples of a data set (default: MNIST digits)
FEATURE_SETS = ("mnist", "fashion_mnist")
SNAPSHOTS = "samples_over_training.pt"


@dataclass(kw_only=True)
class GANModelConfig:
    """The networks, the game, and the switches against mode collapse."""

    architecture: str = choice(GAN_ARCHITECTURES, "pacgan2d")
    latent: int | None = at_least(1, None)  # None: the architecture's default
    hidden: int | None = at_least(1, None)  # None: the architecture's default width
    critic_loss: str = choice(CRITIC_LOSSES, "minimax")
    generator_loss: str = choice(GENERATOR_LOSSES, "non_saturating")
    gradient_penalty: float = at_least(0, 0.0)  # WGAN-GP's lambda (10 in the paper)
    r1: float = at_least(0, 0.0)  # R1's gamma: gamma / 2 * E |grad D(x)|^2 on real data
    pack: int = at_least(1, 1)  # PacGAN: the critic scores this many samples at once
    unroll: int = at_least(0, 0)  # critic Adam steps unrolled in the generator's update
    spectral_norm: bool = False
    minibatch_std: bool = False
    critic_steps: int = at_least(1, 1)  # critic updates per generator update
    critic_lr: float | None = above(0, None, resumable=True)  # None: train.lr
    beta1: float = at_least(0, 0.5)  # Adam's betas for both players
    beta2: float = at_least(0, 0.999)


@dataclass(kw_only=True)
class GANEvalConfig:
    """How many samples each metric uses, and which classifier scores images. A key left
    null takes its default where the data has its metric; a key set for data without that
    metric is refused (``applies``)."""

    valid_samples: int = at_least(1, 2500)  # per validation
    # 2-D mixtures (PacGAN's protocol): samples scored, and the distance (in standard
    # deviations of a mode) within which a sample is of high quality
    samples: int | None = at_least(1, None)  # 2500
    threshold: float | None = above(0, None)  # 3.0
    # images: FID / KID / PRDC samples (0: none), the classifier whose features score them
    # (None: fashion for Fashion-MNIST, else mnist) and its training steps (None: its
    # recipe's 2000; fewer make another classifier, with other numbers: for smoke runs), and
    # the samples drawn from fixed noise at every validation
    quality_samples: int | None = at_least(0, None)  # 10000
    classifier: str | None = choice(FEATURE_SETS, None)
    classifier_steps: int | None = at_least(1, None)
    snapshot_samples: int | None = at_least(0, None)  # 64
    # stacked MNIST: samples whose 1000 modes are counted
    stacked_samples: int | None = at_least(1, None)  # 26000

    def get(self, key: str) -> Any:
        """The value of ``key``, or its default when left null."""
        value = getattr(self, key)
        return EVAL_DEFAULTS.get(key) if value is None else value


EVAL_DEFAULTS: dict[str, Any] = {
    "samples": 2500,
    "threshold": 3.0,
    "quality_samples": 10000,
    "snapshot_samples": 64,
    "stacked_samples": 26000,
}


APPLIES_TO = {
    "samples": "PacGAN's mode metric of 2-D mixtures",
    "threshold": "PacGAN's mode metric of 2-D mixtures",
    "stacked_samples": "the mode count of stacked MNIST",
    "quality_samples": "the sample-quality metrics of images",
    "classifier": "the sample-quality metrics of images",
    "classifier_steps": "the sample-quality metrics of images",
    "snapshot_samples": "the image snapshots of samples over training",
}


def applies(key: str, data: str) -> bool:
    """Whether the evaluation setting ``key`` is read for data set ``data``."""
    image = DATASETS[data].kind == "image"
    if key in ("samples", "threshold"):
        return not image
    if key == "stacked_samples":
        return data == "stacked_mnist"
    return image or key == "valid_samples"


@dataclass(kw_only=True)
class GANConfig(RunConfig):
    """A GAN run."""

    task: str = "gan"
    data: DataConfig
    model: GANModelConfig = field(default_factory=GANModelConfig)
    eval: GANEvalConfig = resumable(factory=GANEvalConfig)

    def check(self) -> None:
        super().check()
        m = self.model
        if self.train.batch_size % m.pack:
            raise ConfigError(
                f"train.batch_size {self.train.batch_size} is not a multiple of model.pack "
                f"{m.pack}: the critic scores groups of {m.pack} samples; use a batch size of "
                f"{m.pack * max(1, round(self.train.batch_size / m.pack))}"
            )
        with config_errors("model", ["generator_loss"]):
            check_pair(m.critic_loss, m.generator_loss)
        if CRITIC_LOSSES[m.critic_loss].lipschitz and not (m.gradient_penalty or m.spectral_norm):
            raise ConfigError(
                f"model.critic_loss={m.critic_loss} needs a Lipschitz critic: set "
                "model.gradient_penalty (WGAN-GP: 10) or model.spectral_norm=true; without "
                "either the critic's scores grow without bound"
            )
        entry = DATASETS[self.data.name]
        if entry.kind == "image" and self.eval.get("quality_samples"):
            shape = tuple(entry.shape)
            if shape[-2:] != (28, 28) or (len(shape) == 3 and shape[0] not in (1, 3)):
                raise ConfigError(
                    f"eval.quality_samples: the feature classifier takes 28x28 images (1 or 3 "
                    f"channels); data.name={self.data.name} has {'x'.join(map(str, shape))}: "
                    "set eval.quality_samples=0 to train without sample-quality metrics"
                )
        accepted = GAN_ARCHITECTURES[m.architecture].shapes
        if tuple(entry.shape) not in accepted:
            fitting = [
                a for a in GAN_ARCHITECTURES if tuple(entry.shape) in GAN_ARCHITECTURES[a].shapes
            ]
            raise ConfigError(
                f"model.architecture={m.architecture} takes data of shape "
                f"{' or '.join(str(list(s)) for s in accepted)}; data.name={self.data.name} has "
                f"{list(entry.shape)}: use model.architecture "
                + (" or ".join(fitting) if fitting else "of another data set")
            )
        for f in dataclasses.fields(self.eval):
            if getattr(self.eval, f.name) is not None and not applies(f.name, self.data.name):
                raise ConfigError(
                    f"eval.{f.name} sets {APPLIES_TO[f.name]}, which data.name="
                    f"{self.data.name} does not have; leave it out (null)"
                )


class GANTask(Task[GANConfig]):
    """GANs and their fixes for mode collapse, with offline sample-quality metrics."""

    name = "gan"
    Config = GANConfig
    # the generator at the end of training is scored, as PacGAN's tables score it (best.pt,
    # the validation's pick by modes covered or FID, is kept beside it)
    evaluated_checkpoint = "last"

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """Before issue 27 a run directory's ``eval`` held every key, read or not for its
        data: those its data set does not read are dropped."""
        e, data = raw.get("eval"), raw.get("data")
        name = data.get("name") if isinstance(data, dict) else None
        if resolved and isinstance(e, dict) and isinstance(name, str) and name in DATASETS:
            for key in [k for k in e if k in APPLIES_TO and not applies(k, name)]:
                del e[key]
        return super().migrate(raw, resolved)

    @classmethod
    def check(cls, cfg: GANConfig) -> None:
        with torch.random.fork_rng(), config_errors("model", list(vars(cfg.model))):
            cls(cfg)._networks()

    @property
    def _entry(self) -> Any:
        return DATASETS[self.cfg.data.name]

    @property
    def _image(self) -> bool:
        return self._entry.kind == "image"

    def _shape(self) -> tuple[int, ...]:
        shape = tuple(self._entry.shape)
        return (1, *shape) if self._image and len(shape) == 2 else shape

    def _networks(self) -> tuple[Generator, Discriminator]:
        m = self.cfg.model
        return build_gan(
            m.architecture,
            self._shape(),
            latent=m.latent,
            hidden=m.hidden,
            pack=m.pack,
            spectral_norm=m.spectral_norm,
            minibatch_std=m.minibatch_std,
        )

    def data(self) -> Splits:
        return self.cfg.data.load(self.cfg.train.seed)

    def build(self, data: Any, training: bool = True) -> Parts:
        generator, critic = self._networks()
        # generator updates so far: the step that samples over training are recorded at,
        # saved and resumed with the generator
        generator.register_buffer("updates", torch.zeros((), dtype=torch.long))
        return {"generator": generator, "critic": critic}

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        m, lr = self.cfg.model, self.cfg.train.lr
        betas = (m.beta1, m.beta2)
        eps = self.cfg.train.adam_eps
        return [
            adam(parts["critic"].parameters(), m.critic_lr or lr, betas, eps),
            adam(parts["generator"].parameters(), lr, betas, eps),
        ]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        m, shape = self.cfg.model, self._shape()
        generator, critic = _generator(parts), parts["critic"]
        if (
            (m.gradient_penalty or m.r1 or m.unroll)
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            raise ConfigError(
                "model.gradient_penalty, model.r1 and model.unroll differentiate the critic "
                "twice, which DistributedDataParallel does not support: train them in one process"
            )
        g, d = wrap(generator), wrap(critic)
        critic_opt, generator_opt = optimizers
        critic_loss_fn = CRITIC_LOSSES.build(m.critic_loss)
        generator_loss_fn = GENERATOR_LOSSES.build(m.generator_loss)
        latent = generator.latent_size

        def critic_loss(batch: Data) -> Tensor:
            assert isinstance(batch, Tensor)
            x = batch.reshape(len(batch), *shape)
            with torch.no_grad():  # no graph: a DDP forward must be followed by its backward
                fake = g(torch.randn(len(x), latent, device=x.device))
            real_s, fake_s = split_scores(d(torch.cat([x, fake])), len(x), len(fake))
            loss = critic_loss_fn(real_s, fake_s)
            if m.gradient_penalty:
                loss = loss + m.gradient_penalty * gradient_penalty(critic, x, fake, m.pack)
            if m.r1:
                loss = loss + m.r1 / 2 * r1_penalty(critic, x, m.pack)
            return loss

        def generator_loss(batch: Data) -> Tensor:
            assert isinstance(batch, Tensor)
            x = batch.reshape(len(batch), *shape)
            fake = g(torch.randn(len(x), latent, device=x.device))
            _updates(generator).add_(1)
            if m.unroll:
                return unrolled_generator_loss(  # Adam steps from the critic optimizer's state
                    critic, critic_loss_fn, generator_loss_fn, x, fake, m.unroll, 0.0, critic_opt
                )
            return generator_loss_fn(None, d(fake))

        clip = self.cfg.train.grad_clip
        return AlternatingStep(
            Update("critic", critic_loss, critic_opt, clip),
            Update("generator", generator_loss, generator_opt, clip),
            m.critic_steps,
        )

    # --- evaluation -------------------------------------------------------------------

    def _feature_set(self) -> str:
        """Whose classifier scores this data set's images (``eval.classifier``, or by name)."""
        name = self.cfg.data.name
        return self.cfg.eval.classifier or ("fashion_mnist" if "fashion" in name else "mnist")

    def _feature_network(self, name: str, device: torch.device) -> FeatureClassifier:
        data_dir, steps = self.cfg.data.data_dir, self.cfg.eval.classifier_steps
        return feature_classifier(name, data_dir, device, steps)

    def _classifier(self, device: torch.device) -> nn.Module:
        """The feature network for this data set's images (channels scored one by one)."""
        classifier = self._feature_network(self._feature_set(), device)
        channels = self._shape()[0]
        return classifier if channels == 1 else ChannelFeatures(classifier, channels)

    @torch.no_grad()
    def _samples(self, generator: Generator, n: int, seed: int) -> Tensor:
        """``n`` samples from noise fixed by ``seed``, in evaluation mode (BatchNorm's running
        statistics), in chunks; ``[n, *shape]`` on the CPU."""
        was = generator.training
        generator.eval()
        latent, device = generator.latent_size, _device(generator)
        z = torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))
        out = torch.cat([generator(c.to(device)).cpu() for c in z.split(4096)])
        generator.train(was)
        return out

    def _scores(self, parts: Parts, data: Splits, n: int, seed: int, split: str) -> dict[str, Any]:
        """The task's metrics on ``n`` samples against the ``split`` data."""
        generator, e = _generator(parts), self.cfg.eval
        if not self._image:
            cover = mode_coverage(
                self._samples(generator, n, seed),
                data.info["mode_centers"],
                data.info["mode_std"],
                e.get("threshold"),
            )
            return {
                "modes_covered": cover.modes_covered,
                "high_quality": cover.high_quality,
                "reverse_kl": cover.reverse_kl,
                "jsd": cover.jsd,
                "modes": len(data.info["mode_centers"]),
            }
        metrics: dict[str, Any] = {}
        if "digit_source" in data.info:  # stacked MNIST: three digits, 1000 modes
            digits = self._feature_network("mnist", _device(generator))
            count = n if split == "valid" else e.get("stacked_samples")
            stacked = stacked_mnist_modes(self._samples(generator, count, seed + 1), digits)
            metrics |= {"stacked_modes": stacked.modes, "stacked_kl": stacked.kl}
        quality = n if split == "valid" else e.get("quality_samples")
        if quality:
            real = getattr(data, split)
            real = real[:quality].reshape(-1, *self._shape())
            fake = self._samples(generator, len(real), seed)
            metrics |= sample_quality(real, fake, self._classifier(_device(generator)))
        return metrics

    def validate(self, parts: Parts, data: Splits) -> Callable[[], dict[str, float]]:
        e = self.cfg.eval
        if self._image and e.valid_samples:  # a classifier's first training: before the clock
            device = _device(_generator(parts))
            if "digit_source" in data.info:
                self._feature_network("mnist", device)
            self._classifier(device)

        def validate() -> dict[str, float]:
            metrics = self._scores(parts, data, e.valid_samples, self.cfg.train.seed + 7, "valid")
            metrics.pop("modes", None)
            self._snapshot(parts)
            first = "modes_covered" if not self._image else "stacked_modes"
            if first not in metrics:
                metrics = {"neg_fid_classifier": -metrics["fid_classifier"], **metrics}
                first = "neg_fid_classifier"
            ordered = {first: metrics.pop(first), **metrics}
            return {f"valid/{k}": float(v) for k, v in ordered.items()}

        return validate

    def _snapshot(self, parts: Parts) -> None:
        """Append samples from fixed noise to the run's record of samples over training."""
        n = self.cfg.eval.get("snapshot_samples" if self._image else "samples")
        if self.run_dir is None or not n:
            return
        path = self.run_dir / SNAPSHOTS
        step = int(_updates(_generator(parts)))
        record: dict[int, Tensor] = torch.load(path) if path.is_file() else {}
        record = {k: v for k, v in record.items() if k < step}  # a resumed run redoes the rest
        record[step] = self._samples(_generator(parts), n, self.cfg.train.seed + 11)
        save_atomic(record, path)

    def evaluate(self, parts: Parts, data: Splits) -> dict[str, Any]:
        e = self.cfg.eval
        n = e.get("samples" if not self._image else "quality_samples")
        metrics = self._scores(parts, data, n, self.cfg.train.seed + 13, "test")
        metrics["generator_updates"] = int(_updates(_generator(parts)))  # of the scored one
        if self._image and (e.get("quality_samples") or "digit_source" in data.info):
            name = self._feature_set()
            c = self._feature_network(name, _device(parts["generator"]))
            metrics |= {
                "features": f"dgm's {name} classifier (not Inception: not comparable with published FIDs)",
                "classifier_source": c.source,
                "classifier_test_accuracy": c.test_accuracy,
            }
        if "digit_source" in data.info:  # which digits stacked MNIST was built from
            metrics["digit_source"] = data.info["digit_source"]
        return metrics

    # --- pictures ---------------------------------------------------------------------

    @torch.no_grad()
    def pictures(self, parts: Parts, data: Splits, run: Path) -> list[Picture]:
        pictures = [Picture("samples.png", "Samples of the trained generator")]
        self.sample(
            parts,
            data,
            self.cfg.eval.get("samples") if not self._image else 64,
            run / "samples.png",
        )
        if (run / SNAPSHOTS).is_file():
            self._over_training(
                torch.load(run / SNAPSHOTS), data, run / "samples_over_training.png"
            )
            pictures.append(
                Picture("samples_over_training.png", "Samples from fixed noise over training")
            )
        return pictures

    @torch.no_grad()
    def sample(self, parts: Parts, data: Splits, n: int, path: Path) -> Path:
        x = self._samples(_generator(parts), n, self.cfg.train.seed + 17)
        if self._image:
            return image_grid(x.reshape(n, -1).clamp(0, 1), self._shape(), path, f"{n} samples")
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        self._scatter(ax, x, data, f"{n} samples")
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        return path

    def _scatter(self, ax: Any, x: Tensor, data: Splits, title: str) -> None:
        """Samples over the modes, each mode with its ``threshold``-sigma circle."""
        centers, std = data.info.get("mode_centers"), data.info.get("mode_std")
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5, color="tab:blue")
        if centers is not None:
            r = self.cfg.eval.get("threshold") * float(std)  # type: ignore[arg-type]
            for cx, cy in centers.tolist():
                ax.add_patch(plt.Circle((cx, cy), r, fill=False, color="tab:red", lw=0.8))
            lo, hi = centers.min().item(), centers.max().item()
            pad = 0.3 * (hi - lo) + 0.5
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)

    def _over_training(self, record: dict[int, Tensor], data: Splits, path: Path) -> None:
        steps = sorted(record)
        if len(steps) > 8:  # at most eight snapshots, spread over training
            steps = [steps[round(i * (len(steps) - 1) / 7)] for i in range(8)]
        if self._image:
            rows = [record[s][:8].flatten(1) for s in steps]
            columns = rows[0].shape[0]
            image_grid(
                torch.cat(rows),
                self._shape(),
                path,
                "each row: generator updates " + ", ".join(map(str, steps)),
                columns=columns,
            )
            return
        cols = min(4, len(steps))
        rows_n = math.ceil(len(steps) / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(3 * cols, 3 * rows_n), squeeze=False)
        for ax in axes.flat[len(steps) :]:
            ax.axis("off")
        for ax, s in zip(axes.flat, steps, strict=False):
            self._scatter(ax, record[s], data, f"after {s} generator updates")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)


def _generator(parts: Parts) -> Generator:
    generator = parts["generator"]
    assert isinstance(generator, Generator)
    return generator


def _updates(generator: Generator) -> Tensor:
    """The generator's update counter (a buffer ``build`` adds)."""
    updates = generator.updates
    assert isinstance(updates, Tensor)
    return updates


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


__all__ = ["GANConfig", "GANTask"]
