"""Sample quality of a generator on dgm's classifier features: FID, KID, precision, recall,
density and coverage.

Every number here is computed on the penultimate features of dgm's own small classifier
(``dgm.metrics.feature_classifier``: 128 features of a CNN trained on MNIST or
Fashion-MNIST), **not** on Inception-v3 features. They are NOT comparable with the Inception
FID / KID that papers report, nor between classifiers trained on different data (compare a
classifier's ``source`` first); they are comparable between models scored with the same
classifier, which is what the keys ``fid_classifier`` and ``kid_classifier`` say.

- FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to the real and
  the generated features; torchmetrics' ``FrechetInceptionDistance`` with the classifier as
  its ``feature`` network (``normalize=True``; a custom network receives the images as they
  are given, float in [0, 1]; the classifier has ``num_features``, so torchmetrics runs no
  dummy forward). Features are accumulated and the distance computed in float64.
- KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
  ``(x.y / d + 1)^3``, averaged over random subsets; torchmetrics'
  ``KernelInceptionDistance``, on float64 features, its subsets drawn from a seeded
  generator.
- Precision, recall, density and coverage (Naeem et al. 2020): with ``r_k(x)`` the distance
  from a point to its k-th nearest neighbour in its own set,
  precision = share of fakes within ``r_k`` of some real point; recall = share of reals
  within ``r_k`` of some fake point; density = (1 / k) x the mean over fakes of the number of
  real neighbourhoods containing them; coverage = share of reals whose nearest fake lies
  within their ``r_k``. Strict inequalities and the k-th neighbour counted with the point
  itself as the 0-th, as the authors' code (github.com/clovaai/generative-evaluation-prdc,
  ``prdc/prdc.py``) computes them; here in chunks of ``torch.cdist`` so that memory stays
  bounded for 10^4-10^5 points.

Metrics are computed with ``sync_on_compute=False``: in a distributed run each process scores
its own samples (call them on one rank).

References:
    Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs Trained by a Two Time-Scale
    Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017.
    Binkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018.
    Naeem, Oh, Uh, Choi & Yoo, "Reliable Fidelity and Diversity Metrics for Generative
    Models", ICML 2020.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..progress import tracked
from .modes import _device_of

if TYPE_CHECKING:
    from torchmetrics import Metric

DEFAULT_BATCH = 500
KID_SUBSETS = 100  # torchmetrics' and Binkowski et al.'s defaults
KID_SUBSET_SIZE = 1000
PRDC_K = 5  # Naeem et al.'s recommended k
_CHUNK_ELEMENTS = 1 << 22  # distances per cdist chunk (32 MiB of float64)


@dataclass
class PRDC:
    """Precision, recall, density and coverage of fake features against real ones
    (Naeem et al. 2020). Density can exceed 1; the others are fractions."""

    precision: float
    recall: float
    density: float
    coverage: float


class _Float64Features(nn.Module):
    """A feature network whose features come out in float64 (torchmetrics accumulates them
    as they come)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.num_features = _num_features(network)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images).double()


class _GivenFeatures(nn.Module):
    """Features computed beforehand, passed through (float64): torchmetrics' "images"."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features.double()


def _num_features(network: nn.Module) -> int:
    n = getattr(network, "num_features", None)
    if not isinstance(n, int) or n < 1:
        raise ValueError(
            "the feature network needs an integer num_features attribute (its output size), "
            "as dgm.metrics.feature_classifier's classifier has"
        )
    return n


def _check_pair(real: Tensor, fake: Tensor, what: str, least: int) -> None:
    if len(real) < least or len(fake) < least:
        raise ValueError(
            f"{what} needs at least {least} real and {least} fake points, got {len(real)} and "
            f"{len(fake)}"
        )


@torch.no_grad()
def features(images: Tensor, network: nn.Module, batch_size: int = DEFAULT_BATCH) -> Tensor:
    """``network``'s features of ``images``, in batches moved to its device: ``[N, F]``
    float64, on that device."""
    device = _device_of(network, images.device)
    batches = tracked(images.split(batch_size), f"features of {len(images)} images", unit="batch")
    return torch.cat([network(b.to(device)).double() for b in batches])


TORCHMETRICS_MINIMUM = (1, 4)
"""torchmetrics 1.4 (its PR #2483) passes a custom network's float images through unchanged
and reads ``num_features`` instead of running a dummy 3x299x299 uint8 image through it."""


def _require_torchmetrics() -> None:
    from importlib.metadata import version

    found = version("torchmetrics")
    parts = tuple(int(p) for p in found.split(".")[:2] if p.isdigit())
    if parts < TORCHMETRICS_MINIMUM:
        raise ImportError(
            f"dgm's FID / KID need torchmetrics >= 1.4 (custom feature networks), found "
            f"{found}: pip install 'torchmetrics>=1.4'"
        )


def _fid_metric(network: nn.Module, device: torch.device) -> Metric:
    _require_torchmetrics()
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=network, normalize=True, sync_on_compute=False)
    return metric.to(device)


def _kid_metric(network: nn.Module, subsets: int, subset_size: int, device: torch.device) -> Metric:
    _require_torchmetrics()
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():  # "will save all extracted features": as it should
        warnings.filterwarnings("ignore", message=".*Kernel Inception Distance.*")
        metric = KernelInceptionDistance(
            feature=network,
            subsets=subsets,
            subset_size=subset_size,
            normalize=True,
            sync_on_compute=False,
        )
    return metric.to(device)


@torch.no_grad()
def fid(
    real: Tensor, fake: Tensor, classifier: nn.Module, batch_size: int = DEFAULT_BATCH
) -> float:
    """FID between ``real`` and ``fake`` images on ``classifier``'s features (float64).

    Args:
        real, fake: images as the classifier takes them (``[N, 1, 28, 28]`` in [0, 1] for
            ``feature_classifier``; ``[N, 3, 28, 28]`` through a ``ChannelFeatures``); at
            least 2 of each, and many more than ``num_features`` for a stable estimate.
        classifier: the feature network, with ``num_features``; images are moved to its
            device in batches of ``batch_size``.
    """
    _check_pair(real, fake, "FID", 2)
    device = _device_of(classifier, real.device)
    metric = _fid_metric(_Float64Features(classifier), device)
    for images, is_real in ((real, True), (fake, False)):
        for b in images.split(batch_size):
            metric.update(b.to(device), real=is_real)
    return float(metric.compute())


def _kid_compute(metric: Metric, seed: int) -> tuple[float, float]:
    with torch.random.fork_rng(devices=[]):  # the subsets: torch.randperm on the CPU
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _check_subset(real: Tensor, fake: Tensor, subset_size: int) -> None:
    if subset_size > min(len(real), len(fake)):
        raise ValueError(
            f"KID's subset_size ({subset_size}) exceeds the {len(real)} real / {len(fake)} "
            "fake points: pass a smaller subset_size or more samples"
        )


@torch.no_grad()
def kid(
    real: Tensor,
    fake: Tensor,
    classifier: nn.Module,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, standard deviation over ``subsets`` random subsets of ``subset_size``
    points) between ``real`` and ``fake`` images on ``classifier``'s features (float64).

    The subsets are drawn by torchmetrics from the global generator, seeded here with
    ``seed`` (and restored afterwards): the same inputs give the same numbers.
    """
    _check_subset(real, fake, subset_size)
    device = _device_of(classifier, real.device)
    metric = _kid_metric(_Float64Features(classifier), subsets, subset_size, device)
    for images, is_real in ((real, True), (fake, False)):
        for b in images.split(batch_size):
            metric.update(b.to(device), real=is_real)
    return _kid_compute(metric, seed)


def _kth_neighbour_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest row, the row itself the 0-th."""
    chunk = max(1, _CHUNK_ELEMENTS // len(x))
    return torch.cat([torch.cdist(c, x).kthvalue(k + 1, dim=1).values for c in x.split(chunk)])


@torch.no_grad()
def prdc(real_features: Tensor, fake_features: Tensor, k: int = PRDC_K) -> PRDC:
    """Precision, recall, density and coverage (Naeem et al. 2020) of ``fake_features``
    ``[M, F]`` against ``real_features`` ``[N, F]`` with ``k`` nearest neighbours (float64,
    on the features' device, memory bounded by chunks; see the module's docstring)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if real_features.dim() != 2 or fake_features.dim() != 2:
        raise ValueError(
            f"features must be [N, F], got {list(real_features.shape)} and "
            f"{list(fake_features.shape)}"
        )
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            f"real and fake features differ in size: {real_features.shape[1]} != "
            f"{fake_features.shape[1]}"
        )
    _check_pair(real_features, fake_features, f"PRDC with k={k}", k + 1)
    real = real_features.double()
    fake = fake_features.double().to(real.device)
    real_radii = _kth_neighbour_radii(real, k)  # [N]
    fake_radii = _kth_neighbour_radii(fake, k)  # [M]
    in_real: list[Tensor] = []  # per fake: inside some real neighbourhood
    real_count: list[Tensor] = []  # per fake: how many real neighbourhoods hold it
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((len(real),), torch.inf, dtype=real.dtype, device=real.device)
    chunk = max(1, _CHUNK_ELEMENTS // len(real))
    for f, r in zip(fake.split(chunk), fake_radii.split(chunk), strict=True):
        d = torch.cdist(real, f)  # [N, c]
        inside = d < real_radii[:, None]
        in_real.append(inside.any(0))
        real_count.append(inside.sum(0))
        recalled |= (d < r[None, :]).any(1)
        nearest_fake = torch.minimum(nearest_fake, d.min(1).values)
    return PRDC(
        precision=float(torch.cat(in_real).double().mean()),
        recall=float(recalled.double().mean()),
        density=float(torch.cat(real_count).double().mean() / k),
        coverage=float((nearest_fake < real_radii).double().mean()),
    )


@torch.no_grad()
def sample_quality(
    real: Tensor,
    fake: Tensor,
    classifier: nn.Module,
    k: int = PRDC_K,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID and PRDC of ``fake`` against ``real`` images on ``classifier``'s features
    (each image's features computed once).

    Returns ``{"fid_classifier", "kid_classifier", "kid_classifier_std", "precision",
    "recall", "density", "coverage"}``: the ``_classifier`` suffix says these are dgm's
    classifier features, not Inception's (see the module's docstring). KID's subsets hold
    ``min(kid_subset_size, len(real), len(fake))`` points.
    """
    _check_pair(real, fake, f"sample_quality (PRDC with k={k})", k + 1)
    num = _num_features(classifier)
    fr = features(real, classifier, batch_size)
    ff = features(fake, classifier, batch_size)
    given = _GivenFeatures(num)
    fid_metric = _fid_metric(given, fr.device)
    fid_metric.update(fr, real=True)
    fid_metric.update(ff, real=False)
    size = min(kid_subset_size, len(fr), len(ff))
    kid_metric = _kid_metric(given, kid_subsets, size, fr.device)
    kid_metric.update(fr, real=True)
    kid_metric.update(ff, real=False)
    kid_mean, kid_std = _kid_compute(kid_metric, seed)
    p = prdc(fr, ff, k)
    return {
        "fid_classifier": float(fid_metric.compute()),
        "kid_classifier": kid_mean,
        "kid_classifier_std": kid_std,
        "precision": p.precision,
        "recall": p.recall,
        "density": p.density,
        "coverage": p.coverage,
    }


__all__ = ["PRDC", "features", "fid", "kid", "prdc", "sample_quality"]
