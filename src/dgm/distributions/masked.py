"""``MaskedIndependent``: a batch of per-point distributions where some points are padding."""

from __future__ import annotations

from typing import ClassVar

from torch import Size, Tensor
from torch.distributions import Distribution, constraints


class MaskedIndependent(Distribution):
    """The last batch dimension of ``base`` as one event, with padded entries (mask 0) left out.

    ``log_prob(v) = sum_i mask_i * base.log_prob(v)_i``: data sets with different numbers of
    points share one padded tensor. Samples are the base's (padding holds draws too).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, base: Distribution, mask: Tensor) -> None:
        if base.batch_shape[-1:] != mask.shape[-1:]:
            raise ValueError(
                f"MaskedIndependent: mask {list(mask.shape)} does not fit the base's batch "
                f"shape {list(base.batch_shape)} (the last dimension indexes the points)"
            )
        self.base, self.mask = base, mask
        super().__init__(
            base.batch_shape[:-1], base.batch_shape[-1:] + base.event_shape, validate_args=False
        )

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self.base.support, 1)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.base.has_rsample

    def sample(self, sample_shape: Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        return self.base.sample(Size(sample_shape))

    def rsample(self, sample_shape: Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        return self.base.rsample(Size(sample_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        return (self.base.log_prob(value) * self.mask).sum(-1)
