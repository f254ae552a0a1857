"""Name-to-constructor tables: one per kind of choice (objectives, posteriors, priors, data sets).

Each table lives next to the classes it builds and is the only place their names are
written: the configuration lists its choices from the table, and the constructors hold the
rules. Entries carry *capabilities* (e.g. whether a posterior can re-score values it did not
draw), so that rules between components are checked by looking them up, not by comparing
names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .options import make_options

T = TypeVar("T")


class UnknownChoiceError(ValueError):
    """A name that is not in a table; the message lists the valid names and a close match."""

    def __init__(self, kind: str, name: object, choices: list[str]) -> None:
        self.kind, self.name, self.choices = kind, name, choices
        close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Choose one of {', '.join(choices)}")


def at_least(argument: str, value: float, minimum: float) -> None:
    """Raise ``ValueError("<argument> must be >= <minimum>, got <value>")`` unless it holds.

    Constructors state their rules this way, naming the argument first, so that the
    configuration can re-raise the message under its own key (``model.flow_length ...``).
    """
    if not value >= minimum:
        raise ValueError(f"{argument} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One choice: how to build it, one line about it, its capabilities, and (for a choice
    with settings) its ``Options`` class, which ``build`` takes first."""

    build: Callable[..., T]
    summary: str = ""
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    options: type | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.capabilities[name]
        except KeyError:
            raise AttributeError(name) from None


class Registry(Generic[T]):
    """An ordered table ``name -> Entry`` of one kind of choice.

    Example:
        >>> table: Registry[int] = Registry("number")
        >>> table.add("one", lambda: 1, "the first", odd=True)
        >>> table.build("one"), table["one"].odd, table.names()
        (1, True, ['one'])
    """

    def __init__(self, kind: str, tag: str = "name") -> None:
        self.kind = kind
        # the field of an entry's options that names the entry (``name``; flows: ``family``)
        self.tag = tag
        self._entries: dict[str, Entry[T]] = {}

    def add(
        self,
        name: str,
        build: Callable[..., T],
        summary: str = "",
        options: type | None = None,
        **capabilities: Any,
    ) -> None:
        """Register ``build`` under ``name`` (names are unique). With ``options`` (a
        ``dgm.options.Options`` subclass) ``build(options, *context)`` takes an instance of it:
        the component's settings, each read, none ignored."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(build, summary, dict(capabilities), options)

    def __getitem__(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownChoiceError(self.kind, name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, **capabilities: Any) -> list[str]:
        """The names, in registration order; only those whose capabilities match, if given."""
        return [
            n
            for n, e in self._entries.items()
            if all(e.capabilities.get(k) == v for k, v in capabilities.items())
        ]

    def options(self, name: str, **values: Any) -> Any:
        """The ``Options`` of choice ``name`` with ``values``; a key it does not take is a
        ``ValueError`` naming the keys it does take."""
        entry = self[name]
        if entry.options is None:
            raise TypeError(f"{self.kind} {name!r} has no options class")
        return make_options(self.kind, name, entry.options, values, tag=self.tag)

    def create(self, options: Any, *context: Any) -> T:
        """Build the choice that ``options.name`` names from its options (and ``context``:
        what the choice needs beyond its settings, e.g. a network another part owns)."""
        return self[getattr(options, self.tag)].build(options, *context)

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """``self[name].build(*args, **kwargs)``; for a choice with an ``Options`` class,
        ``kwargs`` are its options (``OBJECTIVES.build("rws", num_particles=3)``)."""
        if self[name].options is not None:
            return self.create(self.options(name, **kwargs), *args)
        return self[name].build(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


__all__ = ["Entry", "Registry", "UnknownChoiceError", "at_least"]
