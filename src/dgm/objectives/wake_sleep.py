"""Wake-sleep and reweighted wake-sleep: the model and the guide learn from different signals.

The model (theta) climbs the importance-weighted bound; the guide (phi) does not climb any
bound but fits the posterior, either on the model's own simulations (sleep) or on the
self-normalized importance weights of real data (wake). No gradient passes through a sampled
latent value, so discrete latents need no reparameterization and no control variates.

    wake-theta:  grad_theta log (1/K) sum_k w_k                      z_k ~ q(z | x)
    wake-phi:    sum_k w~_k grad_phi log q(z_k | x)                  w~ = w / sum w
    sleep-phi:   grad_phi log q(z | x)                               (x, z) ~ p_theta(x, z)

Each function returns a per-data-point ``[B]`` tensor whose gradient is the estimator's (for
the guide's terms, its value is a surrogate). They take ``LogWeights`` computed with
``reparam=False``; the training objectives ``RWS`` and ``WakeSleep`` do that.

References:
    Hinton, Dayan, Frey & Neal, "The wake-sleep algorithm for unsupervised neural networks", 1995.
    Bornschein & Bengio, "Reweighted Wake-Sleep", 2015.
    Le, Kosiorek, Siddharth, Teh & Wood, "Revisiting Reweighted Wake-Sleep for Models with
    Stochastic Control Flow", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..ppl import no_reparam, replay, trace, uncondition
from ..registry import at_least
from ._surrogate import check_fresh, magic_box
from .weights import LogWeights, log_weights

PHI_MODES = ("wake", "sleep", "both")


def _check_not_reparameterized(lw: LogWeights, what: str) -> None:
    reparam = [s.name for s in lw.guide_trace.latent if s.is_reparameterized]
    if reparam:
        raise ValueError(
            f"{what} needs guide samples without a gradient path, but site(s) {reparam} were "
            "drawn with rsample; compute the weights with log_weights(..., reparam=False)"
        )


def wake_theta(lw: LogWeights) -> Tensor:
    """Per-data-point IWAE bound log (1/K) sum_k w_k, differentiated only into the model.

    With K = 1 this is the wake phase of wake-sleep (log p(x, z), z ~ q); with K > 1, the
    reweighted wake-sleep model update (Bornschein & Bengio 2015, Eq. 6), whose gradient is
    sum_k w~_k grad_theta log p(x, z_k).

    Returns:
        ``[B]``: the bound's value; its gradient reaches only the model's parameters.
    """
    check_fresh(lw)
    _check_not_reparameterized(lw, "wake_theta")
    log_w = lw.log_p - lw.log_q.detach()
    return torch.logsumexp(log_w, 0) - math.log(lw.num_particles)


def wake_phi(lw: LogWeights) -> Tensor:
    """The wake update of the guide: sum_k w~_k log q(z_k | x), weights held fixed.

    Its gradient estimates -grad_phi KL(p(z | x) || q(z | x)) with self-normalized importance
    sampling (biased for finite K, consistent as K grows; Bornschein & Bengio 2015, Eq. 9).

    Returns:
        ``[B]`` surrogate whose gradient reaches only the guide's parameters.
    """
    check_fresh(lw)
    _check_not_reparameterized(lw, "wake_phi")
    w = torch.softmax(lw.log_w.detach(), 0)
    return (w * lw.log_q).sum(0)


def sleep_phi(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    *args: Any,
    observed: Sequence[str] | None = None,
    guide_args: Callable[[dict[str, Tensor]], tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
    **kwargs: Any,
) -> Tensor:
    """The sleep update of the guide: log q(z | x) at a dream (x, z) ~ p_theta(x, z).

    The model is run on ``*args, **kwargs`` with its observed sites drawn instead of observed
    (``dgm.ppl.uncondition``), so the dreams have the shape of the real batch: one per data
    point, in one vectorized call. The guide is then run on the dreamed observations and
    scored at the dreamed latents. Nothing flows back into the model.

    Args:
        model, guide: the programs, called as in ``log_weights``.
        *args, **kwargs: the real batch's arguments. Each argument that was passed to the
            model as an ``obs=`` value is replaced by its dream for the guide.
        observed: for models called without their observations (``model(t)`` with
            ``y=None``, as in simulation-based training): the names of the sites that are the
            data; their dreams are passed to the guide as keyword arguments of those names
            (``guide(t, y=dream_y)``).
        guide_args: for programs where that matching does not work (the observation is
            reshaped inside the model, say): maps the dream's site values to the guide's
            ``(args, kwargs)``.

    Returns:
        ``[B]``: log q(z_dream | x_dream) per dream; its gradient reaches only the guide.
    """
    with torch.no_grad(), trace() as dream, no_reparam(), uncondition() as simulated:
        model(*args, **kwargs)
    data_sites = set(simulated.observations) | set(observed or ())
    if not data_sites:
        raise ValueError(
            "sleep_phi: the model observed nothing (no dgm.sample(..., obs=...) site), so "
            "there is no data to dream; call it with its data, or name the data sites with "
            "observed=[...]"
        )
    missing = [n for n in observed or () if n not in dream]
    if missing:
        raise ValueError(f"sleep_phi: observed site(s) {missing} are not sites of the model")
    if observed:
        g_args, g_kwargs = args, {**kwargs, **{n: dream[n].value for n in observed}}
    elif guide_args is not None:
        g_args, g_kwargs = guide_args({s.name: s.value for s in dream if s.value is not None})
    else:
        g_args, g_kwargs = dreamed_arguments(dream, simulated.observations, args, kwargs)
    latent = {n for n in dream.sites if n not in data_sites}
    with trace() as q, replay(dream):
        guide(*g_args, **g_kwargs)
    sites = [s for s in q.latent if s.name in latent]
    if not sites:
        raise ValueError("sleep_phi: the guide samples none of the model's latent sites")
    return q.log_prob_sum(sites)


def dreamed_arguments(
    dream: Any, observations: dict[str, Tensor], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with each observed tensor replaced by its dreamed value."""
    replace = {id(obs): dream[name].value for name, obs in observations.items()}
    found = {id(a) for a in [*args, *kwargs.values()]} & replace.keys()
    missing = [n for n, obs in observations.items() if id(obs) not in found]
    if missing:
        raise ValueError(
            f"sleep_phi: the observed value of site(s) {missing} is not one of the programs' "
            "arguments (is it reshaped inside the model?), so the guide cannot be given the "
            "dream; pass guide_args=lambda dream: ((dream['x'],), {}) to say how"
        )
    new_args = tuple(replace.get(id(a), a) for a in args)
    new_kwargs = {k: replace.get(id(v), v) for k, v in kwargs.items()}
    return new_args, new_kwargs


class RWS:
    """Reweighted wake-sleep as a training objective: ``RWS(K, phi)(model, guide, x) -> [B]``.

    The value is the IWAE bound (so the logged loss is comparable with IWAE's); the gradient
    is wake-theta for the model and, for the guide, wake-phi (``phi="wake"``, the "wake-wake"
    algorithm of Le et al. 2019), sleep-phi (``"sleep"``) or their average (``"both"``).
    ``RWS(1, "sleep")`` is the original wake-sleep algorithm (see ``WakeSleep``). Use two
    optimizers (``dgm.train.fit(optimizer=[model_opt, guide_opt])``) to give the model and the
    guide their own learning rates.
    """

    def __init__(self, num_particles: int = 5, phi: str = "wake") -> None:
        if phi not in PHI_MODES:
            raise ValueError(f"RWS: phi must be one of {PHI_MODES}, got {phi!r}")
        at_least("num_particles", num_particles, 1)
        self.num_particles = num_particles
        self.phi = phi

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(
            model, guide, *args, num_particles=self.num_particles, reparam=False, **kwargs
        )
        bound = wake_theta(lw)
        if self.phi == "wake":
            phi_term = wake_phi(lw)
        elif self.phi == "sleep":
            phi_term = sleep_phi(model, guide, *args, **kwargs)
        else:
            phi_term = 0.5 * (wake_phi(lw) + sleep_phi(model, guide, *args, **kwargs))
        return bound + magic_box(phi_term)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_particles={self.num_particles}, phi={self.phi!r})"


class Sleep:
    """Simulation-based training of a guide alone: maximize E_{p(x, z)}[log q(z | x)].

    This is inference compilation (Le, Baydin & Wood 2017; Paige & Wood 2016): the guide is
    fitted to the model's own simulations before any real data is seen, and can then serve as
    an importance-sampling or independence-MH proposal for any observed data set. Each call
    simulates one data set per entry of the batch (``sleep_phi``): a batch of data sets is a
    tensor dimension, not a Python loop. The arguments only give the batch its shape (and any
    covariates, e.g. the inputs t of a regression); observed values are replaced by dreams.

    The value is log q(z | x) at the dreams, ``[B]``; only the guide gets a gradient.

    Args:
        observed: the names of the data sites, for models called without their data (see
            ``sleep_phi``); ``None`` when the call carries the (placeholder) observations.
    """

    def __init__(self, observed: Sequence[str] | None = None) -> None:
        self.observed = list(observed) if observed is not None else None

    def __call__(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        return sleep_phi(model, guide, *args, observed=self.observed, **kwargs)

    def __repr__(self) -> str:
        return f"Sleep(observed={self.observed})"


class WakeSleep(RWS):
    """The wake-sleep algorithm (Hinton et al. 1995): wake-theta with one guide sample, sleep-phi."""

    def __init__(self) -> None:
        super().__init__(1, "sleep")

    def __repr__(self) -> str:
        return "WakeSleep()"
