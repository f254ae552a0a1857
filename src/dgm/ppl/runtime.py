"""The handler stack and ``sample``: the whole execution model of a program.

A handler is an object with two methods, ``process(site)`` (before a value is drawn) and
``postprocess(site)`` (after). ``sample`` sends a fresh ``Site`` through the active handlers,
innermost first, draws a value if none of them supplied one, and then lets every handler see
the finished site. This is the design of Pyro's ``minipyro`` with one stack and no messages.
"""

from __future__ import annotations

from types import TracebackType

from torch import Tensor
from torch.distributions import Distribution

from .site import Site

_STACK: list[Handler] = []


class Handler:
    """Base class for effect handlers; use as a context manager around a program call."""

    def process(self, site: Site) -> None:
        """Act on a site before its value is drawn (e.g. supply a value)."""

    def postprocess(self, site: Site) -> None:
        """Act on a site after its value is known (e.g. record it)."""

    def __enter__(self) -> Handler:
        _STACK.append(self)
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


def sample(name: str, distribution: Distribution, obs: Tensor | None = None) -> Tensor:
    """Draw (or observe) the random variable ``name`` from ``distribution``.

    Outside any handler this is ``distribution.rsample()`` (or ``sample()`` for
    non-reparameterizable distributions), or ``obs`` when given.

    Args:
        name: the site's name; unique within one run of a program.
        distribution: a ``torch.distributions.Distribution``; declare event dimensions with
            ``torch.distributions.Independent(d, n)`` so that ``batch_shape`` holds only data-batch dimensions.
        obs: observed value, or ``None`` for a latent variable.

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
    if not _STACK:
        return obs if obs is not None else site.draw()
    for handler in reversed(_STACK):
        handler.process(site)
    if site.value is None:
        site.value = site.draw()
    for handler in _STACK:
        handler.postprocess(site)
    return site.value
