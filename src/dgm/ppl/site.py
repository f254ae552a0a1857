"""One random choice of a program: a ``Site`` record filled in by the handler stack."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution


@dataclass(eq=False)
class Site:
    """A sample site as it passes through the handler stack.

    Attributes:
        name: the site's name, unique within one run of a program.
        fn: the distribution the value is drawn from (or scored under, if observed).
        value: the value; ``None`` until a handler or the default draw fills it in.
        is_observed: ``True`` for ``obs=`` sites and sites fixed by ``condition``.
        sample_shape: extra leading shape for the default draw (set by ``particles``).
        reparam: draw with ``rsample`` where the distribution has it (``no_reparam`` clears
            it: the value then carries no gradient, as score-function and wake-sleep
            estimators need).
    """

    name: str
    fn: Distribution
    value: Tensor | None = None
    is_observed: bool = False
    sample_shape: torch.Size = field(default_factory=torch.Size)
    reparam: bool = True
    _log_prob: Tensor | None = field(default=None, repr=False)

    @property
    def is_reparameterized(self) -> bool:
        """Whether gradients flow through the value (a latent drawn with ``rsample``)."""
        return not self.is_observed and self.reparam and self.fn.has_rsample

    @property
    def log_prob(self) -> Tensor:
        """log fn(value), summed over event dimensions; computed once, on first use."""
        if self._log_prob is None:
            assert self.value is not None, f"site {self.name!r} has no value yet"
            self._log_prob = self.fn.log_prob(self.value)
        return self._log_prob

    def draw(self) -> Tensor:
        """The default draw: ``rsample`` where the distribution has it (and ``reparam``), else ``sample``."""
        if self.reparam and self.fn.has_rsample:
            return self.fn.rsample(self.sample_shape)
        return self.fn.sample(self.sample_shape)
