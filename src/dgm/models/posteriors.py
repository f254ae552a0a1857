"""Amortized posterior families q(z | h): diagonal and full-covariance Gaussians, flows.

Each family is a module mapping an input ``h`` (the data, or the layer below) of shape
``[..., in_size]`` to a distribution with batch ``[...]`` and event ``[D]``; the guide draws
particles from it with ``dgm.sample``. ``base(h)`` is the Gaussian part (the whole
distribution for the Gaussian families, the distribution before the flow otherwise): it is
what a VampPrior mixes.

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", 2014 (diagonal Gaussian).
    Rezende & Mohamed, "Variational Inference with Normalizing Flows", 2015 (planar flows
    with parameters from the encoder).
    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved Variational Inference
    with Inverse Autoregressive Flow", 2016 (IAF conditioned on an encoder context h).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from ..flows import IAF, Bijection, Compose, FlowDistribution, Permute, Planar
from ..nn import MLP
from ..nn.mlp import activation as make_activation
from ..options import Options
from ..options import at_least as at_least_field
from ..registry import Registry, at_least


class GaussianLayer(nn.Module):
    """q(z | h) = N(mu(h), diag sigma(h)^2): an MLP gives the mean and log-scale.

    Shapes: ``[..., in_size] -> Independent(Normal)`` with batch ``[...]`` and event ``[out_size]``.
    """

    def __init__(self, in_size: int, hidden: Sequence[int], out_size: int, activation: str) -> None:
        super().__init__()
        self.net = MLP((in_size, *hidden, 2 * out_size), activation)

    def forward(self, h: Tensor) -> Distribution:
        loc, log_scale = self.net(h).chunk(2, dim=-1)
        return Independent(Normal(loc, log_scale.exp(), validate_args=False), 1)

    def base(self, h: Tensor) -> Distribution:
        return self(h)


class FullCovarianceLayer(nn.Module):
    """q(z | h) = N(mu(h), L(h) L(h)^T) with a lower-triangular Cholesky factor from the MLP.

    The MLP outputs the mean (D), the log of L's diagonal (D) and its D(D-1)/2 entries below
    the diagonal: every correlation between latent units can depend on the data point. The
    entries below the diagonal start at zero (a diagonal q) and are the outputs scaled by
    ``correlation_scale``: Adam moves each of the D(D-1)/2 x hidden weights by about the
    learning rate per step however small and noisy its gradient, and unscaled, these random
    moves gave q spurious correlations that cost 8 nats of test log-likelihood after 5 epochs
    on binarized MNIST (-127.9 against -119.2 for the diagonal q); scaled by 0.1, -120.8.
    """

    def __init__(
        self,
        in_size: int,
        hidden: Sequence[int],
        out_size: int,
        activation: str,
        correlation_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = out_size
        self.correlation_scale = correlation_scale
        self.net = MLP(
            (in_size, *hidden, 2 * out_size + out_size * (out_size - 1) // 2), activation
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():  # start uncorrelated: 1225 random entries make a poor first q
            last.weight[2 * out_size :].zero_()
            last.bias[2 * out_size :].zero_()
        rows, cols = torch.tril_indices(out_size, out_size, offset=-1)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)

    def forward(self, h: Tensor) -> Distribution:
        d = self.dim
        out = self.net(h)
        loc, log_diag, below = out[..., :d], out[..., d : 2 * d], out[..., 2 * d :]
        tril = out.new_zeros(*out.shape[:-1], d, d)
        tril[..., self.get_buffer("rows"), self.get_buffer("cols")] = self.correlation_scale * below
        tril = tril + torch.diag_embed(log_diag.exp())
        return MultivariateNormal(loc, scale_tril=tril, validate_args=False)

    def base(self, h: Tensor) -> Distribution:
        return self(h)


class FlowLayer(nn.Module):
    """q(z | h): a diagonal Gaussian from the encoder pushed through conditional flows.

    The encoder's last hidden layer is both the source of the base Gaussian's parameters and
    the flows' context, so every flow step depends on the data point: planar flows get
    their (u, w, b) from it (Rezende & Mohamed 2015, Sec. 4.2), IAF steps add it to their
    MADE's first hidden layer (Kingma et al. 2016, Fig. 2). IAF steps alternate with
    reversals of the coordinates. log q(z | h) is exact: the base log-density minus the
    flow's log-determinant, known from the draw itself (no inverse needed).

    Args:
        kind: ``"planar"`` or ``"iaf"``.
        length: number of flow steps.
        flow_hidden: widths of each IAF step's MADE (each >= D - 1).
    """

    def __init__(
        self,
        in_size: int,
        hidden: Sequence[int],
        out_size: int,
        activation: str,
        kind: str = "iaf",
        length: int = 2,
        flow_hidden: Sequence[int] = (100, 100),
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("a flow posterior needs at least one hidden layer (its context)")
        at_least("flow_length", length, 1)
        context = hidden[-1]
        self.trunk = nn.Sequential(MLP((in_size, *hidden), activation), make_activation(activation))
        self.head = nn.Linear(context, 2 * out_size)
        steps: list[Bijection] = []
        for i in range(length):
            if kind == "planar":
                steps.append(Planar(out_size, context_size=context))
            elif kind == "iaf":
                if i > 0:
                    steps.append(Permute(out_size))
                steps.append(IAF(out_size, tuple(flow_hidden), context_size=context))
            else:
                raise ValueError(f"FlowLayer: kind must be 'planar' or 'iaf', got {kind!r}")
        self.flow = Compose(steps)

    def _base(self, features: Tensor) -> Distribution:
        loc, log_scale = self.head(features).chunk(2, dim=-1)
        return Independent(Normal(loc, log_scale.exp(), validate_args=False), 1)

    def forward(self, h: Tensor) -> Distribution:
        features = self.trunk(h)
        return FlowDistribution(self._base(features), self.flow, features)

    def base(self, h: Tensor) -> Distribution:
        return self._base(self.trunk(h))


@dataclass(kw_only=True)
class PlanarOptions(Options):
    """Planar flow steps with parameters from the encoder."""

    flow_length: int = at_least_field(1, 2)


@dataclass(kw_only=True)
class IAFOptions(Options):
    """IAF steps and the widths of each step's MADE (each >= D - 1)."""

    flow_length: int = at_least_field(1, 2)
    flow_hidden: list[int] = at_least_field(1, factory=lambda: [100, 100])


def _diagonal(o: Options, i: int, h: Sequence[int], out: int, a: str) -> nn.Module:
    return GaussianLayer(i, h, out, a)


def _full(o: Options, i: int, h: Sequence[int], out: int, a: str) -> nn.Module:
    return FullCovarianceLayer(i, h, out, a)


def _planar(o: PlanarOptions, i: int, h: Sequence[int], out: int, a: str) -> nn.Module:
    return FlowLayer(i, h, out, a, "planar", o.flow_length)


def _iaf(o: IAFOptions, i: int, h: Sequence[int], out: int, a: str) -> nn.Module:
    return FlowLayer(i, h, out, a, "iaf", o.flow_length, tuple(o.flow_hidden))


POSTERIORS: Registry[nn.Module] = Registry("posterior")
"""The amortized families by name, each with its options. Every entry is built as
``POSTERIORS.create(options, in_size, hidden, out_size, activation)``. Capabilities:
``rescorable``, whether q can score values it did not draw itself at the cost of a forward
pass (the doubly-reparameterized gradient re-scores aliases of its draws); ``factorized``,
whether q(z | x) is a product over the coordinates of z with closed-form marginals (what
total-correlation estimators of disentanglement objectives need)."""
POSTERIORS.add(
    "diagonal",
    _diagonal,
    "diagonal Gaussian",
    options=Options,
    rescorable=True,
    factorized=True,
)
POSTERIORS.add(
    "full",
    _full,
    "full-covariance Gaussian (Cholesky factor from the encoder)",
    options=Options,
    rescorable=True,
    factorized=False,
)
POSTERIORS.add(
    "planar",
    _planar,
    "planar flow with parameters from the encoder (no inverse)",
    options=PlanarOptions,
    rescorable=False,
    factorized=False,
)
POSTERIORS.add(
    "iaf",
    _iaf,
    "inverse autoregressive flow conditioned on the encoder (inverse costs D passes)",
    options=IAFOptions,
    rescorable=False,
    factorized=False,
)

Posterior = str | Options


def posterior_options(posterior: Posterior) -> Options:
    """The options of a posterior given by name (its defaults) or by options."""
    return POSTERIORS.options(posterior) if isinstance(posterior, str) else posterior


def posterior_layer(
    posterior: Posterior,
    in_size: int,
    hidden: Sequence[int],
    out_size: int,
    activation: str = "tanh",
) -> nn.Module:
    """The amortized family ``posterior`` (a name in ``POSTERIORS`` for its defaults, or its
    options, e.g. ``POSTERIORS.options("iaf", flow_length=4)``) for one stochastic layer."""
    return POSTERIORS.create(posterior_options(posterior), in_size, hidden, out_size, activation)


__all__ = [
    "POSTERIORS",
    "FlowLayer",
    "FullCovarianceLayer",
    "GaussianLayer",
    "IAFOptions",
    "PlanarOptions",
    "Posterior",
    "posterior_layer",
    "posterior_options",
]
