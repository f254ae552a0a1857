"""Normalizing flows as density models: exact log-likelihood by the change of variables.

    log p(x) = log N(z; 0, I) + log|det dz/dy| + log_term(x),   z = f(y),   y = pre(x)

``pre`` is the preprocessing chain (dequantization of integer images, the logit transform),
each step contributing its own term, so that ``log_prob`` of an integer image is a lower
bound on its discrete log-probability and bits per dimension are honest
(``dgm.metrics.bits_per_dim``). ``f`` is any bijection whose ``call_and_ladj`` maps data to
noise (the scoring direction of the density-model layers of ``dgm.flows``; ``Inverse``
turns a sampling-direction flow such as ``MAF`` around). Multi-scale image flows factor out
half of the channels after each level and score them with a learned Gaussian conditioned on
the other half (Glow): ``MultiScale``.

Every family is also conditional, p(x | context), with ``context_size=``: the vector flows'
conditioners see the context; the image flows' coupling ResNets add a linear map of it to
their features, and their factored-out and top Gaussians add a zero-initialised linear map of
it to their mean and log-scale (Glow's class-conditional prior), so an untrained conditional
image flow is the unconditional one.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", 2017.
    Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", 2018.
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation", 2017.
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..flows import MAF, Bijection, Compose, Permute
from ..flows.actnorm import ActNorm
from ..flows.conv1x1 import InvertibleConv1x1
from ..flows.coupling import AffineCoupling
from ..flows.spline import AutoregressiveSpline, SplineCoupling
from ..flows.squeeze import Squeeze
from ..options import at_least as at_least_field
from ..registry import Registry, at_least

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor, event_dims: int) -> Tensor:
    """log N(z; 0, I) summed over the last ``event_dims`` dimensions."""
    lp = -0.5 * (z.pow(2) + LOG_2PI)
    return lp.flatten(-event_dims).sum(-1) if event_dims else lp


class Inverse(Bijection):
    """A bijection with its directions swapped (``MAF``'s one-pass direction scores data)."""

    def __init__(self, bijection: Bijection) -> None:
        super().__init__()
        self.bijection = bijection
        self.event_dims = getattr(bijection, "event_dims", 1)

    def call_and_ladj(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijection.inverse_and_ladj(x, context)

    def inverse_and_ladj(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijection.call_and_ladj(y, context)


class Density(nn.Module):
    """A density over an event: ``log_prob(y) -> [B]`` and ``sample(n, temperature)``."""

    def log_prob(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class GaussianFlow(Density):
    """z = f(y) ~ N(0, I) over an event of shape ``event_shape``: ``log_prob`` and ``sample``."""

    def __init__(self, flow: Bijection, event_shape: Sequence[int]) -> None:
        super().__init__()
        self.flow, self.event_shape = flow, tuple(event_shape)

    def log_prob(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        z, ladj = self.flow.call_and_ladj(y, context)
        return standard_normal_log_prob(z, len(self.event_shape)) + ladj

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        """``n`` draws; with a context ``[n, C]`` (one per draw), from p(y | context)."""
        ref = next(iter(self.parameters()), torch.zeros(()))
        z = temperature * torch.randn(n, *self.event_shape, device=ref.device, dtype=ref.dtype)
        return self.flow.inverse(z, context)


class FlowDensity(nn.Module):
    """A flow density with its preprocessing: ``log_prob(x)`` is a bound on log P(x) for
    integer images (with dequantization) and a density for continuous data (without).

    Args:
        core: ``GaussianFlow`` or ``MultiScale``: ``log_prob(y)`` and ``sample(n, temperature)``.
        preprocess: layers ``x -> (y, log_term)`` applied in order (dequantization first, then
            the logit transform); each must have ``inverse`` for samples to be shown as data.
    """

    def __init__(self, core: Density, preprocess: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.core: Density = core
        self.preprocess = nn.ModuleList(preprocess)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x) (or log p(x | context)), one fresh dequantization draw per call, ``[B]``."""
        total: Tensor | None = None
        y = x
        for layer in self.preprocess:
            y, term = layer.call_and_ladj(y) if isinstance(layer, Bijection) else layer(y)
            total = term if total is None else total + term
        lp = self.core.log_prob(y, context)
        return lp if total is None else lp + total

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.log_prob(x, context)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        """``n`` samples on the continuous scale the flow sees after dequantization: bijective
        preprocessing (the logit) is undone; dequantized values stay in [0, 1)."""
        y = self.core.sample(n, temperature, context)
        for layer in reversed(self.preprocess):
            if isinstance(layer, Bijection):
                y = layer.inverse(y)
        return y


class MultiScale(Density):
    """A multi-scale image flow: L levels, each a bijection on ``[C, H, W]`` (with a squeeze),
    after all but the last of which half of the channels are factored out and scored by a
    Gaussian whose mean and log-scale a zero-initialised convolution computes from the
    other half (Glow, Sec. 3; RealNVP factors out with a standard normal).

    With ``context_size`` the density is conditional, p(y | context), for a context
    ``[B, context_size]`` (one per image): every level gets the context (its couplings must
    have been built with the same ``context_size``), a zero-initialised linear map of the
    context adds a per-channel term (broadcast over H, W) to each factored-out Gaussian's
    mean and log-scale, and another gives the top level's Gaussian a mean and log-scale
    (N(0, I) until trained; Glow's class-conditional prior). Without it no such layer
    exists, and a context is refused.

    Args:
        levels: one bijection per level (``event_dims`` 3), in scoring order.
        shapes: the ``[C, H, W]`` each level outputs (before its split).
        context_size: size of the context vector; ``None`` for an unconditional density.
    """

    def __init__(
        self,
        levels: Sequence[Bijection],
        shapes: Sequence[tuple[int, int, int]],
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        if len(levels) != len(shapes) or not levels:
            raise ValueError("MultiScale needs one output shape per level, and a level")
        if context_size is not None:
            at_least("context_size", context_size, 1)
        self.context_size = context_size
        self.levels = nn.ModuleList(levels)
        self.shapes = [tuple(s) for s in shapes]
        self.priors = nn.ModuleList()
        for c, _, _ in self.shapes[:-1]:
            if c % 2:
                raise ValueError(f"a level's output of {c} channels cannot be split in half")
            conv = nn.Conv2d(c - c // 2, 2 * (c // 2), 3, padding=1)
            nn.init.zeros_(conv.weight)
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)
            self.priors.append(conv)
        c, h, w = self.shapes[-1]
        self.top_shape = (c, h, w)
        if context_size is not None:  # only then: unconditional checkpoints keep their keys
            self.context_priors = nn.ModuleList(
                _zero_linear(context_size, 2 * (c // 2)) for c, _, _ in self.shapes[:-1]
            )
            self.top_prior = _zero_linear(context_size, 2 * self.top_shape[0])

    def _check_context(self, context: Tensor | None, lead: tuple[int, ...], of: str) -> None:
        """Refuse a missing, unwanted or misshapen context; ``lead`` is the batch shape."""
        if self.context_size is None:
            if context is not None:
                raise ValueError(
                    "this multi-scale flow is unconditional: call it without a context, or "
                    "build it with context_size= (build_flow(..., context_size=C)) for "
                    "p(x | context)"
                )
            return
        if context is None:
            raise ValueError(
                f"this multi-scale flow is conditional (context_size={self.context_size}): "
                f"call it with context=, a tensor [B, {self.context_size}], one per image"
            )
        expected = [*lead, self.context_size]
        if list(context.shape) != expected:
            raise ValueError(
                f"the context has shape {list(context.shape)} but {of} needs {expected}: "
                f"one context of size {self.context_size} per image"
            )

    def _gaussian(
        self, i: int, h: Tensor | None, context: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None]:
        """(loc, log_scale) of the factored-out half of level ``i`` given the kept half ``h``,
        or of the top level (``i`` = L - 1, ``h`` unused); ``None`` stands for zero."""
        out: Tensor | None = None
        if i < len(self.priors):
            assert h is not None
            out = self.priors[i](h)
        if context is not None:
            linear = self.context_priors[i] if i < len(self.priors) else self.top_prior
            term = linear(context)[..., None, None]  # per channel, broadcast over H, W
            out = term if out is None else out + term
        if out is None:
            return None, None
        loc, log_scale = out.chunk(2, dim=-3)
        return loc, log_scale

    def log_prob(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(y) (or log p(y | context), a context ``[B, context_size]``), shape ``[B]``."""
        self._check_context(context, tuple(y.shape[:-3]), f"data of shape {list(y.shape)}")
        total: Tensor | None = None
        h = y
        for i, level in enumerate(self.levels):
            assert isinstance(level, Bijection)
            h, ladj = level.call_and_ladj(h, context)
            total = ladj if total is None else total + ladj
            if i < len(self.priors):
                z, h = h.chunk(2, dim=-3)
                total = _add_gaussian_log_prob(total, z, *self._gaussian(i, h, context))
        assert total is not None
        top = self._gaussian(len(self.levels) - 1, None, context)
        return _add_gaussian_log_prob(total, h, *top)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        """``n`` draws ``[n, C, H, W]``; with a context ``[n, context_size]`` (one per draw),
        from p(y | context). ``temperature`` scales every Gaussian's standard deviation."""
        self._check_context(context, (n,), f"sample(n={n})")
        ref = next(iter(self.parameters()))
        h = temperature * torch.randn(n, *self.top_shape, device=ref.device, dtype=ref.dtype)
        loc, log_scale = self._gaussian(len(self.levels) - 1, None, context)
        if loc is not None and log_scale is not None:
            h = loc + torch.exp(log_scale) * h
        for i in reversed(range(len(self.levels))):
            if i < len(self.priors):
                loc, log_scale = self._gaussian(i, h, context)
                assert loc is not None and log_scale is not None
                z = loc + temperature * torch.exp(log_scale) * torch.randn_like(loc)
                h = torch.cat([z, h], dim=-3)
            level = self.levels[i]
            assert isinstance(level, Bijection)
            h = level.inverse(h, context)
        return h


def _zero_linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def _add_gaussian_log_prob(
    total: Tensor, z: Tensor, loc: Tensor | None, log_scale: Tensor | None
) -> Tensor:
    """total + log N(z; loc, exp(log_scale)^2) over ``[C, H, W]`` (``None``: zero mean, unit
    scale), summed in the order the unconditional flows always did, so they score as before."""
    if loc is None or log_scale is None:
        return total + standard_normal_log_prob(z, 3)
    eps = (z - loc) * torch.exp(-log_scale)
    return total + standard_normal_log_prob(eps, 3) - log_scale.expand_as(z).flatten(-3).sum(-1)


def _vector_steps(
    kind: str, dim: int, steps: int, hidden: Sequence[int], bins: int, context: int | None
) -> Bijection:
    parts: list[Bijection] = []
    h = tuple(hidden)
    for i in range(steps):
        flip = i % 2 == 1
        if kind == "realnvp":
            parts.append(ActNorm(dim, event_dims=1))
            parts.append(
                AffineCoupling(
                    dim, "half", flip=flip, hidden=h[0], depth=len(h), context_size=context
                )
            )
        elif kind == "maf":
            parts += [Inverse(MAF(dim, h, context_size=context)), Permute(dim)]
        elif kind == "nsf-ar":  # ActNorm first: the splines act on [-3, 3], the data need not
            parts.append(ActNorm(dim, event_dims=1))
            parts += [AutoregressiveSpline(dim, h, bins, context_size=context), Permute(dim)]
        else:  # nsf
            parts.append(ActNorm(dim, event_dims=1))
            parts.append(SplineCoupling(dim, h, bins, flip=flip, context_size=context))
    return Compose(parts)


def _image_levels(
    kind: str,
    shape: tuple[int, int, int],
    levels: int,
    steps: int,
    hidden: int,
    context_size: int | None = None,
) -> MultiScale:
    c, h, w = shape
    blocks: list[Bijection] = []
    shapes: list[tuple[int, int, int]] = []
    for level in range(levels):
        if h % 2 or w % 2:
            raise ValueError(
                f"{kind}: level {level + 1} of {levels} squeezes a [{c}, {h}, {w}] image, whose "
                "height and width must be even; use fewer model.levels"
            )
        parts: list[Bijection] = []
        if kind == "realnvp":  # checkerboard couplings, squeeze, channel couplings (Sec. 3.6)
            parts += [
                AffineCoupling(
                    c, "checkerboard", flip=i % 2 == 1, hidden=hidden, context_size=context_size
                )
                for i in range(steps)
            ]
            parts.append(Squeeze())
            c, h, w = 4 * c, h // 2, w // 2
            parts += [
                AffineCoupling(
                    c, "channel", flip=i % 2 == 1, hidden=hidden, context_size=context_size
                )
                for i in range(steps)
            ]
        else:  # glow: squeeze, then K steps of ActNorm, 1x1 convolution, affine coupling
            parts.append(Squeeze())
            c, h, w = 4 * c, h // 2, w // 2
            for i in range(steps):
                parts += [
                    ActNorm(c),
                    InvertibleConv1x1(c),
                    AffineCoupling(
                        c, "channel", flip=i % 2 == 1, hidden=hidden, context_size=context_size
                    ),
                ]
        blocks.append(Compose(parts))
        shapes.append((c, h, w))
        if level < levels - 1:
            c -= c // 2
    return MultiScale(blocks, shapes, context_size)


@dataclass(kw_only=True)
class FlowOptions:
    """A vector flow: ``steps`` couplings or autoregressive steps, conditioners of widths
    ``hidden`` (RealNVP's: one width, repeated: [64, 64] is two layers of 64)."""

    family: str
    steps: int = at_least_field(1, 4)
    hidden: list[int] = at_least_field(1, factory=lambda: [64, 64])


@dataclass(kw_only=True)
class SplineFlowOptions(FlowOptions):
    """A neural spline flow: also the spline's ``bins``."""

    bins: int = at_least_field(2, 8)


@dataclass(kw_only=True)
class ImageFlowOptions(FlowOptions):
    """A multi-scale image flow: ``steps`` per level over ``levels`` levels, couplings of one
    hidden width (channels)."""

    hidden: list[int] = at_least_field(1, factory=lambda: [64])
    levels: int = at_least_field(1, 2)


def _one_width(kind: str, hidden: Sequence[int], image: bool) -> int:
    """The single width of a coupling network that takes one (every layer alike)."""
    if not hidden or len(set(hidden)) != 1 or (image and len(hidden) != 1):
        shape = "one width, e.g. [64]" if image else "one width, repeated per layer: [64, 64]"
        raise ValueError(f"hidden: {kind}'s couplings take {shape}; got {list(hidden)}")
    return hidden[0]


def _vector(kind: str):
    def build(
        o: FlowOptions, event_shape: tuple[int, ...], context_size: int | None = None
    ) -> Density:
        dim = math.prod(event_shape)
        if kind == "realnvp":
            _one_width(kind, o.hidden, image=False)
        bins = o.bins if isinstance(o, SplineFlowOptions) else 0
        steps = _vector_steps(kind, dim, o.steps, o.hidden, bins, context_size)
        return GaussianFlow(steps, (dim,))

    return build


def _image(kind: str):
    def build(
        o: ImageFlowOptions, event_shape: tuple[int, ...], context_size: int | None = None
    ) -> Density:
        if len(event_shape) != 3:
            raise ValueError(
                f"{kind} is an image flow: it needs [C, H, W] data, got points of shape "
                f"{list(event_shape)}; use realnvp, maf or nsf for vectors"
            )
        c, h, w = event_shape
        width = _one_width(kind, o.hidden, image=True)
        return _image_levels(kind, (c, h, w), o.levels, o.steps, width, context_size)

    return build


FLOWS: Registry[Density] = Registry("flow", tag="family")
"""The flow families by name (the ``family`` of their options). Every entry is built as
``FLOWS.create(options, event_shape, context_size)``; ``data`` is what it models."""
FLOWS.add(
    "realnvp",
    _vector("realnvp"),
    "RealNVP affine couplings (with ActNorm) on vectors",
    options=FlowOptions,
    data="vector",
)
FLOWS.add(
    "maf",
    _vector("maf"),
    "masked autoregressive flow, density in one pass",
    options=FlowOptions,
    data="vector",
)
FLOWS.add(
    "nsf",
    _vector("nsf"),
    "neural spline flow: rational-quadratic spline couplings (with ActNorm)",
    options=SplineFlowOptions,
    data="vector",
)
FLOWS.add(
    "nsf-ar",
    _vector("nsf-ar"),
    "autoregressive neural spline flow: density in one pass, sampling in D",
    options=SplineFlowOptions,
    data="vector",
)
FLOWS.add(
    "realnvp-image",
    _image("realnvp"),
    "multi-scale RealNVP: checkerboard and channel couplings",
    options=ImageFlowOptions,
    data="image",
)
FLOWS.add(
    "glow",
    _image("glow"),
    "Glow: ActNorm, invertible 1x1 convolutions, affine couplings",
    options=ImageFlowOptions,
    data="image",
)


def build_flow(
    family: str | FlowOptions,
    event_shape: Sequence[int],
    context_size: int | None = None,
    **options: object,
) -> Density:
    """The core density (``GaussianFlow`` or ``MultiScale``) of a family of ``FLOWS``, given
    by name with ``options`` (those the family takes: ``steps``, ``hidden``; ``bins`` for the
    spline flows; ``levels`` for the image flows) or by its options object.

    With ``context_size`` (every family) the density is conditional, p(y | context): every
    step's conditioner also sees a context ``[..., context_size]``, so the same flows serve as
    priors or posteriors elsewhere (``log_prob(y, context)``, ``sample(n, context=...)`` with
    a context ``[n, context_size]``, one per draw). The image flows (``MultiScale``) take a
    context ``[B, context_size]`` per image and also condition their factored-out and top
    Gaussians on it, through zero-initialised linear maps.
    """
    if isinstance(family, str):
        family = FLOWS.options(family, **options)
    elif options:
        raise TypeError("build_flow: give options either as an options object or as keywords")
    return FLOWS.create(family, tuple(event_shape), context_size)


__all__ = [
    "FLOWS",
    "Density",
    "FlowDensity",
    "FlowOptions",
    "GaussianFlow",
    "ImageFlowOptions",
    "Inverse",
    "MultiScale",
    "SplineFlowOptions",
    "build_flow",
    "standard_normal_log_prob",
]
