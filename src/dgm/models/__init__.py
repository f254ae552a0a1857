"""Model and guide programs."""

from . import gmm, sbn, vae

__all__ = ["gmm", "sbn", "vae"]
