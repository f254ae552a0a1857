"""Small helpers shared by the objectives' gradient surrogates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..ppl import Site


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


def split_baselines(
    sites: list[Site], signal: Tensor
) -> tuple[list[Site], list[tuple[Site, Tensor]]]:
    """Score-function sites without and with their own control variate.

    A site sampled with ``infer={"baseline": b}`` carries its own; it comes back paired with
    ``b`` as given (a tensor: a learned baseline keeps its graph, for ``fit_baselines``; the
    score terms detach it) and checked to broadcast to the signal's ``[K, *batch]`` shape. The
    other sites keep their order, so that the objective's shared term over them is computed as
    before.
    """
    shared: list[Site] = []
    own: list[tuple[Site, Tensor]] = []
    for s in sites:
        if "baseline" not in s.infer:
            shared.append(s)
            continue
        b = s.infer["baseline"]
        if isinstance(b, bool) or not isinstance(b, int | float | Tensor):
            raise TypeError(
                f"site {s.name!r}: infer['baseline'] must be a tensor or a number, got "
                f"{type(b).__name__}"
            )
        b = torch.as_tensor(b, dtype=signal.dtype, device=signal.device)
        try:
            fits = torch.broadcast_shapes(b.shape, signal.shape) == signal.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"site {s.name!r}: infer['baseline'] has shape {list(b.shape)}, which does not "
                f"broadcast to the weights' shape {list(signal.shape)} ([num_particles, batch])"
            )
        own.append((s, b))
    return shared, own


def fit_baselines(own: list[tuple[Site, Tensor]], target: Tensor) -> Tensor | None:
    """Zero in value; in backward, the least-squares fit of every learned site baseline.

    A site's ``infer["baseline"]`` that carries a gradient (the output of a network, as
    Attend-Infer-Repeat's per-step baselines are) gets the gradient of
    -(1/2) (target - b)^2 wherever the site's mask keeps it, so that the same optimizer step
    that follows the bound moves ``b`` towards the learning signal it centres (Mnih & Gregor
    2014, Eq. 11). ``target`` is that signal, ``[K, *batch]``, detached. A constant baseline
    gets nothing. Returns ``None`` when no baseline is learned, else ``[K, *batch]``.
    """
    total: Tensor | None = None
    for s, b in own:
        if not b.requires_grad:
            continue
        fit = -0.5 * (target.detach() - b) ** 2
        if s.mask is not None:
            keep = s.mask if isinstance(s.mask, Tensor) else torch.tensor(s.mask)
            fit = torch.where(keep.to(fit.device), fit, 0.0)
        term = magic_box(fit)
        total = term if total is None else total + term
    return total


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
