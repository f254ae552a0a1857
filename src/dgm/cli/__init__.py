"""Command-line interface: ``dgm train|eval|sample|report|list``."""

from .main import main

__all__ = ["main"]
