"""``fit``: train a model and a guide on one objective, the common case of the loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..inputs import Inputs, as_data, float_dtype
from .distributed import SINGLE, World, wrap
from .loop import Execution, FitResult, Output, Schedule, note_resume, run
from .loop import resume as restore
from .metrics_log import MetricsLog
from .optim import adam
from .state import Stateless, TrainState
from .step import CastStep, Step, SurrogateStep

Objective = Callable[..., Tensor]


def fit(
    model: nn.Module,
    guide: nn.Module,
    objective: Objective,
    data: Inputs,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 100,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None = None,
    grad_clip: float | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
    log_every: int = 100,
    progress: bool | None = None,
    time_limit: float | None = None,
    lr_schedule: str = "constant",
    lr_final: float | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    validate_every: int = 500,
    patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    log: MetricsLog | None = None,
    world: World = SINGLE,
    compile: str = "auto",
    compile_mode: str | None = None,
) -> FitResult:
    """Maximize ``objective(model, guide, x).mean()`` over minibatches ``x`` of ``data``.

    This builds a ``TrainState`` (parts ``model``, ``guide`` and ``objective``), a
    ``SurrogateStep`` and a ``Schedule`` and hands them to ``dgm.train.loop.run``; use those
    directly for other updates (e.g. ``AlternatingStep`` for adversarial training).

    Args:
        model, guide: the programs; their parameters are trained.
        objective: maps ``(model, guide, x)`` to a per-data-point bound ``[B]`` (e.g.
            ``dgm.objectives.IWAE(5)``); the loss is its negated mean. Methods that train the
            model and the guide on different signals (wake-sleep) return a surrogate whose
            gradients differ per parameter group. An objective that is an ``nn.Module``
            (``NVIL``'s baseline) has its parameters trained and its state checkpointed too.
        data: training data ``[N, ...]``; batches move to the model's device. A tuple of
            tensors is passed as positional arguments, a dict as keyword arguments
            (``objective(model, guide, *batch)`` / ``(**batch)``), each indexed alike.
            Each tensor may be a numpy array (it becomes a tensor). Numpy floats, unsigned
            integers (``uint8`` images, values kept) and bool data given alone reach the
            objective in the floating dtype of the parameters (float32 by default), cast
            batch by batch; signed integers (labels, indices), the bool masks of a tuple or
            dict and torch floating tensors are passed unchanged. Lists, numpy arrays of
            objects or strings, and 0-dimensional data are refused, saying what to pass
            (``dgm.inputs`` has the rule).
        steps / epochs: the budget (exactly one; ``epochs`` may be fractional).
        batch_size: the global batch (split across processes under torchrun).
        lr: learning rate of the default optimizer (``dgm.train.optim.adam`` over all
            parameters: Adam, fused where the parameters allow it).
        optimizer: one optimizer or several (e.g. one for the model and one for the guide);
            all of them step after each backward pass.
        grad_clip: clip the global gradient norm to this value.
        transform: applied to each batch (e.g. ``dgm.data.dynamic_binarize``), after the
            cast above; tensor data only.
        seed: seeds the data order (the programs' own draws use the global torch RNG).
        log_every: record the mean loss every this many steps.
        progress: show progress with the loss (``dgm.progress``: a bar on a terminal, a line
            about every 30 s in a log); ``None``: unless turned off there.
        time_limit: stop after this many seconds.
        lr_schedule: a name in ``dgm.train.lr_schedule.LR_SCHEDULES`` ("constant",
            "exponential", "cosine", "iwae"): every optimizer's rate times a factor of the
            fraction of the budget done, set before each step.
        lr_final: the factor a decaying schedule ends at (``None``: the schedule's own).
        validate: returns metrics; the first one is the score (higher is better) that picks
            the best checkpoint and drives early stopping. Run every ``validate_every`` steps.
        patience: stop after this many validations without improvement.
        checkpoint_dir: where ``last.pt`` (every ``checkpoint_every`` steps) and ``best.pt``
            go, written atomically. ``resume=True`` continues from ``last.pt``.
        log: a ``MetricsLog`` for losses and validation metrics.
        world: this process's rank among several (``dgm.train.distributed.init``).
        compile: ``"auto"`` (compile on CUDA), ``"on"`` or ``"off"``: the loss, forward and
            backward, compiled with ``torch.compile`` (``dgm.compiling``; ``compile_mode``
            is its mode, e.g. ``"reduce-overhead"`` for CUDA graphs). The first step runs
            eagerly with value checks, as every run's first step does.

    Raises:
        CompileError: ``compile="on"`` where the loss cannot be compiled (the message says why).
        NonFiniteLossError: the loss is NaN or infinite; nothing is updated on that step and
            the last good checkpoint is kept.
        TypeError, ValueError: data that is not converted (see ``data``).
    """
    tensors, cast = as_data(data, float_dtype(model, guide, objective), "fit")
    # an objective that is a module (NVIL's baseline network) trains along with the programs
    held = objective if isinstance(objective, nn.Module) else Stateless(objective)
    state = TrainState({"model": model, "guide": guide, "objective": held})
    params = state.params()
    if optimizer is None:
        state.optimizers = [adam(params, lr=lr)]
    elif isinstance(optimizer, torch.optim.Optimizer):
        state.optimizers = [optimizer]
    else:
        state.optimizers = list(optimizer)
    device = params[0].device if params else torch.device("cpu")
    programs = (wrap(model, world, device), wrap(guide, world, device))
    step: Step = SurrogateStep(objective, programs, state.optimizers, params, grad_clip)
    if cast is not None:  # cast batch by batch, on the device: uint8 data stays uint8
        if isinstance(tensors, Tensor):
            transform = cast.then(transform)
        else:
            step = CastStep(step, cast)
    schedule = Schedule(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        log_every=log_every,
        validate_every=validate_every,
        checkpoint_every=checkpoint_every,
        patience=patience,
        time_limit=time_limit,
        lr_schedule=lr_schedule,
        lr_final=lr_final,
    )
    output = Output(checkpoint_dir, log, progress)
    used = None
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        used = restore(state, checkpoint_dir, world)
        note_resume(log if world.is_main else None, state.step, used)
    result = run(
        state,
        step,
        tensors,
        schedule,
        transform=transform,
        validate=validate,
        output=output,
        execution=Execution(compile, compile_mode, world),
    )
    result.resumed_from = used.name if used is not None else None
    return result
