"""Run directories that are never mixed: one writer at a time, no silent reuse, explicit resume.

- A lock file (``.lock``: pid, host, start time) stops a second run from writing a directory
  that a live one writes; a lock whose process is gone is taken over with a note.
- A non-empty directory is refused unless the run resumes it or ``overwrite`` archives it.
- Resuming compares the new configuration with the saved one before anything is written:
  settings that may change on resume (``config.resumable_keys``) are returned as the
  changes to apply and record; any other difference is refused, naming the keys.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from ..progress import say
from .config import ConfigError, RunConfig, resumable_keys, to_dict

LOCK = ".lock"


class RunDirectoryError(RuntimeError):
    """A run directory that this run must not write (in use, or holding another run)."""


def _flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(raw, dict) or prefix in ("smoke.", "protocols."):
        return {prefix.rstrip("."): raw}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def differences(saved: RunConfig, new: RunConfig) -> dict[str, list[Any]]:
    """The settings that differ between two configurations, by dotted key: ``[old, new]``."""
    old, now = _flatten(to_dict(saved)), _flatten(to_dict(new))
    return {
        k: [old.get(k), now.get(k)] for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)
    }


def changes_on_resume(saved: RunConfig, new: RunConfig) -> dict[str, list[Any]]:
    """The resumable settings that differ (``key -> [old, new]``); raise for any other."""
    differ = differences(saved, new)
    allowed = set(resumable_keys(type(new)))
    refused = {k: v for k, v in differ.items() if k not in allowed}
    if refused:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise ConfigError(
            f"cannot resume with these settings changed: {listed}. They change what the saved "
            f"state means; resume with the run's own settings, or start a new run (another "
            f"--out). Settings that may change on resume: {', '.join(sorted(allowed))}"
        )
    return {k: v for k, v in differ.items() if k in allowed}


# what a run writes before its first checkpoint: a directory holding only these was
# stopped before it saved anything to continue from, and starts afresh
STARTED = ("config.yaml", "metrics.jsonl", "tensorboard", "checkpoints", LOCK)


def holds_run(run: Path) -> bool:
    """Whether ``run`` holds a run that can be continued or evaluated: a checkpoint or
    final metrics."""
    ck = run / "checkpoints"
    saved = ("last.pt", "last.prev.pt", "best.pt")
    return (run / "final_metrics.json").is_file() or any((ck / n).is_file() for n in saved)


def prepare(run: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a directory held by a live run or, without ``resume``, one that holds a run;
    with ``overwrite``, move such a directory aside (``<name>.archived-<time>``) first.

    A path that is a file, or a directory that holds other files than a run's, is refused;
    a run that stopped before its first checkpoint (only its configuration and log) starts
    afresh, and cannot be resumed.
    """
    if run.exists() and not run.is_dir():
        raise RunDirectoryError(f"--out {run} is a file, not a directory; give a directory")
    holder = _live_holder(run)
    if holder is not None:
        raise RunDirectoryError(
            f"another run (pid {holder['pid']} on {holder['host']}, started {holder['started']}) "
            f"is writing to {run}; wait for it to finish, or give another --out"
        )
    if resume:
        if not holds_run(run):
            raise RunDirectoryError(
                f"cannot resume: {run} holds no checkpoint to continue from (a run stopped "
                "before its first checkpoint starts again without --resume)"
            )
        return
    if not run.is_dir():
        return
    found = sorted(p.name for p in run.iterdir())
    if not holds_run(run):
        foreign = [n for n in found if n not in STARTED]
        if foreign:
            raise RunDirectoryError(
                f"{run} is not empty and holds no dgm run ({', '.join(foreign[:5])}"
                f"{' ...' if len(foreign) > 5 else ''}); give another --out, an empty or new "
                "directory"
            )
        if any(n != LOCK for n in found):
            say(f"dgm: {run} holds a run stopped before its first checkpoint; starting it afresh")
            for name in found:
                if name != LOCK:
                    _remove(run / name)
        return
    if not overwrite:
        raise RunDirectoryError(
            f"{run} already holds a run; continue it with --resume, archive it and start afresh "
            "with --overwrite, or give another --out"
        )
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    archive = run.with_name(f"{run.name}.archived-{stamp}")
    run.rename(archive)
    say(f"dgm: moved the earlier run in {run} to {archive}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _live_holder(run: Path) -> dict[str, Any] | None:
    info = _read_lock(run / LOCK)
    if info is None or info.get("pid") == os.getpid():
        return None
    same_host = info.get("host") == socket.gethostname()
    if same_host and not _alive(int(info.get("pid", -1))):
        return None
    return info


def _unwritable(run: Path, err: OSError) -> str:
    return (
        f"cannot write to {run}: {err.strerror or err}; give a writable directory (--out), or "
        "copy the run directory to one"
    )


class RunLock:
    """Hold ``run/.lock`` while a run writes ``run``; a stale lock is taken over with a note."""

    def __init__(self, run: Path) -> None:
        self.path = run / LOCK
        self.info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }

    def __enter__(self) -> RunLock:
        run = self.path.parent
        if run.exists() and not run.is_dir():
            raise RunDirectoryError(f"{run} is a file, not a run directory; give a directory")
        self.created = not run.exists()
        try:
            run.mkdir(parents=True, exist_ok=True)
            self._take()
        except OSError as err:
            self._remove_if_created()
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
                raise RunDirectoryError(_unwritable(run, err)) from None
            raise
        except BaseException:
            self._remove_if_created()
            raise
        return self

    def _remove_if_created(self) -> None:
        """A directory this lock created and nothing wrote into goes again."""
        run = self.path.parent
        if self.created and run.is_dir() and not any(run.iterdir()):
            run.rmdir()

    def _take(self) -> None:
        text = json.dumps(self.info)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _live_holder(self.path.parent)
            if holder is not None:
                raise RunDirectoryError(
                    f"another run (pid {holder['pid']} on {holder['host']}) is writing to "
                    f"{self.path.parent}; wait for it to finish, or give another --out"
                ) from None
            stale = _read_lock(self.path) or {}
            say(
                f"dgm: taking over the lock of an earlier run in {self.path.parent} (pid "
                f"{stale.get('pid', '?')} is no longer running)"
            )
            tmp = self.path.with_name(f"{LOCK}.{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, self.path)
        else:
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if (_read_lock(self.path) or {}).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self._remove_if_created()  # a run that failed before writing anything leaves none


__all__ = [
    "LOCK",
    "RunDirectoryError",
    "RunLock",
    "changes_on_resume",
    "differences",
    "holds_run",
    "prepare",
]
