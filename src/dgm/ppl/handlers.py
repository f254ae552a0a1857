"""The handlers every method is built from.

``trace``, ``replay``, ``condition`` and ``particles`` run guides and models for importance
weights; ``uncondition`` lets a model simulate its own data (the sleep phase, inference
compilation) and ``no_reparam`` draws latents without a gradient path (score-function and
wake-sleep estimators). ``scale`` and ``mask`` reweight and drop sites' log-densities (the KL
weight of a beta-VAE, the "no object" steps of Attend-Infer-Repeat), and ``block`` hides sites
from the handlers outside it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from types import TracebackType

import torch
from torch import Tensor

from .errors import (
    DuplicateSiteError,
    MissingSiteError,
    ProgramError,
    ShapeError,
    site_table,
    wrap_program_error,
)
from .runtime import Handler
from .site import Site

# Errors torch and Python raise for shape and type mistakes inside user code; these are
# re-raised with the trace's site table so that the failing layer can be located.
_WRAPPED = (RuntimeError, ValueError, TypeError, IndexError)


class Trace:
    """The ordered record of a program's sample sites, by name.

    Attributes:
        program: the program's role (``"model"``, ``"guide"``), given to every site recorded
            (``Site.program``) so that error tables say where each row comes from.
        follows: the trace of the program run before this one (the guide's, for a model
            replayed on it); errors inside this program list its sites first.
    """

    def __init__(self, program: str | None = None, follows: Trace | None = None) -> None:
        self.sites: dict[str, Site] = {}
        self.program = program
        self.follows = follows

    def __getitem__(self, name: str) -> Site:
        return self.sites[name]

    def __contains__(self, name: object) -> bool:
        return name in self.sites

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites.values())

    def __len__(self) -> int:
        return len(self.sites)

    def __repr__(self) -> str:
        return f"Trace(\n{self.table()}\n)"

    @property
    def latent(self) -> list[Site]:
        """Sites whose values were drawn (or replayed), not observed."""
        return [s for s in self.sites.values() if not s.is_observed]

    @property
    def observed(self) -> list[Site]:
        """Sites with an observed value."""
        return [s for s in self.sites.values() if s.is_observed]

    def log_prob_sum(self, sites: list[Site] | None = None) -> Tensor:
        """Sum of the given sites' log-probs (default: all; masked and scaled, as
        ``Site.log_prob``), broadcast to a common shape."""
        chosen = list(self.sites.values()) if sites is None else sites
        if not chosen:
            return torch.zeros(())
        total = chosen[0].log_prob
        for s in chosen[1:]:
            total = total + s.log_prob
        return total

    def table(self) -> str:
        """The table of this trace's sites."""
        return site_table(self.sites.values())

    def error_sites(self) -> list[Site]:
        """What an error inside this program lists: the sites of the trace it follows, then its own."""
        return [*(self.follows or ()), *self.sites.values()]


class trace(Handler):
    """Record every site of the program run inside the ``with`` block.

    Example:
        >>> import torch, dgm
        >>> from torch.distributions import Normal
        >>> with dgm.ppl.trace() as tr:
        ...     z = dgm.sample("z", Normal(torch.zeros(3), 1.0))
        >>> tr["z"].value.shape
        torch.Size([3])

    Args:
        program: a label for the program (``"model"``, ``"guide"``) that its sites carry
            (``Site.program``) and error tables show.
        follows: the trace of a program run before this one, whose sites errors inside this
            one list first (``log_weights`` gives the model's trace the guide's).
    """

    def __init__(self, program: str | None = None, *, follows: Trace | None = None) -> None:
        self.trace = Trace(program, follows)

    def __enter__(self) -> Trace:  # type: ignore[override]
        super().__enter__()
        return self.trace

    def postprocess(self, site: Site) -> None:
        if self.trace.program is not None:  # postprocessed outermost first: the innermost wins
            site.program = self.trace.program
        if site.name in self.trace.sites:
            raise DuplicateSiteError(
                f"two sample sites are named {site.name!r}; site names must be unique within "
                "one run of a program (use e.g. f'z_{i}' inside loops)",
                [*self.trace.error_sites(), site],
            )
        self.trace.sites[site.name] = site

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc is not None and isinstance(exc, _WRAPPED) and not isinstance(exc, ProgramError):
            raise wrap_program_error(exc, self.trace.error_sites()) from exc


class replay(Handler):
    """Give each latent site the value recorded at the same name in ``guide_trace``.

    Args:
        guide_trace: the trace whose values are reused.
        strict: raise ``MissingSiteError`` for a latent site that ``guide_trace`` lacks
            (default); with ``strict=False`` such a site is drawn as usual.
        alias: hand the program a fresh view of each value instead of the tensor itself, so
            that gradients reaching the values through this program can be told apart
            (used by the doubly-reparameterized IWAE gradient).
    """

    def __init__(self, guide_trace: Trace, *, strict: bool = True, alias: bool = False) -> None:
        self.guide_trace = guide_trace
        self.strict = strict
        self.alias = alias

    def process(self, site: Site) -> None:
        if site.is_observed:
            return
        recorded = self.guide_trace.sites.get(site.name)
        if recorded is not None:
            value = recorded.value
            assert value is not None
            site.value = value.view_as(value) if self.alias else value
        elif self.strict:
            replayed = list(self.guide_trace)
            sites = replayed + [s for s in _sites_so_far(site) if s not in replayed]
            message = (
                f"latent site {site.name!r} has no value in the replayed guide trace; the guide "
                f"must sample every latent site of the model, under the same name. {_data_hint(site)}"
            )
            if not any(s.program for s in sites):
                message += " The table lists the replayed trace's sites, then this program's."
            raise MissingSiteError(message, sites, site)


class condition(Handler):
    """Fix the named sites to given values and treat them as observed.

    Args:
        data: site name -> observed value.
    """

    def __init__(self, data: Mapping[str, Tensor]) -> None:
        self.data = data

    def process(self, site: Site) -> None:
        if site.name in self.data:
            site.value = self.data[site.name]
            site.is_observed = True


class uncondition(Handler):
    """Draw the observed sites from their distributions instead of observing them.

    Inside ``uncondition`` a model called with data simulates a data set of the same shape:
    every ``obs=`` site gets a fresh value and is recorded as latent. ``observations`` maps
    each such site's name to the tensor that was passed as ``obs`` (so that the simulated
    value can be put in its place, as ``dgm.objectives.sleep_phi`` does).
    """

    def __init__(self) -> None:
        self.observations: dict[str, Tensor] = {}

    def __enter__(self) -> uncondition:
        super().__enter__()
        return self

    def process(self, site: Site) -> None:
        if site.is_observed:
            assert site.value is not None
            self.observations[site.name] = site.value
            site.value = None
            site.is_observed = False


class no_reparam(Handler):
    """Draw latent values with ``sample()`` instead of ``rsample()``: no gradient flows through them.

    Wake-sleep and score-function estimators differentiate log-densities at fixed samples;
    this makes the samples fixed whatever the distribution supports.
    """

    def process(self, site: Site) -> None:
        site.reparam = False


class particles(Handler):
    """Draw ``num_particles`` values of every latent site at once, in a leading dimension.

    A site whose distribution has ``batch_dims`` batch dimensions (the data batch, ``[B]``)
    gets values shaped ``[K, B, *event]``. A site whose distribution already carries the
    particle dimension (``batch_shape == [K, B]``, because its parameters were computed from
    particled values upstream) is drawn as it is. A global site (fewer batch dimensions) gets
    ``[K, 1, ..., *event]`` so that it broadcasts against the batch.

    Args:
        num_particles: K.
        batch_dims: how many leading dimensions of a site's ``batch_shape`` index data points
            (default 1: ``[B]``). Use 0 for programs without a data batch.
    """

    def __init__(self, num_particles: int, batch_dims: int = 1) -> None:
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        self.num_particles = num_particles
        self.batch_dims = batch_dims

    def process(self, site: Site) -> None:
        if site.value is not None:
            return
        batch_shape = site.fn.batch_shape
        rank, k = len(batch_shape), self.num_particles
        if rank == self.batch_dims:
            site.sample_shape = torch.Size((k,))
        elif rank < self.batch_dims:
            site.sample_shape = torch.Size((k,) + (1,) * (self.batch_dims - rank))
        elif rank == self.batch_dims + 1 and batch_shape[0] == k:
            return
        else:
            raise ShapeError(
                f"site {site.name!r} has batch shape {list(batch_shape)}, which fits neither "
                f"{self.batch_dims} data-batch dimension(s) nor [num_particles={k}, batch]; "
                "declare per-data-point dimensions as event dimensions with "
                "torch.distributions.Independent(distribution, n)",
                _sites_so_far(site),
            )


class scale(Handler):
    """Multiply the log-density of the chosen sites by ``factor``.

    Inside ``scale(beta, sites={"z"})`` site ``z`` contributes beta * log fn(z) to every density
    of the program (``Site.log_prob``: traces, ``log_weights``), e.g. the KL weight of a
    beta-VAE (Higgins et al. 2017) when the model's and the guide's latent sites are both
    scaled. Nested ``scale`` handlers multiply. Score-function terms differentiate the
    unscaled log-density (``Site.unscaled_log_prob``): a scaled site is still sampled from
    ``fn``, so scaling reweights its share of the bound, never its sampling distribution.

    Args:
        factor: a number, or a tensor broadcastable with the sites' log-densities (``[B]``
            per data point, ``[K, B]`` per particle).
        sites: names of the sites to scale; ``None`` (default) scales every site.
    """

    def __init__(self, factor: float | Tensor, sites: Collection[str] | None = None) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int | float | Tensor):
            raise TypeError(
                f"scale: factor must be a number or a tensor, got {type(factor).__name__}"
            )
        self.factor = factor
        self.sites = _names(sites, "scale", "sites")

    def process(self, site: Site) -> None:
        if self.sites is None or site.name in self.sites:
            site.scale = self.factor if site.scale is None else site.scale * self.factor


class mask(Handler):
    """Drop the chosen sites' log-densities where ``mask`` is ``False``.

    There a site's log-density (``Site.log_prob``) is exactly 0, computed with ``torch.where``
    so that a -inf or NaN log-density under a ``False`` entry reaches neither values nor the
    gradient flowing into it. Attend-Infer-Repeat masks the sites of its "no object" steps
    (Eslami et al. 2016). Nested masks combine with logical and; the site is still drawn.

    Args:
        mask: a bool, or a boolean tensor broadcastable with the sites' log-densities
            (``[B]``, ``[K, B]``), e.g. ``z_pres > 0.5``.
        sites: names of the sites to mask; ``None`` (default) masks every site.
    """

    def __init__(self, mask: bool | Tensor, sites: Collection[str] | None = None) -> None:
        if isinstance(mask, Tensor):
            if mask.dtype != torch.bool:
                raise TypeError(
                    f"mask: expected a boolean tensor (e.g. z_pres > 0.5 or m.bool()), got "
                    f"dtype {mask.dtype}"
                )
        elif not isinstance(mask, bool):
            raise TypeError(f"mask: expected a bool or a boolean tensor, got {type(mask).__name__}")
        self.mask = mask
        self.sites = _names(sites, "mask", "sites")

    def process(self, site: Site) -> None:
        if self.sites is None or site.name in self.sites:
            site.mask = self.mask if site.mask is None else site.mask & self.mask


class block(Handler):
    """Hide sites from the handlers outside the block (Pyro's ``poutine.block``).

    A hidden site is still drawn, and the handlers entered inside the block process and
    postprocess it as usual; the handlers outside (an outer ``trace``, ``replay``,
    ``particles``, ``condition`` ...) never see it: it is not recorded, replayed, particled
    or conditioned by them.

    Example:
        >>> import torch, dgm
        >>> from torch.distributions import Normal
        >>> with dgm.ppl.trace() as outer, dgm.ppl.block(hide=["u"]), dgm.ppl.trace() as inner:
        ...     u = dgm.sample("u", Normal(torch.zeros(2), 1.0))
        ...     z = dgm.sample("z", Normal(u, 1.0))
        >>> [s.name for s in outer], [s.name for s in inner]
        (['z'], ['u', 'z'])

    Args:
        hide: names of the sites to hide.
        expose: names of the sites to keep visible; every other site is hidden.
            With neither ``hide`` nor ``expose``, every site is hidden.
    """

    def __init__(
        self, hide: Collection[str] | None = None, expose: Collection[str] | None = None
    ) -> None:
        if hide is not None and expose is not None:
            raise ValueError("block: give hide or expose, not both")
        self.hide = _names(hide, "block", "hide")
        self.expose = _names(expose, "block", "expose")

    def hides(self, site: Site) -> bool:
        if self.hide is not None:
            return site.name in self.hide
        if self.expose is not None:
            return site.name not in self.expose
        return True


def _names(names: Collection[str] | None, handler: str, arg: str) -> frozenset[str] | None:
    """A handler's set of site names; a bare string is refused (it would be a set of letters)."""
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"{handler}: {arg} is a collection of site names; write {arg}=[{names!r}]")
    return frozenset(names)


def _data_hint(site: Site) -> str:
    """The advice for a latent site that may be data the program forgot to observe."""
    value = site.name if site.name.isidentifier() else "data"
    return (
        f"If {site.name!r} is your data, pass it with dgm.sample({site.name!r}, ..., obs={value})."
    )


def _active_trace() -> Trace | None:
    """The trace of the innermost active ``trace`` handler: the program running now."""
    from .runtime import _STACK

    for handler in reversed(_STACK):
        if isinstance(handler, trace):
            return handler.trace
    return None


def _sites_so_far(site: Site) -> list[Site]:
    """What an error at ``site`` lists: the running program's error sites, then ``site``."""
    running = _active_trace()
    if running is None:
        return [site]
    if running.program is not None:
        site.program = running.program
    return [*running.error_sites(), site]
