"""Normalizing flows: bijections with log-determinants, conditional on a context when asked."""

from .actnorm import ActNorm
from .autoregressive import IAF, MAF
from .bijection import Bijection, Compose, Permute
from .conv1x1 import InvertibleConv1x1
from .coupling import AffineCoupling
from .dequantize import (
    Dequantization,
    LogitTransform,
    UniformDequantization,
    VariationalDequantization,
)
from .distribution import FlowDistribution
from .made import MADE, MaskedLinear
from .planar import Planar
from .prior import AutoregressivePrior
from .spline import AutoregressiveSpline, SplineCoupling, rational_quadratic_spline
from .squeeze import Squeeze

__all__ = [
    "IAF",
    "MADE",
    "MAF",
    "ActNorm",
    "AffineCoupling",
    "AutoregressivePrior",
    "AutoregressiveSpline",
    "Bijection",
    "Compose",
    "Dequantization",
    "FlowDistribution",
    "InvertibleConv1x1",
    "LogitTransform",
    "MaskedLinear",
    "Permute",
    "Planar",
    "SplineCoupling",
    "Squeeze",
    "UniformDequantization",
    "VariationalDequantization",
    "rational_quadratic_spline",
]
