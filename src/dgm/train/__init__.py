"""Training: one explicit loop."""

from . import checkpoint, distributed
from .fit import Batches, FitResult, NonFiniteLossError, fit

__all__ = ["Batches", "FitResult", "NonFiniteLossError", "checkpoint", "distributed", "fit"]
