"""``log_weights``: run the guide with K particles, replay the model, return log p and log q."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..ppl import (
    MissingSiteError,
    ProgramError,
    ShapeError,
    Trace,
    no_reparam,
    particles,
    replay,
    trace,
)
from ..ppl.site import Site


@dataclass(eq=False)
class LogWeights:
    """Per-particle, per-data-point log joint and log proposal densities.

    Attributes:
        log_p: log p(x, z_k) for each particle k and data point b, shape ``[K, B]``.
        log_q: log q(z_k | x) for each particle and data point, shape ``[K, B]``.
        model_trace: the model's trace (latent values replayed from the guide).
        guide_trace: the guide's trace (latent values with a leading particle dimension).
        model, guide, args, kwargs: the programs and the call they were run with, kept so
            that an objective can re-run a program (as the DReG gradient does).
    """

    log_p: Tensor
    log_q: Tensor
    model_trace: Trace
    guide_trace: Trace
    model: Callable[..., Any]
    guide: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    batch_dims: int = 1
    hooked: bool = False

    @property
    def log_w(self) -> Tensor:
        """log w_k = log p(x, z_k) - log q(z_k | x), shape ``[K, B]``."""
        return self.log_p - self.log_q

    @property
    def num_particles(self) -> int:
        """K, the size of the leading dimension."""
        return int(self.log_p.shape[0])

    @property
    def score_sites(self) -> list[Site]:
        """The guide's non-reparameterized latent sites, whose gradients need score-function terms."""
        return [s for s in self.guide_trace.latent if not s.is_reparameterized]

    def score_log_q(self, sites: list[Site] | None = None) -> Tensor | None:
        """Sum of log q over score-function sites (default: all of ``score_sites``), or ``None``.

        Each site contributes its masked but unscaled log-density (``Site.unscaled_log_prob``):
        the score function is that of the distribution the value was drawn from, whatever
        weight ``dgm.ppl.scale`` gives the site in the bound.
        """
        chosen = self.score_sites if sites is None else sites
        if not chosen:
            return None
        total = chosen[0].unscaled_log_prob
        for s in chosen[1:]:
            total = total + s.unscaled_log_prob
        return total


def log_weights(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    *args: Any,
    num_particles: int = 1,
    batch_dims: int = 1,
    reparam: bool = True,
    **kwargs: Any,
) -> LogWeights:
    """Importance weights of ``num_particles`` guide samples per data point.

    Runs ``guide(*args, **kwargs)`` once with K vectorized particles, replays
    ``model(*args, **kwargs)`` on its latent values and sums each program's site log-densities:

        log w_{k,b} = log p(x_b, z_{k,b}) - log q(z_{k,b} | x_b),   z_{k,b} ~ q(z | x_b).

    Every objective (ELBO, IWAE, RWS, VIMCO ...) is a function of this record.

    Args:
        model: program computing p(x, z); observes data with ``dgm.sample(..., obs=x)``.
        guide: program computing q(z | x) over the model's latent site names.
        *args, **kwargs: passed to both programs (typically the data batch ``x``).
        num_particles: K, particles per data point.
        batch_dims: number of data-batch dimensions of each site's ``batch_shape``.
        reparam: ``False`` draws every guide latent with ``sample()`` (no gradient through the
            values), as wake-sleep objectives need.

    Returns:
        ``LogWeights`` with ``log_p`` and ``log_q`` shaped ``[K, *batch]``.

    Raises:
        ShapeError: a site's log-density does not fit ``[K, *batch]``.
        MissingSiteError: a latent site of the model that the guide does not sample; when
            its shape is that of a tensor argument (after the particle dimension), the
            message says it looks like data the model forgot to observe (``obs=``).
        ProgramError: a guide site missing from the model, or an error inside a program.
            Error tables mark each site's program: inside the model they list the guide's
            sites, then the model's so far.
    """
    with trace("guide") as guide_trace, particles(num_particles, batch_dims):
        if reparam:
            guide(*args, **kwargs)
        else:
            with no_reparam():
                guide(*args, **kwargs)
    try:
        with (
            trace("model", follows=guide_trace) as model_trace,
            replay(guide_trace, alias=True),
        ):
            model(*args, **kwargs)
    except MissingSiteError as e:
        message = _looks_like_data(e.site, args, kwargs)
        if message is None:
            raise
        raise MissingSiteError(message, e.sites, e.site).with_traceback(e.__traceback__) from None
    extra = [s.name for s in guide_trace.latent if s.name not in model_trace]
    if extra:
        raise ProgramError(
            f"guide site(s) {extra} do not appear in the model; every latent the guide samples "
            "must be a latent site of the model",
            model_trace.error_sites(),
        )
    shape = _weights_shape([*model_trace, *guide_trace.latent], num_particles, batch_dims)
    log_p = model_trace.log_prob_sum().expand(shape)
    log_q = guide_trace.log_prob_sum(guide_trace.latent).expand(shape)
    return LogWeights(
        log_p, log_q, model_trace, guide_trace, model, guide, args, kwargs, batch_dims
    )


def _looks_like_data(
    site: Site | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """The message for a missing model site shaped like a tensor argument, or ``None``.

    The model runs on the guide's particled latents, so a likelihood it forgot to observe
    has the data's shape with a leading particle dimension ([K, B, ...] for data [B, ...]).
    """
    if site is None:
        return None
    shape = site.sample_shape + site.fn.batch_shape + site.fn.event_shape
    named = [(f"argument {i}", v) for i, v in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for where, v in named:
        if isinstance(v, Tensor) and v.dim() > 0 and v.shape in (shape, shape[1:]):
            value = site.name if site.name.isidentifier() else "data"
            return (
                f"latent site {site.name!r} has no value in the replayed guide trace, and it "
                f"looks like data the model does not observe: its shape {list(shape)} is the "
                f"shape {list(v.shape)} of the programs' {where}"
                + (", after the particle dimension" if v.shape != shape else "")
                + f". If {site.name!r} is your data, pass it with dgm.sample({site.name!r}, ..., "
                f"obs={value}); if it is a latent variable, the guide must sample it under the "
                "same name"
            )
    return None


def _weights_shape(sites: list[Site], num_particles: int, batch_dims: int) -> torch.Size:
    """The common ``[K, *batch]`` shape of the sites' log-densities, checked."""
    first = sites[0].log_prob.shape if sites else None
    if (
        first is not None
        and len(first) == batch_dims + 1
        and first[0] == num_particles
        and all(s.log_prob.shape == first for s in sites)
    ):
        return first  # the common case, without torch.broadcast_shapes's Python cost
    shapes = [torch.Size((num_particles,) + (1,) * batch_dims)]
    for s in sites:
        lp_shape = s.log_prob.shape
        if len(lp_shape) > batch_dims + 1:
            raise ShapeError(
                f"site {s.name!r} has log-prob shape {list(lp_shape)}, more than "
                f"[num_particles, batch] = {batch_dims + 1} dimension(s): declare "
                "per-data-point dimensions as event dimensions with torch.distributions.Independent(d, n)",
                sites,
            )
        shapes.append(lp_shape)
    try:
        shape = torch.broadcast_shapes(*shapes)
    except RuntimeError as e:
        raise ShapeError(
            f"the sites' log-prob shapes {[list(s) for s in shapes[1:]]} do not broadcast to "
            f"[num_particles={num_particles}, batch]: {e}",
            sites,
        ) from e
    if shape[0] != num_particles:
        raise ShapeError(
            f"log-densities have shape {list(shape)}, but the leading dimension should be the "
            f"{num_particles} particles; a site's batch shape has a wrong leading dimension",
            sites,
        )
    return shape
