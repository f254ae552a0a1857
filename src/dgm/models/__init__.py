"""Model and guide programs."""

from . import vae

__all__ = ["vae"]
