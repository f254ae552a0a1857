"""Seeds: one integer in, every generator a computation draws from set, reproducibly.

``derived_seed(seed, *purpose)`` gives an independent, stable seed for one purpose (a
metric, an evaluation with its settings) from a run's seed, so that a number depends only
on what it is and how it is computed, never on what was computed before it.
``seed_all(seed)`` seeds the global generators a run or user code may draw from: torch
(and CUDA), NumPy's legacy global state and Python's ``random``.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import torch


def derived_seed(seed: int, *purpose: Any) -> int:
    """A 63-bit seed from ``seed`` and a description of the purpose (JSON-serializable
    values: names, settings); the same arguments give the same seed on every machine."""
    text = json.dumps([seed, *purpose], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def seed_all(seed: int) -> None:
    """Seed torch (every device), NumPy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - user code and libraries may draw from it
    random.seed(seed)


__all__ = ["derived_seed", "seed_all"]
