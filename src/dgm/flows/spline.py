"""Neural spline flows: monotonic rational-quadratic splines, as couplings and autoregressively.

Direction (the density-model convention): ``call_and_ladj`` is the direction that *scores*
data, x (data) -> z (noise), so that ``log p(x) = log N(z) + ladj``; ``inverse_and_ladj``
draws samples, z -> x. Both directions of the spline itself are analytic, so this choice
only decides which one is a single pass for the autoregressive flow (scoring).

References:
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019
    (arXiv:1906.04032); Gregory & Delbourgo, "Piecewise Rational Quadratic Interpolation
    to Monotonic Data", IMA Journal of Numerical Analysis, 1982.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import MLP
from ..registry import at_least
from .bijection import Bijection
from .made import MADE

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def _knots(unnormalized: Tensor, minimum: float, tail_bound: float) -> tuple[Tensor, Tensor]:
    """Bin edges ``[..., K + 1]`` from -B to B (exactly) and bin sizes ``[..., K]``.

    softmax, then every bin gets at least ``minimum`` of the total (so no bin collapses).
    """
    bins = unnormalized.shape[-1]
    sizes = minimum + (1 - minimum * bins) * torch.softmax(unnormalized, dim=-1)
    edges = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    edges = 2 * tail_bound * edges - tail_bound
    # pin the ends: the cumulative sum may miss 1 by rounding, and the tails must meet exactly
    edges = torch.cat(
        [
            torch.full_like(edges[..., :1], -tail_bound),
            edges[..., 1:-1],
            torch.full_like(edges[..., :1], tail_bound),
        ],
        dim=-1,
    )
    return edges, edges[..., 1:] - edges[..., :-1]


def _pick(t: Tensor, index: Tensor) -> Tensor:
    """``t[..., index]`` elementwise: ``t`` is ``[..., N]``, ``index`` is ``[...]``."""
    return t.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """A monotonic rational-quadratic spline on [-B, B] with identity tails, elementwise.

    K bins; inside [-B, B] the map is the rational-quadratic interpolant of Durkan et al.
    (2019, eqs. 4-8) through the knots (x_k, y_k) with derivatives d_k, and outside it is the
    identity (log-derivative 0). The boundary derivatives are d_0 = d_K = 1, so the spline
    joins its linear tails with a continuous first derivative.

    The knots come from unconstrained parameters: bin widths and heights are
    ``min + (1 - K min) softmax(.)`` of the total 2B (no bin narrower than ``min`` of it),
    and the K - 1 interior derivatives are ``min_derivative + softplus(. + c)`` with c chosen
    so that zero parameters give derivative 1: all-zero parameters are the identity map.

    The inverse solves the quadratic a xi^2 + b xi + c = 0 for the position xi in the bin
    with the root written as ``xi = 2c / (-b - sqrt(b^2 - 4ac))`` (the paper's Appendix A):
    unlike the textbook form it does not cancel as c -> 0 at the start of a bin, nor divide
    by a ~ 0 where the bin is nearly linear. Its log-derivative is minus the forward one at
    that point.

    Args:
        x: inputs ``[...]`` (y when ``inverse``).
        widths: unnormalized bin widths ``[..., K]``, broadcasting against ``x[..., None]``.
        heights: unnormalized bin heights ``[..., K]``.
        derivatives: unnormalized interior derivatives ``[..., K - 1]``.
        inverse: evaluate the inverse map instead.
        tail_bound: B; the spline acts on [-B, B] (in both its domain and its range).
        min_bin_width: the smallest bin width, as a fraction of 2B.
        min_bin_height: the smallest bin height, as a fraction of 2B.
        min_derivative: the smallest interior derivative.

    Returns:
        ``(y, log|dy/dx|)``, both with the broadcast shape of ``x`` and the parameters'
        leading dimensions; for ``inverse=True``, ``(x, log|dx/dy|)``.

    References:
        Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", 2019, Section 3.1 and
        Appendix A.
    """
    bins = widths.shape[-1]
    if heights.shape[-1] != bins or derivatives.shape[-1] != bins - 1:
        raise ValueError(
            f"a spline with K bins needs K widths, K heights and K - 1 interior derivatives; "
            f"got {widths.shape[-1]}, {heights.shape[-1]} and {derivatives.shape[-1]}"
        )
    at_least("bins", bins, 1)
    if min_bin_width * bins >= 1 or min_bin_height * bins >= 1:
        raise ValueError(
            f"min_bin_width and min_bin_height must be < 1/K = {1 / bins:.4g} for K = {bins} "
            f"bins; got {min_bin_width} and {min_bin_height}"
        )
    if not tail_bound > 0:
        raise ValueError(f"tail_bound must be > 0, got {tail_bound}")

    shape = torch.broadcast_shapes(
        x.shape, widths.shape[:-1], heights.shape[:-1], derivatives.shape[:-1]
    )
    x = x.expand(shape)
    widths = widths.expand(*shape, bins)
    heights = heights.expand(*shape, bins)
    derivatives = derivatives.expand(*shape, bins - 1)

    inside = (x >= -tail_bound) & (x <= tail_bound)
    # evaluate everywhere on a clamped copy (finite values and gradients), keep the tails below
    v = x.clamp(-tail_bound, tail_bound)

    knot_x, bin_w = _knots(widths, min_bin_width, tail_bound)
    knot_y, bin_h = _knots(heights, min_bin_height, tail_bound)
    # softplus(0 + c) = 1 - min_derivative: zero parameters give derivative 1
    shift = math.log(math.expm1(1 - min_derivative))
    interior = min_derivative + F.softplus(derivatives + shift)
    ones = interior.new_ones(*interior.shape[:-1], 1)
    d = torch.cat([ones, interior, ones], dim=-1)  # [..., K + 1], d_0 = d_K = 1

    # the bin: the number of interior knots at or below v (0..K-1); searched in the space of v
    edges = knot_y if inverse else knot_x
    k = (v.unsqueeze(-1) >= edges[..., 1:-1]).sum(-1)
    x_k, w_k = _pick(knot_x, k), _pick(bin_w, k)
    y_k, h_k = _pick(knot_y, k), _pick(bin_h, k)
    d_k, d_k1 = _pick(d, k), _pick(d, k + 1)
    s_k = h_k / w_k
    curvature = d_k1 + d_k - 2 * s_k

    if inverse:
        dy = v - y_k
        a = h_k * (s_k - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -s_k * dy
        discriminant = (b * b - 4 * a * c).clamp_min(torch.finfo(v.dtype).tiny)
        xi = (2 * c) / (-b - torch.sqrt(discriminant))
        out = xi * w_k + x_k
    else:
        xi = (v - x_k) / w_k  # in [0, 1] up to rounding (no clamp: it would stop gradients)
        out = y_k + h_k * (s_k * xi * xi + d_k * xi * (1 - xi)) / (s_k + curvature * xi * (1 - xi))
    one_minus = 1 - xi
    denominator = s_k + curvature * xi * one_minus
    numerator = s_k * s_k * (d_k1 * xi * xi + 2 * s_k * xi * one_minus + d_k * one_minus**2)
    log_derivative = torch.log(numerator) - 2 * torch.log(denominator)
    if inverse:
        log_derivative = -log_derivative

    y = torch.where(inside, out, x)
    return y, torch.where(inside, log_derivative, torch.zeros_like(log_derivative))


def _split_parameters(params: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """``[..., 3K - 1]`` -> unnormalized widths ``[..., K]``, heights ``[..., K]``, derivatives."""
    return params[..., :bins], params[..., bins : 2 * bins], params[..., 2 * bins :]


class SplineCoupling(Bijection):
    """A rational-quadratic spline coupling layer for vectors ``[..., D]`` (event_dims 1).

    The event is split into a first part x_a (the first ``D // 2`` coordinates) and a second
    part x_b; x_a passes unchanged and conditions, through an MLP, the K-bin spline applied
    to each coordinate of x_b (3K - 1 numbers per coordinate). ``flip=True`` swaps the roles
    (the second part conditions the first), so that alternating layers transform everything.
    The log-determinant is the sum of the elementwise spline log-derivatives.

    Directions (density-model convention): ``call_and_ladj(x)`` maps data x to noise z and
    returns ``log|det dz/dx|``, so ``log p(x) = log N(z) + ladj``; ``inverse_and_ladj(z)``
    samples. Both are one pass. The conditioner's last layer starts at zero: a new layer is
    the identity.

    References:
        Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", 2019; Dinh, Sohl-Dickstein
        & Bengio, "Density Estimation using Real NVP", 2017 (coupling layers).

    Args:
        dim: D (at least 2).
        hidden: the conditioner MLP's hidden widths.
        bins: K, the number of spline bins.
        tail_bound: B; the spline acts on [-B, B], the identity outside.
        flip: transform the first part, conditioned on the second, instead.
        context_size: size of a conditioning vector ``[..., C]`` (concatenated to the
            conditioner's input, broadcasting against the leading dimensions), or ``None``.
    """

    event_dims: int = 1

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        bins: int = 8,
        tail_bound: float = 3.0,
        flip: bool = False,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        at_least("dim", dim, 2)
        at_least("bins", bins, 1)
        if not tail_bound > 0:
            raise ValueError(f"tail_bound must be > 0, got {tail_bound}")
        self.dim, self.bins, self.tail_bound, self.flip = dim, bins, tail_bound, flip
        self.context_size = context_size
        first = dim // 2
        self.conditioning = slice(first, dim) if flip else slice(0, first)
        self.transformed = slice(0, first) if flip else slice(first, dim)
        n_in, n_out = (dim - first, first) if flip else (first, dim - first)
        self.num_transformed = n_out
        self.conditioner = MLP(
            (n_in + (context_size or 0), *hidden, n_out * (3 * bins - 1)), "relu"
        )
        last = self.conditioner[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def _spline_parameters(
        self, x_a: Tensor, context: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        h = x_a
        if self.context_size is not None:
            if context is None:
                raise ValueError("this SplineCoupling is conditional: call it with context=")
            lead = torch.broadcast_shapes(x_a.shape[:-1], context.shape[:-1])
            h = torch.cat([x_a.expand(*lead, -1), context.expand(*lead, -1)], dim=-1)
        params = self.conditioner(h)
        params = params.reshape(*params.shape[:-1], self.num_transformed, 3 * self.bins - 1)
        return _split_parameters(params, self.bins)

    def _transform(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[..., self.conditioning], x[..., self.transformed]
        w, h, d = self._spline_parameters(x_a, context)
        y_b, log_derivative = rational_quadratic_spline(
            x_b, w, h, d, inverse=inverse, tail_bound=self.tail_bound
        )
        x_a = x_a.expand(*y_b.shape[:-1], -1)  # a context may add leading dimensions
        parts = (y_b, x_a) if self.flip else (x_a, y_b)
        return torch.cat(parts, dim=-1), log_derivative.sum(-1)

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data x -> noise z (the scoring direction) and log|det dz/dx|, ``[..., D]``, ``[...]``."""
        return self._transform(x, context, inverse=False)

    def inverse_and_ladj(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise z -> data x (the sampling direction) and log|det dx/dz|, one pass."""
        return self._transform(z, context, inverse=True)


class AutoregressiveSpline(Bijection):
    """An autoregressive rational-quadratic spline flow on a MADE, for vectors (event_dims 1).

    z_i = spline(x_i; theta_i(x_<i, context)) with the 3K - 1 spline parameters of coordinate
    i from a MADE (``outputs_per_dim = 3K - 1``), so the Jacobian is triangular and its
    log-determinant is the sum of the elementwise spline log-derivatives.

    Directions (density-model convention): ``call_and_ladj(x)`` maps data x to noise z in one
    MADE pass and returns ``log|det dz/dx|`` (scoring: ``log p(x) = log N(z) + ladj``), as a
    MAF does for densities; ``inverse_and_ladj(z)`` samples in D sequential passes (after pass
    i the first i coordinates are exact). The MADE's output layer starts at zero: a new layer
    is the identity.

    References:
        Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", 2019 (RQ-NSF (AR));
        Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density
        Estimation", 2017; Germain et al., "MADE: Masked Autoencoder for Distribution
        Estimation", 2015.

    Args:
        dim: D.
        hidden: the MADE's hidden widths (each >= D - 1).
        bins: K, the number of spline bins.
        tail_bound: B; the spline acts on [-B, B], the identity outside.
        context_size: size of a conditioning vector ``[..., C]``, or ``None``.
    """

    event_dims: int = 1

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...] = (64, 64),
        bins: int = 8,
        tail_bound: float = 3.0,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        at_least("bins", bins, 1)
        if not tail_bound > 0:
            raise ValueError(f"tail_bound must be > 0, got {tail_bound}")
        self.dim, self.bins, self.tail_bound = dim, bins, tail_bound
        self.made = MADE(dim, hidden, 3 * bins - 1, context_size)
        nn.init.zeros_(self.made.out.weight)
        nn.init.zeros_(self.made.out.bias)

    def _spline_parameters(
        self, x: Tensor, context: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        params = self.made(x, context).transpose(-1, -2)  # [..., D, 3K - 1]
        return _split_parameters(params, self.bins)

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data x -> noise z in one pass (the scoring direction) and log|det dz/dx|."""
        w, h, d = self._spline_parameters(x, context)
        z, log_derivative = rational_quadratic_spline(x, w, h, d, tail_bound=self.tail_bound)
        return z, log_derivative.sum(-1)

    def inverse_and_ladj(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise z -> data x in D sequential passes (sampling) and log|det dx/dz|."""
        x = torch.zeros_like(z)
        log_derivative = torch.zeros_like(z)
        for _ in range(z.shape[-1]):  # the parameters of pass D use exact x_<D: so is its ladj
            w, h, d = self._spline_parameters(x, context)
            x, log_derivative = rational_quadratic_spline(
                z, w, h, d, inverse=True, tail_bound=self.tail_bound
            )
        return x, log_derivative.sum(-1)
