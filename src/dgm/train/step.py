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
it has not already reported. Both are made of ``Update``s (a loss, its optimizers, clipping);
``compiled(required, mode)`` returns the same step with its updates' losses compiled
(``dgm.compiling.Compiled``, ``train.compile``); the optimizer steps around them stay eager.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
    """A step made of ``Update``s whose losses can be compiled (``train.compile``)."""

    @property
    def updates(self) -> tuple[Update, ...]: ...

    def compiled(self, required: bool = False, mode: str | None = None) -> CompilableStep:
        """The same step with its losses compiled (this one unchanged)."""
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


@dataclass(frozen=True)
class Update:
    """One update: a scalar loss of a batch (to minimize), the optimizers that step on it, and
    the gradient clipping between. Every step is made of these.

    Attributes:
        name: the player (``"critic"`` ...), used in logged keys (``loss/<name>``) and error
            messages; ``""`` for a step's single update (logged as ``loss``).
        loss: ``batch -> scalar`` loss.
        optimizers: one optimizer or several; each is zeroed before the backward pass and
            steps after it (several: e.g. the model's and the guide's learning rates).
        grad_clip: clip the global norm of ``params``' gradients to this value.
        params: the parameters clipped (default: every parameter of ``optimizers``).
    """

    name: str
    loss: Callable[[Data], Tensor]
    optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer]
    grad_clip: float | None = None
    params: Sequence[nn.Parameter] | None = None

    def __post_init__(self) -> None:
        opts = self.optimizers
        opts = (opts,) if isinstance(opts, torch.optim.Optimizer) else tuple(opts)
        object.__setattr__(self, "optimizers", opts)
        if not self.params:
            params = [p for o in opts for g in o.param_groups for p in g["params"]]
            object.__setattr__(self, "params", tuple(params))

    @property
    def label(self) -> str:
        """What messages call this update's loss."""
        return f"{self.name} loss" if self.name else "loss"

    def compiled(self, required: bool = False, mode: str | None = None) -> Update:
        """This update with its loss compiled (``dgm.compiling.Compiled``); the optimizer
        steps around it stay eager."""
        return replace(self, loss=Compiled(self.loss, self.label, required, mode))

    def apply(self, batch: Data, applied: str = "") -> Tensor:
        """One update on ``batch``; a non-finite loss is refused before anything changes
        (``applied``: what the step had already updated, for the message)."""
        loss = self.loss(batch)
        check_finite(self.label, loss, applied)
        for opt in self.optimizers:  # type: ignore[union-attr]
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)  # type: ignore[arg-type]
        for opt in self.optimizers:  # type: ignore[union-attr]
            opt.step()
        return loss.detach()


class SurrogateStep:
    """Maximize a per-data-point bound: one ``Update`` whose loss is
    ``-objective(*programs, *batch).mean()``, after which every optimizer steps.

    Args:
        objective: e.g. ``dgm.IWAE(5)``; called as ``objective(*programs, *batch)`` and
            returning ``[B]``.
        programs: what the objective is called with first (model and guide, possibly
            wrapped in DistributedDataParallel).
        optimizers: all step after the one backward pass.
        params: the parameters whose global gradient norm ``grad_clip`` bounds (default:
            the optimizers').
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
        self.update = Update("", self._loss, tuple(optimizers), grad_clip, tuple(params))

    def _loss(self, batch: Data) -> Tensor:
        return -call(self.objective, *self.programs, batch=batch).mean()

    @property
    def updates(self) -> tuple[Update, ...]:
        return (self.update,)

    @property
    def loss(self) -> Callable[[Data], Tensor]:
        """The loss the step computes (a ``Compiled`` one once compiled)."""
        return self.update.loss

    def compiled(self, required: bool = False, mode: str | None = None) -> SurrogateStep:
        """The same step with its loss compiled (objective and programs, forward and
        backward); this one is unchanged."""
        step = copy.copy(self)
        step.update = self.update.compiled(required, mode)
        return step

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]:
        (batch,) = batches
        return {"loss": self.update.apply(batch)}


class AlternatingStep:
    """``critic_steps`` critic updates, each on a fresh batch, then one generator update.

    The critic's updates take consecutive batches of the data; the generator's update sees
    the last of them. Each player zeroes and steps only its own optimizers, so the gradients
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

    @property
    def updates(self) -> tuple[Update, ...]:
        return (self.critic, self.generator)

    def compiled(self, required: bool = False, mode: str | None = None) -> AlternatingStep:
        """The same step with both players' losses compiled."""
        critic, generator = (u.compiled(required, mode) for u in self.updates)
        return AlternatingStep(critic, generator, self.num_batches)

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

    @property
    def updates(self) -> tuple[Update, ...]:
        return tuple(getattr(self.step, "updates", ()))

    def compiled(self, required: bool = False, mode: str | None = None) -> CastStep:
        """The wrapped step compiled (the cast stays eager)."""
        return CastStep(compile_step(self.step, required, mode)[0], self.cast)

    def __call__(self, batches: Sequence[Data]) -> dict[str, Tensor]:
        return self.step([self.cast(b) for b in batches])


def compile_step(
    step: Step, required: bool = False, mode: str | None = None
) -> tuple[Step, list[Compiled]]:
    """``step.compiled(required, mode)`` and its compiled losses; a step without losses to
    compile is returned as it is with ``[]``, or (``required``) refused with a
    ``CompileError`` naming the step's class."""
    method = getattr(step, "compiled", None)
    if method is None:
        if required:
            raise CompileError(
                f"train.compile=on, but this task's step ({type(step).__name__}) has no "
                "compiled(required, mode) method; set train.compile=off"
            )
        return step, []
    new = method(required, mode)
    return new, [u.loss for u in getattr(new, "updates", ()) if isinstance(u.loss, Compiled)]


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
