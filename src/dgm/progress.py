"""Progress of long computations, and messages that never land on a progress bar.

``Progress(total, what)`` shows a computation's progress: on a terminal, a tqdm bar with the
rate and the time left; elsewhere (a log file, a pipe, a notebook's captured stream), one
line about every ``interval`` seconds (30 by default) saying how far it got and how long it
has left, and a last line when it ends if it took that long. ``say(message)`` prints a
message to stderr on its own line, above any bar on the screen.

Everything long in dgm reports through here: training, log-likelihood estimates, AIS and
BDMC, the disentanglement metrics, sample-quality features, the feature classifier's first
training, samples. ``enable(False)`` (the command line's ``--no-progress``, or the
environment variable ``DGM_PROGRESS=0``) turns the bars and lines off; messages stay.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

INTERVAL = 30.0  # seconds between two progress lines in a log
_enabled: bool | None = None  # None: DGM_PROGRESS decides (on unless "0")
_open: list[Progress] = []  # the bars on the screen now, outermost first


def enable(flag: bool | None) -> None:
    """Show progress (``True``), never (``False``), or as ``DGM_PROGRESS`` says (``None``)."""
    global _enabled
    _enabled = flag


@contextlib.contextmanager
def enabled_as(flag: bool | None) -> Iterator[None]:
    """``enable(flag)`` inside the block, the earlier setting after it."""
    global _enabled
    before = _enabled
    _enabled = flag
    try:
        yield
    finally:
        _enabled = before


def enabled() -> bool:
    """Whether progress is shown."""
    if _enabled is not None:
        return _enabled
    return os.environ.get("DGM_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def say(message: str, file: TextIO | None = None) -> None:
    """Print ``message`` to stderr (or ``file``) on its own line, above any progress bar."""
    stream = file or sys.stderr
    bars = [p.bar for p in _open if p.bar is not None]
    if bars:
        from tqdm.auto import tqdm

        tqdm.write(message, file=stream)
    else:
        print(message, file=stream, flush=True)


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of one computation of ``total`` units (``None``: unknown).

    Args:
        total: how many units the computation has.
        what: what is computed, e.g. ``"AIS, T=500, C=16"``.
        unit: the name of one unit (``"batch"``, ``"step"`` ...).
        initial: units already done (a resumed run).
        show: ``False``: nothing is shown; ``None``: as ``enabled()`` says.
        interval: seconds between two lines when the stream is not a terminal.
        file: the stream (default stderr).
    """

    def __init__(
        self,
        total: int | None,
        what: str,
        unit: str = "it",
        initial: int = 0,
        show: bool | None = None,
        interval: float = INTERVAL,
        file: TextIO | None = None,
    ) -> None:
        self.total, self.what, self.unit = total, what, unit
        self.done = self.initial = initial
        self.interval = interval
        self.file = file or sys.stderr
        self.postfix: dict[str, Any] = {}
        self.shown = enabled() if show is None else show
        self.start = self.last_line = time.perf_counter()
        self.lines = 0
        self.bar: Any = None
        self.closed = False
        if self.shown and _is_terminal(self.file):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=what,
                unit=unit,
                dynamic_ncols=True,
                file=self.file,
                position=len([p for p in _open if p.bar is not None]),
                leave=not _open,
            )
        _open.append(self)

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.shown and time.perf_counter() - self.last_line >= self.interval:
            self._line()

    def set_postfix(self, values: dict[str, Any]) -> None:
        """Values shown after the count (e.g. the latest loss)."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def line(self) -> str:
        """What a log line says now."""
        elapsed = time.perf_counter() - self.start
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"{self.what}: {count} {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {_duration(elapsed)} elapsed"
        fresh = self.done - self.initial
        if self.total and 0 < fresh and self.done < self.total:
            text += f", about {_duration(elapsed / fresh * (self.total - self.done))} left"
        if self.postfix:
            text += ", " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text

    def _line(self) -> None:
        self.last_line = time.perf_counter()
        self.lines += 1
        print(self.line(), file=self.file, flush=True)

    def close(self) -> None:
        """The computation ended: close the bar, or write a last line if any was written (or
        it took longer than one interval)."""
        if self.closed:
            return
        self.closed = True
        if self in _open:
            _open.remove(self)
        if self.bar is not None:
            self.bar.close()
        elif self.shown and (self.lines or time.perf_counter() - self.start >= self.interval):
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def tracked(
    items: Iterable[T],
    what: str,
    total: int | None = None,
    unit: str = "it",
    show: bool | None = None,
) -> Iterator[T]:
    """``items``, one by one, with their progress shown (``Progress``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, what, unit, show=show) as p:
        for item in items:
            yield item
            p.update(1)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["INTERVAL", "Progress", "enable", "enabled", "enabled_as", "say", "tracked"]
