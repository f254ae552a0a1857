"""Model and guide programs."""

from . import auto_guide, gmm, regression, sbn, vae
from .auto_guide import AutoGuide

__all__ = ["AutoGuide", "auto_guide", "gmm", "regression", "sbn", "vae"]
