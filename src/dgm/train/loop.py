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
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..checks import validation
from ..compiling import use_compile
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
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (all its threads) in the loop
    best: float = -math.inf
    stopped_early: bool = False
    planned_steps: int = 0
    stopped_by_time_limit: bool = False
    resumed_from: str | None = None  # the checkpoint file a resumed run continued from
    compiled: bool = False  # whether the step's losses were compiled (train.compile)
    compile_seconds: float | None = None  # wall time of the first compiled step (see run)


def run(
    state: TrainState,
    step: Step,
    data: Data,
    schedule: Schedule,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    log: MetricsLog | None = None,
    progress: bool = False,
    world: World = SINGLE,
    resume_note: dict[str, object] | None = None,
    compile: str = "off",
    compile_mode: str | None = None,
) -> FitResult:
    """Repeat ``step`` on batches of ``data`` until the schedule's budget is spent.

    ``validate()`` returns metrics whose first value is the score (higher is better) that
    picks ``best.pt`` and drives early stopping; ``last.pt`` is written every
    ``checkpoint_every`` steps, at the end and when stopping early (the file it replaces is
    kept as ``last.prev.pt``, and every process's RNG states go into it). ``resume=True``
    restores the state from ``checkpoint_dir/last.pt`` (or, if that cannot be read, from
    ``last.prev.pt``, saying so), truncates the log after it and records ``resume_note``
    (e.g. the settings changed on resume) there.

    ``compile`` (``"auto"``, ``"off"``, ``"on"``; ``dgm.compiling``) compiles the step's
    losses with ``torch.compile`` (``compile_mode``: its mode). The wall time of the first
    compiled step (the second of a fresh run, the first of a resumed one: tracing, compiling
    forward and backward, one update) is ``FitResult.compile_seconds`` and a
    ``compile_seconds`` event in the log.
    """
    s, n, k = schedule, leading(data), step.num_batches
    if transform is not None and not isinstance(data, Tensor):
        raise ValueError("fit: transform= applies to tensor data, not to a tuple or dict")
    if (s.steps is None) == (s.epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    batches = Batches(data, s.batch_size, s.seed, world)
    total = s.steps if s.steps is not None else math.ceil(float(s.epochs) * batches.per_epoch / k)  # type: ignore[arg-type]
    params = state.params()
    device = params[0].device if params else torch.device("cpu")
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    result, logged = FitResult(planned_steps=total), _Window(s.batch_size * k)
    if ckpt is not None and world.is_main:
        for stale in checkpoint.remove_temporaries(ckpt):
            print(f"dgm: removed {stale}, left by an interrupted checkpoint write", file=sys.stderr)
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs checkpoint_dir")
        saved, used = checkpoint.load_latest(ckpt / "last.pt", map_location=device)
        state.load_state_dict(saved, rank=world.rank, world_size=world.size)
        notes = dict(resume_note or {})
        result.resumed_from = used.name
        if used.name != "last.pt":
            notes["resumed_from"] = used.name
            if world.is_main:
                print(
                    f"dgm: {ckpt / 'last.pt'} cannot be read; resuming from {used}", file=sys.stderr
                )
        if log is not None:
            log.truncate_after(state.step)
            if notes:
                log.event(state.step, **notes)
    result.steps, result.best = state.step, state.best
    compiled = (
        compile_step(step, compile == "on", compile_mode) if use_compile(compile, device) else []
    )
    result.compiled = bool(compiled)
    # a fresh run's first step runs with value checks (eagerly, also when compiling)
    checked_step = 1 if state.step == 0 else 0
    first_compiled = state.step + 1 + (checked_step == state.step + 1)

    def save(name: str) -> None:
        if ckpt is None:
            return
        ranks = _rng_of_every_rank(world) if name == "last.pt" and world.size > 1 else None
        if world.is_main:
            state.save(ckpt / name, ranks, keep_previous=name == "last.pt")

    bar = _progress_bar(total, state.step) if progress and world.is_main else None
    set_lr = _lr_setter(state.optimizers, s, total)
    start, cpu_start = time.perf_counter(), time.process_time()
    state.train()
    for i in range(state.step + 1, total + 1):
        factor = set_lr(i)
        xs = [to(batches((i - 1) * k + j), device) for j in range(k)]
        checks = contextlib.nullcontext() if i == checked_step else validation(False)
        started = time.perf_counter()
        try:
            with checks:
                losses = step([transform(x) if transform else x for x in xs])  # type: ignore[arg-type]
        except NonFiniteLossError as err:
            raise NonFiniteLossError(
                _non_finite_message(err, i, s.batch_size * k, n, ckpt), err.name, err.value
            ) from None
        state.step = result.steps = i
        logged.add(losses)
        if compiled and i == first_compiled:
            result.compile_seconds = time.perf_counter() - started
            if log is not None and world.is_main:
                log.event(i, compile_seconds=round(result.compile_seconds, 2))
        stop = s.time_limit is not None and _agree(
            time.perf_counter() - start > s.time_limit, world
        )
        result.stopped_by_time_limit = stop and i < total
        if i % s.log_every == 0 or i == total or stop:
            record = logged.flush(i, start)
            if factor is not None:
                record["lr_factor"] = factor
            result.history.append(record)
            if log is not None and world.is_main:
                log.write(
                    i, **{key: v for key, v in record.items() if key not in ("step", "seconds")}
                )
            if bar is not None:
                bar.set_postfix(
                    {key: f"{v:.3g}" for key, v in record.items() if key.startswith("loss")}
                )
        if validate is not None and (i % s.validate_every == 0 or i == total or stop):
            improved = False
            if world.is_main:
                metrics = validate()
                state.train()
                score = next(iter(metrics.values()))
                improved = score > state.best
                if improved:
                    state.best = result.best = score
                if log is not None:
                    log.write(i, **metrics)
            state.bad_validations = 0 if improved else state.bad_validations + 1
            if improved:
                save("best.pt")
            if s.patience is not None and _agree(state.bad_validations >= s.patience, world):
                result.stopped_early = stop = True
        if i % s.checkpoint_every == 0 or i == total or stop:
            save("last.pt")
        if bar is not None:
            bar.update(1)
        if stop:
            break
    if bar is not None:
        bar.close()
    set_lr(1)  # the configured rates back (every schedule starts at factor 1)
    state.train(False)
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    result.epochs = result.steps * s.batch_size * k / n
    return result


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


def _progress_bar(total: int, done: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True)


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


__all__ = ["FitResult", "Schedule", "run"]
