"""Value checks and their switch: data checks of dgm's programs and layers, distribution arguments.

Programs check what they are given (binary data for a Bernoulli likelihood, images in [0, 1],
integer pixels) and ``torch.distributions`` checks parameters and values; such checks read
whole tensors and synchronize with the host (``.item()``) on every call. A training loop
needs them once, not on every step: ``dgm.train`` runs each run's first step with them and
the rest without (``validation(False)``), and code traced by ``torch.compile`` never runs them
(they would split the graph). Shape checks, which cost no tensor pass, always run.
"""

from __future__ import annotations

from types import TracebackType

import torch
from torch.distributions import Distribution

_ENABLED = [True]


def validating() -> bool:
    """Whether value checks run here: enabled, and not inside code that ``torch.compile`` traces."""
    return _ENABLED[0] and not torch.compiler.is_compiling()


class validation:
    """Turn value checks on or off inside a ``with`` block (restored after it).

    Covers dgm's own checks (``validating()``) and the default of ``torch.distributions``
    (``Distribution.set_default_validate_args``); a distribution built with an explicit
    ``validate_args=`` keeps its own choice.

    Args:
        enabled: whether the checks run.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self._saved: list[tuple[bool, bool]] = []

    def __enter__(self) -> validation:
        self._saved.append((_ENABLED[0], Distribution._validate_args))
        _ENABLED[0] = self.enabled
        Distribution.set_default_validate_args(self.enabled)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ours, theirs = self._saved.pop()
        _ENABLED[0] = ours
        Distribution.set_default_validate_args(theirs)


__all__ = ["validating", "validation"]
