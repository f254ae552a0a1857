"""Checkpoints: model, guide, optimizers, step and RNG states, written atomically."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The states of every random number generator a run draws from."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - user code may draw from it
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by ``rng_state``."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(OSError):
    """A checkpoint that could not be written, or no checkpoint that can be read."""


def previous(path: Path) -> Path:
    """Where ``save_atomic(..., keep_previous=True)`` keeps the file it replaces."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_atomic(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``.

    A crash mid-write leaves the previous checkpoint intact; with ``keep_previous`` the file
    replaced is kept as ``<name>.prev.pt`` (a fallback if the new one is ever unreadable).
    A write that fails for lack of space or permission raises ``CheckpointError`` saying
    where and how much space is free, and leaves no partial file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CheckpointError(_write_failure(path, err)) from err
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            os.replace(path, previous(path))
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(_write_failure(path, err)) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_failure(path: Path, err: OSError) -> str:
    try:
        free = f"{shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    return (
        f"could not write the checkpoint {path}: {err.strerror or err} ({free}); the "
        "previous checkpoint, if any, is intact. Free some space or give a writable --out, "
        "then resume"
    )


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_atomic``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train first, or point at a run directory that has one"
        )
    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated zip, garbage, wrong pickle: all mean "unreadable"
        raise CheckpointError(
            f"the checkpoint {path} cannot be read ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(saved, dict) or "step" not in saved:
        raise CheckpointError(f"{path} is not a dgm checkpoint (no training step in it)")
    return saved


def load_latest(
    path: Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Path]:
    """The checkpoint at ``path`` or, if it cannot be read, the one it replaced; and which.

    Raises:
        FileNotFoundError: there is neither.
        CheckpointError: neither can be read (the message gives both reasons).
    """
    candidates = [p for p in (path, previous(path)) if p.is_file()]
    if not candidates:
        return load(path, map_location), path  # the usual "no checkpoint" message
    failures = []
    for candidate in candidates:
        try:
            return load(candidate, map_location), candidate
        except CheckpointError as err:
            failures.append(str(err))
    raise CheckpointError("no readable checkpoint: " + "; ".join(failures))


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that interrupted writes left in ``directory``."""
    stale = sorted(directory.glob(".*.tmp")) if directory.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
