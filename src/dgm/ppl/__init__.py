"""Programs: ``sample`` and the handlers (``trace``, ``replay``, ``particles``, ``block``, ...)."""

from .density import posterior_log_density
from .errors import DuplicateSiteError, MissingSiteError, ProgramError, ShapeError, site_table
from .handlers import (
    Trace,
    block,
    condition,
    mask,
    no_reparam,
    particles,
    replay,
    scale,
    trace,
    uncondition,
)
from .relaxation import relax, relaxed
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
    "block",
    "condition",
    "mask",
    "no_reparam",
    "particles",
    "posterior_log_density",
    "relax",
    "relaxed",
    "replay",
    "sample",
    "scale",
    "site_table",
    "trace",
    "uncondition",
]
