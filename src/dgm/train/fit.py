"""One training loop for every (model, guide, objective): read it top to bottom."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

Objective = Callable[..., Tensor]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the parameters are those before the bad step."""


@dataclass
class FitResult:
    """What ``fit`` did: the logged metrics, step count and wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0


def batches(data: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless shuffled minibatches (a fresh permutation per epoch; the last partial one dropped)."""
    n = data.shape[0]
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} points)")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield data[perm[i : i + batch_size]]


def fit(
    model: nn.Module,
    guide: nn.Module,
    objective: Objective,
    data: Tensor,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 100,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    grad_clip: float | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
    log_every: int = 100,
    progress: bool = False,
    time_limit: float | None = None,
) -> FitResult:
    """Maximize ``objective(model, guide, x).mean()`` over minibatches ``x`` of ``data``.

    Args:
        model, guide: the programs; their parameters are trained together.
        objective: maps ``(model, guide, x)`` to a per-data-point bound ``[B]`` (e.g.
            ``dgm.objectives.IWAE(5)``); the loss is its negated mean.
        data: training data ``[N, ...]``, kept on its device; batches move to the model's.
        steps / epochs: the budget (one of them; ``epochs`` may be fractional).
        batch_size: data points per step.
        lr: learning rate of the default Adam optimizer.
        optimizer: an optimizer to use instead (keeps its state across calls).
        grad_clip: clip the global gradient norm to this value.
        transform: applied to each batch (e.g. ``dgm.data.dynamic_binarize``).
        seed: seeds the shuffling.
        log_every: record the mean loss every this many steps.
        progress: show a tqdm bar with the loss and examples/s.
        time_limit: stop after this many seconds.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite; nothing is updated on that step.
    """
    n = data.shape[0]
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    total = steps if steps is not None else math.ceil(float(epochs) * (n // batch_size))  # type: ignore[arg-type]
    params = [p for p in itertools.chain(model.parameters(), guide.parameters()) if p.requires_grad]
    opt = optimizer or torch.optim.Adam(params, lr=lr)
    device = next(iter(params)).device if params else data.device
    generator = torch.Generator().manual_seed(seed)
    result = FitResult()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", dynamic_ncols=True)
    start, running, count = time.perf_counter(), 0.0, 0
    model.train()
    guide.train()
    for step, x in zip(range(1, total + 1), batches(data, batch_size, generator), strict=False):
        x = x.to(device, non_blocking=True)
        if transform is not None:
            x = transform(x)
        loss = -objective(model, guide, x).mean()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at step {step} (epoch {step * batch_size / n:.2f}); "
                f"the parameters are those after step {step - 1}. Lower the learning rate, clip "
                "gradients (grad_clip=...), or check the data for NaN or infinite values."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        running, count = running + loss.item(), count + 1
        result.steps = step
        out_of_time = time_limit is not None and time.perf_counter() - start > time_limit
        if step % log_every == 0 or step == total or out_of_time:
            elapsed = time.perf_counter() - start
            record = {"step": step, "loss": running / count, "seconds": elapsed}
            result.history.append(record)
            if bar is not None:
                bar.set_postfix(
                    loss=f"{record['loss']:.3f}", ex_s=f"{step * batch_size / elapsed:.0f}"
                )
            running, count = 0.0, 0
        if bar is not None:
            bar.update(1)
        if out_of_time:
            break
    if bar is not None:
        bar.close()
    model.eval()
    guide.eval()
    result.seconds = time.perf_counter() - start
    result.epochs = result.steps * batch_size / n
    return result
