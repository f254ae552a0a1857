"""Steps: one update of the training state on one batch (or a few), the unit the loop repeats.

A step is any object with ``num_batches`` (how many batches it consumes per call) and
``__call__(batches) -> dict`` of the losses it wants logged. Two kinds cover the methods
here:

- ``SurrogateStep``: ``loss = -objective(*programs, *batch).mean()``, one backward pass,
  then every optimizer steps. Methods that train the model and the guide on different
  signals (wake-sleep) encode it in the surrogate's gradients and give each its own
  optimizer.
- ``AlternatingStep``: n updates of one player (a critic), each on a fresh batch with its
  own loss and optimizer, then one update of the other (a generator): adversarial training.

A step checks each loss with ``check_finite`` *before* its update, so a NaN changes nothing
it has not already reported. ``compile(required, mode)`` replaces a step's losses with
``dgm.compiling.Compiled`` versions (``train.compile``) and returns them; the updates
around them stay eager.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..compiling import Compiled, CompileError
from ..inputs import Cast, Data


class Step(Protocol):
    """One update on ``num_batches`` consecutive batches; returns the losses to log."""

    num_batches: int

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]: ...


class CompilableStep(Step, Protocol):
    """A step whose losses can be compiled (``train.compile``)."""

    def compile(self, required: bool = False, mode: str | None = None) -> list[Compiled]:
        """Compile the step's losses from the next call on; return their wrappers."""
        ...


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the loop names the step and the checkpoint kept.

    Attributes:
        name: which loss (``"loss"``, ``"critic loss"`` ...).
        value: its value.
        applied: what the step had already updated before it (empty: nothing).
    """

    def __init__(
        self, message: str, name: str = "loss", value: float = math.nan, applied: str = ""
    ) -> None:
        super().__init__(message)
        self.name, self.value, self.applied = name, value, applied


def check_finite(name: str, loss: Tensor, applied: str = "") -> None:
    """Raise ``NonFiniteLossError`` if ``loss`` is NaN or infinite (before it is used)."""
    if not torch.isfinite(loss):
        value = loss.item()
        raise NonFiniteLossError(f"the {name} is {value}", name, value, applied)


def call(fn: Callable[..., Any], *leading: Any, batch: Data) -> Any:
    """``fn(*leading, *batch)`` for a tuple, ``fn(*leading, **batch)`` for a dict, else ``fn(*leading, batch)``."""
    if isinstance(batch, dict):
        return fn(*leading, **batch)
    if isinstance(batch, tuple):
        return fn(*leading, *batch)
    return fn(*leading, batch)


class SurrogateStep:
    """Maximize a per-data-point bound: ``loss = -objective(*programs, *batch).mean()``.

    Args:
        objective: e.g. ``dgm.IWAE(5)``; called as ``objective(*programs, *batch)`` and
            returning ``[B]``.
        programs: what the objective is called with first (model and guide, possibly
            wrapped in DistributedDataParallel).
        optimizers: all step after the one backward pass.
        params: the parameters whose global gradient norm ``grad_clip`` bounds.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
    """

    num_batches = 1

    def __init__(
        self,
        objective: Callable[..., Tensor],
        programs: Sequence[Callable[..., Any]],
        optimizers: Sequence[torch.optim.Optimizer],
        params: Sequence[nn.Parameter] = (),
        grad_clip: float | None = None,
    ) -> None:
        self.objective, self.programs = objective, tuple(programs)
        self.optimizers, self.params, self.grad_clip = list(optimizers), list(params), grad_clip
        self.loss: Callable[[Data], Tensor] = self._loss

    def _loss(self, batch: Data) -> Tensor:
        return -call(self.objective, *self.programs, batch=batch).mean()

    def compile(self, required: bool = False, mode: str | None = None) -> list[Compiled]:
        """Compile the loss (objective and programs, forward and backward)."""
        compiled = Compiled(self._loss, "loss", required, mode)
        self.loss = compiled
        return [compiled]

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]:
        (batch,) = batches
        loss = self.loss(batch)
        check_finite("loss", loss)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        for opt in self.optimizers:
            opt.step()
        return {"loss": loss.detach()}


@dataclass
class Update:
    """One player's update: a scalar loss of a batch (to minimize) and its optimizer.

    Attributes:
        name: the player, used in logged keys (``loss/<name>``) and error messages.
        loss: ``batch -> scalar`` loss.
        optimizer: steps this player's parameters only.
        grad_clip: clip the global norm of this optimizer's gradients to this value.
    """

    name: str
    loss: Callable[[Data], Tensor]
    optimizer: torch.optim.Optimizer
    grad_clip: float | None = None

    def compile(self, required: bool = False, mode: str | None = None) -> list[Compiled]:
        """Compile this player's loss."""
        compiled = Compiled(self.loss, f"{self.name} loss", required, mode)
        self.loss = compiled
        return [compiled]

    def apply(self, batch: Data, applied: str = "") -> Tensor:
        loss = self.loss(batch)
        check_finite(f"{self.name} loss", loss, applied)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        return loss.detach()


class AlternatingStep:
    """``critic_steps`` critic updates, each on a fresh batch, then one generator update.

    The critic's updates take consecutive batches of the data; the generator's update sees
    the last of them. Each player zeroes and steps only its own optimizer, so the gradients
    one player's loss leaves on the other's parameters are never applied. Logged:
    ``loss/<critic>`` (mean over its updates) and ``loss/<generator>``.

    References:
        Goodfellow et al., "Generative Adversarial Nets", 2014, Algorithm 1 (k critic steps
        per generator step); Gulrajani et al., "Improved Training of Wasserstein GANs",
        2017, Algorithm 1 (n_critic = 5).
    """

    def __init__(self, critic: Update, generator: Update, critic_steps: int = 1) -> None:
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        self.critic, self.generator, self.num_batches = critic, generator, critic_steps

    def compile(self, required: bool = False, mode: str | None = None) -> list[Compiled]:
        """Compile both players' losses."""
        return [*self.critic.compile(required, mode), *self.generator.compile(required, mode)]

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]:
        n, c = self.num_batches, self.critic.name
        critic_losses = [
            self.critic.apply(batch, f"{i} of the {n} {c} updates of this step were applied")
            for i, batch in enumerate(batches)
        ]
        applied = f"all {n} {c} updates of this step were applied"
        generator_loss = self.generator.apply(batches[-1], applied)
        return {
            f"loss/{c}": torch.stack(critic_losses).mean(),
            f"loss/{self.generator.name}": generator_loss,
        }


class CastStep:
    """A step that casts each batch before handing it to ``step`` (tuple and dict data)."""

    def __init__(self, step: Step, cast: Cast) -> None:
        self.step, self.cast, self.num_batches = step, cast, step.num_batches

    def compile(self, required: bool = False, mode: str | None = None) -> list[Compiled]:
        """Compile the wrapped step's losses (the cast stays eager)."""
        return compile_step(self.step, required, mode)

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]:
        return self.step([self.cast(b) for b in batches])


def compile_step(step: Step, required: bool = False, mode: str | None = None) -> list[Compiled]:
    """``step.compile(required, mode)``, or for a step without losses to compile: ``[]``, or
    (``required``) a ``CompileError`` naming the step's class."""
    method = getattr(step, "compile", None)
    if method is None:
        if required:
            raise CompileError(
                f"train.compile=on, but this task's step ({type(step).__name__}) has no "
                "compile(required, mode) method; set train.compile=off"
            )
        return []
    return list(method(required, mode))


__all__ = [
    "AlternatingStep",
    "CastStep",
    "CompilableStep",
    "Data",
    "NonFiniteLossError",
    "Step",
    "SurrogateStep",
    "Update",
    "call",
    "check_finite",
    "compile_step",
]
