"""Affine autoregressive flows on a MADE: IAF (fast sampling) and MAF (fast density)."""

from __future__ import annotations

import torch
from torch import Tensor

from .bijection import Bijection
from .made import MADE


class IAF(Bijection):
    """Inverse autoregressive flow (Kingma et al. 2016), one step, optionally conditional.

    y = sigma * x + (1 - sigma) * m with (m, s) = MADE(x, context) and sigma = sigmoid(s + 1.5)
    (the paper's numerically stable form): one parallel pass to sample; log|det| = sum log
    sigma. The inverse needs D sequential passes (available, for tests and small D).
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...] = (64, 64), context_size: int | None = None
    ) -> None:
        super().__init__()
        self.made = MADE(dim, hidden, 2, context_size)

    def _shift_gate(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        m, s = self.made(x, context).unbind(-2)
        return m, torch.sigmoid(s + 1.5)

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m, gate = self._shift_gate(x, context)
        return gate * x + (1 - gate) * m, torch.log(gate).sum(-1)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        for _ in range(y.shape[-1]):  # coordinate i is exact after pass i
            m, gate = self._shift_gate(x, context)
            x = (y - (1 - gate) * m) / gate
        m, gate = self._shift_gate(x, context)
        return x, -torch.log(gate).sum(-1)


class MAF(Bijection):
    """Masked autoregressive flow (Papamakarios et al. 2017), for densities and priors.

    The data-to-noise direction is one pass: u = (x - mu(x)) * exp(-alpha(x)), so
    ``inverse_and_ladj`` (used to score data) is cheap; sampling (``call_and_ladj``, noise to
    data) takes D sequential passes.
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...] = (64, 64), context_size: int | None = None
    ) -> None:
        super().__init__()
        self.made = MADE(dim, hidden, 2, context_size)

    def _shift_log_scale(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        mu, alpha = self.made(x, context).unbind(-2)
        return mu, alpha.clamp(-8.0, 8.0)

    def inverse_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mu, alpha = self._shift_log_scale(x, context)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(-1)

    def call_and_ladj(self, u: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(u)
        for _ in range(u.shape[-1]):
            mu, alpha = self._shift_log_scale(x, context)
            x = u * torch.exp(alpha) + mu
        mu, alpha = self._shift_log_scale(x, context)
        return x, alpha.sum(-1)
