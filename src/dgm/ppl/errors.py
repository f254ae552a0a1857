"""Errors raised inside programs, each with a table of the sites seen so far."""

from __future__ import annotations

from collections.abc import Iterable

from .site import Site


def _shape(shape: Iterable[int] | None) -> str:
    return "-" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"


def site_table(sites: Iterable[Site]) -> str:
    """Format sites as a fixed-width table: name, kind, value, batch and event shapes.

    When any site knows its program (``Site.program``: ``log_weights`` labels the guide's and
    the model's), a first column says which program each row comes from (``-``: not known).
    """
    sites = list(sites)
    labelled = any(s.program is not None for s in sites)
    rows: list[tuple[str, ...]] = [
        ("site", "kind", "value shape", "batch shape", "event shape", "distribution")
    ]
    if labelled:
        rows[0] = ("program", *rows[0])
    for s in sites:
        kind = (
            "observed"
            if s.is_observed
            else ("latent" if s.is_reparameterized else "latent (score)")
        )
        rows.append(
            (
                *((s.program or "-",) if labelled else ()),
                s.name,
                kind,
                _shape(None if s.value is None else s.value.shape),
                _shape(s.fn.batch_shape),
                _shape(s.fn.event_shape),
                type(s.fn).__name__,
            )
        )
    if len(rows) == 1:
        return "  (no sample sites yet)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  " + "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


class ProgramError(RuntimeError):
    """An error inside a model or guide, reported with the sites recorded so far.

    Attributes:
        message: the message without the table.
        sites: the sites the table lists (each marked with its program where known).
        table: ``site_table(sites)``.
    """

    def __init__(self, message: str, sites: Iterable[Site] = ()) -> None:
        self.message = message
        self.sites = list(sites)
        self.table = site_table(self.sites)
        super().__init__(f"{message}\nSites so far:\n{self.table}")


class DuplicateSiteError(ProgramError):
    """Two sample sites in one run of a program share a name."""


class MissingSiteError(ProgramError):
    """A model latent site has no value in the guide trace it replays.

    Attributes:
        site: the site without a value (``None`` when not given).
    """

    def __init__(self, message: str, sites: Iterable[Site] = (), site: Site | None = None) -> None:
        super().__init__(message, sites)
        self.site = site


class ShapeError(ProgramError):
    """A site's shape does not fit the particle and batch layout."""


_WRAPPERS: dict[type[BaseException], type[ProgramError]] = {}


def wrap_program_error(exc: Exception, sites: Iterable[Site]) -> ProgramError:
    """A ``ProgramError`` that is also an instance of ``exc``'s type (``except ValueError``
    still catches it), carrying the original message and the site table."""
    cls = type(exc)
    wrapper = _WRAPPERS.get(cls)
    if wrapper is None:
        try:
            wrapper = type(f"Program{cls.__name__}", (ProgramError, cls), {})
        except TypeError:  # an exception type that cannot be combined
            wrapper = ProgramError
        _WRAPPERS[cls] = wrapper
    return wrapper(f"{cls.__name__} inside the program: {exc}", sites)
