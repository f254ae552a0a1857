"""``AutoGuide``: a proposal program built automatically from a model's latent sites.

Given a model and an example call, the builder traces the model once, and for every latent
site picks a proposal family from the site's support:

| support | proposal |
| --- | --- |
| real, real vector | Normal (one coordinate) or MultivariateNormal with a Cholesky factor; a mixture of ``components`` of them if asked |
| positive | LogNormal |
| interval (a, b) | Normal pushed through a sigmoid and an affine map onto (a, b) |
| boolean | Bernoulli |
| integer interval {0, ..., n-1} | Categorical |

The proposal's parameters come from a network of the observations: an MLP of all the
call's tensors flattened (``embedding="mlp"``, for fixed-size data sets), or a
permutation-invariant set embedding (``embedding="set"``: a per-point MLP of the tensors'
matching entries, e.g. (t_i, y_i), averaged over the points of a data set, padding excluded
with ``mask``, together with log(1 + n) for the data set's n points: an average alone cannot
tell one point from eight, and a posterior's width depends on n). Inputs are cast to the
dtype of the guide's parameters (float64 under ``torch.set_default_dtype(torch.float64)`` or
after ``.double()``). Sites are proposed in the model's order, each conditioned on the embedding
and on the values already proposed (in unconstrained coordinates), so correlations between
sites are kept. Train it with ``dgm.objectives.Sleep()`` (inference compilation).

References:
    Le, Baydin & Wood, "Inference Compilation and Universal Probabilistic Programming", 2017.
    Zaheer et al., "Deep Sets", 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import (
    AffineTransform,
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    LogNormal,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    SigmoidTransform,
    TransformedDistribution,
    biject_to,
    constraints,
)

from ..nn import MLP
from ..ppl import sample, trace

EMBEDDINGS = ("mlp", "set")  # a flattened MLP of fixed-size data sets, or a set embedding


@dataclass
class _SitePlan:
    name: str
    family: str  # normal | lognormal | interval | bernoulli | categorical
    size: int  # numbers per data set (event size; categories for categorical)
    event_shape: torch.Size
    low: float = 0.0
    high: float = 1.0


def _base(c: Any) -> tuple[Any, int]:
    depth = 0
    while isinstance(c, constraints.independent):
        depth += c.reinterpreted_batch_ndims
        c = c.base_constraint
    return c, depth


def _scalar(name: str, bound: Any) -> float:
    """A support bound as one number (bounds that differ between data sets are refused)."""
    if isinstance(bound, Tensor):
        flat = bound.reshape(-1)
        if not bool((flat == flat[0]).all()):
            raise ValueError(
                f"AutoGuide: site {name!r} has support bounds that differ between data sets; "
                "write a guide program by hand for this model"
            )
        return float(flat[0])
    return float(bound)


def _plan(name: str, fn: Distribution, batch_dims: int) -> _SitePlan:
    support = fn.support
    base, _ = _base(support)
    extra_batch = fn.batch_shape[batch_dims:]
    event = extra_batch + fn.event_shape
    size = int(torch.Size(event).numel())
    if extra_batch:
        raise ValueError(
            f"AutoGuide: site {name!r} has batch shape {list(fn.batch_shape)}, more than the "
            f"{batch_dims} data-set dimension(s); declare per-data-set dimensions as event "
            "dimensions with torch.distributions.Independent"
        )
    if base is constraints.real or isinstance(base, type(constraints.real)):
        return _SitePlan(name, "normal", size, event)
    positive = (constraints.greater_than, constraints.greater_than_eq)
    if isinstance(base, positive) and _scalar(name, base.lower_bound) == 0.0:
        return _SitePlan(name, "lognormal", size, event)
    if isinstance(base, constraints.interval):
        lo, hi = _scalar(name, base.lower_bound), _scalar(name, base.upper_bound)
        return _SitePlan(name, "interval", size, event, lo, hi)
    if base is constraints.boolean:
        return _SitePlan(name, "bernoulli", size, event)
    if isinstance(base, constraints.integer_interval) and not event:
        if _scalar(name, base.lower_bound) == 0:
            return _SitePlan(name, "categorical", int(_scalar(name, base.upper_bound)) + 1, event)
    raise ValueError(
        f"AutoGuide cannot build a proposal for site {name!r}: its support {support} has no "
        "automatic family (supported: real, positive, interval, boolean, {0..n-1}); write a "
        "guide program by hand for this model (any nn.Module calling dgm.sample works)"
    )


def _num_params(plan: _SitePlan, components: int) -> int:
    d = plan.size
    if plan.family == "categorical":
        return d
    if plan.family == "bernoulli":
        return d
    per = d + d * (d + 1) // 2 if plan.family == "normal" and d > 1 else 2 * d
    return per if components == 1 or plan.family != "normal" else components * (per + 1)


class AutoGuide(nn.Module):
    """A guide for ``model``, built from a trace of ``model(*example_args, **example_kwargs)``.

    Args:
        model: the model program.
        *example_args, **example_kwargs: an example call (a batch of data sets in the first
            dimension of every tensor); fixes the sites, their shapes and the input size.
        embedding: ``"mlp"`` (fixed-size data sets) or ``"set"`` (a variable number of points:
            every tensor argument is ``[B, N]`` or ``[B, N, d]`` with the same N, and the
            keyword argument ``mask`` (``[B, N]``, 1 = present) marks padding).
        hidden: hidden widths of the embedding (and of each site's head).
        components: mixture components of the proposals of real sites.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *example_args: Any,
        embedding: str = "mlp",
        hidden: tuple[int, ...] = (128, 128),
        components: int = 1,
        **example_kwargs: Any,
    ) -> None:
        super().__init__()
        if embedding not in EMBEDDINGS:
            raise ValueError(
                f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r} (AutoGuide)"
            )
        if components < 1:
            raise ValueError(f"AutoGuide: components must be >= 1, got {components}")
        with torch.no_grad(), trace() as tr:
            model(*example_args, **example_kwargs)
        latent = tr.latent
        if not latent:
            raise ValueError("AutoGuide: the model has no latent sites to propose")
        self.plans = [_plan(s.name, s.fn, 1) for s in latent]
        self.embedding_kind = embedding
        self.components = components
        features = self._features(example_args, example_kwargs, torch.get_default_dtype())
        in_size = features.shape[-1]
        self.embed = MLP((in_size, *hidden), "relu")
        width = hidden[-1] + (1 if embedding == "set" else 0)  # the set's log(1 + n)
        self.heads = nn.ModuleList()
        upstream = 0
        for plan in self.plans:
            self.heads.append(MLP((width + upstream, width, _num_params(plan, components)), "relu"))
            upstream += plan.size
        self._pooled = hidden[-1]
        self._register_load_state_dict_pre_hook(self._upgrade_set_heads)

    def _upgrade_set_heads(self, state: dict[str, Tensor], prefix: str, *_: object) -> None:
        """Set-embedding guides saved before the embedding carried log(1 + n): their heads
        take one input fewer; a zero column there loads them with their old behaviour."""
        if self.embedding_kind != "set":
            return
        for i, head in enumerate(self.heads):
            key = f"{prefix}heads.{i}.0.weight"
            assert isinstance(head, nn.Sequential)
            first = head[0]
            assert isinstance(first, nn.Linear)
            w = state.get(key)
            if w is not None and w.shape[1] == first.in_features - 1:
                k = self._pooled
                state[key] = torch.cat([w[:, :k], w.new_zeros(w.shape[0], 1), w[:, k:]], 1)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the guide's parameters, to which inputs are cast."""
        return next(self.embed.parameters()).dtype

    def _features(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], dtype: torch.dtype
    ) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        tensors += [v for k, v in kwargs.items() if isinstance(v, Tensor) and k != "mask"]
        if not tensors:
            raise ValueError("AutoGuide: the call has no tensor arguments to embed")
        b = tensors[0].shape[0]
        if self.embedding_kind == "mlp":
            return torch.cat([t.reshape(b, -1).to(dtype) for t in tensors], -1)
        n = tensors[0].shape[1]
        cols = []
        for t in tensors:
            if t.dim() < 2 or t.shape[1] != n:
                raise ValueError(
                    "AutoGuide(embedding='set') needs every tensor argument shaped [B, N, ...] "
                    f"with the same number of points N; got shapes {[list(x.shape) for x in tensors]}"
                )
            cols.append(t.reshape(b, n, -1).to(dtype))
        return torch.cat(cols, -1)  # [B, N, F]

    def embedding(self, *args: Any, **kwargs: Any) -> Tensor:
        """The data sets' embedding: ``[B, hidden[-1]]``, or ``[B, hidden[-1] + 1]`` for a set.

        A set's is the mean of the per-point features over its n unmasked points, followed by
        log(1 + n) (0 for an empty data set).
        """
        dtype = self.dtype
        features = torch.nan_to_num(self._features(args, kwargs, dtype))
        if self.embedding_kind == "mlp":
            return self.embed(features)
        per_point = self.embed(features)  # [B, N, H]
        mask = kwargs.get("mask")
        if mask is None:
            m = per_point.new_ones(*per_point.shape[:-1], 1)
        else:
            m = mask.to(dtype).unsqueeze(-1)
        n = m.sum(-2)  # [B, 1]
        pooled = (per_point * m).sum(-2) / n.clamp(min=1.0)
        return torch.cat([pooled, torch.log1p(n)], -1)

    def forward(self, *args: Any, **kwargs: Any) -> None:
        h = self.embedding(*args, **kwargs)
        upstream: list[Tensor] = []
        for plan, head in zip(self.plans, self.heads, strict=True):
            inputs = h
            if upstream:
                lead = torch.broadcast_shapes(*(u.shape[:-1] for u in upstream), h.shape[:-1])
                inputs = torch.cat(
                    [h.expand(*lead, h.shape[-1])]
                    + [u.expand(*lead, u.shape[-1]) for u in upstream],
                    -1,
                )
            fn = self._distribution(plan, head(inputs))
            value = sample(plan.name, fn)
            upstream.append(self._encode(plan, fn, value, h.dtype))

    def _distribution(self, plan: _SitePlan, out: Tensor) -> Distribution:
        d, lead = plan.size, out.shape[:-1]
        if plan.family == "categorical":
            return Categorical(logits=out)
        if plan.family == "bernoulli":
            if not plan.event_shape:
                return Bernoulli(logits=out.squeeze(-1))
            logits = out.reshape(*lead, *plan.event_shape)
            return Independent(Bernoulli(logits=logits), len(plan.event_shape))
        if plan.family == "normal" and self.components > 1:
            return self._mixture(plan, out)
        if plan.family == "normal" and d > 1:
            return MultivariateNormal(out[..., :d], scale_tril=self._tril(out[..., d:], d))
        loc, raw = out[..., :d], out[..., d:]
        scale = nn.functional.softplus(raw) + 1e-4
        base: Distribution = Normal(loc, scale)
        if plan.family == "lognormal":
            base = LogNormal(loc, scale)
        elif plan.family == "interval":
            base = TransformedDistribution(
                Normal(loc, scale),
                [SigmoidTransform(), AffineTransform(plan.low, plan.high - plan.low)],
            )
        return Independent(base, 1) if plan.event_shape else _squeeze(base)

    def _mixture(self, plan: _SitePlan, out: Tensor) -> Distribution:
        d, k = plan.size, self.components
        per = d + d * (d + 1) // 2 if d > 1 else 2
        logits, params = out[..., :k], out[..., k:].reshape(*out.shape[:-1], k, per)
        if d > 1:
            comp: Distribution = MultivariateNormal(
                params[..., :d], scale_tril=self._tril(params[..., d:], d)
            )
        else:
            comp = Normal(params[..., 0], nn.functional.softplus(params[..., 1]) + 1e-4)
        return MixtureSameFamily(Categorical(logits=logits), comp)

    @staticmethod
    def _tril(raw: Tensor, d: int) -> Tensor:
        rows, cols = torch.tril_indices(d, d)
        tril = raw.new_zeros(*raw.shape[:-1], d, d)
        tril[..., rows, cols] = raw
        diag = nn.functional.softplus(torch.diagonal(tril, dim1=-2, dim2=-1)) + 1e-4
        return tril.tril(-1) + torch.diag_embed(diag)

    @staticmethod
    def _encode(plan: _SitePlan, fn: Distribution, value: Tensor, dtype: torch.dtype) -> Tensor:
        """A site's value as network input: unconstrained coordinates, or one-hot."""
        if plan.family == "categorical":
            return nn.functional.one_hot(value.long(), plan.size).to(dtype)
        if plan.family == "bernoulli":
            return value.reshape(*value.shape[: value.dim() - len(plan.event_shape)], -1).to(dtype)
        assert fn.support is not None
        u = biject_to(fn.support).inv(value).to(dtype)
        if not plan.event_shape:
            return u.unsqueeze(-1)
        return u.reshape(*u.shape[: u.dim() - len(plan.event_shape)], -1)


def _squeeze(d: Distribution) -> Distribution:
    """A per-coordinate distribution with a trailing size-1 dimension, as a scalar site."""
    if isinstance(d, TransformedDistribution):
        base = d.base_dist
        assert isinstance(base, Normal)
        return TransformedDistribution(
            Normal(base.loc.squeeze(-1), base.scale.squeeze(-1)), d.transforms
        )
    if isinstance(d, LogNormal):
        return LogNormal(d.loc.squeeze(-1), d.scale.squeeze(-1))
    assert isinstance(d, Normal)
    return Normal(d.loc.squeeze(-1), d.scale.squeeze(-1))
