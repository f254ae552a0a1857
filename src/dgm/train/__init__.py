"""Training: one explicit loop."""

from .fit import Batches, FitResult, NonFiniteLossError, fit

__all__ = ["Batches", "FitResult", "NonFiniteLossError", "fit"]
