"""ELBO and IWAE against the exact evidence of a linear-Gaussian model."""

import itertools

import torch

import dgm
from tests.linear_gaussian import DiagonalGuide, ExactGuide, LinearGaussianModel, near_guide


def data(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3) * 1.5


def test_log_weights_shapes_are_particles_by_data_points() -> None:
    lw = dgm.log_weights(LinearGaussianModel(), DiagonalGuide(), data(6), num_particles=5)
    assert lw.log_p.shape == (5, 6) and lw.log_q.shape == (5, 6) and lw.log_w.shape == (5, 6)
    assert lw.num_particles == 5
    assert dgm.elbo(lw).shape == (6,) and dgm.iwae(lw).shape == (6,)


def test_exact_posterior_guide_gives_log_evidence_for_every_particle() -> None:
    model = LinearGaussianModel()
    x = data()
    lw = dgm.log_weights(model, ExactGuide(model), x, num_particles=3)
    exact = model.log_evidence(x)
    torch.testing.assert_close(lw.log_w, exact.expand(3, -1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(dgm.elbo(lw), exact, atol=1e-4, rtol=1e-5)


@torch.no_grad()
def test_elbo_is_below_log_evidence_and_iwae_climbs_to_it() -> None:
    model = LinearGaussianModel()
    guide = near_guide(model)
    x = data()
    exact = model.log_evidence(x)
    reps = 200  # repeats as extra particles' worth of independent estimates

    def mean_bound(k: int) -> torch.Tensor:
        xs = x.repeat(reps, 1)
        bound = dgm.iwae(dgm.log_weights(model, guide, xs, num_particles=k)).reshape(reps, -1)
        if k == 1:
            # L_1 is the ELBO: agree with the 20000-particle estimate within 4 standard errors
            assert ((bound.mean(0) - elbo).abs() < 4 * bound.std(0) / reps**0.5 + 0.01).all()
        return bound.mean(0)

    elbo = dgm.elbo(dgm.log_weights(model, guide, x, num_particles=20000))
    assert (elbo < exact - 0.05).all()  # a poor guide: a clear gap
    bounds = [mean_bound(k) for k in (1, 5, 50, 500)]
    for lo, hi in itertools.pairwise(bounds):
        assert (lo < hi).all()
    assert (bounds[-1] <= exact + 0.02).all()
    # L_5000 reaches log p(x) within Monte Carlo error
    l_big = dgm.iwae(dgm.log_weights(model, guide, x, num_particles=20000))
    torch.testing.assert_close(l_big, exact, atol=0.01, rtol=0)


def test_importance_sampled_log_likelihood_matches_exact_and_chunks() -> None:
    model = LinearGaussianModel()
    guide = near_guide(model)
    x = data(7)
    exact = model.log_evidence(x).double()
    est = dgm.metrics.log_likelihood(
        model, guide, x, num_particles=20000, batch_size=3, max_elements=3 * 3 * 1000
    )
    assert est.shape == (7,)
    torch.testing.assert_close(est, exact, atol=0.01, rtol=0)


def test_log_likelihood_combines_uneven_chunks_exactly() -> None:
    """With q = p(z|x) every weight equals p(x), so any chunking must return log p(x) exactly."""
    model = LinearGaussianModel()
    x = data(5)
    est = dgm.metrics.log_likelihood(
        model, ExactGuide(model), x, num_particles=50, batch_size=2, max_elements=2 * 3 * 7
    )
    torch.testing.assert_close(est, model.log_evidence(x).double(), atol=1e-4, rtol=1e-6)
