"""Network building blocks for models and guides."""

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLP, activation

__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "activation"]
