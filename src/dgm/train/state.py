"""The training state: every named part, every optimizer, the step counter and the RNG states.

One object is saved and restored, so that a resumed run continues exactly where it stopped.
The checkpoint is a dict with one entry per part (``"model"``, ``"guide"``, ``"objective"``,
``"critic"`` ...: its ``state_dict()``), ``"optimizers"`` (a list, in order), ``"step"``,
``"best"``, ``"bad_validations"``, ``"seconds"``, ``"cpu_seconds"`` and ``"rng"``; checkpoints written before parts had names
have the same layout for their model, guide and objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint

RESERVED = ("step", "best", "bad_validations", "optimizers", "rng", "seconds", "cpu_seconds")


class Stateless(nn.Module):
    """A part with no state, holding a plain callable (e.g. ``IWAE(5)``), so that every run
    lists the same parts and its checkpoint the same entries (an empty one here)."""

    def __init__(self, fn: Any = None) -> None:
        super().__init__()
        self.fn = fn


def callable_of(part: nn.Module) -> Any:
    """The callable a part stands for: a ``Stateless`` part's ``fn``, else the module."""
    return part.fn if isinstance(part, Stateless) else part


@dataclass(eq=False)
class TrainState:
    """Named parts and optimizers of one run, and where the loop is.

    Attributes:
        parts: the modules a run trains and checkpoints, by name (e.g. ``model``, ``guide``,
            ``objective`` for an objective with state, ``generator``, ``critic``).
        optimizers: every optimizer, in a fixed order (the steps hold references to them).
        step: the number of completed steps.
        best: the best validation score so far (higher is better).
        bad_validations: validations since the score last improved (early stopping).
        seconds, cpu_seconds: the wall and CPU time of training so far, over every segment
            of a resumed run (each up to its last checkpoint).
    """

    parts: dict[str, nn.Module]
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    step: int = 0
    best: float = -math.inf
    bad_validations: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def __post_init__(self) -> None:
        clash = [n for n in self.parts if n in RESERVED]
        if clash:
            raise ValueError(f"part names {clash} are reserved for the checkpoint's own entries")

    def params(self) -> list[nn.Parameter]:
        """Trainable parameters of every part, in the parts' order."""
        return [p for m in self.parts.values() for p in m.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        """Put every part in training (or evaluation) mode."""
        for m in self.parts.values():
            m.train(mode)

    def state_dict(self, rng_ranks: list[Any] | None = None) -> dict[str, Any]:
        """Everything a resumed run needs, including the current RNG states.

        Args:
            rng_ranks: every process's RNG states, in rank order (several processes draw
                different numbers: rank 0 also validates); stored as ``"rng_ranks"``.
        """
        state = {
            "step": self.step,
            **{name: m.state_dict() for name, m in self.parts.items()},
            "optimizers": [o.state_dict() for o in self.optimizers],
            "rng": checkpoint.rng_state(),
            "best": self.best,
            "bad_validations": self.bad_validations,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        return state

    def load_state_dict(
        self, saved: Mapping[str, Any], rng: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        """Restore parts, optimizers, counters and (with ``rng``) this process's RNG states.

        The optimizers keep their current hyperparameters (learning rates ...: the run's
        configuration, which may have changed on resume) and take their state (moments,
        step counts) from the checkpoint. Process ``rank`` of ``world_size`` restores its own
        RNG states when the checkpoint holds one per process for that many processes.
        """
        for name, m in self.parts.items():
            if name not in saved:
                if m.state_dict():
                    raise KeyError(f"the checkpoint has no entry for part {name!r}")
                continue
            m.load_state_dict(saved[name])
        _load_optimizers(self.optimizers, saved["optimizers"])
        self.step, self.best, self.bad_validations = (
            saved["step"],
            saved["best"],
            saved["bad_validations"],
        )
        # checkpoints written before the time was kept: unknown, counted from here
        self.seconds = float(saved.get("seconds", 0.0))
        self.cpu_seconds = float(saved.get("cpu_seconds", 0.0))
        if rng:
            ranks = saved.get("rng_ranks")
            own = ranks[rank] if ranks is not None and len(ranks) == world_size else saved["rng"]
            checkpoint.set_rng_state(own)

    def save(
        self, path: Path, rng_ranks: list[Any] | None = None, keep_previous: bool = False
    ) -> None:
        """Write the state atomically (a crash mid-write keeps the previous file)."""
        checkpoint.save_atomic(self.state_dict(rng_ranks), path, keep_previous)

    def load(
        self,
        path: Path,
        map_location: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> Path:
        """Restore from a file written by ``save``, or, if it cannot be read, from the file it
        replaced (``last.prev.pt``); returns the file restored from."""
        saved, used = checkpoint.load_latest(path, map_location=map_location)
        self.load_state_dict(saved, rank=rank, world_size=world_size)
        return used


def _load_optimizers(opts: Sequence[torch.optim.Optimizer], states: Sequence[Any]) -> None:
    if len(opts) != len(states):
        raise ValueError(
            f"the checkpoint holds {len(states)} optimizer state(s) but this run has "
            f"{len(opts)} optimizer(s); resume with the settings the run was started with"
        )
    for opt, state in zip(opts, states, strict=True):
        settings = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        opt.load_state_dict(state)
        for group, own in zip(opt.param_groups, settings, strict=True):
            group.update(own)


__all__ = ["Stateless", "TrainState", "callable_of"]
