"""Training: one explicit loop."""

from .fit import FitResult, NonFiniteLossError, batches, fit

__all__ = ["FitResult", "NonFiniteLossError", "batches", "fit"]
