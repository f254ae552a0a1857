"""The Gaussian mixtures of GAN mode-collapse experiments: modes, weights, spread, splits."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from dgm.data import DATASETS, MIXTURES, mixture


def nearest_mode(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), centers.double()).argmin(1)


def chi_square(counts: torch.Tensor) -> float:
    """Pearson's statistic of ``counts`` against equal weights."""
    expected = counts.sum().item() / len(counts)
    return float(((counts.double() - expected) ** 2 / expected).sum())


def uniform_bound(modes: int) -> float:
    """The 99.9% point of chi-square with ``modes - 1`` degrees of freedom."""
    return float(chi2.ppf(0.999, modes - 1))


def test_ring8_has_eight_distinct_equally_spaced_modes_on_the_unit_circle() -> None:
    ring = MIXTURES["ring8"]
    c = ring.centers.double()
    assert c.shape == (8, 2) and ring.std == 0.01 and ring.num_modes == 8
    torch.testing.assert_close(c.norm(dim=1), torch.ones(8, dtype=torch.float64))
    # no repeated endpoint: every pair of neighbours is 2 sin(pi / 8) apart, none closer
    gaps = torch.cdist(c, c) + 10 * torch.eye(8, dtype=torch.float64)
    assert gaps.min() == pytest.approx(2 * math.sin(math.pi / 8), abs=1e-6)
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(
        angles.sort().values, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-6, rtol=0
    )
    torch.testing.assert_close(c[0], torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_grid25_modes_are_exactly_the_grid() -> None:
    grid = MIXTURES["grid25"]
    assert grid.std == 0.05 and grid.num_modes == 25
    assert grid.centers.shape == (25, 2)
    expected = set(itertools.product((-4.0, -2.0, 0.0, 2.0, 4.0), repeat=2))
    assert set(map(tuple, grid.centers.tolist())) == expected
    # the table is not shared state: a caller that edits its tensor edits a copy
    grid.centers.zero_()
    assert set(map(tuple, grid.centers.tolist())) == expected


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_points_cover_the_modes_uniformly_with_the_stated_spread(name: str) -> None:
    mix = MIXTURES[name]
    x = mixture(name, 50000, seed=1)
    assert x.shape == (50000, 2) and x.dtype == torch.float32
    centers = mix.centers
    modes = nearest_mode(x, centers)
    counts = torch.bincount(modes, minlength=mix.num_modes)
    assert chi_square(counts) < uniform_bound(mix.num_modes), counts.tolist()
    residuals = x.double() - centers.double()[modes]
    # no point strays: the modes are >= 0.76 apart, each point is within 6 std of its centre
    assert residuals.norm(dim=1).max() < 6 * mix.std
    for m in range(mix.num_modes):
        r = residuals[modes == m]
        std = r.std(0)
        assert torch.allclose(std, torch.full_like(std, mix.std), rtol=0.08), (m, std.tolist())
        assert r.mean(0).abs().max() < 4 * mix.std / math.sqrt(len(r))


def test_the_uniformity_bound_rejects_a_ring_with_a_repeated_endpoint() -> None:
    """The check above fails for the unrolled-GAN demo's ring (7 distinct modes)."""
    g = np.random.default_rng(0)
    thetas = np.linspace(0, 2 * np.pi, 8)  # endpoint=True: the last angle is the first
    buggy = np.stack([np.cos(thetas), np.sin(thetas)], 1)[g.integers(0, 8, 50000)]
    modes = nearest_mode(torch.from_numpy(buggy), MIXTURES["ring8"].centers)
    counts = torch.bincount(modes, minlength=8)
    assert (counts == 0).sum() == 1
    assert chi_square(counts) > uniform_bound(8)


def test_mixture_is_a_function_of_its_seed() -> None:
    a, b, c = mixture("ring8", 500, 3), mixture("ring8", 500, 3), mixture("ring8", 500, 4)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    # different mixtures from one seed are different data
    assert not torch.allclose(mixture("grid25", 500, 3), a)


def test_mixture_rejects_unknown_names_and_empty_sizes() -> None:
    with pytest.raises(ValueError, match=r"unknown mixture 'ring7'; choose one of ring8, grid25"):
        mixture("ring7", 10)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        mixture("grid25", 0)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_data_sets_load_with_split_sizes_and_their_modes(name: str) -> None:
    entry = DATASETS[name]
    assert (entry.kind, entry.shape, entry.levels, entry.binarize) == ("points", (2,), None, False)
    assert (entry.train_size, entry.factors, entry.download) == (100000, False, "none")
    s = DATASETS.build(name, seed=5, train_points=300, valid_points=40, test_points=70)
    assert (s.train.shape, s.valid.shape, s.test.shape) == ((300, 2), (40, 2), (70, 2))
    assert s.image_shape == (2,) and s.data_size == 2
    torch.testing.assert_close(s.info["mode_centers"], MIXTURES[name].centers)
    assert s.info["mode_std"] == MIXTURES[name].std
    torch.testing.assert_close(s.train, mixture(name, 300, 5))
    # three independent streams: the splits share no point
    pooled = torch.cat([s.train, s.valid, s.test])
    assert len(torch.unique(pooled, dim=0)) == len(pooled)
    again = DATASETS.build(name, seed=5, train_points=300, valid_points=40, test_points=70)
    torch.testing.assert_close(again.test, s.test)
    full = DATASETS.build(name, seed=0, train_points=None, valid_points=1, test_points=1)
    assert full.train.shape == (100000, 2)
