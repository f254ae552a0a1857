"""Metropolis-Hastings and chain diagnostics against known targets."""

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, LogNormal, Normal

import dgm
from dgm.infer import effective_sample_size, metropolis_hastings, r_hat
from tests.infer.conjugate import GaussianMeanGuide, GaussianMeanModel, posterior


def test_random_walk_leaves_the_posterior_invariant_and_adapts_its_acceptance() -> None:
    torch.manual_seed(0)
    x = torch.tensor([[0.3, 0.8, 0.1], [-2.0, -1.5, -2.4]])  # two data sets, one call
    chains = metropolis_hastings(
        GaussianMeanModel(), x, num_samples=2000, warmup=500, num_chains=4, target_accept=0.44
    )
    assert chains.samples["z"].shape == (2000, 4, 2)
    mean, sd = posterior(x)
    torch.testing.assert_close(chains.mean("z"), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(chains.flat("z").std(0), sd, rtol=0.1, atol=0)
    assert ((chains.accept_rate > 0.3) & (chains.accept_rate < 0.6)).all()
    assert (chains.r_hat("z") < 1.05).all()
    ess = chains.ess("z")
    assert ((ess > 300) & (ess < 8000)).all()


def test_random_walk_respects_a_positive_support() -> None:
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            s = dgm.sample("s", LogNormal(torch.zeros(x.shape[0]), 0.5))
            likelihood = Independent(Normal(torch.zeros_like(x), s.unsqueeze(-1)), 1)
            dgm.sample("x", likelihood, obs=x)

    torch.manual_seed(1)
    x = torch.randn(1, 20) * 2.0
    chains = metropolis_hastings(Scale(), x, num_samples=1500, warmup=500, num_chains=4)
    s = chains.flat("s")
    assert (s > 0).all()
    # exact posterior mean by quadrature on a grid of s
    grid = torch.linspace(0.05, 8, 4000)
    log_post = LogNormal(0.0, 0.5).log_prob(grid) + Normal(0.0, grid.unsqueeze(-1)).log_prob(
        x[0]
    ).sum(-1)
    post = torch.softmax(log_post, 0)
    assert abs(s.mean().item() - (post * grid).sum().item()) < 0.08


def test_the_independence_sampler_with_a_good_proposal_accepts_most_moves() -> None:
    torch.manual_seed(2)
    model, guide = GaussianMeanModel(), GaussianMeanGuide(3)
    dgm.train.fit(model, guide, dgm.objectives.Sleep(), torch.zeros(1000, 3), steps=800, lr=3e-3)
    x = torch.tensor([[0.3, 0.8, 0.1]])
    chains = metropolis_hastings(model, x, num_samples=2000, warmup=100, proposal=guide)
    mean, sd = posterior(x)
    assert (chains.accept_rate > 0.6).all()
    torch.testing.assert_close(chains.mean("z"), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(chains.flat("z").std(0), sd, rtol=0.1, atol=0)


def test_random_walk_refuses_discrete_latents() -> None:
    class Coin(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            c = dgm.sample("c", Bernoulli(probs=torch.full(x.shape, 0.5)))
            dgm.sample("x", Normal(c, 1.0), obs=x)

    with pytest.raises(ValueError, match="independence sampler"):
        metropolis_hastings(Coin(), torch.zeros(2), num_samples=5, warmup=0)


def test_r_hat_flags_chains_that_have_not_mixed() -> None:
    torch.manual_seed(3)
    mixed = torch.randn(1000, 4)
    assert r_hat(mixed).item() < 1.01
    apart = mixed.clone()
    apart[:, 0] += 3.0  # one chain stuck elsewhere
    assert r_hat(apart).item() > 1.1
    drifting = mixed + torch.linspace(0, 3, 1000).unsqueeze(-1)  # a trend within each chain
    assert r_hat(drifting).item() > 1.1


def test_chain_ess_of_independent_and_autocorrelated_draws() -> None:
    torch.manual_seed(4)
    iid = torch.randn(4000, 4)
    assert abs(effective_sample_size(iid).item() / 16000 - 1) < 0.15
    rho = 0.9
    ar = torch.zeros(4000, 4)
    for t in range(1, 4000):
        ar[t] = rho * ar[t - 1] + (1 - rho**2) ** 0.5 * torch.randn(4)
    expected = 16000 * (1 - rho) / (1 + rho)
    assert abs(effective_sample_size(ar).item() / expected - 1) < 0.3
