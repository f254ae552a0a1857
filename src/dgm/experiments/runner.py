"""Run an experiment through its task: data, parts, training, evaluation, pictures, report.

This is glue between the task contract (``dgm.experiments.task``), the training loop
(``dgm.train``) and the report (``dgm.report``); it names no family. A run directory holds
``config.yaml`` (resolved), ``metrics.jsonl``, ``checkpoints/``, ``final_metrics.json``,
the task's pictures with ``pictures.json`` (their captions) and ``report.html``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ..report import write_report
from ..train import (
    Execution,
    FitResult,
    Output,
    TrainState,
    checkpoint,
    distributed,
    note_resume,
    run,
)
from ..train import resume as resume_state
from ..train.metrics_log import MetricsLog
from . import rundir
from .config import ConfigError, RunConfig, UnknownKeyError, apply_overrides, to_dict
from .registry import check, parse, task_class
from .task import Parts, Picture, Task, load_parts

SUMMARY_KEYS = ("train_", "best_", "stopped_")  # the training summary in final_metrics.json


def create(cfg: RunConfig) -> Task[Any]:
    """The task object that runs ``cfg``."""
    return task_class(cfg.task)(cfg)


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train and evaluate ``cfg`` into ``run_dir``; return the path of ``report.html``.

    A directory that holds a run is refused unless ``resume`` continues it (with only the
    settings of ``config.resumable_keys`` changed: they are applied and recorded in
    ``metrics.jsonl``) or ``overwrite`` archives it; a lock stops two runs from writing one
    directory. Under torchrun every process trains its share of each batch
    (DistributedDataParallel); rank 0 checks the directory, logs, checkpoints, evaluates and
    writes the report.
    """
    out, task = Path(run_dir), create(cfg)
    changes: dict[str, list[Any]] = {}
    if int(os.environ.get("RANK", "0")) == 0:  # before the process group: others wait there
        rundir.prepare(out, resume, overwrite)
        if resume:
            last = out / "checkpoints" / "last.pt"
            if not (last.is_file() or checkpoint.previous(last).is_file()):
                raise FileNotFoundError(f"cannot resume: {last} does not exist")
            changes = rundir.changes_on_resume(load_config(out), cfg)
    device = task.device()
    world = distributed.init(device)
    with rundir.RunLock(out) if world.is_main else contextlib.nullcontext():
        result = _fit(cfg, task, out, device, world, resume, progress, changes)
    distributed.shutdown()  # rank 0 evaluates alone; the others may exit
    if not world.is_main:
        return out / "report.html"
    summary = {
        "train_steps": result.steps,
        "train_steps_planned": result.planned_steps,
        "train_epochs": round(result.epochs, 3),
        "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(result.cpu_seconds, 1),
        "best_valid": result.best,
        "stopped_early": result.stopped_early,
        "stopped_by_time_limit": result.stopped_by_time_limit,
        "train_compiled": result.compiled,
        "train_compile_seconds": None
        if result.compile_seconds is None
        else round(result.compile_seconds, 1),
    }
    with rundir.RunLock(out):
        evaluate(out, extra=summary)
        return write_report(out)


def _fit(
    cfg: RunConfig,
    task: Task[Any],
    out: Path,
    device: torch.device,
    world: distributed.World,
    resume: bool,
    progress: bool,
    changes: dict[str, list[Any]],
) -> FitResult:
    """Build the task's parts and run the loop on them (the directory is already checked)."""
    torch.manual_seed(cfg.train.seed)
    data = task.data()
    parts = task.build(data)
    for part in parts.values():
        part.to(device)
    optimizers = task.optimizers(parts)
    state = TrainState(parts, optimizers)
    step = task.step(parts, optimizers, lambda m: distributed.wrap(m, world, device))
    validate = task.validate(parts, data)
    ckpt = out / "checkpoints"
    # the checkpoint is read once, into these parts, before anything is written
    used = resume_state(state, ckpt, world) if resume else None
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    log = MetricsLog(out) if world.is_main else None
    if used is not None:
        note_resume(log, state.step, used, {"config_change": changes} if changes else None)
    task.run_dir = out if world.is_main else None
    try:
        result = run(
            state,
            step,
            data.train,
            cfg.train.schedule(),
            transform=data.transform,
            validate=validate,
            output=Output(ckpt, log, progress),
            execution=Execution(cfg.train.compile, cfg.train.compile_mode, world),
        )
        result.resumed_from = used.name if used is not None else None
        return result
    finally:
        if log is not None:
            log.close()


def load_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """A run directory's resolved configuration (any version), with evaluation overrides."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{Path(run_dir)} is not a dgm run directory (no config.yaml); give the --out "
            "directory of `dgm train`"
        )
    cfg = parse(yaml.safe_load(path.read_text()) or {}, str(path), resolved=True)
    try:
        apply_overrides(cfg, overrides)
    except UnknownKeyError as err:
        raise ConfigError(f"this {cfg.task} run has no setting {err.key!r}: {err}") from None
    check(cfg, str(path))
    return cfg


def load_run(
    run_dir: str | Path,
    which: str | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[RunConfig, Task[Any], Parts, Any]:
    """Config, task, trained parts (in evaluation mode) and data of a run directory.

    ``which`` checkpoint: ``"best"`` or ``"last"``; ``None``: the one the task evaluates
    (``Task.evaluated_checkpoint``).
    """
    out = Path(run_dir)
    cfg = load_config(out, overrides)
    task = create(cfg)
    which = which or task.evaluated_checkpoint
    if device is None and cfg.train.device == "cuda" and not torch.cuda.is_available():
        device = "cpu"  # a run trained on a GPU is evaluated wherever it is
    dev = task.device() if device is None else distributed.local_device(device)
    saved = _readable_checkpoint(out / "checkpoints", which, dev)
    data = task.data()
    parts = task.build(data, training=False)
    load_parts(parts, saved)
    for part in parts.values():
        part.to(dev).eval()
    return cfg, task, parts, data


def _readable_checkpoint(directory: Path, which: str, device: torch.device) -> dict[str, Any]:
    """``which``.pt, else ``last.pt``, else ``last.prev.pt``: the first that can be read."""
    candidates = [directory / f"{which}.pt", directory / "last.pt"]
    readable = [p for p in dict.fromkeys(candidates) if p.is_file()]
    failures = []
    for path in readable[:-1]:
        try:
            return checkpoint.load(path, map_location=device)
        except checkpoint.CheckpointError as err:
            failures.append(str(err))
            print(f"dgm: {path} cannot be read; trying the next checkpoint", file=sys.stderr)
    last = readable[-1] if readable else directory / "last.pt"
    try:
        return checkpoint.load_latest(last, map_location=device)[0]
    except checkpoint.CheckpointError as err:
        raise checkpoint.CheckpointError("; ".join([*failures, str(err)])) from None


def evaluate(
    run_dir: str | Path, overrides: Sequence[str] = (), extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The task's final metrics and pictures of a run; write final_metrics.json and pictures.json.

    ``overrides`` change evaluation settings for this evaluation only (e.g.
    ``eval.num_particles=5000``); a re-evaluation keeps the training summary it finds.
    """
    out = Path(run_dir)
    _, task, parts, data = load_run(out, overrides=overrides)
    metrics = dict(extra or _kept_summary(out))
    metrics.update(task.evaluate(parts, data))
    (out / "final_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    pictures = task.pictures(parts, data, out)
    write_pictures(out, pictures)
    return metrics


def sample(run_dir: str | Path, n: int, path: Path | None = None) -> Path:
    """Draw ``n`` samples from a trained run as a picture (default ``RUN_DIR/samples.png``)."""
    out = Path(run_dir)
    _, task, parts, data = load_run(out)
    return task.sample(parts, data, n, path or out / "samples.png")


def write_pictures(run_dir: Path, pictures: list[Picture]) -> None:
    """``pictures.json``: the files the report shows, in order, with their captions."""
    listed = [{"file": p.file, "caption": p.caption} for p in pictures]
    (run_dir / "pictures.json").write_text(json.dumps(listed, indent=2) + "\n")


def _kept_summary(run_dir: Path) -> dict[str, Any]:
    """The training summary of an earlier evaluation, kept when re-evaluating."""
    previous = run_dir / "final_metrics.json"
    if not previous.is_file():
        return {}
    return {
        key: v
        for key, v in json.loads(previous.read_text()).items()
        if key.startswith(SUMMARY_KEYS)
    }


__all__ = ["create", "evaluate", "load_config", "load_run", "sample", "train", "write_pictures"]
