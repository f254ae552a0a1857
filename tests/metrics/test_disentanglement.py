"""Disentanglement metrics on a toy factor data set whose ideal code is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

from dgm.data.factors import FactorData
from dgm.metrics.disentanglement import (
    _disentanglement_completeness,
    _modularity_per_code,
    beta_vae_score,
    dci,
    discretize,
    factor_entropies,
    factor_vae_score,
    mig,
    mig_sampled,
    modularity_explicitness,
    mutual_information_matrix,
    sample_codes,
    sap,
)

SIZES = (3, 4, 5)


class Toy:
    """Three factors of sizes (3, 4, 5); an observation is the factors scaled to [0, 1]."""

    factor_names: tuple[str, ...] = ("a", "b", "c")
    factor_sizes: tuple[int, ...] = SIZES
    image_shape: tuple[int, ...] = (3,)

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        return factors.double() / (torch.tensor(SIZES, dtype=torch.float64) - 1)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def fast_trees() -> GradientBoostingClassifier:
    return GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)


@pytest.fixture(scope="module")
def toy_codes() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    codes, factors = sample_codes(identity, Toy(), 1000, g)
    codes_test, factors_test = sample_codes(identity, Toy(), 500, g)
    return codes, factors, codes_test, factors_test


def test_toy_is_factor_data() -> None:
    assert isinstance(Toy(), FactorData)


def test_discretize_is_histogram_binning() -> None:
    codes = np.array([[0.0, 5.0], [0.5, 5.0], [1.0, 5.0], [0.26, 5.0]])
    out = discretize(codes, bins=2)  # edges 0, 0.5, 1: bins [0, .5) -> 1, [.5, 1] -> 2
    np.testing.assert_array_equal(out[:, 0], [1, 2, 2, 1])
    assert np.unique(out[:, 1]).size == 1  # a constant dimension is one bin
    assert discretize(np.linspace(0, 1, 100)[:, None], bins=20).max() == 20


def test_mig_hand_computed() -> None:
    v0 = [0, 0, 0, 0, 1, 1, 1, 1]
    v1 = [0, 1, 0, 1, 0, 1, 0, 1]
    z0 = v0  # a copy of v0
    z1 = [0, 0, 0, 1, 1, 1, 1, 1]
    z2 = [0, 1, 0, 1, 0, 1, 1, 1]
    codes = np.array([z0, z1, z2], dtype=float).T * 3.0 - 1.0  # two values per dimension
    factors = np.array([v0, v1]).T
    # I = sum_xy n_xy/N log(N n_xy / (n_x n_y)), from the contingency counts:
    # z1 vs v0: z1=0 -> v0 (3, 0), z1=1 -> v0 (1, 4); n_z = (3, 5), n_v = (4, 4).
    a = (
        3 / 8 * math.log(8 * 3 / (3 * 4))
        + 1 / 8 * math.log(8 / (5 * 4))
        + 4 / 8 * math.log(8 * 4 / (5 * 4))
    )
    # z1 vs v1: z1=0 -> v1 (2, 1), z1=1 -> v1 (2, 3).
    b = (
        2 / 8 * math.log(8 * 2 / (3 * 4))
        + 1 / 8 * math.log(8 / (3 * 4))
        + 2 / 8 * math.log(8 * 2 / (5 * 4))
        + 3 / 8 * math.log(8 * 3 / (5 * 4))
    )
    # z2 vs v0: (2, 1) / (2, 3) again -> b; z2 vs v1: (3, 0) / (1, 4) -> a.
    # z0 vs v0 = log 2 (a copy), z0 vs v1 = 0 (each cell of z0 holds v1 half and half).
    expected_mi = np.array([[math.log(2), 0.0], [a, b], [b, a]])
    h = math.log(2)
    expected = ((math.log(2) - a) / h + (a - b) / h) / 2  # v1: top z2 (a), second z1 (b)

    result = mig(codes, factors)
    np.testing.assert_allclose(result.mutual_information, expected_mi, atol=1e-12, rtol=0)
    np.testing.assert_allclose(result.normalizer, [h, h], atol=1e-12, rtol=0)
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert result.convention == "disentanglement_lib"
    np.testing.assert_allclose(
        mutual_information_matrix(discretize(codes), factors), expected_mi, atol=1e-12, rtol=0
    )


def test_factor_entropies_are_empirical() -> None:
    f = np.array([[0, 0], [0, 1], [0, 2], [1, 3]])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(factor_entropies(f), [expected, math.log(4)], atol=1e-12)


def test_identity_code_scores_near_one(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, codes_test, factors_test = toy_codes
    assert mig(codes, factors).score > 0.99
    g = torch.Generator().manual_seed(1)
    sampled = mig_sampled(codes, torch.full_like(codes, 0.05), factors, SIZES, generator=g)
    assert sampled.convention == "Chen et al. 2018"
    assert sampled.score > 0.97
    np.testing.assert_allclose(sampled.normalizer, np.log(SIZES))

    d = dci(codes, factors, codes_test, factors_test, model=fast_trees)
    assert d.disentanglement > 0.95 and d.completeness > 0.95
    assert d.informativeness_test > 0.99
    assert d.importance_matrix.shape == (3, 3)

    m = modularity_explicitness(codes, factors, codes_test, factors_test)
    assert m.modularity > 0.99
    assert m.explicitness_train > 0.99 and m.explicitness_test > 0.99

    # SAP's one-dimensional linear SVM (C=0.01) cannot carve out the middle values of a
    # factor, so an ideal code scores well below 1 here; it is still far above random.
    s = sap(codes, factors, codes_test, factors_test)
    noise = torch.randn(codes.shape, generator=g)
    s_random = sap(noise, factors, torch.randn(codes_test.shape, generator=g), factors_test)
    assert s.score > 0.15 and s_random.score < 0.05
    assert np.all(np.argmax(s.score_matrix, axis=0) == [0, 1, 2])
    continuous = sap(codes, factors, codes_test, factors_test, continuous=True)
    assert continuous.score > 0.95


def test_default_gradient_boosting_dci_tiny(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, codes_test, factors_test = toy_codes
    d = dci(codes[:150], factors[:150], codes_test[:100], factors_test[:100])
    assert d.disentanglement > 0.99 and d.completeness > 0.99
    assert d.informativeness_train == 1.0 and d.informativeness_test > 0.95


def test_constant_and_random_codes_score_near_zero(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, codes_test, factors_test = toy_codes
    g = torch.Generator().manual_seed(2)
    constant = torch.zeros_like(codes)
    random = torch.randn(codes.shape, generator=g)
    random_test = torch.randn(codes_test.shape, generator=g)

    assert mig(constant, factors).score == 0.0
    assert mig(random, factors).score < 0.05
    sampled = mig_sampled(random, torch.full_like(random, 0.05), factors, SIZES, generator=g)
    assert sampled.score < 0.05
    # Identical posteriors: H(z_j) and H(z_j | v_k) agree up to rounding, which can leave
    # them a hair below 0 before the clamp.
    flat = mig_sampled(constant, torch.ones_like(constant), factors, SIZES, generator=g)
    assert np.all(flat.mutual_information >= 0) and flat.score == pytest.approx(0.0, abs=1e-12)
    zero = dci(constant, factors, torch.zeros_like(codes_test), factors_test, model=fast_trees)
    assert np.all(zero.importance_matrix == 0)
    assert zero.disentanglement == 0.0 and zero.completeness == 0.0
    assert dci(random, factors, random_test, factors_test, model=fast_trees).disentanglement < 0.1
    assert modularity_explicitness(constant, factors, codes_test, factors_test).modularity == 0.0


def test_duplicated_factor_loses_its_gap(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, _, _ = toy_codes
    dup = torch.cat([codes[:, :1], codes], 1)  # factor 0 in dimensions 0 and 1
    result = mig(dup, factors)
    assert result.per_factor[0] == 0.0
    assert np.all(result.per_factor[1:] > 0.99)
    g = torch.Generator().manual_seed(3)
    sampled = mig_sampled(dup, torch.full_like(dup, 0.05), factors, SIZES, generator=g)
    assert sampled.per_factor[0] < 0.05
    assert np.all(sampled.per_factor[1:] > 0.95)


def test_permuting_code_dimensions_changes_nothing(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, codes_test, factors_test = toy_codes
    g = torch.Generator().manual_seed(4)
    mixing = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mixed, mixed_test = codes @ mixing, codes_test @ mixing  # an entangled code
    perm = [2, 0, 3, 1]
    p, p_test = mixed[:, perm], mixed_test[:, perm]

    a, b = mig(mixed, factors), mig(p, factors)
    assert a.score == b.score
    np.testing.assert_array_equal(a.per_factor, b.per_factor)
    np.testing.assert_array_equal(a.mutual_information[perm], b.mutual_information)

    scale = torch.full_like(mixed, 0.05)
    sa = mig_sampled(mixed, scale, factors, SIZES, generator=torch.Generator().manual_seed(5))
    sb = mig_sampled(p, scale, factors, SIZES, generator=torch.Generator().manual_seed(5))
    # the posterior draws land on other dimensions, so only up to Monte Carlo error (~0.03)
    assert sa.score == pytest.approx(sb.score, abs=0.06)
    np.testing.assert_allclose(sb.mutual_information, sa.mutual_information[perm], atol=0.06)

    da = dci(mixed, factors, mixed_test, factors_test, model=fast_trees)
    db = dci(p, factors, p_test, factors_test, model=fast_trees)
    # Trees visit features in a random order (seeded) and break ties between equally good
    # splits by it, so a permutation moves the scores by classifier randomness only.
    assert db.disentanglement == pytest.approx(da.disentanglement, abs=0.02)
    assert db.completeness == pytest.approx(da.completeness, abs=0.02)
    np.testing.assert_allclose(db.importance_matrix, da.importance_matrix[perm], atol=0.03)

    assert sap(p, factors, p_test, factors_test).score == pytest.approx(
        sap(mixed, factors, mixed_test, factors_test).score, abs=1e-12
    )
    ma = modularity_explicitness(mixed, factors, mixed_test, factors_test)
    mb = modularity_explicitness(p, factors, p_test, factors_test)
    assert mb.modularity == pytest.approx(ma.modularity, abs=1e-12)
    assert mb.explicitness_test == pytest.approx(ma.explicitness_test, abs=1e-6)

    kwargs = {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500}
    fa = factor_vae_score(lambda x: x @ mixing, Toy(), torch.Generator().manual_seed(6), **kwargs)
    fb = factor_vae_score(
        lambda x: (x @ mixing)[:, perm], Toy(), torch.Generator().manual_seed(6), **kwargs
    )
    assert (fa.train_accuracy, fa.eval_accuracy) == (fb.train_accuracy, fb.eval_accuracy)
    np.testing.assert_array_equal(fa.train_votes[:, perm], fb.train_votes)


def test_dci_from_importance_by_hand() -> None:
    # Each code serves one factor, a third code is unused: D = C = 1.
    d, c, per_code, _ = _disentanglement_completeness(np.array([[1.0, 0.0], [0.0, 1.0], [0, 0]]))
    assert d == pytest.approx(1.0, abs=1e-8) and c == pytest.approx(1.0, abs=1e-8)
    assert per_code[2] == pytest.approx(0.0, abs=1e-8)  # a zero row is uniform
    # One code serves both factors: not disentangled (row uniform), but complete.
    d, c, _, _ = _disentanglement_completeness(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert d == pytest.approx(0.0, abs=1e-8) and c == pytest.approx(1.0, abs=1e-8)
    # Importance 0.5 / 0.25 / 0.25 on one factor: completeness 1 - H / log 3.
    d, c, _, per_factor = _disentanglement_completeness(np.array([[0.5], [0.25], [0.25]]))
    h = -(0.5 * math.log(0.5) + 0.5 * math.log(0.25))
    assert per_factor[0] == pytest.approx(1 - h / math.log(3), abs=1e-8)
    assert d == 1.0  # one factor: every code is trivially dedicated to it


def test_modularity_by_hand() -> None:
    mi = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [3.0, 1.5, 0.0]])
    # code 3: theta^2 = 9, the rest sums to 2.25: deviation 2.25 / (9 * 2) = 0.125.
    np.testing.assert_allclose(_modularity_per_code(mi), [1.0, 0.5, 0.0, 0.875], atol=1e-12)


def test_mig_sampled_matches_direct_formula() -> None:
    g = torch.Generator().manual_seed(7)
    n, d = 40, 2
    unbalanced = torch.tensor([0] * 5 + [1] * 10 + [2] * 10 + [3] * 15)
    factors = torch.stack([torch.arange(n) % 2, unbalanced], 1)
    loc = torch.randn(n, d, generator=g, dtype=torch.float64) + factors[:, :1]
    scale = 0.3 + torch.rand(n, d, generator=g, dtype=torch.float64)
    result = mig_sampled(loc, scale, factors, (2, 4), generator=torch.Generator().manual_seed(8))
    z = loc + scale * torch.randn(
        n, d, generator=torch.Generator().manual_seed(8), dtype=torch.float64
    )

    def entropy(rows: torch.Tensor) -> torch.Tensor:  # all points' draws, all points
        q = torch.distributions.Normal(loc[rows][:, None], scale[rows][:, None])
        log_q = q.log_prob(z[rows][None])  # [points, draws, D]
        return (math.log(len(rows)) - torch.logsumexp(log_q, 0)).mean(0)

    everything = torch.arange(n)
    expected = np.zeros((d, 2))
    for k, size in enumerate((2, 4)):
        cond = torch.zeros(d, dtype=torch.float64)
        for a in range(size):  # H(z | v_k) = sum_a p(v_k = a) H(z | v_k = a), p empirical
            rows = torch.nonzero(factors[:, k] == a)[:, 0]
            cond = cond + entropy(rows) * len(rows) / n
        expected[:, k] = (entropy(everything) - cond).clamp(min=0).numpy()
    np.testing.assert_allclose(result.mutual_information, expected, atol=1e-10)
    normed = expected / np.log([2, 4])
    top = -np.sort(-normed, axis=0)
    assert result.score == pytest.approx(float(np.mean(top[0] - top[1])), abs=1e-10)

    small = mig_sampled(
        loc, scale, factors, (2, 4), generator=torch.Generator().manual_seed(8), chunk=7
    )
    np.testing.assert_allclose(small.mutual_information, result.mutual_information, atol=1e-10)
    part = mig_sampled(
        loc, scale, factors, (2, 4), factors_used=(1,), generator=torch.Generator().manual_seed(8)
    )
    assert part.factors_used == (1,)
    np.testing.assert_allclose(part.mutual_information[:, 0], result.mutual_information[:, 1])


def test_factor_vae_and_beta_vae_scores() -> None:
    kwargs = {"num_train": 300, "num_eval": 200}
    g = torch.Generator().manual_seed(9)
    good = factor_vae_score(identity, Toy(), g, num_variance_estimate=500, **kwargs)
    assert good.eval_accuracy == 1.0 and good.score == 1.0 and good.num_active_dims == 3
    assert good.train_votes.sum() == 300 and good.eval_votes.sum() == 200

    def noise(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], 3, generator=g)

    chance = factor_vae_score(noise, Toy(), g, num_variance_estimate=500, **kwargs)
    assert chance.eval_accuracy < 0.5  # chance is 1/3

    collapsed = factor_vae_score(lambda x: torch.zeros(x.shape[0], 3), Toy(), g, **kwargs)
    assert collapsed.all_pruned and collapsed.eval_accuracy == 0.0
    assert collapsed.num_active_dims == 0

    # disentanglement_lib prunes on the standard deviation: std >= 0.05 is active. Dimension
    # 1 has std 0.11 (variance 0.012: pruned by a variance rule), dimension 2 std 0.035.
    half = factor_vae_score(lambda x: x * torch.tensor([1.0, 0.3, 0.1]), Toy(), g, **kwargs)
    np.testing.assert_array_equal(half.active_dims, [True, True, False])
    assert half.eval_votes[:, 2].sum() == 0

    assert beta_vae_score(identity, Toy(), g, **kwargs).eval_accuracy > 0.95
    assert beta_vae_score(noise, Toy(), g, **kwargs).eval_accuracy < 0.5


def test_bad_inputs_raise_clear_errors(toy_codes: tuple[torch.Tensor, ...]) -> None:
    codes, factors, codes_test, factors_test = toy_codes
    with pytest.raises(ValueError, match="same number of rows"):
        mig(codes[:10], factors[:9])
    with pytest.raises(ValueError, match="same number of rows"):
        dci(codes, factors[:10], codes_test, factors_test, model=fast_trees)
    with pytest.raises(ValueError, match="same number of rows"):
        mig_sampled(codes[:10], torch.ones(10, 3), factors[:9], SIZES)
    with pytest.raises(ValueError, match=r"codes must be 2-D \[N, D\]"):
        mig(codes[:, 0], factors)
    with pytest.raises(ValueError, match=r"factors_train must be 2-D \[N, F\]"):
        sap(codes, factors[:, 0], codes_test, factors_test)
    with pytest.raises(ValueError, match="same dimension"):
        modularity_explicitness(codes, factors, codes_test[:, :2], factors_test)
    with pytest.raises(ValueError, match="zero entropy"):
        mig(codes, torch.cat([factors, torch.zeros(len(factors), 1, dtype=torch.long)], 1))
    with pytest.raises(ValueError, match="D >= 2"):
        mig(codes[:, :1], factors)
    with pytest.raises(ValueError, match="scale must be > 0"):
        mig_sampled(codes, torch.zeros_like(codes), factors, SIZES)
    with pytest.raises(ValueError, match="factor indices must lie"):
        mig_sampled(codes, torch.ones_like(codes), factors, (3, 4, 4))
    with pytest.raises(ValueError, match="integer factor indices"):
        mig(codes, factors + 0.5)
    for metric in (factor_vae_score, beta_vae_score):
        with pytest.raises(ValueError, match="needs a data set with ground-truth factors"):
            metric(identity, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a data set with ground-truth factors"):
        sample_codes(identity, torch.zeros(3, 3), 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"represent must map 10 observations to codes \[10, D\]"):
        sample_codes(lambda x: x[:, 0], Toy(), 10)
