"""Training: one loop (``loop.run``), a state it saves and restores, and pluggable steps."""

from ..compiling import COMPILE_MODES, Compiled, CompileError, compiler_problem
from . import checkpoint, distributed, optim
from .batches import Batches
from .fitting import fit
from .loop import Execution, FitResult, Output, Schedule, note_resume, resume, run
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
    "Execution",
    "FitResult",
    "NonFiniteLossError",
    "Output",
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
    "note_resume",
    "optim",
    "resume",
    "run",
]
