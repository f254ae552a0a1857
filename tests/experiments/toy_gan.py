"""A task defined outside dgm: a one-dimensional GAN on the alternating step.

It is the worked example of docs/design.md ("Adding a family") and what the tests use to
run the second step kind through the runner and the command line (smoke, resume, NaN stop,
torchrun). YAML: ``task: tests.experiments.toy_gan:ToyGANTask``.

Data x ~ N(mean, std^2); generator G(z) = a z + b with z ~ N(0, 1); critic a small MLP;
the non-saturating losses of Goodfellow et al. (2014).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.experiments.config import RunConfig, at_least
from dgm.experiments.task import Parts, Picture, Task, Wrap
from dgm.nn import MLP
from dgm.report.figures import plt
from dgm.train import AlternatingStep, Step, Update


@dataclass(kw_only=True)
class ToyData:
    points: int = at_least(1, 512)
    valid_points: int = at_least(1, 256)
    mean: float = 2.0
    std: float = 0.5


@dataclass(kw_only=True)
class ToyModel:
    hidden: int = at_least(1, 16)
    critic_steps: int = at_least(1, 2)
    critic_lr: float = 1e-2
    poison_update: int | None = None  # make this generator update's loss NaN (tests)


@dataclass(kw_only=True)
class ToyGANConfig(RunConfig):
    task: str = "tests.experiments.toy_gan:ToyGANTask"
    data: ToyData = field(default_factory=ToyData)
    model: ToyModel = field(default_factory=ToyModel)


@dataclass
class ToySplits:
    train: Tensor
    valid: Tensor
    transform: Callable[[Tensor], Tensor] | None = None


class ToyGANTask(Task[ToyGANConfig]):
    name = "toy-gan"
    Config = ToyGANConfig

    def data(self) -> ToySplits:
        d, g = self.cfg.data, torch.Generator().manual_seed(self.cfg.train.seed)
        x = d.mean + d.std * torch.randn(d.points + d.valid_points, 1, generator=g)
        return ToySplits(x[: d.points], x[d.points :])

    def build(self, data: Any, training: bool = True) -> Parts:
        return {"generator": nn.Linear(1, 1), "critic": MLP((1, self.cfg.model.hidden, 1), "tanh")}

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(parts["critic"].parameters(), lr=self.cfg.model.critic_lr),
            torch.optim.Adam(parts["generator"].parameters(), lr=self.cfg.train.lr),
        ]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        generator, critic = wrap(parts["generator"]), wrap(parts["critic"])
        critic_opt, generator_opt = optimizers
        updates = {"n": 0}

        def critic_loss(x: Tensor) -> Tensor:
            with torch.no_grad():  # no graph: a DDP forward must be followed by its backward
                fake = generator(torch.randn_like(x))
            scores = critic(torch.cat([x, fake]))  # one forward: one DDP pass per backward
            real, fake_scores = scores[: len(x)], scores[len(x) :]
            return F.softplus(-real).mean() + F.softplus(fake_scores).mean()

        def generator_loss(x: Tensor) -> Tensor:
            updates["n"] += 1
            loss = F.softplus(-critic(generator(torch.randn_like(x)))).mean()
            if updates["n"] == self.cfg.model.poison_update:
                loss = loss * float("nan")
            return loss

        return AlternatingStep(
            Update("critic", critic_loss, critic_opt),
            Update("generator", generator_loss, generator_opt),
            self.cfg.model.critic_steps,
        )

    def validate(self, parts: Parts, data: ToySplits) -> Callable[[], dict[str, float]]:
        def validate() -> dict[str, float]:
            return {"valid/neg_moment_error": -self._moment_error(parts, data.valid)}

        return validate

    @torch.no_grad()
    def _moment_error(self, parts: Parts, x: Tensor) -> float:
        fake = parts["generator"](torch.randn(4096, 1))
        return float((fake.mean() - x.mean()).abs() + (fake.std() - x.std()).abs())

    def evaluate(self, parts: Parts, data: ToySplits) -> dict[str, Any]:
        return {"test_moment_error": self._moment_error(parts, data.valid)}

    def pictures(self, parts: Parts, data: ToySplits, run: Path) -> list[Picture]:
        self.sample(parts, data, 2000, run / "histogram.png")
        return [Picture("histogram.png", "Generated samples against the data")]

    @torch.no_grad()
    def sample(self, parts: Parts, data: ToySplits, n: int, path: Path) -> Path:
        fake = parts["generator"](torch.randn(n, 1)).flatten()
        fig = plt.figure(figsize=(4, 3))
        plt.hist(data.train.flatten().numpy(), bins=40, density=True, alpha=0.5, label="data")
        plt.hist(fake.numpy(), bins=40, density=True, alpha=0.5, label="generator")
        plt.legend()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path
