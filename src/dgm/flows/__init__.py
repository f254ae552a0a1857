"""Normalizing flows: bijections with log-determinants, conditional on a context when asked."""

from .autoregressive import IAF, MAF
from .bijection import Bijection, Compose, Permute
from .distribution import FlowDistribution
from .made import MADE, MaskedLinear
from .planar import Planar
from .prior import AutoregressivePrior

__all__ = [
    "IAF",
    "MADE",
    "MAF",
    "AutoregressivePrior",
    "Bijection",
    "Compose",
    "FlowDistribution",
    "MaskedLinear",
    "Permute",
    "Planar",
]
