"""beta-TCVAE: the minibatch estimators of log q(z) against exact aggregate posteriors."""

import itertools
import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

import dgm
from dgm.models.vae import VAEGuide, VAEModel
from dgm.objectives.total_correlation import (
    BetaTCVAE,
    _column0_weight_matrix,
    diagonal_gaussian_site,
    importance_weight_matrix,
    log_density_matrix,
    log_qz_estimates,
    tc_decomposition,
)


def programs(posterior: str = "diagonal") -> tuple[VAEModel, VAEGuide]:
    model = VAEModel(6, (3,), ((8,),), "gaussian")
    return model, VAEGuide(6, (3,), ((8,),), posterior=posterior)


def exact_log_q(
    z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log q(z) and sum_d log q(z_d) of the data set's mixture (1/N) sum_n q(z | n): [R]."""
    full = log_density_matrix(z, loc, scale)  # [R, N, D]
    n = loc.shape[0]
    log_qz = torch.logsumexp(full.sum(-1), -1) - math.log(n)
    log_qzd = (torch.logsumexp(full, -2) - math.log(n)).sum(-1)
    return log_qz, log_qzd


def row_estimate(
    log_w: torch.Tensor,
    z: torch.Tensor,
    loc: torch.Tensor,
    scale: torch.Tensor,
    rows: torch.Tensor,
) -> torch.Tensor:
    """log sum_j W[r, j] q(z_r | x_j) for one row r of each batch: [R]."""
    mat = log_density_matrix(z, loc, scale).sum(-1)  # [R, M, M]
    r = torch.arange(len(rows))
    return torch.logsumexp(log_w[rows] + mat[r, rows], -1)


def test_weight_matrix_has_the_stratified_weights_on_the_diagonal() -> None:
    n, m = 20, 5
    w = importance_weight_matrix(m, n, dtype=torch.float64).exp()
    mp = m - 1
    for i, j in itertools.product(range(m), range(m)):
        expected = 1 / n if i == j else (n - mp) / (n * mp) if j == (i + 1) % m else 1 / mp
        assert w[i, j].item() == pytest.approx(expected)
    torch.testing.assert_close(w.sum(1), torch.ones(m, dtype=torch.float64))
    # the copied code puts 1/N in column 0, and one of its rows does not sum to 1
    bad = _column0_weight_matrix(m, n).exp()
    assert torch.allclose(bad[: m - 2, 0], torch.tensor(1 / n))
    assert not torch.allclose(torch.diagonal(bad)[1:], torch.tensor(1 / n))
    assert not torch.allclose(bad.sum(1), torch.ones(m))


def test_weight_matrix_rejects_a_batch_of_one_or_above_the_data_set() -> None:
    with pytest.raises(ValueError, match=r"batch size 1 and dataset_size 10"):
        importance_weight_matrix(1, 10)
    with pytest.raises(ValueError, match=r"batch size 11 and dataset_size 10"):
        importance_weight_matrix(11, 10)
    importance_weight_matrix(10, 10)  # the whole data set is a valid batch
    with pytest.raises(ValueError, match="estimator must be one of"):
        log_qz_estimates(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 2), 10, "iw")


def finite_data_set(n: int, d: int, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """N diagonal-Gaussian posteriors, correlated locations: (loc, scale) [N, D] in float64."""
    cov = torch.full((d, d), 0.8, dtype=torch.float64) + 0.2 * torch.eye(d, dtype=torch.float64)
    loc = spread * torch.randn(n, d, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    scale = 0.25 + 0.5 * torch.rand(n, d, dtype=torch.float64)
    return loc, scale


def batches(i: int, order: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Batches of point i at row ``rows[b]`` and the others ``order[b]`` ([R, M-1]): [R, M]."""
    m = order.shape[1] + 1
    j = torch.arange(m).expand(len(rows), m)
    r = rows[:, None]
    rest = order.gather(1, (j - (j > r).long()).clamp(max=m - 2))
    return torch.where(j == r, i, rest)


def test_mss_is_unbiased_for_q_z_and_the_column0_matrix_is_not() -> None:
    n, m, d, reps = 12, 4, 2, 20000
    loc, scale = finite_data_set(n, d)
    log_w, bad_log_w = (
        importance_weight_matrix(m, n, dtype=torch.float64),
        _column0_weight_matrix(m, n).double(),
    )
    for i in (0, 5, 11):
        z_i = loc[i] + scale[i] * torch.randn(d, dtype=torch.float64)
        q_exact = exact_log_q(z_i[None], loc, scale)[0].exp().item()
        others = torch.tensor([k for k in range(n) if k != i])

        # exact expectation: every ordered choice of the M - 1 others, i at every row
        tuples = torch.tensor(list(itertools.permutations(others.tolist(), m - 1)))
        rows = torch.arange(m).repeat_interleave(len(tuples))
        idx = batches(i, tuples.repeat(m, 1), rows)
        z = z_i.expand(*idx.shape, d)
        est = row_estimate(log_w, z, loc[idx], scale[idx], rows)
        assert est.exp().mean().item() == pytest.approx(q_exact, rel=1e-10)
        # and the same through log_qz_estimates, which uses this matrix
        via_api = log_qz_estimates(z, loc[idx], scale[idx], n, "mss")[0]
        torch.testing.assert_close(via_api[torch.arange(len(rows)), rows], est)

        # Monte Carlo: batches drawn without replacement, i at a uniform row
        order = torch.rand(reps, n - 1).argsort(1)[:, : m - 1]
        rows = torch.randint(m, (reps,))
        idx = batches(i, others[order], rows)
        z = z_i.expand(*idx.shape, d)
        for matrix, unbiased in ((log_w, True), (bad_log_w, False)):
            draws = row_estimate(matrix, z, loc[idx], scale[idx], rows).exp()
            mean, se = draws.mean().item(), draws.std().item() / reps**0.5
            if unbiased:
                assert abs(mean - q_exact) < 4 * se
            else:  # the sample's own posterior weighted 1/M' instead of 1/N: far too large
                assert abs(mean - q_exact) > 50 * se and abs(mean / q_exact - 1) > 0.25


@pytest.mark.parametrize("d", [2, 3])
def test_tc_estimators_against_the_exact_tc_as_the_batch_grows(d: int) -> None:
    """MSS converges to the exact TC; the published MWS converges to TC + (D - 1) log N."""
    n = 512
    loc, scale = finite_data_set(n, d)
    offset = (d - 1) * math.log(n)
    bias: dict[str, list[float]] = {"mss": [], "mws": []}
    for m in (8, 64, 512):
        idx = torch.rand(4096 // m, n).argsort(1)[:, :m]  # batches without replacement
        z = loc[idx] + scale[idx] * torch.randn(*idx.shape, d, dtype=torch.float64)
        true_qz, true_qzd = exact_log_q(z.reshape(-1, d), loc, scale)
        true_tc = (true_qz - true_qzd).reshape(idx.shape)
        for kind in bias:
            log_qz, log_qzd = log_qz_estimates(z, loc[idx], scale[idx], n, kind)
            err = log_qz - log_qzd - true_tc
            if kind == "mws":
                # never near the TC: the constant log(N M) leaves (D - 1) log N
                assert err.mean() > offset - 0.5
                err = err - offset
                if m == n:  # the batch is the data set: exact up to the constants, per sample
                    torch.testing.assert_close(log_qz, true_qz.reshape(idx.shape) - math.log(n))
                    torch.testing.assert_close(err, torch.zeros_like(err))
            bias[kind].append(err.mean().abs().item())
    for kind, b in bias.items():
        assert b[0] > b[2], (kind, b)
        assert b[1] < 0.1 and b[2] < 0.01, (kind, b)


def test_decomposition_sums_to_the_log_ratio_and_averages_to_the_kl() -> None:
    model, guide = programs()
    sums, kls = [], []
    for rep in range(16):
        x = torch.randn(256, 6) * 2
        lw = dgm.log_weights(model, guide, x)
        estimator = "mss" if rep % 2 else "mws"
        t = tc_decomposition(lw, 10000, estimator)
        total = t.index_code_mi + t.total_correlation + t.dimensionwise_kl
        log_ratio = (lw.guide_trace["z"].log_prob - lw.model_trace["z"].log_prob)[0]
        torch.testing.assert_close(total, log_ratio)
        sums.append(total.detach())
        q, p = lw.guide_trace["z"].fn, lw.model_trace["z"].fn
        kls.append(torch.distributions.kl_divergence(q, p).detach())
    s, k = torch.cat(sums), torch.cat(kls)
    assert abs(s.mean() - k.mean()) < 4 * (s - k).std() / len(s) ** 0.5


def test_beta_tcvae_with_unit_weights_is_the_elbo() -> None:
    model, guide = programs()
    x = torch.randn(32, 6)
    torch.manual_seed(1)
    tc_elbo = BetaTCVAE(100, alpha=1.0, beta=1.0, gamma=1.0)(model, guide, x)
    torch.manual_seed(1)
    elbo = dgm.ELBO()(model, guide, x)
    torch.testing.assert_close(tc_elbo, elbo)
    # the terms themselves put back together give the ELBO too
    lw = dgm.log_weights(model, guide, x)
    t = tc_decomposition(lw, 100)
    rebuilt = t.reconstruction - t.index_code_mi - t.total_correlation - t.dimensionwise_kl
    torch.testing.assert_close(rebuilt, dgm.elbo(lw))
    # beta > 1 subtracts (beta - 1) * tc more
    objective = BetaTCVAE(100, beta=6.0)
    torch.manual_seed(2)
    value = objective(model, guide, x)
    torch.manual_seed(2)
    lw = dgm.log_weights(model, guide, x)
    t = tc_decomposition(lw, 100)
    torch.testing.assert_close(value, dgm.elbo(lw) - 5 * t.total_correlation)
    assert set(objective.last_terms) == {
        "reconstruction",
        "index_code_mi",
        "total_correlation",
        "dimensionwise_kl",
    }
    assert objective.last_terms["total_correlation"].requires_grad is False
    torch.testing.assert_close(
        objective.last_terms["total_correlation"], t.total_correlation.mean()
    )


class LocalGuide(nn.Module):
    """Free variational parameters per data point, to see the gradient reach loc and scale."""

    def __init__(self, b: int, d: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.randn(b, d))
        self.log_scale = nn.Parameter(torch.full((b, d), -1.0))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("z", Independent(Normal(self.loc, self.log_scale.exp()), 1))


def test_gradients_of_the_terms_reach_loc_and_scale() -> None:
    model, _ = programs()
    guide = LocalGuide(16, 3)
    x = torch.randn(16, 6)
    for estimator in ("mss", "mws"):
        t = tc_decomposition(dgm.log_weights(model, guide, x), 1000, estimator)
        for term in (t.index_code_mi, t.total_correlation, t.dimensionwise_kl):
            guide.zero_grad()
            term.mean().backward(retain_graph=True)
            for p in (guide.loc, guide.log_scale):
                assert p.grad is not None and torch.isfinite(p.grad).all()
                assert p.grad.abs().sum() > 0
    # the whole objective's gradient is that of a reference computed here from the
    # parameters themselves (no term detached anywhere)
    alpha, beta, gamma, n = 2.0, 6.0, 0.5, 1000
    for estimator in ("mss", "mws"):
        grads = []
        for reference in (False, True):
            guide.zero_grad()
            torch.manual_seed(7)
            if not reference:
                value = BetaTCVAE(n, alpha, beta, gamma, estimator)(model, guide, x)
            else:
                lw = dgm.log_weights(model, guide, x)
                z_value = lw.guide_trace["z"].value
                assert z_value is not None
                z = z_value[0]
                loc, scale = guide.loc, guide.log_scale.exp()
                log_q = Normal(loc, scale).log_prob(z).sum(-1)
                log_p = Normal(0.0, 1.0).log_prob(z).sum(-1)
                mat = Normal(loc[None], scale[None]).log_prob(z[:, None])  # [M, M, D]
                if estimator == "mss":
                    log_w = importance_weight_matrix(16, n)
                else:
                    log_w = torch.full((16, 16), -math.log(16 * n))
                log_qz = torch.logsumexp(log_w + mat.sum(-1), 1)
                log_qzd = torch.logsumexp(log_w[..., None] + mat, 1).sum(-1)
                rec = lw.model_trace["x"].log_prob[0]
                value = (
                    rec
                    - alpha * (log_q - log_qz)
                    - beta * (log_qz - log_qzd)
                    - gamma * (log_qzd - log_p)
                )
            value.mean().backward()
            assert guide.loc.grad is not None and guide.log_scale.grad is not None
            grads.append((guide.loc.grad.clone(), guide.log_scale.grad.clone()))
        for g, g_ref in zip(grads[0], grads[1], strict=True):
            assert torch.isfinite(g).all() and g.abs().sum() > 0
            torch.testing.assert_close(g, g_ref)


def test_non_factorized_posteriors_and_bad_arguments_raise() -> None:
    model, guide = programs()
    x = torch.randn(8, 6)
    full_model, full_guide = programs("full")
    with pytest.raises(ValueError, match=r"posterior at site 'z'; got MultivariateNormal"):
        BetaTCVAE(100)(full_model, full_guide, x)
    with pytest.raises(ValueError, match=r"num_particles=1\), got 2"):
        tc_decomposition(dgm.log_weights(model, guide, x, num_particles=2), 100)
    with pytest.raises(ValueError, match="no latent site 'w'"):
        BetaTCVAE(100, site="w")(model, guide, x)
    with pytest.raises(ValueError, match=r"batch size 8 and dataset_size 5"):
        BetaTCVAE(5)(model, guide, x)
    BetaTCVAE(5, estimator="mws")(model, guide, x)  # MWS has no such restriction
    with pytest.raises(ValueError, match="dataset_size must be >= 2"):
        BetaTCVAE(1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        BetaTCVAE(100, beta=-1.0)
    with pytest.raises(ValueError, match=r"estimator must be one of \('mss', 'mws'\)"):
        BetaTCVAE(100, estimator="stratified")
    s = diagonal_gaussian_site(dgm.log_weights(model, guide, x))
    assert s.z.shape == s.loc.shape == s.scale.shape == (8, 3)
    assert s.log_prior is not None and s.log_prior.shape == (8, 3)
