"""The Task contract: what a family of methods tells the runner so that any run works alike.

A task owns one configuration class (a ``RunConfig`` subclass with the task's sections) and
answers, in the order the runner asks:

1. ``data()``: the splits and what is known about them (``TaskData``);
2. ``build(data)``: its named parts (``model``, ``guide``, ``objective``, ``critic`` ...),
   the modules that are trained, checkpointed and loaded back;
3. ``optimizers(parts)`` and ``step(parts, optimizers, wrap)``: how one update goes
   (``dgm.train.SurrogateStep``, ``AlternatingStep``, or any ``Step``);
4. ``validate(parts, data)``: metrics during training, the first being the score that
   picks the best checkpoint;
5. ``evaluate(parts, data)``: the final metrics, and ``pictures(parts, data, run)``: the
   files it adds to the report; ``sample(...)`` for ``dgm sample``.

The runner, the report and the command line only ever talk to this contract.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch
from torch import Tensor, nn

from ..train import Step
from ..train.distributed import local_device
from ..train.optim import adam
from ..train.step import Data
from .config import RunConfig, RunKindError, component_of

C = TypeVar("C", bound=RunConfig)
Parts = dict[str, nn.Module]
Wrap = Callable[[nn.Module], nn.Module]


class TaskData(Protocol):
    """What the loop needs of a task's data: the training set and a per-batch transform."""

    @property
    def train(self) -> Data: ...

    @property
    def transform(self) -> Callable[[Tensor], Tensor] | None: ...


@dataclass
class Picture:
    """A file in the run directory that the report shows, with its caption."""

    file: str
    caption: str


class Task(Generic[C]):
    """One family of methods behind the runner. Subclasses set ``name`` and ``Config``.

    Args:
        cfg: the run's configuration, an instance of ``Config``.
    """

    name: ClassVar[str]
    Config: ClassVar[type[RunConfig]]

    def __init__(self, cfg: C) -> None:
        if not isinstance(cfg, self.Config):
            raise TypeError(f"task {self.name!r} needs a {self.Config.__name__}, got {type(cfg)}")
        self.cfg: C = cfg
        # the run directory while training (set by the runner before ``validate``): where a
        # task may record what its validations see (e.g. a GAN's samples over training)
        self.run_dir: Path | None = None

    legacy_model: ClassVar[str | None] = None
    # the checkpoint that evaluation, pictures and samples use: "best" (the best validation
    # score) or "last" (the end of training, e.g. a GAN's, as the papers report them)
    evaluated_checkpoint: ClassVar[str] = "best"

    @classmethod
    def upgrade(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """A mapping in the format before tasks (``raw["task"]`` just set) in this task's
        (default: unchanged; ``migrate`` follows)."""
        return raw

    @classmethod
    def migrate(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        """A mapping of any earlier version of this task's format in the current one.

        Default: a resolved run configuration (``config.yaml`` of a run directory) loses the
        keys this task or its chosen components do not take: they had no effect on that run.
        A task that moved a key moves it here first.
        """
        return drop_unknown(raw, cls.Config) if resolved else raw

    @classmethod
    def check(cls, cfg: C) -> None:
        """Rules that need the task's components; raise ``ConfigError`` (default: none)."""

    def device(self) -> torch.device:
        """Where this run computes (``train.device``)."""
        return local_device(self.cfg.train.device)

    def data(self) -> TaskData:
        """The training, validation and test data and their side information."""
        raise NotImplementedError

    def build(self, data: Any, training: bool = True) -> Parts:
        """The named parts, initialized (``training=False``: only what evaluation needs)."""
        raise NotImplementedError

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        """Default: one Adam over every part (``train.lr``, ``train.adam_eps``), fused where it
        can be (``dgm.train.optim.adam``)."""
        params = [p for m in parts.values() for p in m.parameters() if p.requires_grad]
        return [adam(params, lr=self.cfg.train.lr, eps=self.cfg.train.adam_eps)]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        """One update; ``wrap`` puts a part in DistributedDataParallel under torchrun."""
        raise NotImplementedError

    def validate(self, parts: Parts, data: Any) -> Callable[[], dict[str, float]] | None:
        """Validation metrics (first: the score, higher is better), or ``None``."""
        return None

    def evaluate(self, parts: Parts, data: Any) -> dict[str, Any]:
        """The final metrics of a trained run."""
        raise NotImplementedError

    def pictures(self, parts: Parts, data: Any, run: Path) -> list[Picture]:
        """Write the task's pictures into ``run`` and list them (default: none)."""
        return []

    def sample(self, parts: Parts, data: Any, n: int, path: Path) -> Path:
        """Save ``n`` samples as a picture at ``path`` (for ``dgm sample``)."""
        raise RunKindError(f"a run of task {self.name!r} has no samples to draw")


# what one chunk of an evaluation over particles may hold: points x particles x values per
# point (2**22 floats: 16 MiB of model output; the activations behind it a few times that)
CHUNK_ELEMENTS = 2**22


def points_per_chunk(values_per_point: int, particles: int, most: int | None = None) -> int:
    """How many points to score at once with ``particles`` each, so that a chunk holds about
    ``CHUNK_ELEMENTS`` values (at least one point; at most ``most``)."""
    n = max(1, CHUNK_ELEMENTS // max(1, values_per_point * particles))
    return n if most is None else max(1, min(n, most))


def drop_unknown(raw: dict[str, Any], cls: type) -> dict[str, Any]:
    """``raw`` without the keys that the configuration class ``cls`` does not have (in a
    component section, those its chosen component does not take)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        value, t, spec = raw[f.name], hints[f.name], component_of(f)
        if spec is not None and isinstance(value, dict):
            t = spec.choices().get(value.get(spec.table.tag, spec.default))
        if t is not None and dataclasses.is_dataclass(t) and isinstance(value, dict):
            value = drop_unknown(value, t)  # type: ignore[arg-type]
        out[f.name] = value
    return out


def load_parts(parts: Parts, saved: dict[str, Any]) -> None:
    """Load the parts' entries of a checkpoint (for evaluation: no optimizers, no RNG)."""
    for name, module in parts.items():
        if name in saved:
            module.load_state_dict(saved[name])
        elif module.state_dict():
            raise ValueError(f"the checkpoint has no entry for part {name!r}")


__all__ = [
    "CHUNK_ELEMENTS",
    "Parts",
    "Picture",
    "Task",
    "TaskData",
    "Wrap",
    "drop_unknown",
    "load_parts",
    "points_per_chunk",
]
