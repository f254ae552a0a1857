"""Named experiments: YAML files shipped in this folder, found by name or by path.

Each file says ``task: NAME`` (see ``registry.TASKS``) and holds that task's sections; files
without ``task:`` are read in the format before tasks (a VAE, unless ``model.name`` says
otherwise).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import yaml

from .config import ConfigError, RunConfig, apply_override, valid_keys
from .registry import TASKS, load_config

HERE = Path(__file__).resolve().parent


def available() -> dict[str, str]:
    """Packaged experiment names and their one-line descriptions."""
    return {name: description for name, (_, description) in catalogue().items()}


def catalogue() -> dict[str, tuple[str, str]]:
    """Packaged experiment names, each with its task and one-line description."""
    out = {}
    for path in sorted(HERE.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        description = str(raw.get("description", "")).strip()
        out[path.stem] = (
            str(raw.get("task", "")),
            description.splitlines()[0] if description else "",
        )
    return out


def resolve(name_or_path: str) -> Path:
    """A packaged experiment's YAML by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"no experiment file {path}")
        return path
    packaged = HERE / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    names = list(available())
    close = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown experiment {name_or_path!r}.{hint} Available: {', '.join(names)} (or give a path to a .yaml file)"
    )


def load(
    name_or_path: str,
    overrides: Sequence[str] = (),
    smoke: bool = False,
    protocol: str | None = None,
) -> RunConfig:
    """Load an experiment by name or path, with ``key=value`` overrides."""
    return load_config(resolve(name_or_path), overrides, smoke, protocol)


__all__ = [
    "TASKS",
    "ConfigError",
    "RunConfig",
    "apply_override",
    "available",
    "catalogue",
    "load",
    "load_config",
    "resolve",
    "valid_keys",
]
