"""Importance sampling and inference compilation on a conjugate Gaussian model."""

import pytest
import torch

import dgm
from dgm.infer import importance_sampling
from dgm.objectives import Sleep, sleep_phi
from tests.infer.conjugate import (
    GaussianMeanGuide,
    GaussianMeanModel,
    log_evidence,
    posterior,
)

N = 20  # points per data set (posterior sd 0.11: the prior is a poor proposal)


@pytest.fixture(scope="module")
def trained_guide() -> GaussianMeanGuide:
    """A proposal compiled from simulations alone (no observed data)."""
    torch.manual_seed(0)
    model, guide = GaussianMeanModel(), GaussianMeanGuide(N)
    shape_only = torch.zeros(2000, N)  # the batch shape of the simulations; values unused
    dgm.train.fit(model, guide, Sleep(), shape_only, steps=1500, batch_size=200, lr=3e-3)
    return guide


def held_out(b: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(b, 1, generator=g)
    return z + 0.5 * torch.randn(b, N, generator=g)


def test_prior_importance_sampling_recovers_posterior_and_evidence() -> None:
    torch.manual_seed(2)
    x = held_out()
    ws = importance_sampling(GaussianMeanModel(), None, x, num_samples=20000)
    mean, sd = posterior(x)
    # Monte Carlo error of the self-normalized mean: sd / sqrt(ESS), with margin
    tolerance = 5 * sd / ws.ess.sqrt()
    assert ((ws.mean("z") - mean).abs() < tolerance).all()
    torch.testing.assert_close(ws.variance("z").sqrt(), sd, rtol=0.15, atol=0)
    torch.testing.assert_close(ws.log_evidence, log_evidence(x), atol=0.1, rtol=0)
    lo, hi = ws.quantile("z", 0.05), ws.quantile("z", 0.95)
    torch.testing.assert_close(hi - lo, 2 * 1.645 * sd, rtol=0.15, atol=0)
    draws = ws.resample(4000)["z"]
    torch.testing.assert_close(draws.mean(0), mean, atol=0.05, rtol=0)


def test_a_compiled_proposal_is_far_more_efficient_than_the_prior(
    trained_guide: GaussianMeanGuide,
) -> None:
    torch.manual_seed(3)
    x = held_out()
    model = GaussianMeanModel()
    prior = importance_sampling(model, None, x, num_samples=2000)
    learned = importance_sampling(model, trained_guide, x, num_samples=2000)
    mean, sd = posterior(x)
    assert (learned.ess > 5 * prior.ess).all()
    assert (learned.ess / learned.num_samples > 0.5).all()
    assert ((learned.mean("z") - mean).abs() < 5 * sd / learned.ess.sqrt()).all()
    # sd of the log of a mean of K weights ~ sqrt((K / ESS - 1) / K)
    k = learned.num_samples
    tolerance = 5 * ((k / learned.ess - 1) / k).sqrt() + 1e-3
    assert ((learned.log_evidence - log_evidence(x)).abs() < tolerance).all()


def test_the_vectorized_sleep_objective_equals_a_loop_over_data_sets() -> None:
    torch.manual_seed(4)
    model, guide = GaussianMeanModel(), GaussianMeanGuide(N)
    x = torch.zeros(5, N)
    torch.manual_seed(5)
    sleep_phi(model, guide, x).sum().backward()
    batched = [p.grad.clone() for p in guide.parameters()]
    guide.zero_grad()
    torch.manual_seed(5)  # the same dreams, drawn the same way
    with torch.no_grad(), dgm.trace() as dream, dgm.ppl.uncondition():
        model(x)
    for b in range(5):
        with dgm.trace() as q, dgm.condition({"z": dream["z"].value[b : b + 1]}):
            guide(dream["x"].value[b : b + 1])
        q["z"].log_prob.sum().backward()
    for got, want in zip(batched, [p.grad for p in guide.parameters()], strict=True):
        torch.testing.assert_close(got, want)


def test_adaptive_importance_sampling_fits_the_proposal_to_one_data_set() -> None:
    class Free(torch.nn.Module):  # q(z) = N(m, s), one per data set, started at the prior
        def __init__(self, b: int) -> None:
            super().__init__()
            self.m = torch.nn.Parameter(torch.zeros(b))
            self.log_s = torch.nn.Parameter(torch.zeros(b))

        def forward(self, x: torch.Tensor) -> None:
            dgm.sample("z", torch.distributions.Normal(self.m, self.log_s.exp()))

    torch.manual_seed(6)
    x = held_out(3)
    model, guide = GaussianMeanModel(), Free(3)
    before = importance_sampling(model, guide, x, num_samples=1000).ess
    after = dgm.infer.adaptive_importance_sampling(
        model, guide, x, num_samples=1000, steps=150, lr=0.05
    )
    mean, sd = posterior(x)
    assert (after.ess > 3 * before).all() and (after.ess > 600).all()
    torch.testing.assert_close(guide.m.detach(), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(guide.log_s.exp().detach(), sd, rtol=0.2, atol=0)
