"""Preprocessing for 8-bit images in flow models, carrying every log-determinant.

A flow is a density on R^D; 8-bit images are discrete. Dequantization fills each integer
cell with noise u in [0, 1)^D so that a density bound on the discrete probability holds
(Theis et al. 2016), and the logit transform moves [0, 1] to R (Dinh et al. 2017). Every
term goes into the bound, so bits/dim computed from it is honest:

    log P(x) >= E_{u ~ q(u | x)} [ log p_flow(logit_a(y)) + ladj_logit(y) + log_term ],
    y = (x + u) / 256,

where ``(y, log_term) = dequantization(x)`` per data point and ``ladj_logit`` comes from
``LogitTransform.call_and_ladj(y)``; bits/dim is ``-log P(x) / (D log 2)``.

Interface:
    ``UniformDequantization`` and ``VariationalDequantization`` are modules (not bijections:
    they draw noise) called as ``y, log_term = layer(x)``: x holds integers in
    {0, ..., levels - 1} (any integer or float dtype) with shape ``[..., *event]``, the last
    ``event_dims`` dimensions one data point (3 for images ``[..., C, H, W]``); y, in
    [0, 1), has x's shape and ``log_term`` has shape ``[...]`` (one number per data point).
    Every call draws fresh noise. ``layer.quantize(y)`` maps values back to integers (for
    samples). ``LogitTransform`` is a ``Bijection`` whose ``call_and_ladj`` scores (data in
    [0, 1] -> R) and whose ``inverse_and_ladj`` samples.

References:
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models", ICLR
    2016; Dinh, Sohl-Dickstein & Bengio, "Density Estimation using Real NVP", ICLR 2017
    (Section 4.1, the logit transform); Ho, Chen, Srinivas, Duan & Abbeel, "Flow++:
    Improving Flow-Based Generative Models with Variational Dequantization and Architecture
    Design", ICML 2019 (Section 3.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import validating
from ..nn import MLP
from ..registry import at_least
from .bijection import Bijection


def _event_size(x: Tensor, event_dims: int, who: str) -> int:
    if x.dim() < event_dims:
        raise ValueError(
            f"{who} treats the last {event_dims} dimensions as one data point, got a tensor of "
            f"shape {list(x.shape)}"
        )
    return math.prod(x.shape[x.dim() - event_dims :])


def check_quantized(x: Tensor, levels: int, who: str) -> None:
    """Refuse anything but integers in {0, ..., levels - 1}, naming what was found.

    Raises:
        ValueError: non-integer values (e.g. images already scaled to [0, 1]), or integers
            outside the range (e.g. 16-bit images, or values in {-1, 1}), or NaN.
    """
    if x.is_complex():
        raise ValueError(f"{who} expects real pixel values, got dtype {x.dtype}")
    if x.numel() == 0 or not validating():
        return
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    bits = math.log2(levels)
    depth = f"{int(bits)}-bit" if bits.is_integer() else f"{levels}-level"
    if x.is_floating_point():
        if torch.isnan(x).any():
            raise ValueError(f"{who} got NaN pixel values")
        fractional = x[x != torch.round(x)]
        if fractional.numel():
            low, high = x.min().item(), x.max().item()
            raise ValueError(
                f"{who} expects {depth} integer pixel values in {{0, ..., {levels - 1}}}, "
                f"found non-integer values (e.g. {fractional[0].item():.6g}) in "
                f"[{low:.6g}, {high:.6g}]; pass the raw integers, not images already scaled "
                f"or dequantized"
            )
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > levels - 1:
        raise ValueError(
            f"{who} expects {depth} pixel values in {{0, ..., {levels - 1}}}, found values in "
            f"[{low:g}, {high:g}]; rescale the images to {levels} levels (or set levels=) first"
        )


class Dequantization(nn.Module):
    """Base of the dequantizers: ``y, log_term = layer(x)`` (see the module docstring).

    Args:
        levels: the number of values per dimension (256 for 8 bits).
        event_dims: how many trailing dimensions form one data point (3: ``[C, H, W]``).
    """

    def __init__(self, levels: int = 256, event_dims: int = 3) -> None:
        super().__init__()
        at_least("levels", levels, 2)
        at_least("event_dims", event_dims, 1)
        self.levels, self.event_dims = levels, event_dims

    def _float(self, x: Tensor) -> Tensor:
        check_quantized(x, self.levels, type(self).__name__)
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())

    def quantize(self, y: Tensor) -> Tensor:
        """floor(levels * y), clamped to {0, ..., levels - 1} (an int64 tensor): back to pixels.

        The left inverse of the dequantization: ``quantize(layer(x)[0]) == x``.
        """
        return torch.floor(y * self.levels).clamp(0, self.levels - 1).long()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, log_term)``: y in [0, 1) with x's shape, log_term ``[...]`` per data point."""
        raise NotImplementedError


class UniformDequantization(Dequantization):
    """y = (x + u) / levels with u ~ U(0, 1)^D drawn afresh at every call.

    ``log_term = -D log(levels)`` per data point, D the number of dimensions of one data
    point (e.g. C * H * W): the density of y on [0, 1)^D is levels^D times that of x + u on
    [0, levels)^D, and for the uniform q the bound of Theis et al. (2016),
    ``log P(x) >= E_u[log p(x + u)]``, then reads
    ``log P(x) >= E_u[log p_y((x + u) / levels)] - D log(levels)``.

    Input is refused unless it holds integers in {0, ..., levels - 1} (integer or float
    dtype): images scaled to [0, 1] or with more bits (e.g. 16-bit) fail with the range of
    values found.

    References:
        Theis, van den Oord & Bethge, "A note on the evaluation of generative models", 2016;
        Uria, Murray & Larochelle, "RNADE", 2013 (adding uniform noise to discrete data).

    Args:
        levels: values per dimension (256 for 8-bit images).
        event_dims: trailing dimensions per data point (3 for ``[..., C, H, W]``, 1 for
            flattened images ``[..., D]``).
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, -D log(levels))`` with y = (x + u) / levels, u ~ U(0, 1)^D fresh."""
        size = _event_size(x, self.event_dims, type(self).__name__)
        x = self._float(x)
        y = (x + torch.rand_like(x)) / self.levels
        log_term = x.new_full(x.shape[: x.dim() - self.event_dims], -size * math.log(self.levels))
        return y, log_term


class VariationalDequantization(Dequantization):
    """y = (x + u) / levels with u ~ q(u | x), a learned conditional flow (Flow++'s idea).

    q(u | x): eps ~ Logistic(0, 1)^D (eps = logit(U), U uniform), v = mu(x) + exp(s(x)) eps,
    u = sigmoid(v); (mu, s) = MLP(x / (levels - 1) - 1/2) on the flattened data point. So

        log q(u | x) = sum_i [ log Logistic(eps_i) - s_i - log sigmoid'(v_i) ],

    with log Logistic(e) = log sigmoid'(e) = logsigmoid(e) + logsigmoid(-e). The network's
    last layer starts at zero, where mu = s = 0 and u = sigmoid(logit(U)) = U: a new layer
    is exactly uniform dequantization (log q = 0). u is reparameterized, so the bound's
    gradient reaches q's parameters.

    ``log_term = -log q(u | x) - D log(levels)`` per data point: with it,
    ``log P(x) >= E_{u ~ q}[log p_y((x + u) / levels) + log_term]`` (Ho et al. 2019, eq. 12,
    written for y in [0, 1)^D rather than x + u in [0, levels)^D), and
    ``E_q[exp(log_term)] = levels^-D`` for every q (the unit cube's volume).

    References:
        Ho, Chen, Srinivas, Duan & Abbeel, "Flow++", 2019, Section 3.1; Theis, van den Oord &
        Bethge, 2016.

    Args:
        shape: the event shape of one data point, e.g. ``(1, 28, 28)`` or ``(784,)``;
            ``event_dims`` is ``len(shape)``.
        hidden: the hidden widths of the conditioning MLP (input and output size D and 2D).
        levels: values per dimension (256 for 8-bit images).
    """

    def __init__(
        self, shape: Sequence[int], hidden: Sequence[int] = (256,), levels: int = 256
    ) -> None:
        super().__init__(levels, len(shape))
        self.shape = tuple(int(n) for n in shape)
        size = math.prod(self.shape)
        self.net = MLP((size, *hidden, 2 * size), "relu")
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def conditioner(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu(x), s(x)), each with x's shape: q's location and log-scale in logit space."""
        lead = x.shape[: x.dim() - self.event_dims]
        h = x.reshape(*lead, -1) / (self.levels - 1) - 0.5
        mu, log_scale = self.net(h).chunk(2, dim=-1)
        return mu.reshape(x.shape), log_scale.reshape(x.shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, -log q(u | x) - D log(levels))`` with y = (x + u) / levels, u ~ q(u | x) fresh."""
        if tuple(x.shape[max(x.dim() - self.event_dims, 0) :]) != self.shape:
            raise ValueError(
                f"VariationalDequantization was built for data points of shape "
                f"{list(self.shape)}, got a tensor of shape {list(x.shape)}"
            )
        x = self._float(x)
        mu, log_scale = self.conditioner(x)
        uniform = torch.rand_like(x).clamp_min(torch.finfo(x.dtype).tiny)
        eps = torch.log(uniform) - torch.log1p(-uniform)  # Logistic(0, 1)
        v = mu + torch.exp(log_scale) * eps
        u = torch.sigmoid(v)
        log_q = (
            F.logsigmoid(eps) + F.logsigmoid(-eps) - log_scale - F.logsigmoid(v) - F.logsigmoid(-v)
        )
        dims = tuple(range(-self.event_dims, 0))
        size = math.prod(self.shape)
        return (x + u) / self.levels, -log_q.sum(dims) - size * math.log(self.levels)


class LogitTransform(Bijection):
    """y = logit(alpha + (1 - 2 alpha) x) on data x in [0, 1], with its exact log-determinant.

    The Real NVP preprocessing (alpha = 0.05 there): it maps the dequantized pixels of
    [0, 1] into R, with the margin alpha keeping the ends finite. Per dimension, with
    p = alpha + (1 - 2 alpha) x,

        log|dy/dx| = log(1 - 2 alpha) - log p - log(1 - p),

    summed over the last ``event_dims`` dimensions (1 - p = alpha + (1 - 2 alpha)(1 - x) is
    computed directly, without cancellation).

    Directions (density-model convention): ``call_and_ladj(x)`` maps data in [0, 1] to R
    (the scoring direction) and refuses data outside [0, 1] with the range found;
    ``inverse_and_ladj(y)`` maps R back, to (-alpha, 1 - alpha) / (1 - 2 alpha), slightly
    wider than [0, 1] (clamp, or ``Dequantization.quantize``, when making pictures).

    References:
        Dinh, Sohl-Dickstein & Bengio, "Density Estimation using Real NVP", 2017, Section 4.1;
        Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow", 2017 (the same map
        with a small lambda).

    Args:
        alpha: the margin, in (0, 1/2).
        event_dims: trailing dimensions per data point (3 for ``[..., C, H, W]``).
    """

    def __init__(self, alpha: float = 0.05, event_dims: int = 3) -> None:
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
        at_least("event_dims", event_dims, 1)
        self.alpha = alpha
        self.event_dims = event_dims

    def _sum(self, t: Tensor) -> Tensor:
        return t.sum(tuple(range(-self.event_dims, 0)))

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data x in [0, 1] -> y in R (scoring) and log|det dy/dx| per data point ``[...]``."""
        _event_size(x, self.event_dims, "LogitTransform")
        if x.numel() and validating():
            low, high = x.min().item(), x.max().item()
            if not (low >= 0 and high <= 1):  # also refuses NaN
                raise ValueError(
                    f"LogitTransform expects data in [0, 1] (e.g. dequantized pixels (x + u) / "
                    f"256), found values in [{low:.6g}, {high:.6g}]"
                )
        scale = 1 - 2 * self.alpha
        log_p = torch.log(self.alpha + scale * x)
        log_1mp = torch.log(self.alpha + scale * (1 - x))
        return log_p - log_1mp, self._sum(math.log(scale) - log_p - log_1mp)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """y in R -> x = (sigmoid(y) - alpha) / (1 - 2 alpha) (sampling), log|det dx/dy|."""
        _event_size(y, self.event_dims, "LogitTransform")
        scale = 1 - 2 * self.alpha
        x = (torch.sigmoid(y) - self.alpha) / scale
        return x, self._sum(F.logsigmoid(y) + F.logsigmoid(-y) - math.log(scale))
