"""The handler stack and ``sample``: the whole execution model of a program.

A handler is an object with two methods, ``process(site)`` (before a value is drawn) and
``postprocess(site)`` (after). ``sample`` sends a fresh ``Site`` through the active handlers,
innermost first, draws a value if none of them supplied one, and then lets every handler see
the finished site. A handler may also hide a site from the handlers outside it (``hides``,
which ``block`` overrides): the site then stops there on its way out, and only the handlers
that processed it (the hiding one and those inside it) postprocess it. This is the design of Pyro's ``minipyro`` with one
stack and no messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from torch import Tensor
from torch.distributions import Distribution

from .site import Site

_STACK: list[Handler] = []
# The active handlers that override ``Handler.hides``, in entry order. While it is empty (the
# common case) ``sample`` runs its plain loops and never asks a handler whether it hides.
_HIDING: list[Handler] = []


class Handler:
    """Base class for effect handlers; use as a context manager around a program call."""

    def process(self, site: Site) -> None:
        """Act on a site before its value is drawn (e.g. supply a value)."""

    def postprocess(self, site: Site) -> None:
        """Act on a site after its value is known (e.g. record it)."""

    def hides(self, site: Site) -> bool:
        """Whether the handlers outside this one must neither process nor postprocess ``site``.

        Asked right after this handler's ``process``; only handlers that override it are asked.
        """
        return False

    def __enter__(self) -> Handler:
        _STACK.append(self)
        if type(self).hides is not Handler.hides:
            _HIDING.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not _STACK or _STACK[-1] is not self:
            raise RuntimeError("dgm handlers must be exited in the reverse order of entry")
        _STACK.pop()
        if _HIDING and _HIDING[-1] is self:
            _HIDING.pop()


def sample(
    name: str,
    distribution: Distribution,
    obs: Tensor | None = None,
    *,
    infer: Mapping[str, Any] | None = None,
) -> Tensor:
    """Draw (or observe) the random variable ``name`` from ``distribution``.

    Outside any handler this is ``distribution.rsample()`` (or ``sample()`` for
    non-reparameterizable distributions), or ``obs`` when given.

    Args:
        name: the site's name; unique within one run of a program.
        distribution: a ``torch.distributions.Distribution``; declare event dimensions with
            ``torch.distributions.Independent(d, n)`` so that ``batch_shape`` holds only data-batch dimensions.
        obs: observed value, or ``None`` for a latent variable.
        infer: metadata for objectives, copied into the site's own ``Site.infer`` dict and
            recorded in traces; e.g. ``{"baseline": b}`` gives a score-function guide site its
            own control variate (``b`` broadcastable to ``[K, B]``; see ``dgm.elbo``).

    Returns:
        The site's value.
    """
    if not isinstance(name, str):
        raise TypeError(f"dgm.sample: the site name must be a str, got {type(name).__name__}")
    if not isinstance(distribution, Distribution):
        raise TypeError(
            f"dgm.sample({name!r}, ...): expected a torch.distributions.Distribution, "
            f"got {type(distribution).__name__}"
        )
    site = Site(name, distribution, obs, obs is not None)
    if infer is not None:
        if not isinstance(infer, Mapping):
            raise TypeError(
                f"dgm.sample({name!r}, ...): infer must be a dict, got {type(infer).__name__}"
            )
        site.infer = dict(infer)  # a copy: a dict reused across sample calls is never shared
    if not _STACK:
        return obs if obs is not None else site.draw()
    if _HIDING:
        inside = _process_until_hidden(site)
    else:
        for handler in reversed(_STACK):
            handler.process(site)
        inside = _STACK
    if site.value is None:
        site.value = site.draw()
    for handler in inside:
        handler.postprocess(site)
    return site.value


def _process_until_hidden(site: Site) -> list[Handler]:
    """Process ``site`` innermost first up to the first handler that hides it.

    Returns the handlers that postprocess it, outermost first: the ones that processed it
    (the hiding handler and those inside it; all of them when none hides it).
    """
    for i in range(len(_STACK) - 1, -1, -1):
        handler = _STACK[i]
        handler.process(site)
        if handler.hides(site):
            return _STACK[i:]
    return _STACK
