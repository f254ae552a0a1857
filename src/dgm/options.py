"""A component's options: a small typed dataclass per choice, and the field helpers that
declare each option's valid choices and range.

Every choice of a table (``dgm.registry.Registry``) that has settings declares them as an
``Options`` subclass registered beside it (``OBJECTIVES.add("rws", ..., options=RWSOptions)``).
Its fields are the only keys the component takes, with their types, defaults and ranges; a
configuration section such as ``objective:`` is then a tagged union: ``name`` picks the
component and with it the keys that are valid. This module imports no other dgm module.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

Choices = Collection[str] | Callable[[], Collection[str]]


def _bounded(meta: dict[str, Any], default: Any, factory: Callable[[], Any] | None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def choice(
    options: Choices,
    default: Any = dataclasses.MISSING,
    resumable: bool = False,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A string field (or list of strings) whose value must be one of ``options`` (a
    registry, a tuple, or a function returning one); without ``default`` the key is required;
    ``factory`` gives a list default."""
    return _bounded({"choices": options, "resumable": resumable}, default, factory)


def at_least(
    minimum: float,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    resumable: bool = False,
) -> Any:
    """A numeric field (or list of numbers) that must be ``>= minimum`` (``None`` passes);
    ``factory`` gives a list default."""
    return _bounded({"min": minimum, "resumable": resumable}, default, factory)


def above(
    minimum: float,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    resumable: bool = False,
) -> Any:
    """A numeric field (or list of numbers) that must be finite and ``> minimum`` (``None``
    passes)."""
    return _bounded({"gt": minimum, "resumable": resumable}, default, factory)


def resumable(default: Any = dataclasses.MISSING, factory: Callable[[], Any] | None = None) -> Any:
    """A field (or a whole section) that may change when a run is resumed: it does not change
    what the saved state means (a learning rate, the budget, logging, evaluation)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"resumable": True})
    return field(default=default, metadata={"resumable": True})


def read_when(condition: Callable[[Any], bool], says: str, spec: Any) -> Any:
    """``spec`` (a field from the helpers above) for a setting that is read only where
    ``condition(section)`` holds (``says``: that condition in words, e.g.
    ``"eval.estimator=ais"``); elsewhere a value other than its default is refused."""
    meta = {**spec.metadata, "when": (condition, says)}
    if spec.default_factory is not dataclasses.MISSING:
        return field(default_factory=spec.default_factory, metadata=meta)
    return field(default=spec.default, metadata=meta)


@dataclass(kw_only=True)
class Options:
    """The settings of one component; ``name`` is the component's name in its table."""

    name: str


def option_names(cls: type) -> list[str]:
    """The settable options of an options class, its tag (``name``) first."""
    return [f.name for f in dataclasses.fields(cls)]


class UnknownOptionError(ValueError):
    """An option the chosen component does not take; the message names the component, the
    options it does take, and the nearest spelling."""

    def __init__(
        self, kind: str, name: str, key: str, cls: type, where: str = "", tag: str = "name"
    ) -> None:
        self.key = key
        takes = [k for k in option_names(cls) if k != tag]
        close = difflib.get_close_matches(key, takes, n=1, cutoff=0.6)
        hint = f" (did you mean {(where + close[0])!r}?)" if close else ""
        listed = ", ".join(where + k for k in takes) if takes else "no options"
        super().__init__(
            f"{where}{key}: {kind} {name!r} does not take {key!r}{hint}; it takes {listed}"
        )


def make_options(
    kind: str, name: str, cls: type, values: Mapping[str, Any], where: str = "", tag: str = "name"
) -> Any:
    """``cls(name=name, **values)`` (``tag``: the field that names the choice, if not
    ``name``), refusing a key ``cls`` does not have (``where``: the prefix the message gives
    keys, e.g. ``"objective."``)."""
    known = set(option_names(cls))
    for key in values:
        if key not in known or key == tag:
            raise UnknownOptionError(kind, name, key, cls, where, tag)
    return cls(**{tag: name}, **values)


__all__ = [
    "Options",
    "UnknownOptionError",
    "above",
    "at_least",
    "choice",
    "make_options",
    "option_names",
    "read_when",
    "resumable",
]
