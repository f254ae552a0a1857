"""The disentanglement metrics of a trained guide, by name: the table ``eval.metrics`` chooses from.

``disentanglement_metrics(guide, data, names)`` draws fresh observations from a factor data
set (``dgm.data.FactorData``), encodes them with the guide (the code of an image is the mean
of q(z | x), as in disentanglement_lib) and returns every requested metric under a key that
names its convention where conventions differ: ``mig[disentanglement_lib]`` (20-bin
histograms of the means, every factor) and ``mig[chen2018]`` (entropies of q(z_d) estimated
from the Gaussian posteriors, dSprites' shape factor left out, as Chen et al. do).

The sizes default to disentanglement_lib's protocol (10000 points to fit a metric's
predictor, 5000 to score it, batches of 64 for the FactorVAE and beta-VAE scores).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from ..data.factors import FactorData, require_factors, sample_factors
from ..ppl import trace
from ..progress import Progress
from ..registry import Registry
from ..seeds import derived_seed
from . import disentanglement as dm
from .latent import posterior_means


@dataclass(frozen=True)
class MetricSettings:
    """The protocol's sizes (disentanglement_lib's defaults)."""

    num_train: int = 10000
    num_test: int = 5000
    batch_size: int = 64
    bins: int = 20
    chen_points: int = 10000
    chen_samples: int = 10000
    seed: int = 0


Represent = Callable[[Tensor], Tensor]


class _Context:
    """What the metrics share: the encoder, the data set, the RNG and the common draws."""

    def __init__(
        self, guide: Callable[..., Any], data: FactorData, settings: MetricSettings, site: str
    ) -> None:
        self.guide, self.data, self.settings, self.site = guide, data, settings, site
        self._splits: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def generator(self, purpose: str) -> torch.Generator:
        """The draws of one metric (or of the shared splits), seeded from ``settings.seed``
        and ``purpose`` alone: a metric gives the same number whichever others are computed
        with it, in whatever order."""
        return torch.Generator().manual_seed(derived_seed(self.settings.seed, purpose))

    @property
    def device(self) -> torch.device:
        params = getattr(self.guide, "parameters", None)
        first = next(params(), None) if params is not None else None
        return first.device if first is not None else torch.device("cpu")

    def represent(self, x: Tensor) -> Tensor:
        """Codes ``[N, D]``: the means of q(z | x), on the CPU."""
        means = posterior_means(self.guide, x.to(self.device))
        return means[self.site].cpu()

    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The diagonal Gaussian q(z | x)'s mean and standard deviation, each ``[N, D]``."""
        locs, scales = [], []
        for chunk in x.split(500):
            with torch.no_grad(), trace() as tr:
                self.guide(chunk.to(self.device))
            q = tr[self.site].fn
            if not (isinstance(q, Independent) and isinstance(q.base_dist, Normal)):
                raise ValueError(
                    f"mig[chen2018] needs a diagonal Gaussian q(z | x) at site {self.site!r}; "
                    f"got {type(q).__name__}"
                )
            locs.append(q.base_dist.loc.cpu())
            scales.append(q.base_dist.scale.cpu())
        return torch.cat(locs), torch.cat(scales)

    def splits(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Codes and factors of ``num_train`` and ``num_test`` fresh draws (shared)."""
        if self._splits is None:
            s, g = self.settings, self.generator("splits")
            train = dm.sample_codes(self.represent, self.data, s.num_train, g)
            test = dm.sample_codes(self.represent, self.data, s.num_test, g)
            self._splits = (train[0], train[1], test[0], test[1])
        return self._splits


def _mig(ctx: _Context) -> dict[str, float]:
    codes, factors, *_ = ctx.splits()
    return {"mig[disentanglement_lib]": float(dm.mig(codes, factors, ctx.settings.bins).score)}


def chen_factors(data: FactorData) -> tuple[int, ...]:
    """The factors Chen et al.'s MIG averages over: all but a categorical ``shape`` factor."""
    return tuple(i for i, name in enumerate(data.factor_names) if name != "shape")


def _mig_chen(ctx: _Context) -> dict[str, float]:
    s = ctx.settings
    g = ctx.generator("mig_chen")
    factors = sample_factors(ctx.data, s.chen_points, g)
    loc, scale = ctx.gaussian(ctx.data.render(factors))
    result = dm.mig_sampled(
        loc,
        scale,
        factors,
        ctx.data.factor_sizes,
        factors_used=chen_factors(ctx.data),
        num_samples=s.chen_samples,
        generator=g,
    )
    return {"mig[chen2018]": float(result.score)}


def _dci(ctx: _Context) -> dict[str, float]:
    from sklearn.ensemble import GradientBoostingClassifier

    # disentanglement_lib's classifier, seeded: its trees break ties between equally good
    # splits at random, so an unseeded DCI differs from one evaluation to the next
    seed = derived_seed(ctx.settings.seed, "dci") % 2**32
    r = dm.dci(
        *ctx.splits(), model=functools.partial(GradientBoostingClassifier, random_state=seed)
    )
    return {
        "dci_disentanglement": float(r.disentanglement),
        "dci_completeness": float(r.completeness),
        "dci_informativeness_test": float(r.informativeness_test),
    }


def _sap(ctx: _Context) -> dict[str, float]:
    return {"sap": float(dm.sap(*ctx.splits()).score)}


def _modularity(ctx: _Context) -> dict[str, float]:
    r = dm.modularity_explicitness(*ctx.splits(), bins=ctx.settings.bins)
    return {"modularity": float(r.modularity), "explicitness_test": float(r.explicitness_test)}


def _factor_vae(ctx: _Context) -> dict[str, float]:
    s = ctx.settings
    r = dm.factor_vae_score(
        ctx.represent,
        ctx.data,
        ctx.generator("factor_vae"),
        batch_size=s.batch_size,
        num_train=s.num_train,
        num_eval=s.num_test,
        num_variance_estimate=s.num_train,
    )
    return {"factor_vae_score": float(r.eval_accuracy)}


def _beta_vae(ctx: _Context) -> dict[str, float]:
    s = ctx.settings
    r = dm.beta_vae_score(
        ctx.represent,
        ctx.data,
        ctx.generator("beta_vae"),
        batch_size=s.batch_size,
        num_train=s.num_train,
        num_eval=s.num_test,
    )
    return {"beta_vae_score": float(r.eval_accuracy)}


DISENTANGLEMENT_METRICS: Registry[Callable[[_Context], dict[str, float]]] = Registry("metric")
DISENTANGLEMENT_METRICS.add(
    "mig", lambda: _mig, "mutual information gap, disentanglement_lib's convention (Chen et al.)"
)
DISENTANGLEMENT_METRICS.add(
    "mig_chen",
    lambda: _mig_chen,
    "mutual information gap, Chen et al.'s estimator (shape excluded)",
)
DISENTANGLEMENT_METRICS.add(
    "dci", lambda: _dci, "disentanglement, completeness, informativeness (Eastwood & Williams)"
)
DISENTANGLEMENT_METRICS.add(
    "sap", lambda: _sap, "separated attribute predictability (Kumar et al.)"
)
DISENTANGLEMENT_METRICS.add(
    "modularity", lambda: _modularity, "modularity and explicitness (Ridgeway & Mozer)"
)
DISENTANGLEMENT_METRICS.add(
    "factor_vae", lambda: _factor_vae, "FactorVAE score: majority vote (Kim & Mnih)"
)
DISENTANGLEMENT_METRICS.add(
    "beta_vae", lambda: _beta_vae, "beta-VAE score: linear classifier (Higgins et al.)"
)


def disentanglement_metrics(
    guide: Callable[..., Any],
    data: Any,
    names: Sequence[str] | None = None,
    settings: MetricSettings | None = None,
    site: str = "z",
) -> dict[str, float]:
    """The metrics ``names`` (default: all of ``DISENTANGLEMENT_METRICS``) of ``guide``'s code.

    Args:
        guide: q(z | x); the code of an observation is the mean of its site ``site``.
        data: a ``dgm.data.FactorData`` (e.g. ``DSpritesFactors(32)``) to draw from.
        names: which metrics; unknown names fail before anything is computed.
        settings: the protocol's sizes and the seed of the metrics' draws.

    Returns:
        ``{key: value}``, keys naming the convention where they differ.
    """
    factor_data = require_factors(data, "disentanglement_metrics")
    chosen = list(DISENTANGLEMENT_METRICS) if names is None else list(names)
    metrics = [DISENTANGLEMENT_METRICS.build(name) for name in chosen]
    ctx = _Context(guide, factor_data, settings or MetricSettings(), site)
    out: dict[str, float] = {}
    with Progress(len(metrics), "disentanglement metrics", "metric") as bar:
        for name, metric in zip(chosen, metrics, strict=True):
            bar.set_postfix({"computing": name})
            out.update(metric(ctx))
            bar.update(1)
    return out


@torch.no_grad()
def code_factor_information(
    guide: Callable[..., Any],
    data: Any,
    settings: MetricSettings | None = None,
    site: str = "z",
) -> tuple[np.ndarray, float]:
    """I(z_d; v_k) / H(v_k) for every code dimension and factor (``[D, F]``, from ``bins``-bin
    histograms of the means), and that MIG: on the same ``num_train`` draws as
    ``mig[disentanglement_lib]`` in ``disentanglement_metrics``, so the two agree."""
    s = settings or MetricSettings()
    ctx = _Context(guide, require_factors(data), s, site)
    codes, factors, *_ = ctx.splits()
    result = dm.mig(codes, factors, s.bins)
    entropy = dm.factor_entropies(factors)
    normalized = np.asarray(result.mutual_information) / np.maximum(entropy, 1e-12)[None, :]
    return normalized, float(result.score)


__all__ = [
    "DISENTANGLEMENT_METRICS",
    "MetricSettings",
    "chen_factors",
    "code_factor_information",
    "disentanglement_metrics",
]
