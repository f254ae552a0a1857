"""FID, KID and PRDC on classifier features: torchmetrics wired in as it should be, PRDC against
brute force, and the numbers move the right way as samples get worse."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import Tensor

# the package exports the function sample_quality under the module's name
import dgm.metrics.quality as sq
from dgm.metrics import PRDC, ChannelFeatures, FeatureClassifier, fid, kid, prdc, sample_quality
from dgm.metrics.quality import features


def blobs(n: int, seed: int) -> Tensor:
    """Images [n, 1, 28, 28] in [0, 1]: one or two Gaussian blobs of random place and width
    (never blank: duplicate images would have a k-NN radius of 0)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(28.0)
    img = torch.zeros(n, 28, 28)
    for b in range(2):
        centre = 6 + 16 * torch.rand(n, 2, generator=g)
        width = 1.5 + 3 * torch.rand(n, 1, 1, generator=g)
        on = (torch.rand(n, 1, 1, generator=g) < 0.6).float() if b else torch.ones(n, 1, 1)
        dy = (grid[None, :, None] - centre[:, 0, None, None]) ** 2
        dx = (grid[None, None, :] - centre[:, 1, None, None]) ** 2
        img = torch.maximum(img, on * torch.exp(-(dx + dy) / (2 * width**2)))
    return img[:, None]


def noisy(x: Tensor, sigma: float, seed: int = 9) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def network() -> FeatureClassifier:
    """An untrained classifier (fixed random weights): features enough to compare sets."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return FeatureClassifier().freeze()


@pytest.fixture(scope="module")
def data() -> Tensor:
    return blobs(1200, 0)


class Spy(FeatureClassifier):
    """Records every batch that reaches forward."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, images: Tensor) -> Tensor:
        self.seen.append(images.clone())
        return super().forward(images)


def test_fid_passes_the_images_unchanged_and_runs_no_dummy_forward(data: Tensor) -> None:
    spy = Spy().freeze()
    real, fake = data[:300], data[300:500]
    value = fid(real, fake, spy, batch_size=128)
    assert [len(b) for b in spy.seen] == [128, 128, 44, 128, 72]  # no extra call
    assert torch.equal(torch.cat(spy.seen), torch.cat([real, fake]))  # [0, 1] floats as given
    assert all(b.dtype == torch.float32 for b in spy.seen)
    # the Frechet distance of the same features, by scipy
    fr, ff = (spy(x).double().numpy() for x in (real, fake))
    mu1, mu2 = fr.mean(0), ff.mean(0)
    s1, s2 = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    with warnings.catch_warnings():  # dead ReLU units: singular covariances
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert value == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_fid_is_near_zero_between_halves_and_grows_with_noise(
    network: FeatureClassifier, data: Tensor
) -> None:
    real, other = data[:600], data[600:]
    halves = fid(real, other, network)
    worse = [fid(real, noisy(other, s), network) for s in (0.1, 0.2, 0.4, 0.8)]
    assert worse == sorted(worse), worse
    assert halves < 0.1 * worse[0], (halves, worse)
    assert fid(real, real, network) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_near_zero_between_halves_and_grows_with_noise(
    network: FeatureClassifier, data: Tensor
) -> None:
    real, other = data[:600], data[600:]
    halves, halves_std = kid(real, other, network, subsets=20, subset_size=300)
    worse = [
        kid(real, noisy(other, s), network, subsets=20, subset_size=300)[0] for s in (0.1, 0.2, 0.4)
    ]
    assert worse == sorted(worse), worse
    assert abs(halves) < 0.1 * worse[0] and halves_std >= 0, (halves, worse)
    # seeded subsets: the same numbers twice, whatever the global random state
    torch.manual_seed(123)
    assert kid(real, other, network, subsets=20, subset_size=300) == (halves, halves_std)
    with pytest.raises(ValueError, match="subset_size"):
        kid(real[:100], other, network, subset_size=200)


def brute_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Naeem et al.'s definitions, written out with full distance matrices and loops."""
    d_rr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    d_ff = np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1))
    d_rf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))
    r_real = np.sort(d_rr, axis=1)[:, k]  # index 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    n, m = len(real), len(fake)
    precision = np.mean([any(d_rf[i, j] < r_real[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(d_rf[i, j] < r_fake[j] for j in range(m)) for i in range(n)])
    density = np.mean([sum(d_rf[i, j] < r_real[i] for i in range(n)) for j in range(m)]) / k
    coverage = np.mean([d_rf[i].min() < r_real[i] for i in range(n)])
    return float(precision), float(recall), float(density), float(coverage)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("chunk", [1 << 22, 37])
def test_prdc_against_brute_force(k: int, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sq, "_CHUNK_ELEMENTS", chunk)  # 37: a few rows per cdist call
    g = np.random.default_rng(k)
    real = g.standard_normal((70, 4))
    fake = 1.3 * g.standard_normal((55, 4)) + np.array([1.5, 0, 0, 0])
    got = prdc(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), k)
    expected = brute_prdc(real.astype(np.float32).astype(np.float64), fake.astype(np.float32), k)
    assert (got.precision, got.recall, got.density, got.coverage) == pytest.approx(expected)
    assert 0 < got.precision < 1 and 0 < got.recall < 1 and 0 < got.coverage < 1


def test_prdc_of_identical_sets() -> None:
    x = torch.randn(200, 8)
    p = prdc(x, x.clone(), 5)
    assert p.precision == 1.0 and p.recall == 1.0 and p.coverage == 1.0
    assert p.density >= 1.0  # every point lies in its own neighbourhood and its k neighbours'
    far = prdc(x, x + 100.0, 5)
    assert far == PRDC(0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="at least 6"):
        prdc(x[:5], x, 5)
    with pytest.raises(ValueError, match="differ in size"):
        prdc(x, x[:, :3], 5)


def test_sample_quality_keys_and_values(network: FeatureClassifier, data: Tensor) -> None:
    real, fake = data[:400], noisy(data[400:800], 0.1)
    out = sample_quality(real, fake, network, kid_subsets=10, kid_subset_size=200)
    assert list(out) == [
        "fid_classifier",
        "kid_classifier",
        "kid_classifier_std",
        "precision",
        "recall",
        "density",
        "coverage",
    ]
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["fid_classifier"] == pytest.approx(fid(real, fake, network), rel=1e-9)
    kid_mean, kid_std = kid(real, fake, network, subsets=10, subset_size=200)
    assert out["kid_classifier"] == pytest.approx(kid_mean, rel=1e-9)
    assert out["kid_classifier_std"] == pytest.approx(kid_std, rel=1e-9)
    p = prdc(features(real, network), features(fake, network), 5)
    assert (out["precision"], out["recall"], out["density"], out["coverage"]) == (
        p.precision,
        p.recall,
        p.density,
        p.coverage,
    )
    # fewer points than KID's subset size: the subsets shrink to fit
    small = sample_quality(real[:50], fake[:60], network, kid_subsets=5)
    assert math.isfinite(small["kid_classifier"])
    same = sample_quality(real, real, network, kid_subsets=5, kid_subset_size=200)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["fid_classifier"] == pytest.approx(0.0, abs=1e-6)


def test_three_channel_images_through_channel_features(network: FeatureClassifier) -> None:
    three = ChannelFeatures(network, 3)
    real = blobs(300, 1).reshape(100, 3, 28, 28)
    fake = noisy(blobs(300, 2).reshape(100, 3, 28, 28), 0.3)
    out = sample_quality(real, fake, three, kid_subsets=5, kid_subset_size=50)
    assert out["fid_classifier"] > 0 and out["precision"] < 1
    with pytest.raises(ValueError, match="28x28 grayscale"):
        fid(real, fake, network)  # three channels into the one-channel classifier
