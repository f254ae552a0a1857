"""The flow task: normalizing flows as density models, trained by exact maximum likelihood.

A model and no guide: the one part is a ``dgm.models.flow_model.FlowDensity`` whose
``log_prob`` is maximized (``SurrogateStep`` with the objective ``log p(x)``). Continuous
data (the 2-D toy densities, MAF's tabular sets) is scored as it is and reported as test NLL
in nats; images are turned back into their integer levels, dequantized afresh at every visit
(uniform or variational), moved to R by the logit transform, and reported in test bits/dim
with the importance-weighted dequantization bound over ``eval.draws`` draws.

YAML: ``task: flow`` with ``data``, ``model``, ``train`` and ``eval``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...data import DATASETS, Splits
from ...flows.dequantize import LogitTransform, UniformDequantization, VariationalDequantization
from ...metrics import bits_per_dim, negative_log_likelihood
from ...models.flow_model import FLOWS, Density, FlowDensity, FlowOptions, build_flow
from ...report import image_grid
from ...report.figures import plt
from ...train import Step, SurrogateStep
from ..config import (
    ConfigError,
    RunConfig,
    at_least,
    choice,
    component,
    config_errors,
    resumable,
)
from ..task import Parts, Picture, Task, Wrap
from .data import DataConfig

DEQUANTIZATIONS = ("uniform", "variational")


@dataclass(kw_only=True)
class ImagePreprocessing:
    """How integer images become real vectors before the flow: dequantization, then
    y = logit(alpha + (1 - 2 alpha) x) (images only: 2-D and tabular data have neither)."""

    dequantization: str | None = choice(DEQUANTIZATIONS, None)  # None: uniform, for images
    logit_alpha: float | None = None  # None: 0.05, for images


@dataclass(kw_only=True)
class FlowEvalConfig:
    """Final evaluation: dequantization draws per test image, and samples."""

    draws: int = at_least(1, 8)
    batch_size: int = at_least(1, 256)
    samples: int = at_least(1, 64)


@dataclass(kw_only=True)
class FlowConfig(RunConfig):
    """A flow density-model run."""

    task: str = "flow"
    data: DataConfig
    # the family (model.family) and its own options (dgm.models.flow_model.FLOWS)
    model: FlowOptions = component(FLOWS, "realnvp")
    preprocess: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    eval: FlowEvalConfig = resumable(factory=FlowEvalConfig)

    def check(self) -> None:
        super().check()
        entry, kind = DATASETS[self.data.name], FLOWS[self.model.family].data
        if kind == "image" and entry.kind != "image":
            raise ConfigError(
                f"model.family={self.model.family} is an image flow; data.name={self.data.name} "
                f"is {list(entry.shape)} points: use one of {', '.join(FLOWS.names(data='vector'))}"
            )
        p = self.preprocess
        if entry.kind != "image":
            for key in ("dequantization", "logit_alpha"):
                if getattr(p, key) is not None:
                    raise ConfigError(
                        f"preprocess.{key} applies to images; data.name={self.data.name} is "
                        f"{list(entry.shape)} real points (set it to null)"
                    )
        elif p.logit_alpha is not None and not 0 < p.logit_alpha < 0.5:
            raise ConfigError(f"preprocess.logit_alpha must be in (0, 0.5), got {p.logit_alpha}")
        points = self.data.train_points or entry.train_size
        if self.train.batch_size > points:
            raise ConfigError(
                f"train.batch_size {self.train.batch_size} is larger than the training set "
                f"({points} points of {self.data.name})"
            )


class FlowTask(Task[FlowConfig]):
    """Normalizing flows on 2-D densities and images, with honest bits/dim."""

    name = "flow"
    Config = FlowConfig

    @classmethod
    def check(cls, cfg: FlowConfig) -> None:
        with torch.random.fork_rng(), config_errors("model", list(vars(cfg.model))):
            cls(cfg)._density()

    @property
    def _entry(self) -> Any:
        return DATASETS[self.cfg.data.name]

    @property
    def _image(self) -> bool:
        return self._entry.kind == "image"

    def _event_shape(self) -> tuple[int, ...]:
        shape = tuple(self._entry.shape)
        return (1, *shape) if self._image and len(shape) == 2 else shape

    def data(self) -> Splits:
        splits = self.cfg.data.load(self.cfg.train.seed)
        if self._image:  # back to the integer levels the images were stored as
            top = self._entry.levels - 1
            shape = self._event_shape()
            for name in ("train", "valid", "test"):
                x = getattr(splits, name) * top
                off = (x - x.round()).abs().max().item() if x.numel() else 0.0
                if off > 1e-3:  # rounding would score other images than the data's
                    raise ConfigError(
                        f"data.name={self.cfg.data.name}: its {name} pixels are not integer "
                        f"levels of {top + 1} (a pixel is {off:.3g} of a level away from the "
                        "nearest); a flow scores integer images in bits/dim. Use a data set "
                        "stored as integer levels (e.g. mnist, digits, fashion_mnist)"
                    )
                setattr(splits, name, torch.round(x).reshape(len(x), *shape))
        return splits

    def _density(self) -> FlowDensity:
        m, p, shape = self.cfg.model, self.cfg.preprocess, self._event_shape()
        core: Density = build_flow(m, shape)
        if FLOWS[m.family].data == "vector" and self._image:
            core = _Flattened(core, shape)
        preprocess: list[nn.Module] = []
        if self._image:
            levels = self._entry.levels
            if (p.dequantization or "uniform") == "uniform":
                preprocess.append(UniformDequantization(levels, event_dims=3))
            else:  # its conditioner as wide as the flow's first layer
                preprocess.append(VariationalDequantization(shape, (m.hidden[0],), levels))
            alpha = 0.05 if p.logit_alpha is None else p.logit_alpha
            preprocess.append(LogitTransform(alpha, event_dims=3))
        return FlowDensity(core, preprocess)

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """Before issue 27 ``model`` held every family's settings and the images'
        preprocessing: ``dequantization`` and ``logit_alpha`` move to ``preprocess``; a run
        directory drops what its family or its data did not read."""
        model = raw.get("model")
        if isinstance(model, dict):
            moved = {k: model.pop(k) for k in ("dequantization", "logit_alpha") if k in model}
            data = raw.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            image = isinstance(name, str) and name in DATASETS and DATASETS[name].kind == "image"
            if moved and (image or not resolved):
                section = raw.setdefault("preprocess", {})
                if isinstance(section, dict):
                    for key, value in moved.items():
                        section.setdefault(key, value)
        return super().migrate(raw, resolved)

    def build(self, data: Any, training: bool = True) -> Parts:
        model = self._density()
        if training:  # ActNorm's data-dependent initialisation, before any DDP wrapping
            model.train()
            with torch.no_grad():
                model.log_prob(data.train[: min(len(data.train), 512)])
        return {"model": model}

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        params = [p for p in parts["model"].parameters() if p.requires_grad]
        return SurrogateStep(
            _log_prob, (wrap(parts["model"]),), optimizers, params, self.cfg.train.grad_clip
        )

    def validate(self, parts: Parts, data: Splits) -> Callable[[], dict[str, float]]:
        model = parts["model"]
        assert isinstance(model, FlowDensity)
        valid = data.valid.to(_device(model))

        def validate() -> dict[str, float]:
            with torch.no_grad():
                ll = torch.cat([model.log_prob(chunk) for chunk in valid.split(512)])
            metrics = {"valid/log_likelihood": ll.mean().item()}
            if self._image:
                metrics["valid/bits_per_dim"] = -ll.mean().item() / (valid[0].numel() * math.log(2))
            return metrics

        return validate

    def evaluate(self, parts: Parts, data: Splits) -> dict[str, Any]:
        model, e = parts["model"], self.cfg.eval
        assert isinstance(model, FlowDensity)
        test = data.test.to(_device(model))
        if not self._image:
            nll = negative_log_likelihood(model.log_prob, test, e.batch_size)
            return {
                "test_nll": nll.mean().item(),
                "test_nll_stderr": _stderr(nll),
                "test_points": len(test),
            }
        one = bits_per_dim(model.log_prob, test, 1, e.batch_size)
        many = bits_per_dim(model.log_prob, test, e.draws, e.batch_size)
        levels = self._entry.levels
        return {
            f"test_bits_per_dim_k{e.draws}": many.mean().item(),
            "test_bits_per_dim_stderr": _stderr(many),
            "test_bits_per_dim_k1": one.mean().item(),
            # a mean can hide a few images the model finds astronomically unlikely: the median,
            # and how many images score worse than the uniform model (log2 L bits/dim)
            f"test_bits_per_dim_k{e.draws}_median": many.median().item(),
            "test_points_worse_than_uniform": int((many > math.log2(levels)).sum()),
            "test_points": len(test),
            "levels": levels,
        }

    @torch.no_grad()
    def pictures(self, parts: Parts, data: Splits, run: Path) -> list[Picture]:
        n = self.cfg.eval.samples
        if self._image:
            self.sample(parts, data, n, run / "samples.png")
            self._grid(parts, n, 0.7, run / "samples_t07.png")
            return [
                Picture("samples.png", "Samples at temperature 1.0"),
                Picture("samples_t07.png", "Samples at temperature 0.7"),
            ]
        self._density_figure(parts["model"], data.test, run / "density.png")
        if self._entry.shape[0] != 2:
            return [Picture("density.png", "Test data and samples: their first two coordinates")]
        return [Picture("density.png", "Test data, samples, and the model's density")]

    @torch.no_grad()
    def sample(self, parts: Parts, data: Any, n: int, path: Path) -> Path:
        if self._image:
            return self._grid(parts, n, 1.0, path)
        model = parts["model"]
        assert isinstance(model, FlowDensity)
        x = model.sample(n).cpu().numpy()
        fig = plt.figure(figsize=(4, 4))
        plt.scatter(x[:, 0], x[:, 1], s=2)
        plt.title(f"{n} samples")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    def _grid(self, parts: Parts, n: int, temperature: float, path: Path) -> Path:
        model = parts["model"]
        assert isinstance(model, FlowDensity)
        x = model.sample(n, temperature).clamp(0, 1)
        shape = self._entry.shape
        return image_grid(x.reshape(n, -1), shape, path, f"{n} samples, temperature {temperature}")

    def _density_figure(self, model: nn.Module, test: Tensor, path: Path) -> None:
        assert isinstance(model, FlowDensity)
        if test.shape[-1] != 2:  # more than two dimensions: no density map, two coordinates
            self._marginal_figure(model, test[:5000], path)
            return
        lo, hi = test.min(0).values - 0.5, test.max(0).values + 0.5
        gx, gy = torch.linspace(lo[0], hi[0], 200), torch.linspace(lo[1], hi[1], 200)
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
        density = torch.cat(
            [model.log_prob(c.to(_device(model))).exp().cpu() for c in grid.split(4096)]
        )
        samples = model.sample(len(test)).cpu().numpy()
        points = test.cpu().numpy()
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        axes[0].scatter(points[:, 0], points[:, 1], s=1)
        axes[0].set_title("test data")
        axes[1].scatter(samples[:, 0], samples[:, 1], s=1, color="tab:orange")
        axes[1].set_title("samples")
        axes[2].imshow(
            density.reshape(200, 200).numpy(),
            origin="lower",
            extent=(lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()),
            aspect="auto",
        )
        axes[2].set_title("model density")
        for ax in axes:
            ax.set_xlim(lo[0].item(), hi[0].item())
            ax.set_ylim(lo[1].item(), hi[1].item())
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)

    def _marginal_figure(self, model: FlowDensity, test: Tensor, path: Path) -> None:
        points, samples = test.cpu().numpy(), model.sample(len(test)).cpu().numpy()
        lo, hi = points[:, :2].min(0) - 0.5, points[:, :2].max(0) + 0.5
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        for ax, x, title, colour in (
            (axes[0], points, "test data", "tab:blue"),
            (axes[1], samples, "samples", "tab:orange"),
        ):
            ax.scatter(x[:, 0], x[:, 1], s=1, color=colour)
            ax.set_title(f"{title}: coordinates 1 and 2 of {x.shape[1]}")
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)


class _Flattened(Density):
    """A vector flow on images: ``[.., C, H, W]`` flattened to ``[.., D]`` and back."""

    def __init__(self, core: Density, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.core, self.shape = core, shape

    def log_prob(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self.core.log_prob(y.flatten(-len(self.shape)), context)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        return self.core.sample(n, temperature, context).reshape(n, *self.shape)


def _log_prob(model: nn.Module, x: Tensor) -> Tensor:
    """The objective: log p(x) per point (the step maximizes its mean)."""
    return model(x)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _stderr(values: Tensor) -> float:
    return (values.std() / math.sqrt(len(values))).item() if len(values) > 1 else 0.0


__all__ = ["FlowConfig", "FlowTask"]
