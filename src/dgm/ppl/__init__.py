"""Programs: ``sample`` and the handlers (``trace``, ``replay``, ``condition``, ``particles``, ...)."""

from .density import posterior_log_density
from .errors import DuplicateSiteError, MissingSiteError, ProgramError, ShapeError, site_table
from .handlers import Trace, condition, no_reparam, particles, replay, trace, uncondition
from .relax import relax, relaxed
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
    "no_reparam",
    "particles",
    "posterior_log_density",
    "relax",
    "relaxed",
    "replay",
    "sample",
    "site_table",
    "trace",
    "uncondition",
]
