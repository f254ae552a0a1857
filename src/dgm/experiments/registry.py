"""The tasks by name, imported only when used; and reading a YAML file into its task's config.

A YAML file says ``task: NAME`` and holds that task's sections; ``NAME`` is a registered
task or, for a task defined outside dgm, ``package.module:Class``. Files (and run
directories) written before tasks existed have no ``task:`` key: their ``model.name`` chose
the family (``vae`` when absent), which each task declares as its ``legacy_model``; such
files are upgraded by the task's ``upgrade`` hook.
"""

from __future__ import annotations

import copy
import importlib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ..registry import Registry, UnknownChoiceError
from .config import (
    ConfigError,
    RunConfig,
    UnknownKeyError,
    apply_overrides,
    apply_protocol,
    apply_smoke,
    from_dict,
    reset_unread,
    valid_keys,
    validate,
)
from .task import Task

TASKS: Registry[type[Task[Any]]] = Registry("task")


def _lazy(path: str) -> typing.Callable[[], type[Task[Any]]]:
    module, attr = path.split(":")

    def load() -> type[Task[Any]]:
        return typing.cast(type[Task[Any]], getattr(importlib.import_module(module), attr))

    return load


TASKS.add(
    "vae",
    _lazy("dgm.experiments.tasks.vae:VAETask"),
    "variational autoencoders: any posterior x any prior x ELBO / IWAE / MCMC from q",
    legacy_model="vae",
)
TASKS.add(
    "sbn",
    _lazy("dgm.experiments.tasks.sbn:SBNTask"),
    "sigmoid belief networks with the discrete-latent estimators (RWS, wake-sleep, VIMCO ...)",
    legacy_model="sbn",
)
TASKS.add(
    "inference-compilation",
    _lazy("dgm.experiments.tasks.inference_compilation:InferenceCompilationTask"),
    "a learned proposal for polynomial regression against prior sampling and MH",
    legacy_model="polyreg",
)
TASKS.add(
    "flow",
    _lazy("dgm.experiments.tasks.flow:FlowTask"),
    "normalizing flows as density models: RealNVP, Glow, MAF, NSF, with honest bits/dim",
    legacy_model=None,
)
TASKS.add(
    "disentangle",
    _lazy("dgm.experiments.tasks.disentangle:DisentangleTask"),
    "disentangling VAEs (beta-VAE, beta-TCVAE, FactorVAE, DIP-VAE) and their metrics",
    legacy_model=None,
)
TASKS.add(
    "air",
    _lazy("dgm.experiments.tasks.air:AIRTask"),
    "Attend-Infer-Repeat on multi-MNIST: counting and locating digits (any discrete estimator)",
    legacy_model=None,
)
TASKS.add(
    "gan",
    _lazy("dgm.experiments.tasks.gan:GANTask"),
    "GANs and the fixes for mode collapse (WGAN-GP, PacGAN, unrolled, spectral norm)",
    legacy_model=None,
)


def _and(items: typing.Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(items)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


DEFAULT_TASK = "vae"  # what a file without `task:` (the format before tasks) is


def task_class(name: str) -> type[Task[Any]]:
    """The task registered as ``name``, or one given as ``"package.module:Class"`` (a task
    defined outside dgm); its module is imported now."""
    if not isinstance(name, str):
        raise ConfigError(f"task: expected a task name, got {name!r}; one of {', '.join(TASKS)}")
    if ":" not in name:
        return TASKS.build(name)
    try:
        cls = _lazy(name)()
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"task: cannot import {name!r} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task: {name!r} is not a dgm.experiments.task.Task subclass")
    return cls


def upgrade(raw: dict[str, Any], resolved: bool = False) -> dict[str, Any]:
    """``raw`` with a ``task:`` key: files written before tasks get theirs from ``model.name``.

    Args:
        resolved: ``raw`` is a run directory's resolved ``config.yaml`` (every key of the old
            all-in-one schema is present; those the task does not have are dropped).
    """
    raw = copy.deepcopy(raw)
    if "task" in raw:
        name = raw["task"]
        if not isinstance(name, str):
            return raw  # task_class says what is wrong
        return task_class(name).migrate(raw, resolved)
    model = raw.get("model")
    old = model.pop("name", None) if isinstance(model, dict) else None
    legacy = {TASKS[n].legacy_model: n for n in TASKS if TASKS[n].legacy_model}
    if old is None:
        name = DEFAULT_TASK
    elif old in legacy:
        name = legacy[old]
    else:
        raise ConfigError(
            f"model.name: {old!r} is not one of {', '.join(legacy)} (a file without `task:` "
            f"is read in the format before tasks; new files say `task:`, one of {', '.join(TASKS)})"
        )
    raw["task"] = name
    cls = task_class(name)
    return cls.migrate(cls.upgrade(raw, resolved), resolved)


def parse(raw: Any, source: str, resolved: bool = False) -> RunConfig:
    """Build the configuration a YAML mapping describes; errors name ``source``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {raw!r}")
    try:
        raw = upgrade(raw, resolved)
        name = raw["task"]
        cls = task_class(name)
    except UnknownChoiceError as err:
        raise ConfigError(f"{source}: task: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    try:
        cfg = typing.cast(RunConfig, from_dict(raw, cls.Config))
        if resolved:  # values written before they were refused had no effect on the run
            reset_unread(cfg)
        return cfg
    except UnknownKeyError as err:
        raise ConfigError(f"{source}: {_foreign(err, name)}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def check(cfg: RunConfig, source: str = "config") -> None:
    """Choices, ranges, the configuration's own rules and its task's rules."""
    try:
        validate(cfg)
        task_class(cfg.task).check(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    smoke: bool = False,
    protocol: str | None = None,
) -> RunConfig:
    """Read a YAML experiment, apply its ``protocol``'s overrides and its ``smoke`` ones (if
    asked), then ``overrides``; check it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    cfg = parse(raw, str(path))
    if smoke and not cfg.smoke:
        raise ConfigError(
            f"{path}: --smoke: this file has no `smoke:` section (the overrides of a "
            "seconds-long run, e.g. `train.steps: 8`, `eval.num_particles: 10`); add one, or "
            "train without --smoke"
        )
    try:
        if protocol is not None:
            apply_protocol(cfg, protocol)
        if smoke:
            apply_smoke(cfg)
        apply_overrides(cfg, overrides)
    except UnknownKeyError as err:
        raise ConfigError(f"{path}: {_foreign(err, cfg.task)}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    check(cfg, str(path))
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{path}: train.device: cuda was asked for, but torch.cuda.is_available() is False "
            "on this machine; use auto or cpu"
        )
    return cfg


def _foreign(err: UnknownKeyError, task: str) -> str:
    """The unknown-key message, saying which other task has the key if one does."""

    def has(name: str) -> bool:
        keys = valid_keys(task_class(name).Config)
        return err.key in keys or any(k.startswith(err.key + ".") for k in keys)

    owners = [n for n in TASKS if n != task and has(n)]
    if not owners:
        return str(err)
    return (
        f"{err.key} is a setting of task {_and(repr(o) for o in owners)}, not of "
        f"task {task!r} (this file's `task:`). Valid keys of {task!r}: {', '.join(err.options)}"
    )


__all__ = ["DEFAULT_TASK", "TASKS", "check", "load_config", "parse", "task_class", "upgrade"]
