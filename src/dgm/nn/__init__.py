"""Network building blocks for models and guides."""

from .mlp import MLP, activation

__all__ = ["MLP", "activation"]
