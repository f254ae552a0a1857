"""Metrics as JSON lines, and TensorBoard event files when tensorboard is installed."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any


class MetricsLog:
    """Append ``{"step": ..., name: value}`` records to ``metrics.jsonl`` (and TensorBoard).

    Args:
        directory: the run directory.
        tensorboard: write TensorBoard events too, if the package is importable.
    """

    def __init__(self, directory: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(directory) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self._tb = SummaryWriter(str(Path(directory) / "tensorboard"))

    def write(self, step: int, **values: float) -> None:
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)

    def event(self, step: int, **info: object) -> None:
        """Record something that happened at ``step`` (not a metric: JSON lines only)."""
        self._file.write(json.dumps({"step": step, **info}) + "\n")
        self._file.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run rewrites them)."""
        self._file.close()
        kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a")

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
