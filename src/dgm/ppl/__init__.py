"""Programs: ``sample`` and the handlers ``trace``, ``replay``, ``condition``, ``particles``."""

from .errors import DuplicateSiteError, MissingSiteError, ProgramError, ShapeError, site_table
from .handlers import Trace, condition, particles, replay, trace
from .runtime import Handler, sample
from .site import Site

__all__ = [
    "DuplicateSiteError",
    "Handler",
    "MissingSiteError",
    "ProgramError",
    "ShapeError",
    "Site",
    "Trace",
    "condition",
    "particles",
    "replay",
    "sample",
    "site_table",
    "trace",
]
