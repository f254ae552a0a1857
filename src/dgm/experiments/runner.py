"""Run an experiment through its task: data, parts, training, evaluation, pictures, report.

This is glue between the task contract (``dgm.experiments.task``), the training loop
(``dgm.train``) and the report (``dgm.report``); it names no family. A run directory holds
``config.yaml`` (resolved), ``metrics.jsonl``, ``checkpoints/``, ``final_metrics.json``
(everything known of the evaluated checkpoint), ``evaluations.jsonl`` (each evaluation:
when, which checkpoint, which settings and seed, what it gave), the task's pictures with
``pictures.json`` (their captions) and ``report.html``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..progress import say
from ..report import write_report
from ..report.html import EVALUATIONS
from ..seeds import derived_seed, seed_all
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
from ..train.metrics_log import MetricsLog, read_metrics
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
    progress: bool | None = True,
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
        # a run and each of its resumes (recorded in metrics.jsonl)
        "train_segments": 1 + sum("resumed_from" in r for r in read_metrics(out / "metrics.jsonl")),
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
    progress: bool | None,
    changes: dict[str, list[Any]],
) -> FitResult:
    """Build the task's parts and run the loop on them (the directory is already checked)."""
    seed_all(cfg.train.seed)
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
            output=Output(ckpt, log, progress, _label(cfg.name, out)),
            execution=Execution(cfg.train.compile, cfg.train.compile_mode, world),
        )
        result.resumed_from = used.name if used is not None else None
        return result
    finally:
        if log is not None:
            log.close()


def _label(name: str, out: Path) -> str:
    """What progress calls a run: its experiment, and its directory when that says more
    (several runs of one experiment side by side)."""
    return f"training {name}" + ("" if out.name.startswith(name) else f" ({out.name})")


def load_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """A run directory's resolved configuration (any version), with evaluation overrides."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{Path(run_dir)} is not a dgm run directory (no config.yaml); give the --out "
            "directory of `dgm train`"
        )
    cfg = parse(yaml.safe_load(path.read_text()) or {}, str(path), resolved=True)
    trained = [o for o in overrides if not o.strip().startswith("eval.")]
    if trained:
        raise ConfigError(
            f"{', '.join(o.split('=')[0] for o in trained)}: only evaluation settings "
            "(eval.*) may change when evaluating a trained run; the others describe what was "
            "trained (the checkpoint would not fit them). Train a new run to change them"
        )
    try:
        apply_overrides(cfg, overrides)
    except UnknownKeyError as err:
        raise ConfigError(f"this {cfg.task} run has no setting {err.key!r}: {err}") from None
    check(cfg, str(path))
    return cfg


@dataclass
class LoadedRun:
    """A trained run, ready to evaluate: its configuration, task, parts (in evaluation mode)
    and data, and the checkpoint file read with its training step."""

    cfg: RunConfig
    task: Task[Any]
    parts: Parts
    data: Any
    checkpoint: Path
    step: int


def load_run(
    run_dir: str | Path,
    which: str | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[RunConfig, Task[Any], Parts, Any]:
    """Config, task, trained parts (in evaluation mode) and data of a run directory.

    ``which`` checkpoint: ``"best"`` or ``"last"``; ``None``: the one the task evaluates
    (``Task.evaluated_checkpoint``). ``overrides`` may set ``eval.*`` only. ``load`` also
    says which checkpoint file was read.
    """
    r = load(run_dir, which, device, overrides)
    return r.cfg, r.task, r.parts, r.data


def load(
    run_dir: str | Path,
    which: str | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> LoadedRun:
    """``load_run``'s run with the checkpoint file it read and that file's step. A checkpoint
    that cannot be read is skipped for the next one (``which``.pt, ``last.pt``,
    ``last.prev.pt``), and the substitution is said on stderr."""
    out = Path(run_dir)
    cfg = load_config(out, overrides)
    task = create(cfg)
    which = which or task.evaluated_checkpoint
    if device is None and cfg.train.device == "cuda" and not torch.cuda.is_available():
        device = "cpu"  # a run trained on a GPU is evaluated wherever it is
    dev = task.device() if device is None else distributed.local_device(device)
    saved, path = _readable_checkpoint(out / "checkpoints", which, dev)
    data = task.data()
    parts = task.build(data, training=False)
    load_parts(parts, saved)
    for part in parts.values():
        part.to(dev).eval()
    return LoadedRun(cfg, task, parts, data, path, int(saved["step"]))


def _readable_checkpoint(
    directory: Path, which: str, device: torch.device
) -> tuple[dict[str, Any], Path]:
    """The first of ``which``.pt, ``last.pt``, ``last.prev.pt`` that can be read, and which
    it was; a file that exists and cannot be read is named with what is read instead."""
    wanted = directory / f"{which}.pt"
    candidates = [wanted, directory / "last.pt", checkpoint.previous(directory / "last.pt")]
    existing = [p for p in dict.fromkeys(candidates) if p.is_file()]
    if not existing:
        return checkpoint.load(wanted, map_location=device), wanted  # the "no checkpoint" message
    failures: list[str] = []
    for path in existing:
        try:
            saved = checkpoint.load(path, map_location=device)
        except checkpoint.CheckpointError as err:
            failures.append(str(err))
            continue
        if failures:
            say(
                f"dgm: warning: {'; '.join(failures)}; evaluating {path} (step {saved['step']}) "
                "instead, an earlier state of the run"
            )
        return saved, path
    raise checkpoint.CheckpointError("no readable checkpoint: " + "; ".join(failures))


def evaluate(
    run_dir: str | Path, overrides: Sequence[str] = (), extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The task's final metrics and pictures of a run, merged into ``final_metrics.json``.

    ``overrides`` change evaluation settings (``eval.*``) for this evaluation only (e.g.
    ``eval.num_particles=5000``). What this evaluation computes replaces those keys; every
    other key of an earlier evaluation of the same checkpoint (file and step) is kept, as is
    the training summary (``extra`` after training). Each evaluation is appended to
    ``evaluations.jsonl`` with when, on which checkpoint, with which settings and seed it
    ran, and what it computed. The evaluation (and its pictures) are seeded from the run's
    seed: the same checkpoint evaluated with the same settings gives the same numbers.

    Returns:
        The metrics of this evaluation, with ``eval_checkpoint`` and ``eval_step``.
    """
    out = Path(run_dir)
    started, clock = datetime.datetime.now(), time.perf_counter()
    r = load(out, overrides=overrides)
    settings = to_dict(r.cfg).get("eval", {})
    # from the run's seed alone: a setting that picks what is computed (eval.metrics) leaves
    # the numbers computed before it as they were
    seed = derived_seed(r.cfg.train.seed, "evaluate")
    seed_all(seed)
    computed = r.task.evaluate(r.parts, r.data)
    which = {"eval_checkpoint": r.checkpoint.name, "eval_step": r.step}
    metrics = {**computed, **which}
    final = _kept_metrics(out, which, extra)
    final.update(metrics)
    (out / "final_metrics.json").write_text(json.dumps(final, indent=2) + "\n")
    record = {
        "time": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - clock, 1),
        "checkpoint": r.checkpoint.name,
        "step": r.step,
        "overrides": list(overrides),
        "settings": settings,
        "seed": seed,
        "after_training": extra is not None,
        "metrics": computed,
    }
    with (out / EVALUATIONS).open("a") as f:
        f.write(json.dumps(record) + "\n")
    seed_all(derived_seed(r.cfg.train.seed, "pictures"))
    write_pictures(out, r.task.pictures(r.parts, r.data, out))
    return metrics


def sample(run_dir: str | Path, n: int, path: Path | None = None) -> Path:
    """Draw ``n`` samples from a trained run as a picture (default
    ``RUN_DIR/sampled/samples-<time>.png``: the report's own pictures stay as they are)."""
    out = Path(run_dir)
    _, task, parts, data = load_run(out)
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = out / "sampled" / f"samples-{stamp}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return task.sample(parts, data, n, path)


def write_pictures(run_dir: Path, pictures: list[Picture]) -> None:
    """``pictures.json``: the files the report shows, in order, with their captions."""
    listed = [{"file": p.file, "caption": p.caption} for p in pictures]
    (run_dir / "pictures.json").write_text(json.dumps(listed, indent=2) + "\n")


def _kept_metrics(
    run_dir: Path, which: dict[str, Any], summary: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``final_metrics.json`` keeps of what it holds: the training summary (replaced by
    ``summary`` after training) and the results of earlier evaluations of the checkpoint
    ``which`` (file and step; a file written before evaluations were recorded: all)."""
    previous = run_dir / "final_metrics.json"
    held = json.loads(previous.read_text()) if previous.is_file() else {}
    same = all(held.get(k, v) == v for k, v in which.items())
    kept = {
        k: v
        for k, v in held.items()
        if (k.startswith(SUMMARY_KEYS) and summary is None)
        or (same and not k.startswith(SUMMARY_KEYS))
    }
    return {**(summary or {}), **kept}


__all__ = [
    "EVALUATIONS",
    "LoadedRun",
    "create",
    "evaluate",
    "load",
    "load_config",
    "load_run",
    "sample",
    "train",
    "write_pictures",
]
