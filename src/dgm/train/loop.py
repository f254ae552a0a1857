"""The training loop: budget, batches, logging, validation, early stopping, checkpoints.

What an update does is the step's business (``dgm.train.step``); what is saved is the
state's (``dgm.train.state``). Under torchrun every process runs the loop on its share of
each batch; rank 0 validates, logs and checkpoints, and decisions that end the loop are
shared so that all ranks stop at the same step.

Value checks (``dgm.checks``: the programs' data checks, ``torch.distributions`` argument
validation) run on the first step of a fresh run and are off for every other step (a
resumed run was checked when it started): they read whole tensors on every call, and a
compiled step could not contain them. The NaN check of every loss runs on every step.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..checks import validation
from ..compiling import use_compile
from ..progress import Progress, say
from . import checkpoint
from .batches import Batches, leading, to
from .distributed import SINGLE, World
from .lr_schedule import lr_schedule
from .metrics_log import MetricsLog
from .state import TrainState
from .step import Data, NonFiniteLossError, Step, compile_step


@dataclass
class Schedule:
    """When things happen: the budget (exactly one of ``steps`` and ``epochs``), batch size
    and data order, and the cadence of logging, validation and checkpoints (in steps)."""

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 100
    seed: int = 0
    log_every: int = 100
    validate_every: int = 500
    checkpoint_every: int = 500
    patience: int | None = None  # validations without improvement before stopping
    time_limit: float | None = None  # seconds
    lr_schedule: str = "constant"  # a name in dgm.train.lr_schedule.LR_SCHEDULES
    lr_final: float | None = None  # the factor a decaying schedule ends at (None: its own)


@dataclass
class FitResult:
    """What the loop did: the logged metrics, step count, wall time and best validation score."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0  # wall time in the loop, over every segment of a resumed run
    cpu_seconds: float = 0.0  # this process's CPU time (all its threads) in the loop, the same
    best: float = -math.inf
    stopped_early: bool = False
    planned_steps: int = 0
    stopped_by_time_limit: bool = False
    resumed_from: str | None = None  # the checkpoint file a resumed run continued from
    compiled: bool = False  # whether the step's losses were compiled (train.compile)
    compile_seconds: float | None = None  # wall time of the first compiled step (see run)


@dataclass
class Output:
    """Where a run leaves its record: checkpoints (``last.pt`` and ``best.pt`` in
    ``checkpoint_dir``), the metrics log, and progress (a bar on a terminal, a line about
    every 30 s in a log)."""

    checkpoint_dir: str | Path | None = None
    log: MetricsLog | None = None
    progress: bool | None = False  # None: as dgm.progress says (on unless turned off)
    label: str = "training"  # what the progress bar or lines call the run


@dataclass
class Execution:
    """How the steps run: compiled or not (``dgm.compiling``: ``"auto"``, ``"off"``, ``"on"``,
    and torch.compile's mode), and this process among several (``world``)."""

    compile: str = "off"
    compile_mode: str | None = None
    world: World = SINGLE


def resume(state: TrainState, checkpoint_dir: str | Path, world: World = SINGLE) -> Path:
    """Restore ``state`` from ``checkpoint_dir/last.pt`` (or, if that cannot be read, from
    ``last.prev.pt``, saying so), reading it once, before ``run`` continues from its step.
    Returns the file restored from (for ``note_resume``)."""
    last = Path(checkpoint_dir) / "last.pt"
    params = state.params()
    device = params[0].device if params else torch.device("cpu")
    used = state.load(last, device, rank=world.rank, world_size=world.size)
    if used.name != "last.pt" and world.is_main:
        say(f"dgm: {last} cannot be read; resuming from {used}")
    return used


def note_resume(
    log: MetricsLog | None, step: int, used: Path, note: dict[str, object] | None = None
) -> None:
    """Truncate the log after the restored ``step`` and record the resume there: the file
    it read (``resumed_from``), when (``resumed_at``) and what it changed (``note``, e.g.
    settings)."""
    if log is None:
        return
    log.truncate_after(step)
    when = datetime.datetime.now().isoformat(timespec="seconds")
    log.event(step, resumed_from=used.name, resumed_at=when, **(note or {}))


def run(
    state: TrainState,
    step: Step,
    data: Data,
    schedule: Schedule,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    output: Output | None = None,
    execution: Execution | None = None,
) -> FitResult:
    """Repeat ``step`` on batches of ``data`` from ``state.step`` on until the schedule's
    budget is spent (a resumed run: ``resume`` first).

    ``validate()`` returns metrics whose first value is the score (higher is better) that
    picks ``best.pt`` and drives early stopping; ``last.pt`` is written every
    ``checkpoint_every`` steps, at the end and when stopping early (the file it replaces is
    kept as ``last.prev.pt``, and every process's RNG states go into it).

    A compiled run (``execution.compile``) compiles the step's losses with ``torch.compile``;
    the wall time of its first compiled step (the second of a fresh run, the first of a
    resumed one: tracing, compiling forward and backward, one update) is
    ``FitResult.compile_seconds`` and a ``compile_seconds`` event in the log.
    """
    loop = _Loop(
        state,
        step,
        data,
        schedule,
        transform,
        validate,
        output or Output(),
        execution or Execution(),
    )
    return loop.run()


class _Loop:
    """One run of the loop: what it reads, what it counts, and one method per concern."""

    def __init__(
        self,
        state: TrainState,
        step: Step,
        data: Data,
        schedule: Schedule,
        transform: Callable[[Tensor], Tensor] | None,
        validate: Callable[[], dict[str, float]] | None,
        output: Output,
        execution: Execution,
    ) -> None:
        s, k = schedule, step.num_batches
        if transform is not None and not isinstance(data, Tensor):
            raise ValueError("fit: transform= applies to tensor data, not to a tuple or dict")
        if (s.steps is None) == (s.epochs is None):
            raise ValueError("give exactly one of steps= or epochs=")
        self.state, self.step, self.s, self.k = state, step, s, k
        self.transform, self.validate, self.output = transform, validate, output
        self.world = execution.world
        self.n = leading(data)
        self.batches = Batches(data, s.batch_size, s.seed, self.world)
        per_epoch = self.batches.per_epoch / k
        self.total = s.steps if s.steps is not None else math.ceil(float(s.epochs) * per_epoch)  # type: ignore[arg-type]
        params = state.params()
        self.device = params[0].device if params else torch.device("cpu")
        self.ckpt = Path(output.checkpoint_dir) if output.checkpoint_dir is not None else None
        self.log = output.log if self.world.is_main else None
        self.result = FitResult(planned_steps=self.total, steps=state.step, best=state.best)
        self.window = _Window(s.batch_size * k)
        compiled: Sequence[object] = ()
        if use_compile(execution.compile, self.device):  # a new step: this one stays eager
            required, mode = execution.compile == "on", execution.compile_mode
            self.step, compiled = compile_step(step, required, mode)
        self.result.compiled = bool(compiled)
        # a fresh run's first step runs with value checks (eagerly, also when compiling)
        self.checked_step = 1 if state.step == 0 else 0
        first = state.step + 1 + (self.checked_step == state.step + 1)
        self.first_compiled = first if compiled else None

    def run(self) -> FitResult:
        if self.ckpt is not None and self.world.is_main:
            for stale in checkpoint.remove_temporaries(self.ckpt):
                say(f"dgm: removed {stale}, left by an interrupted checkpoint write")
        show = self.output.progress if self.world.is_main else False
        self.bar = Progress(self.total, self.output.label, "step", self.state.step, show=show)
        set_lr = _lr_setter(self.state.optimizers, self.s, self.total)
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.before = (self.state.seconds, self.state.cpu_seconds)  # earlier segments
        self.state.train()
        try:
            self.steps(set_lr)
        finally:
            self.bar.close()
        set_lr(1)  # the configured rates back (every schedule starts at factor 1)
        self.state.train(False)
        r, s = self.result, self.s
        self.count_time()
        r.seconds, r.cpu_seconds = self.state.seconds, self.state.cpu_seconds
        r.epochs = r.steps * s.batch_size * self.k / self.n
        return r

    def steps(self, set_lr: Callable[[int], float | None]) -> None:
        """The steps from the state's on, until the budget is spent or a stop."""
        for i in range(self.state.step + 1, self.total + 1):
            factor = set_lr(i)
            self.update(i)
            stop = self.s.time_limit is not None and _agree(
                time.perf_counter() - self.start > self.s.time_limit, self.world
            )
            self.result.stopped_by_time_limit = stop and i < self.total
            end = i == self.total or stop
            if i % self.s.log_every == 0 or end:
                self.record(i, factor)
            if self.validate is not None and (i % self.s.validate_every == 0 or end):
                stop = self.validation(i) or stop
            if i % self.s.checkpoint_every == 0 or i == self.total or stop:
                self.save("last.pt")
            self.bar.update(1)
            if stop:
                break

    def update(self, i: int) -> None:
        """Step ``i`` (1-based) on its batches; a non-finite loss names the step and the
        checkpoint kept."""
        xs = [to(self.batches((i - 1) * self.k + j), self.device) for j in range(self.k)]
        if self.transform is not None:
            xs = [self.transform(x) for x in xs]  # type: ignore[arg-type]
        checks = contextlib.nullcontext() if i == self.checked_step else validation(False)
        started = time.perf_counter()
        try:
            with checks:
                losses = self.step(xs)
        except NonFiniteLossError as err:
            examples = self.s.batch_size * self.k
            message = _non_finite_message(err, i, examples, self.n, self.ckpt)
            raise NonFiniteLossError(message, err.name, err.value) from None
        self.state.step = self.result.steps = i
        self.window.add(losses)
        if i == self.first_compiled:
            self.result.compile_seconds = time.perf_counter() - started
            if self.log is not None:
                self.log.event(i, compile_seconds=round(self.result.compile_seconds, 2))

    def record(self, i: int, factor: float | None) -> None:
        """The mean losses since the last record: into the result, the log and the bar."""
        record = self.window.flush(i, self.start)
        if factor is not None:
            record["lr_factor"] = factor
        self.result.history.append(record)
        if self.log is not None:
            self.log.write(i, **{k: v for k, v in record.items() if k not in ("step", "seconds")})
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k.startswith("loss")})

    def validation(self, i: int) -> bool:
        """Validate on rank 0, keep the best checkpoint; whether patience has run out."""
        improved = False
        if self.world.is_main:
            assert self.validate is not None
            metrics = self.validate()
            self.state.train()
            score = next(iter(metrics.values()))
            improved = score > self.state.best
            if improved:
                self.state.best = self.result.best = score
            if self.log is not None:
                self.log.write(i, **metrics)
        self.state.bad_validations = 0 if improved else self.state.bad_validations + 1
        if improved:
            self.save("best.pt")
        patience = self.s.patience
        out_of_patience = patience is not None and self.state.bad_validations >= patience
        if _agree(out_of_patience, self.world) if patience is not None else False:
            self.result.stopped_early = True
            return True
        return False

    def count_time(self) -> None:
        """The state's training time: the earlier segments' and this one's so far."""
        self.state.seconds = self.before[0] + time.perf_counter() - self.start
        self.state.cpu_seconds = self.before[1] + time.process_time() - self.cpu_start

    def save(self, name: str) -> None:
        if self.ckpt is None:
            return
        self.count_time()
        world = self.world
        ranks = _rng_of_every_rank(world) if name == "last.pt" and world.size > 1 else None
        if world.is_main:
            self.state.save(self.ckpt / name, ranks, keep_previous=name == "last.pt")


def _lr_setter(
    optimizers: list[torch.optim.Optimizer], s: Schedule, total: int
) -> Callable[[int], float | None]:
    """Sets every group's rate for step i (1-based) to its configured rate times the schedule's
    factor at the progress before the step; returns the factor (``None``: constant schedule,
    whose rates are left alone)."""
    factor = lr_schedule(s.lr_schedule, s.lr_final)
    base = [[g["lr"] for g in opt.param_groups] for opt in optimizers]
    if s.lr_schedule == "constant":
        return lambda i: None

    def set_lr(i: int) -> float:
        f = factor((i - 1) / total)
        for opt, rates in zip(optimizers, base, strict=True):
            for group, rate in zip(opt.param_groups, rates, strict=True):
                group["lr"] = rate * f
        return f

    return set_lr


class _Window:
    """Mean losses and throughput since the last record."""

    def __init__(self, examples_per_step: int) -> None:
        self.examples_per_step = examples_per_step
        self.sums: dict[str, float] = {}
        self.steps, self.since = 0, time.perf_counter()

    def add(self, losses: dict[str, Tensor]) -> None:
        for key, v in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + v.item()
        self.steps += 1

    def flush(self, step: int, start: float) -> dict[str, float]:
        now = time.perf_counter()
        record = {
            "step": step,
            **{key: v / self.steps for key, v in self.sums.items()},
            "examples_per_s": self.steps * self.examples_per_step / (now - self.since),
            "seconds": now - start,
        }
        self.sums, self.steps, self.since = {}, 0, now
        return record


def _rng_of_every_rank(world: World) -> list[object]:
    """Every process's RNG states, in rank order (a collective: every rank calls it)."""
    states: list[object] = [None] * world.size
    dist.all_gather_object(states, checkpoint.rng_state())
    return states


def _agree(flag: bool, world: World) -> bool:
    """Rank 0's decision, shared with every process (so that all stop at the same step)."""
    if world.size == 1:
        return flag
    t = torch.tensor([float(flag)])
    dist.broadcast(t, src=0)
    return bool(t.item())


def _non_finite_message(
    err: NonFiniteLossError, step: int, examples_per_step: int, n: int, ckpt_dir: Path | None
) -> str:
    last = ckpt_dir / "last.pt" if ckpt_dir is not None else None
    if last is not None and last.is_file():
        saved_step = torch.load(last, map_location="cpu", weights_only=False)["step"]
        kept = f"The last good checkpoint, {last} (step {saved_step}), is kept."
    else:
        kept = "No checkpoint was written before it."
    where = f"{err} at step {step} (epoch {step * examples_per_step / n:.2f}); "
    if err.applied:
        where += f"{err.applied}, the rest of the parameters are those after step {step - 1}."
    else:
        where += f"the parameters are those after step {step - 1}."
    return (
        f"{where} {kept} Lower the learning rate, clip gradients (grad_clip=...), or check "
        "the data for NaN or infinite values."
    )


__all__ = ["Execution", "FitResult", "Output", "Schedule", "note_resume", "resume", "run"]
