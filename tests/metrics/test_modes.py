"""PacGAN's mode metric and stacked MNIST's, on samples whose answer is known."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from torch import Tensor, nn

from dgm.data import MIXTURES
from dgm.metrics import STACKED_MNIST_SAMPLES, mode_coverage, stacked_mnist_modes
from dgm.metrics.modes import PACGAN_SAMPLES, jsd_to_uniform, kl_to_uniform

RING = MIXTURES["ring8"]


def at_modes(counts: list[int], centers: Tensor) -> Tensor:
    """``counts[j]`` samples exactly at centre ``j``."""
    return torch.cat([centers[j].expand(n, -1) for j, n in enumerate(counts)])


def test_protocol_sizes() -> None:
    assert PACGAN_SAMPLES == 2500 and STACKED_MNIST_SAMPLES == 26000


def test_every_mode_hit_at_its_centre() -> None:
    c = RING.centers
    m = mode_coverage(at_modes([5] * 8, c), c, RING.std)
    assert m.modes_covered == 8 and m.high_quality == 1.0
    assert m.reverse_kl == pytest.approx(0.0, abs=1e-12) and m.jsd == pytest.approx(0, abs=1e-12)
    assert m.counts.tolist() == [5] * 8


def test_one_mode_only() -> None:
    c = RING.centers
    m = mode_coverage(at_modes([0, 0, 0, 7, 0, 0, 0, 0], c), c, RING.std)
    assert m.modes_covered == 1 and m.high_quality == 1.0
    assert m.reverse_kl == pytest.approx(math.log(8), rel=1e-12)
    # JSD((1, 0, ..., 0), uniform): the mixture is (9/16, 1/16, ...)
    kl_qm = math.log(16 / 9)
    kl_um = math.log((1 / 8) / (9 / 16)) / 8 + 7 / 8 * math.log(2)
    assert m.jsd == pytest.approx(0.5 * kl_qm + 0.5 * kl_um, rel=1e-12)
    assert m.counts.tolist() == [0, 0, 0, 7, 0, 0, 0, 0]


def test_within_three_standard_deviations_is_mahalanobis_below_three() -> None:
    s = RING.std
    c = RING.centers
    base = c[0].double()
    offsets = torch.tensor(
        [
            [2.999 * s, 0.0],  # inside
            [0.0, -2.999 * s],  # inside
            [3.001 * s, 0.0],  # just outside
            [2.5 * s, 2.5 * s],  # each coordinate within 3 sd, but distance 3.54: outside
            [2.1 * s, 2.1 * s],  # distance 2.97: inside
        ],
        dtype=torch.float64,
    )
    m = mode_coverage(base + offsets, c.double(), s)
    assert m.counts.tolist() == [3, 0, 0, 0, 0, 0, 0, 0]
    assert m.high_quality == pytest.approx(3 / 5)
    # the threshold is a parameter; exactly on it is outside (PacGAN: min_dis < dis_thre)
    one = torch.zeros(1, 2, dtype=torch.float64)
    on_edge = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    assert mode_coverage(on_edge, one, 1.0, threshold=2.0).counts.sum() == 0
    assert mode_coverage(on_edge, one, 1.0, threshold=2.0001).counts.sum() == 1


def test_nearest_mode_is_mahalanobis_not_euclidean() -> None:
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    std = torch.tensor([0.01, 1.0])  # per mode
    x = torch.tensor([[0.05, 0.0]])  # Euclidean: mode 0; 5 sd from it, 0.95 sd from mode 1
    m = mode_coverage(x, centers, std)
    assert m.counts.tolist() == [0, 1]


def test_per_coordinate_standard_deviations() -> None:
    centers = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    x = torch.tensor([[0.0, 0.25]])
    assert mode_coverage(x, centers, 0.01).counts.tolist() == [0, 0]
    wide = torch.tensor([[0.01, 0.1], [0.01, 0.1]])  # [M, 2]: 2.5 sd in y
    assert mode_coverage(x, centers, wide).counts.tolist() == [1, 0]
    with pytest.raises(ValueError, match="one per mode"):
        mode_coverage(x, centers, torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        mode_coverage(x, centers, 0.0)


def test_divergences_against_a_hand_computation() -> None:
    c = RING.centers
    counts = [4, 2, 1, 1, 0, 0, 0, 0]
    far = torch.tensor([[10.0, 10.0], [0.0, 0.0]])  # low quality: not in the histogram
    m = mode_coverage(torch.cat([at_modes(counts, c), far]), c, RING.std)
    assert m.counts.tolist() == counts and m.modes_covered == 4
    assert m.high_quality == pytest.approx(8 / 10)
    q = np.array(counts) / 8
    by_hand = sum(p * math.log(p * 8) for p in q if p > 0)
    assert m.reverse_kl == pytest.approx(by_hand, rel=1e-12)
    # PacGAN logs scipy.stats.entropy(q): the reverse KL is log M minus it
    assert m.reverse_kl == pytest.approx(math.log(8) - entropy(q), rel=1e-12)
    u = np.full(8, 1 / 8)
    mid = (q + u) / 2
    jsd = 0.5 * sum(p * math.log(p / r) for p, r in zip(q, mid, strict=True) if p > 0)
    jsd += 0.5 * sum(p * math.log(p / r) for p, r in zip(u, mid, strict=True))
    assert m.jsd == pytest.approx(jsd, rel=1e-12)
    assert m.jsd == pytest.approx(jensenshannon(q, u) ** 2, rel=1e-9)  # scipy: sqrt, nats


def test_no_high_quality_sample() -> None:
    c = RING.centers
    m = mode_coverage(torch.full((3, 2), 7.0), c, RING.std)
    assert m.modes_covered == 0 and m.high_quality == 0.0
    assert math.isnan(m.reverse_kl) and math.isnan(m.jsd)
    assert m.counts.tolist() == [0] * 8


def test_samples_from_the_mixture_itself_cover_it() -> None:
    from dgm.data import mixture

    for name in ("ring8", "grid25"):
        mix = MIXTURES[name]
        m = mode_coverage(mixture(name, PACGAN_SAMPLES, seed=3), mix.centers, mix.std)
        assert m.modes_covered == mix.num_modes
        # P(chi^2_2 < 9) = 1 - exp(-4.5) = 0.9889
        assert m.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)
        assert m.reverse_kl < 0.02


def test_bad_inputs() -> None:
    c = RING.centers
    with pytest.raises(ValueError, match="N >= 1"):
        mode_coverage(torch.zeros(0, 2), c, 0.1)
    with pytest.raises(ValueError, match="same D"):
        mode_coverage(torch.zeros(4, 3), c, 0.1)
    with pytest.raises(ValueError, match="threshold"):
        mode_coverage(torch.zeros(4, 2), c, 0.1, threshold=0.0)


def test_divergence_helpers() -> None:
    assert kl_to_uniform(torch.full((4,), 0.25)) == pytest.approx(0.0, abs=1e-15)
    assert jsd_to_uniform(torch.tensor([1.0, 0.0])) == pytest.approx(
        0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2), rel=1e-12
    )


class ByIntensity(nn.Module):
    """A fake digit classifier: an image filled with d / 9 is the digit d."""

    def predict(self, images: Tensor) -> Tensor:
        assert images.shape[1:] == (1, 28, 28)
        return (images.mean((1, 2, 3)) * 9).round().long()


def stacked(digits: list[tuple[int, int, int]]) -> Tensor:
    v = torch.tensor(digits, dtype=torch.float32) / 9
    return v[:, :, None, None].expand(-1, -1, 28, 28).contiguous()


def test_stacked_modes_with_known_predictions() -> None:
    digits = [(1, 2, 3), (1, 2, 3), (0, 0, 0), (9, 9, 9), (4, 5, 6), (1, 2, 3)]
    s = stacked_mnist_modes(stacked(digits), ByIntensity(), batch_size=4)
    assert s.modes == 4
    assert s.counts.shape == (1000,) and s.counts.sum() == 6
    assert s.counts[123] == 3 and s.counts[0] == 1 and s.counts[999] == 1 and s.counts[456] == 1
    p = np.array([3, 1, 1, 1]) / 6
    assert s.kl == pytest.approx(float((p * np.log(p * 1000)).sum()), rel=1e-12)
    flat = stacked_mnist_modes(stacked(digits).reshape(6, -1), ByIntensity())
    assert torch.equal(flat.counts, s.counts)


def test_stacked_modes_all_thousand() -> None:
    digits = [(i // 100, i // 10 % 10, i % 10) for i in range(1000)]
    s = stacked_mnist_modes(stacked(digits), ByIntensity())
    assert s.modes == 1000 and s.kl == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(s.counts, torch.ones(1000, dtype=torch.long))


def test_stacked_modes_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[N, 3, 28, 28\]"):
        stacked_mnist_modes(torch.zeros(2, 1, 28, 28), ByIntensity())
    with pytest.raises(ValueError, match=r"\[N, 3, 28, 28\]"):
        stacked_mnist_modes(torch.zeros(2, 3, 32, 32), ByIntensity())
