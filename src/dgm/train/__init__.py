"""Training: one loop (``loop.run``), a state it saves and restores, and pluggable steps."""

from . import checkpoint, distributed
from .batches import Batches
from .compile import COMPILE_MODES, Compiled, CompileError, compiler_problem
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
    "COMPILE_MODES",
    "AlternatingStep",
    "Batches",
    "CompileError",
    "Compiled",
    "FitResult",
    "NonFiniteLossError",
    "Schedule",
    "Step",
    "SurrogateStep",
    "TrainState",
    "Update",
    "check_finite",
    "checkpoint",
    "compiler_problem",
    "distributed",
    "fit",
    "run",
]
