"""Training: one loop (``loop.run``), a state it saves and restores, and pluggable steps."""

from . import checkpoint, distributed
from .batches import Batches
from .fit import fit
from .loop import FitResult, Schedule, run
from .state import TrainState
from .step import (
    AlternatingStep,
    NonFiniteLossError,
    Step,
    SurrogateStep,
    Update,
    check_finite,
)

__all__ = [
    "AlternatingStep",
    "Batches",
    "FitResult",
    "NonFiniteLossError",
    "Schedule",
    "Step",
    "SurrogateStep",
    "TrainState",
    "Update",
    "check_finite",
    "checkpoint",
    "distributed",
    "fit",
    "run",
]
