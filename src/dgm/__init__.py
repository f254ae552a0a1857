"""dgm: deep generative models and amortized inference on a small probabilistic-programming core.

Write a model p(x, z) and a guide q(z | x) as ``nn.Module`` programs that call
``dgm.sample(name, distribution, obs=None)``; objectives (ELBO, IWAE, ...) are computed from
``dgm.objectives.log_weights`` and trained with ``dgm.train.fit``.
"""

from . import (
    checks,
    compiling,
    data,
    distributions,
    flows,
    infer,
    metrics,
    models,
    nn,
    objectives,
    ppl,
    train,
)
from .objectives import ELBO, IWAE, elbo, iwae, log_weights
from .ppl import block, condition, mask, particles, replay, sample, scale, trace

__version__ = "0.1.0"

__all__ = [
    "ELBO",
    "IWAE",
    "__version__",
    "block",
    "checks",
    "compiling",
    "condition",
    "data",
    "distributions",
    "elbo",
    "flows",
    "infer",
    "iwae",
    "log_weights",
    "mask",
    "metrics",
    "models",
    "nn",
    "objectives",
    "particles",
    "ppl",
    "replay",
    "sample",
    "scale",
    "trace",
    "train",
]
