"""``FlowDistribution``: a base distribution pushed through a (conditional) bijection."""

from __future__ import annotations

import torch
from torch import Size, Tensor
from torch.distributions import Distribution, constraints

from .bijection import Bijection


class FlowDistribution(Distribution):
    """y = f(x; context), x ~ base, with ``log_prob(y) = log base(x) - log|det df/dx|``.

    The base has event shape ``[D]``; so does the flow. ``rsample`` remembers the log-density
    of the values it drew, so scoring one's own samples (what a guide does) needs no inverse:
    that is what makes IAF and planar posteriors usable. Other values are scored through the
    bijection's inverse when it has one (MAF: one pass).

    Args:
        base: e.g. ``Independent(Normal(mu(x), sigma(x)), 1)`` from an encoder.
        flow: the bijection (``Compose`` for several).
        context: passed to a conditional flow (e.g. an encoder feature ``[B, C]``).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}  # noqa: RUF012
    has_rsample = True

    def __init__(self, base: Distribution, flow: Bijection, context: Tensor | None = None) -> None:
        if len(base.event_shape) != 1:
            raise ValueError(
                f"FlowDistribution needs a base with one event dimension, got event shape "
                f"{list(base.event_shape)}; wrap it in torch.distributions.Independent"
            )
        self.base, self.flow, self.context = base, flow, context
        self._cache: tuple[Tensor, Tensor] | None = None
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real_vector

    def rsample(self, sample_shape: Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        x = self.base.rsample(Size(sample_shape))
        y, ladj = self.flow.call_and_ladj(x, self.context)
        self._cache = (y, self.base.log_prob(x) - ladj)
        return y

    def sample(self, sample_shape: Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._cache is not None and value is self._cache[0]:
            return self._cache[1]
        x, inv_ladj = self.flow.inverse_and_ladj(value, self.context)
        return self.base.log_prob(x) + inv_ladj
