"""The invertible 1x1 convolution of Glow, LU-parametrised: a learned mixing of channels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import at_least
from .bijection import Bijection


class InvertibleConv1x1(Bijection):
    """z[c] = sum_c' W[c, c'] x[c'] at every pixel, W = P L (U + diag(sign * exp(log_s))).

    ``call_and_ladj`` scores data (data x -> noise z) on images ``[..., C, H, W]``:
    log|det dz/dx| = H * W * log|det W| = H * W * sum(log_s), no determinant to compute; a
    density model computes ``z, ladj = flow.call_and_ladj(x)`` and
    log p(x) = log N(z; 0, I) + ladj. ``inverse_and_ladj`` samples (noise -> data) with
    W^-1 = U'^-1 L^-1 P^T from two triangular solves (U' = U + diag(sign * exp(log_s))).

    P (a permutation) and ``sign`` are fixed buffers; the strictly lower part of L (its
    diagonal is one), the strictly upper part of U and log_s are learned (``tril``/``triu``
    keep them triangular). At initialisation W is a random rotation, factorised by
    ``torch.linalg.lu``.

    References:
        Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
        NeurIPS 2018 (section 3.2, the LU decomposition).

    Args:
        channels: C.
    """

    event_dims = 3

    def __init__(self, channels: int) -> None:
        super().__init__()
        at_least("channels", channels, 1)
        self.channels = channels
        rotation = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", p)
        self.register_buffer("sign", torch.sign(diagonal))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diagonal.abs()))
        # the triangles as constant masks (not in the state dict): torch.tril/triu/eye inside
        # a step compiled by torch.compile hit an inductor code-generation error (torch 2.13)
        ones = torch.ones(channels, channels)
        self.register_buffer("_strictly_lower", torch.tril(ones, -1), persistent=False)
        self.register_buffer("_strictly_upper", torch.triu(ones, 1), persistent=False)
        self.register_buffer("_eye", torch.eye(channels), persistent=False)

    def _factors(self) -> tuple[Tensor, Tensor]:
        """L (unit lower triangular) and U' (upper triangular, diagonal sign * exp(log_s))."""
        eye = self.get_buffer("_eye")
        lower = self.lower * self.get_buffer("_strictly_lower") + eye
        diagonal = self.get_buffer("sign") * self.log_s.exp()
        upper = self.upper * self.get_buffer("_strictly_upper") + eye * diagonal
        return lower, upper

    def weight(self) -> Tensor:
        """The dense W ``[C, C]`` (rows: output channels), as in ``conv2d(x, W[..., None, None])``."""
        lower, upper = self._factors()
        return self.get_buffer("permutation") @ lower @ upper

    def inverse_weight(self) -> Tensor:
        """W^-1 ``[C, C]`` from the factors."""
        lower, upper = self._factors()
        eye = self.get_buffer("_eye")
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        return upper_inv @ lower_inv @ self.get_buffer("permutation").T

    def _check(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[-3] != self.channels:
            raise ValueError(
                f"InvertibleConv1x1({self.channels}) expects images [..., {self.channels}, H, W], "
                f"got shape {list(x.shape)}"
            )

    def _ladj(self, x: Tensor) -> Tensor:
        return (x.shape[-2] * x.shape[-1] * self.log_s.sum()).expand(x.shape[:-3])

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise: z = W x per pixel and H * W * sum(log_s)."""
        self._check(x)
        return torch.einsum("ij,...jhw->...ihw", self.weight(), x), self._ladj(x)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data: x = W^-1 z per pixel and -H * W * sum(log_s)."""
        self._check(y)
        return torch.einsum("ij,...jhw->...ihw", self.inverse_weight(), y), -self._ladj(y)
