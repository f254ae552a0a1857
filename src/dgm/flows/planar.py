"""Planar flows (Rezende & Mohamed 2015), with free or amortized (encoder-given) parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .bijection import Bijection


class Planar(Bijection):
    """f(z) = z + u^ tanh(w^T z + b), invertible because w^T u^ >= -1.

    u^ = u + (m(w^T u) - w^T u) w / ||w||^2 with m(a) = -1 + softplus(a) (App. A of the paper).
    log|det df/dz| = log|1 + u^T psi(z)|, psi = (1 - tanh^2(w^T z + b)) w.

    Args:
        dim: D.
        context_size: with a size, (u, w, b) are produced per data point from the context by a
            linear layer (the amortized flow of the paper, parameters from the encoder);
            without, they are free parameters.
    """

    def __init__(self, dim: int, context_size: int | None = None) -> None:
        super().__init__()
        self.dim = dim
        if context_size is None:
            self.u = nn.Parameter(torch.randn(dim) * 0.01)
            self.w = nn.Parameter(torch.randn(dim) * 0.01)
            self.b = nn.Parameter(torch.zeros(()))
            self.hyper: nn.Linear | None = None
        else:
            self.hyper = nn.Linear(context_size, 2 * dim + 1)

    def _params(self, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        if self.hyper is None:
            return self.u, self.w, self.b
        if context is None:
            raise ValueError("this Planar flow is amortized: call it with context=")
        out = self.hyper(context)
        return out[..., : self.dim], out[..., self.dim : 2 * self.dim], out[..., -1]

    def call_and_ladj(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, w, b = self._params(context)
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (nn.functional.softplus(wu) - 1 - wu) * w / (w * w).sum(-1, keepdim=True)
        a = torch.tanh((w * z).sum(-1) + b)
        y = z + u_hat * a.unsqueeze(-1)
        psi_u = (1 - a * a) * (w * u_hat).sum(-1)
        return y, torch.log((1 + psi_u).abs() + 1e-12)
