"""Command-line interface: ``dgm train|eval|sample|report|list``."""

from .commands import main

__all__ = ["main"]
