"""One training loop for every (model, guide, objective): read it top to bottom."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from . import checkpoint
from .distributed import SINGLE, World, wrap
from .metrics_log import MetricsLog

Objective = Callable[..., Tensor]
Data = Tensor | tuple[Tensor, ...] | dict[str, Tensor]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the parameters are those before the bad step."""


@dataclass
class FitResult:
    """What ``fit`` did: the logged metrics, step count, wall time and best validation score."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    best: float = -math.inf
    stopped_early: bool = False


def _leading(data: Data) -> int:
    """The number of points of a tensor, or of every tensor of a tuple or dict (checked)."""
    tensors = (
        list(data.values())
        if isinstance(data, dict)
        else (list(data) if isinstance(data, tuple) else [data])
    )
    if not tensors:
        raise ValueError("fit: the data holds no tensors")
    sizes = {int(t.shape[0]) for t in tensors}
    if len(sizes) != 1:
        raise ValueError(
            f"fit: the data's tensors have different numbers of points {sorted(sizes)}; "
            "every tensor of a tuple or dict must index the same points in its first dimension"
        )
    return sizes.pop()


def _index(data: Data, idx: Tensor) -> Data:
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(v[idx] for v in data)
    return data[idx]


def _to(data: Data, device: torch.device) -> Data:
    if isinstance(data, dict):
        return {k: v.to(device, non_blocking=True) for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(v.to(device, non_blocking=True) for v in data)
    return data.to(device, non_blocking=True)


class Batches:
    """Minibatches by step number: epoch e is a permutation drawn from ``(seed, e)`` alone.

    Step s of any run with the same seed sees the same global batch, which makes resuming
    exact. With several processes, rank r takes every ``world.size``-th point of it. Data is
    a tensor, or a tuple or dict of tensors indexed alike (e.g. inputs and a padding mask).
    """

    def __init__(self, data: Data, batch_size: int, seed: int, world: World = SINGLE) -> None:
        n = _leading(data)
        if n < batch_size:
            raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} points)")
        if batch_size % world.size:
            raise ValueError(
                f"the global batch_size {batch_size} must be divisible by the {world.size} processes"
            )
        self.data, self.batch_size, self.seed, self.world = data, batch_size, seed, world
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> Data:
        """The batch of 0-based ``step`` (this process's share of it)."""
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(_leading(self.data), generator=g)
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        return _index(self.data, idx[self.world.rank :: self.world.size])


def fit(
    model: nn.Module,
    guide: nn.Module,
    objective: Objective,
    data: Data,
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
    progress: bool = False,
    time_limit: float | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    validate_every: int = 500,
    patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    log: MetricsLog | None = None,
    world: World = SINGLE,
) -> FitResult:
    """Maximize ``objective(model, guide, x).mean()`` over minibatches ``x`` of ``data``.

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
        steps / epochs: the budget (exactly one; ``epochs`` may be fractional).
        batch_size: the global batch (split across processes under torchrun).
        lr: learning rate of the default optimizer (Adam over all parameters).
        optimizer: one optimizer or several (e.g. one for the model and one for the guide);
            all of them step after each backward pass.
        grad_clip: clip the global gradient norm to this value.
        transform: applied to each batch (e.g. ``dgm.data.dynamic_binarize``); tensor data only.
        seed: seeds the data order (the programs' own draws use the global torch RNG).
        log_every: record the mean loss every this many steps.
        progress: a tqdm bar with the loss and examples/s.
        time_limit: stop after this many seconds.
        validate: returns metrics; the first one is the score (higher is better) that picks
            the best checkpoint and drives early stopping. Run every ``validate_every`` steps.
        patience: stop after this many validations without improvement.
        checkpoint_dir: where ``last.pt`` (every ``checkpoint_every`` steps) and ``best.pt``
            go, written atomically. ``resume=True`` continues from ``last.pt``.
        log: a ``MetricsLog`` for losses and validation metrics.
        world: this process's rank among several (``dgm.train.distributed.init``).

    Raises:
        NonFiniteLossError: the loss is NaN or infinite; nothing is updated on that step and
            the last good checkpoint is kept.
    """
    n = _leading(data)
    if transform is not None and not isinstance(data, Tensor):
        raise ValueError("fit: transform= applies to tensor data, not to a tuple or dict")
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    batches = Batches(data, batch_size, seed, world)
    total = steps if steps is not None else math.ceil(float(epochs) * batches.per_epoch)  # type: ignore[arg-type]
    # an objective that is a module (NVIL's baseline network) trains along with the programs
    extra = objective if isinstance(objective, nn.Module) else None
    modules = [model, guide] + ([extra] if extra is not None else [])
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opts = _optimizers(optimizer, params, lr)
    device = params[0].device if params else torch.device("cpu")
    model_call, guide_call = wrap(model, world, device), wrap(guide, world, device)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    result = FitResult()
    first_step, bad_validations = 1, 0
    if resume:
        if ckpt_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        saved = checkpoint.load(ckpt_dir / "last.pt", map_location=device)
        model.load_state_dict(saved["model"])
        guide.load_state_dict(saved["guide"])
        if extra is not None:
            extra.load_state_dict(saved.get("objective", {}))
        for opt, state in zip(opts, saved["optimizers"], strict=True):
            opt.load_state_dict(state)
        checkpoint.set_rng_state(saved["rng"])
        first_step, result.best, bad_validations = (
            saved["step"] + 1,
            saved["best"],
            saved["bad_validations"],
        )
        result.steps = saved["step"]
        if log is not None:
            log.truncate_after(saved["step"])

    def save(name: str) -> None:
        if ckpt_dir is None or not world.is_main:
            return
        state = {
            "step": result.steps,
            "model": model.state_dict(),
            "guide": guide.state_dict(),
            "objective": extra.state_dict() if extra is not None else {},
            "optimizers": [o.state_dict() for o in opts],
            "rng": checkpoint.rng_state(),
            "best": result.best,
            "bad_validations": bad_validations,
        }
        checkpoint.save_atomic(state, ckpt_dir / name)

    bar = None
    if progress and world.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=first_step - 1, unit="step", dynamic_ncols=True)
    start, window_loss, window_steps, window_start = (
        time.perf_counter(),
        0.0,
        0,
        time.perf_counter(),
    )
    for m in modules:
        m.train()
    for step in range(first_step, total + 1):
        x = _to(batches(step - 1), device)
        if isinstance(x, dict):
            bound = objective(model_call, guide_call, **x)
        elif isinstance(x, tuple):
            bound = objective(model_call, guide_call, *x)
        else:
            bound = objective(model_call, guide_call, transform(x) if transform else x)
        loss = -bound.mean()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(_non_finite_message(loss, step, batch_size, n, ckpt_dir))
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        for opt in opts:
            opt.step()
        result.steps = step
        window_loss, window_steps = window_loss + loss.item(), window_steps + 1
        stop = time_limit is not None and _agree(time.perf_counter() - start > time_limit, world)
        if step % log_every == 0 or step == total or stop:
            now = time.perf_counter()
            record = {
                "step": step,
                "loss": window_loss / window_steps,
                "examples_per_s": window_steps * batch_size / (now - window_start),
                "seconds": now - start,
            }
            result.history.append(record)
            if log is not None and world.is_main:
                log.write(step, loss=record["loss"], examples_per_s=record["examples_per_s"])
            if bar is not None:
                bar.set_postfix(
                    loss=f"{record['loss']:.3f}", ex_s=f"{record['examples_per_s']:.0f}"
                )
            window_loss, window_steps, window_start = 0.0, 0, now
        if validate is not None and (step % validate_every == 0 or step == total or stop):
            improved = False
            if world.is_main:
                metrics = validate()
                for m in modules:
                    m.train()
                score = next(iter(metrics.values()))
                improved = score > result.best
                if improved:
                    result.best = score
                if log is not None:
                    log.write(step, **metrics)
            bad_validations = 0 if improved else bad_validations + 1
            if improved:
                save("best.pt")
            if patience is not None and _agree(bad_validations >= patience, world):
                result.stopped_early = stop = True
        if step % checkpoint_every == 0 or step == total or stop:
            save("last.pt")
        if bar is not None:
            bar.update(1)
        if stop:
            break
    if bar is not None:
        bar.close()
    for m in modules:
        m.eval()
    result.seconds = time.perf_counter() - start
    result.epochs = result.steps * batch_size / n
    return result


def _optimizers(
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None,
    params: list[nn.Parameter],
    lr: float,
) -> list[torch.optim.Optimizer]:
    if optimizer is None:
        return [torch.optim.Adam(params, lr=lr)]
    if isinstance(optimizer, torch.optim.Optimizer):
        return [optimizer]
    return list(optimizer)


def _agree(flag: bool, world: World) -> bool:
    """Rank 0's decision, shared with every process (so that all stop at the same step)."""
    if world.size == 1:
        return flag
    t = torch.tensor([float(flag)])
    dist.broadcast(t, src=0)
    return bool(t.item())


def _non_finite_message(
    loss: Tensor, step: int, batch_size: int, n: int, ckpt_dir: Path | None
) -> str:
    last = ckpt_dir / "last.pt" if ckpt_dir is not None else None
    if last is not None and last.is_file():
        saved_step = torch.load(last, map_location="cpu", weights_only=False)["step"]
        kept = f"The last good checkpoint, {last} (step {saved_step}), is kept."
    else:
        kept = "No checkpoint was written before it."
    return (
        f"the loss is {loss.item()} at step {step} (epoch {step * batch_size / n:.2f}); the "
        f"parameters are those after step {step - 1}. {kept} Lower the learning rate, clip "
        "gradients (grad_clip=...), or check the data for NaN or infinite values."
    )
