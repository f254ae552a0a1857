"""Small helpers shared by the objectives' gradient surrogates."""

from __future__ import annotations

from torch import Tensor


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
