"""Mode coverage of a generator: PacGAN's metric on Gaussian mixtures, and stacked MNIST's.

**Gaussian mixtures** (``mode_coverage``; Lin et al. 2018, Section 4.1, Table 1, after
Srivastava et al. 2017). Each sample is assigned to its nearest mode by Mahalanobis distance
under that mode's diagonal covariance, ``d_j(x) = sqrt(sum_k ((x_k - mu_jk) / s_jk)^2)``, and
counts as *high quality* when that smallest distance is below ``threshold`` (3): "within 3
standard deviations" is the Mahalanobis distance ``< 3``, strictly, not each coordinate within
3 s.d. A mode is covered when at least one high-quality sample is assigned to it. Over the
histogram ``q`` of the high-quality samples over the ``M`` modes the table reports the reverse
KL divergence ``KL(q || uniform) = sum_j q_j log(M q_j)`` (natural log); PacGAN's code also
logs the Jensen-Shannon divergence ``JSD(q, uniform)``. The protocol scores
``PACGAN_SAMPLES`` = 2500 samples.

This follows PacGAN's evaluation code, github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/PacGAN/pacgan/extensions.py`` (``MetricLogger.do``): the nearest
mode by ``sqrt(sum(dis_vector**2 / variance_vector))`` over the diagonal of each mode's
covariance (the first mode on a tie: ``if dis < min_dis``), a point counted for that mode when
``min_dis < self.dis_thre`` (``dis_thre=3``), ``mode coverage`` the number of modes with a
nonzero count, ``good points percentage`` the counted share of all points, ``entropy of
coverage`` ``scipy.stats.entropy(q)`` (natural log; the reverse KL is ``log M`` minus it) and
``JSD`` its ``JSD_core(q, [1/M] * M)``; the 2500 points are ``num_log_figure_sample`` of
``synthetic_data_experiments/2DRing_GAN&PacGAN/config.py`` and ``2DGrid_GAN&PacGAN/config.py``.

Edge cases: a mode without high-quality samples contributes ``0 log 0 = 0`` to both
divergences (as PacGAN's ``KLD`` skips ``p = 0``); with no high-quality sample at all, ``q`` is
undefined (PacGAN's code divides 0 by 0) and ``reverse_kl`` and ``jsd`` are ``nan``, while
``modes_covered`` and ``high_quality`` are 0.

**Stacked MNIST** (``stacked_mnist_modes``; Metz et al. 2017, Section 3.3.2; Lin et al. 2018,
Section 4.2, Tables 2 and 3). A digit classifier labels each of the three channels; the mode
of an image is ``100 * d0 + 10 * d1 + d2``. The metric is the number of distinct modes among
the ``STACKED_MNIST_SAMPLES`` = 26000 samples (of 1000) and ``KL(p || uniform over 1000)`` of
the predicted-mode histogram ``p`` of all samples (no quality threshold), as PacGAN's
``stacked_MNIST_experiments/unrolled_GAN_experiment/D=0.25G/model.py`` (``log_metrics``)
computes them from the samples mapped to [0, 1].

References:
    Lin, Khetan, Fanti & Oh, "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018.
    Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN: Reducing Mode Collapse in GANs
    using Implicit Variational Learning", NeurIPS 2017.
    Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled Generative Adversarial Networks", ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

PACGAN_SAMPLES = 2500
"""Samples PacGAN's Table 1 scores per run (a default for callers; not enforced)."""

STACKED_MNIST_SAMPLES = 26000
"""Samples PacGAN's Tables 2 and 3 (after Metz et al. 2017) score per run."""

STACKED_MODES = 1000
"""Modes of stacked MNIST: three digits, ``10 ** 3``."""

DEFAULT_THRESHOLD = 3.0
"""High quality: Mahalanobis distance to the nearest mode below this many standard deviations."""

_CHUNK = 1 << 16  # samples per distance computation (memory: chunk x M x D doubles)


@dataclass
class ModeCoverage:
    """PacGAN's mode metric of samples from a Gaussian mixture.

    Attributes:
        modes_covered: modes with at least one high-quality sample assigned to them.
        high_quality: the fraction of all samples that are high quality.
        reverse_kl: ``KL(q || uniform)`` in nats of the high-quality samples' histogram ``q``
            over the modes (0 for a uniform histogram, ``log M`` for one mode); ``nan`` when
            no sample is high quality.
        jsd: ``JSD(q, uniform)`` in nats (at most ``log 2``); ``nan`` when no sample is high
            quality.
        counts: high-quality samples per mode, ``[M]`` (int64).
    """

    modes_covered: int
    high_quality: float
    reverse_kl: float
    jsd: float
    counts: Tensor


@dataclass
class StackedModes:
    """The stacked-MNIST mode metric.

    Attributes:
        modes: distinct predicted modes ``100 * d0 + 10 * d1 + d2`` among the samples (of 1000).
        kl: ``KL(p || uniform over 1000)`` in nats of the predicted-mode histogram ``p``.
        counts: samples per mode, ``[1000]`` (int64).
    """

    modes: int
    kl: float
    counts: Tensor


class DigitPredictor(Protocol):
    """Anything with ``predict(images [N, 1, 28, 28]) -> labels [N]`` (e.g. a
    ``dgm.metrics.classifier.FeatureClassifier``)."""

    def predict(self, images: Tensor) -> Tensor: ...


def kl_to_uniform(p: Tensor) -> float:
    """``KL(p || uniform) = sum_j p_j log(M p_j)`` in nats of a probability vector ``[M]``
    (terms with ``p_j = 0`` are 0)."""
    p = p.double()
    nz = p[p > 0]
    return float((nz * torch.log(nz * p.numel())).sum())


def jsd_to_uniform(p: Tensor) -> float:
    """Jensen-Shannon divergence ``KL(p || m) / 2 + KL(u || m) / 2``, ``m = (p + u) / 2``, in
    nats, of a probability vector ``[M]`` and the uniform ``u`` (terms with a zero first
    argument are 0)."""
    p = p.double()
    u = torch.full_like(p, 1.0 / p.numel())
    m = (p + u) / 2
    nz = p > 0
    kl_pm = (p[nz] * torch.log(p[nz] / m[nz])).sum()
    kl_um = (u * torch.log(u / m)).sum()
    return float(0.5 * kl_pm + 0.5 * kl_um)


def _stds(std: float | Tensor, centers: Tensor) -> Tensor:
    """``std`` as ``[M, D]`` doubles: a number, ``[M]`` (one per mode), or anything ``[M, D]``
    broadcasts from (``[M, 1]``, ``[1, D]``, ``[M, D]``)."""
    s = torch.as_tensor(std, dtype=torch.float64, device=centers.device)
    m, d = centers.shape
    if s.dim() == 1 and s.numel() == m:
        s = s[:, None]  # one standard deviation per mode
    try:
        if s.dim() not in (0, 2):
            raise RuntimeError
        s = s.expand(m, d)
    except RuntimeError:
        raise ValueError(
            f"std must be a number, one per mode [{m}], or per mode and coordinate [{m}, {d}]; "
            f"got shape {list(s.shape)}"
        ) from None
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError("std must be positive and finite")
    return s


def nearest_modes(samples: Tensor, centers: Tensor, std: float | Tensor) -> tuple[Tensor, Tensor]:
    """Each sample's nearest mode by Mahalanobis distance under the modes' diagonal
    covariances, and that distance: ``(index [N] int64, distance [N] float64)``.

    A tie goes to the first mode (PacGAN's loop keeps the first minimum).
    """
    if samples.dim() != 2 or centers.dim() != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"samples [N, D] and centers [M, D] must be 2-D with the same D, got "
            f"{list(samples.shape)} and {list(centers.shape)}"
        )
    if len(centers) == 0:
        raise ValueError("centers must hold at least one mode")
    c = centers.double()
    s = _stds(std, c)
    index, distance = [], []
    for chunk in samples.double().to(c.device).split(_CHUNK):
        d2 = (((chunk[:, None, :] - c[None]) / s[None]) ** 2).sum(-1)  # [n, M]
        best = d2.min(1)  # the first minimum on a tie
        index.append(best.indices)
        distance.append(best.values.sqrt())
    return torch.cat(index), torch.cat(distance)


def mode_coverage(
    samples: Tensor,
    centers: Tensor,
    std: float | Tensor,
    threshold: float = DEFAULT_THRESHOLD,
) -> ModeCoverage:
    """PacGAN's mode metric of ``samples`` ``[N, 2]`` from a mixture with modes ``centers``
    ``[M, 2]`` and standard deviations ``std`` (see the module's docstring).

    Args:
        samples: generated points (PacGAN scores ``PACGAN_SAMPLES`` = 2500); any ``D`` works.
        centers: the mode centres, e.g. ``dgm.data.MIXTURES["ring8"].centers``.
        std: each mode's standard deviation: a number (all modes and coordinates), a tensor
            ``[M]`` (per mode) or ``[M, 2]`` (per mode and coordinate), i.e. the square roots
            of the diagonal covariances.
        threshold: a sample is high quality when its Mahalanobis distance to its nearest
            mode is ``< threshold`` (PacGAN: 3).

    Raises:
        ValueError: no samples, shapes that do not fit, or a non-positive ``std`` or
            ``threshold``.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 standard deviations, got {threshold}")
    if samples.dim() != 2 or len(samples) == 0:
        raise ValueError(f"samples must be [N, D] with N >= 1, got shape {list(samples.shape)}")
    index, distance = nearest_modes(samples, centers, std)
    good = distance < threshold
    counts = torch.bincount(index[good], minlength=len(centers)).cpu()
    total = int(counts.sum())
    if total == 0:
        reverse_kl = jsd = math.nan
    else:
        q = counts.double() / total
        reverse_kl, jsd = kl_to_uniform(q), jsd_to_uniform(q)
    return ModeCoverage(
        modes_covered=int((counts > 0).sum()),
        high_quality=total / len(samples),
        reverse_kl=reverse_kl,
        jsd=jsd,
        counts=counts,
    )


@torch.no_grad()
def stacked_mnist_modes(
    images: Tensor, classifier: DigitPredictor, batch_size: int = 1000
) -> StackedModes:
    """Modes found among 1000, and ``KL(p || uniform)``, of stacked-MNIST ``images``.

    Args:
        images: ``[N, 3, 28, 28]`` (or ``[N, 3 * 784]``) floats in [0, 1]; the protocol
            scores ``STACKED_MNIST_SAMPLES`` = 26000 samples.
        classifier: labels one channel at a time, ``predict([n, 1, 28, 28]) -> [n]`` digits
            0..9 (``dgm.metrics.feature_classifier("mnist")``); images are moved to its
            device when it has parameters.
        batch_size: images per call.

    Raises:
        ValueError: images that are not three 28x28 channels, or predictions outside 0..9.
    """
    if images.dim() == 2 and images.shape[1] == 3 * 784:
        images = images.reshape(len(images), 3, 28, 28)
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 28, 28) or len(images) == 0:
        raise ValueError(
            f"stacked MNIST images must be [N, 3, 28, 28] (three digits as channels), got "
            f"shape {list(images.shape)}"
        )
    device = _device_of(classifier, images.device)
    labels = []
    for chunk in images.split(batch_size):
        chunk = chunk.to(device)
        digits = [classifier.predict(chunk[:, c : c + 1]).long() for c in range(3)]
        for d in digits:
            if d.shape != (len(chunk),) or int(d.min()) < 0 or int(d.max()) > 9:
                raise ValueError("the classifier must predict one digit 0..9 per image")
        labels.append((100 * digits[0] + 10 * digits[1] + digits[2]).cpu())
    counts = torch.bincount(torch.cat(labels), minlength=STACKED_MODES)
    p = counts.double() / counts.sum()
    return StackedModes(int((counts > 0).sum()), kl_to_uniform(p), counts)


def _device_of(module: object, default: torch.device) -> torch.device:
    """The device of ``module``'s first parameter (``default`` for anything without one)."""
    parameters = getattr(module, "parameters", None)
    if callable(parameters):
        for p in parameters():
            return p.device
    return default


__all__ = [
    "DEFAULT_THRESHOLD",
    "PACGAN_SAMPLES",
    "STACKED_MNIST_SAMPLES",
    "STACKED_MODES",
    "DigitPredictor",
    "ModeCoverage",
    "StackedModes",
    "jsd_to_uniform",
    "kl_to_uniform",
    "mode_coverage",
    "nearest_modes",
    "stacked_mnist_modes",
]
