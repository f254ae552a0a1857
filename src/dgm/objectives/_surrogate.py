"""Small helpers shared by the objectives' gradient surrogates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call


def magic_box(x: Tensor) -> Tensor:
    """Zero in value, the gradient of ``x`` in backward (x - stop_gradient(x))."""
    return x - x.detach()


def leave_one_out_baseline(signal: Tensor) -> Tensor:
    """A control variate for each particle's score-function term, independent of it.

    With K > 1 particles: the mean of the other particles' signals for the same data point.
    With one particle: the mean over the other data points of the batch (their samples are
    independent of this one's). Otherwise zero. Shapes ``[K, *batch] -> [K, *batch]``.
    """
    k = signal.shape[0]
    if k > 1:
        return (signal.sum(0, keepdim=True) - signal) / (k - 1)
    flat = signal.reshape(k, -1)
    n = flat.shape[1]
    if n > 1:
        return ((flat.sum(1, keepdim=True) - flat) / (n - 1)).reshape(signal.shape)
    return signal.new_zeros(signal.shape)


def check_fresh(lw: object) -> None:
    """Refuse weights whose gradient paths a DReG objective has already rewired."""
    if getattr(lw, "hooked", False):
        raise RuntimeError(
            "these LogWeights were already used by iwae(..., dreg=True), which scales the "
            "gradients reaching their latent values; compute fresh log_weights(...) for "
            "another objective"
        )


def unwrap(program: Any) -> Any:
    """The module inside a DistributedDataParallel wrapper (a second DDP forward before one
    backward is an error), else the program itself."""
    return program.module if isinstance(program, nn.parallel.DistributedDataParallel) else program


def frozen(program: Any) -> Callable[..., Any]:
    """The program with its own parameters detached: gradients still flow through its inputs
    and latent values, but none reach its parameters."""
    module = unwrap(program)
    if not isinstance(module, nn.Module):
        return module
    params = {n: t.detach() for n, t in module.named_parameters()}

    def run(*args: Any, **kwargs: Any) -> Any:
        return functional_call(module, params, args, kwargs, strict=False)

    return run
