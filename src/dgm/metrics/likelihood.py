"""Importance-sampled log-likelihood, computed in chunks so memory stays bounded."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import validation
from ..compiling import Compiled, CompileError, compiler_problem
from ..inputs import as_data, float_dtype
from ..objectives import log_weights
from ..progress import tracked


@torch.no_grad()
def log_likelihood(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    data: Tensor | np.ndarray,
    num_particles: int = 5000,
    batch_size: int = 100,
    max_elements: int | None = None,
    progress: bool | None = None,
    compile: bool = False,
) -> Tensor:
    """Estimate log p(x) for each data point with K importance samples from the guide.

        log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x)

    This is the IWAE bound with K = ``num_particles``: a stochastic lower bound that is
    consistent as K grows (Burda et al. 2016, Sec. 5.2, use K = 5000). Data points are taken
    ``batch_size`` at a time and particles in chunks, chosen so that one chunk's largest
    tensor has at most about ``max_elements`` entries; chunks are combined with logsumexp.

    Args:
        model, guide: the programs.
        data: data points, ``[N, ...]``: a tensor or a numpy array. As in ``dgm.train.fit``,
            numpy floats, unsigned integers (``uint8`` images, values kept) and bool data are
            scored in the floating dtype of the programs' parameters (float32 by default),
            cast chunk by chunk; signed integers and torch floating tensors are passed as
            they are; lists and numpy arrays of objects or strings are refused.
        num_particles: K.
        batch_size: data points per chunk.
        max_elements: bound on particles * batch * data size per chunk (memory). Default
            2**20 on CPU, where cache-sized chunks run about 3x faster than large ones, and
            2**26 on GPU.
        progress: show progress (``dgm.progress``: a bar on a terminal, a line about every
            30 s in a log); ``None``: unless turned off there. The programs' value checks (``dgm.checks``) run on
            the first chunk only.
        compile: score the chunks with ``torch.compile`` (``dgm.compiling.Compiled``):
            the first chunk runs eagerly with the programs' value checks, the others
            compiled for the common chunk shape; the last, smaller batch and chunk run
            eagerly. Raises ``CompileError`` where compilation is impossible.

    Returns:
        Estimated log p(x), shape ``[N]``, on the data's device.

    Raises:
        TypeError, ValueError: data that is not converted, saying what to pass instead.
    """
    tensor, cast = as_data(data, float_dtype(model, guide), "log_likelihood", several=False)
    assert isinstance(tensor, Tensor)
    data = tensor
    n = data.shape[0]
    point_size = max(1, data[0].numel())
    batch_size = max(1, min(batch_size, n))
    if max_elements is None:
        max_elements = 2**20 if data.device.type == "cpu" else 2**26
    chunk = max(1, min(num_particles, max_elements // (batch_size * point_size)))
    out = torch.empty(n, dtype=torch.float64, device=data.device)
    starts = tracked(
        range(0, n, batch_size), f"log p(x), K={num_particles}", unit="batch", show=progress
    )

    def score(x: Tensor, k: int) -> Tensor:
        lw = log_weights(model, guide, x, num_particles=k)
        return torch.logsumexp(lw.log_w.double(), 0)

    if compile:
        problem = compiler_problem(data.device)
        if problem is not None:
            raise CompileError(f"log_likelihood(compile=True): {problem}")
        score = Compiled(score, "log-likelihood chunk", required=True, warn_new_shapes=False)
    checks: Any = contextlib.nullcontext()  # value checks on the first chunk only
    for start in starts:
        x = data[start : start + batch_size]
        if cast is not None:
            x = cast.tensor(x)
        parts = []
        for k0 in range(0, num_particles, chunk):
            k = min(chunk, num_particles - k0)
            with checks:
                parts.append(score(x, k))
            checks = validation(False)
        out[start : start + len(x)] = torch.logsumexp(torch.stack(parts), 0) - math.log(
            num_particles
        )
    return out
