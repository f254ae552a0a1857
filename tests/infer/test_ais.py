"""Annealed importance sampling and BDMC against the linear-Gaussian model's exact log p(x)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal

import dgm
from dgm.infer import ais, bdmc, temperatures
from tests.linear_gaussian import DiagonalGuide, LinearGaussianModel


def problem(n: int = 40, seed: int = 0, sigma: float = 0.3) -> tuple[LinearGaussianModel, Tensor]:
    """A linear-Gaussian model with a narrow posterior and data from it; the default guide,
    N(0, I) whatever x, is far from p(z | x): importance sampling from it is poor."""
    model = LinearGaussianModel(d=2, n=3, sigma=sigma).double()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = z @ model.A.detach().T + model.b.detach() + sigma * torch.randn(n, 3, generator=g).double()
    return model, x


def test_with_enough_steps_ais_matches_the_exact_log_evidence() -> None:
    model, x = problem()
    guide = DiagonalGuide().double()
    exact = model.log_evidence(x).detach()
    r = ais(model, guide, x, num_steps=300, num_chains=8, seed=1)
    err = r.log_marginal - exact
    # within Monte Carlo error (the spread of the 40 points' errors) plus a little bias
    assert err.mean().abs() < 3 * err.std() / math.sqrt(len(err)) + 0.02, err
    assert err.abs().max() < 1.0, err
    is_8 = dgm.metrics.log_likelihood(model, guide, x, num_particles=8) - exact
    assert is_8.mean() < -1  # what importance sampling from the same start gives
    assert r.log_weights.shape == (8, 40) and r.ess.shape == (40,)
    assert r.acceptance.shape == r.step_size.shape == (299,)
    assert 0.5 < r.acceptance.mean() < 0.85  # the pilot's step sizes reach the 0.65 target
    # the same chains from the prior (no guide) agree
    prior = ais(model, None, x, num_steps=300, num_chains=8, start="prior", seed=1)
    err = prior.log_marginal - exact
    assert err.mean().abs() < 3 * err.std() / math.sqrt(len(err)) + 0.02, err


def test_with_few_steps_ais_is_below_the_exact_value_and_improves_with_more() -> None:
    model, x = problem()
    guide = DiagonalGuide().double()
    exact = model.log_evidence(x).detach()
    gaps = [
        (exact - ais(model, guide, x, num_steps=t, num_chains=4, seed=2).log_marginal).mean()
        for t in (1, 5, 30)
    ]
    assert gaps[0] > 1 and gaps[0] > gaps[1] > gaps[2] > 0, gaps
    # one step is importance sampling from q with C particles
    is_4 = dgm.metrics.log_likelihood(model, guide, x, num_particles=4)
    assert (exact - is_4).mean() == pytest.approx(gaps[0].item(), rel=0.2)


def test_the_mean_weight_is_an_unbiased_estimate_of_p_x() -> None:
    # one data point, a short schedule (so each weight is far from exact): the mean of
    # exp(log w) over many chains must still equal p(x), pilot adaptation included
    model, x = problem(n=1, sigma=0.5)
    guide = DiagonalGuide().double()
    exact = model.log_evidence(x).detach().exp()
    for adapt in (True, False):
        r = ais(
            model,
            guide,
            x,
            num_steps=3,
            num_chains=20000,
            seed=3,
            adapt=adapt,
            step_size=0.3,
            pilot_steps=20,
        )
        w = (r.log_weights[:, 0] - torch.log(exact)).exp()  # w / p(x): mean 1
        assert w.std() > 0.3  # a noisy estimator, not a trivially exact one
        se = w.std() / math.sqrt(len(w))
        assert abs(w.mean() - 1) < 4 * se, (adapt, w.mean(), se)


def test_bdmc_sandwiches_the_exact_value_and_the_gap_shrinks_with_more_steps() -> None:
    model, x = problem(n=30)
    guide = DiagonalGuide().double()
    gaps = []
    for steps in (3, 100):
        b = bdmc(model, guide, x, num_steps=steps, num_chains=4, seed=4)
        exact = model.log_evidence(b.data).detach()
        if steps == 3:  # far from converged: the sandwich is clear
            assert b.forward.log_marginal.mean() < exact.mean() - 0.5
            assert b.reverse.log_marginal.mean() > exact.mean() + 0.5
        assert b.reverse.reverse and not b.forward.reverse
        gaps.append(b.gap.mean().item())
    assert gaps[0] > 5 * abs(gaps[1]), gaps  # at 100 steps both are within noise of exact
    # the simulated data come from the model, with the latents that made them
    assert b.data.shape == x.shape and set(b.latents) == {"z"}
    assert not torch.equal(b.data, x)


class Recording(LinearGaussianModel):
    """The model, noting the largest latent state it is evaluated on."""

    largest = 0

    def forward(self, x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros((*x.shape[:-1], self.d)), 1.0), 1))
        self.largest = max(self.largest, z.numel())
        dgm.sample("x", Independent(Normal(z @ self.A.T + self.b, self.sigma), 1), obs=x)


def test_estimates_do_not_depend_on_the_chunking_and_memory_follows_the_chunk() -> None:
    model, x = problem(n=12)
    guide = DiagonalGuide().double()
    options = {"num_steps": 20, "num_chains": 6, "pilot_steps": 10}
    whole = ais(model, guide, x, seed=5, **options)
    recording = Recording(d=2, n=3, sigma=0.3).double()
    parts = ais(recording, guide, x, seed=5, batch_size=5, max_elements=20, **options)
    # chunks of 5 points x 2 chains x 2 latent dimensions: at most 20 entries
    assert recording.largest <= 20
    torch.testing.assert_close(parts.log_weights, whole.log_weights, rtol=0, atol=1e-9)
    torch.testing.assert_close(parts.acceptance, whole.acceptance)
    other = ais(model, guide, x, seed=6, **options)
    assert not torch.allclose(other.log_weights, whole.log_weights)


def test_the_schedules_run_from_zero_to_one() -> None:
    for name in dgm.infer.SCHEDULES:
        betas = temperatures(name, 50)
        assert len(betas) == 51 and betas[0] == 0 and betas[-1] == 1
        assert (betas[1:] >= betas[:-1]).all()
    sig = temperatures("sigmoidal", 100)
    assert sig[50] == pytest.approx(0.5) and sig[5] < 0.05  # slow at both ends
    assert temperatures("geometric", 5)[1] == pytest.approx(1e-4)


def test_bad_schedules_are_refused_naming_the_temperature() -> None:
    with pytest.raises(ValueError, match="at least two temperatures"):
        temperatures("linear", 0)
    with pytest.raises(ValueError, match="at least two temperatures"):
        temperatures([1.0])
    with pytest.raises(ValueError, match=r"temperature 2 has beta 0\.3 after 0\.5"):
        temperatures([0.0, 0.5, 0.3, 1.0])
    with pytest.raises(ValueError, match="start at beta = 0 and end at beta = 1"):
        temperatures([0.1, 1.0])
    model, x = problem(n=2)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        ais(model, DiagonalGuide().double(), x, num_steps=0)


class DiscreteModel(nn.Module):
    def forward(self, x: Tensor) -> None:
        k = dgm.sample("k", Independent(Bernoulli(probs=x.new_full((*x.shape[:-1], 2), 0.5)), 1))
        dgm.sample("x", Independent(Normal(k, 1.0), 1), obs=x)


def test_discrete_latents_are_refused_naming_the_site() -> None:
    with pytest.raises(ValueError, match="latent site 'k' of the model is discrete"):
        ais(DiscreteModel(), None, torch.zeros(3, 2), start="prior", num_steps=5)


class BrokenScale(nn.Module):
    """x | z ~ N(z, 0): a likelihood whose density is not finite."""

    def forward(self, x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(x.shape), 1.0), 1))
        dgm.sample("x", Independent(Normal(z, torch.zeros_like(z) + 1e-300), 1), obs=x)


def test_non_finite_densities_along_the_path_name_the_site_and_temperature() -> None:
    x = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"temperature 0 \(beta = 0\).*site\(s\) \['x \(model\)'\]"
    ):
        ais(BrokenScale(), None, x, start="prior", num_steps=5)


class TwoSiteModel(LinearGaussianModel):
    """The linear-Gaussian model with z split into two sites, the second drawn given the first
    (b | a ~ N(0, 1) still, but through a site that depends on a's value, shape [..., 1])."""

    def forward(self, x: Tensor) -> None:
        zero = x.new_zeros((*x.shape[:-1], 1))
        a = dgm.sample("a", Independent(Normal(zero, 1.0), 1))
        b = dgm.sample("b", Independent(Normal(zero + 0 * a, 1.0), 1))
        z = torch.cat([a, b], -1)
        dgm.sample("x", Independent(Normal(z @ self.A.T + self.b, self.sigma), 1), obs=x)


class TwoSiteGuide(nn.Module):
    def forward(self, x: Tensor) -> None:
        zero = x.new_zeros((*x.shape[:-1], 1))
        a = dgm.sample("a", Independent(Normal(zero + 0.1 * x[..., :1], 1.0), 1))
        dgm.sample("b", Independent(Normal(0.5 * a, 1.0), 1))


def test_several_latent_sites_are_packed_into_one_state() -> None:
    model, x = problem(n=30)
    two = TwoSiteModel(d=2, n=3, sigma=0.3).double()
    exact = model.log_evidence(x).detach()  # the same parameters: the same p(x)
    torch.testing.assert_close(two.log_evidence(x), model.log_evidence(x))
    for guide, start in ((TwoSiteGuide(), "guide"), (None, "prior")):
        r = ais(two, guide, x, num_steps=300, num_chains=8, start=start, seed=7)
        err = r.log_marginal - exact
        assert err.mean().abs() < 3 * err.std() / math.sqrt(len(err)) + 0.02, (start, err)


class TwoObservations(nn.Module):
    def forward(self, x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(x.shape), 1.0), 1))
        dgm.sample("x", Independent(Normal(z, 1.0), 1), obs=x)
        dgm.sample("y", Independent(Normal(z, 1.0), 1), obs=x + 1)


def test_bdmc_needs_one_observed_site_to_simulate() -> None:
    with pytest.raises(ValueError, match=r"exactly one observed site.*\['x', 'y'\]"):
        bdmc(TwoObservations(), None, torch.zeros(3, 2), start="prior", num_steps=3)


class TwoScales(nn.Module):
    """z = (a, b) with a ~ N(0, 1) and b ~ N(0, 0.1^2): sites that differ, so that a value
    reaching the wrong name is a different distribution. x | z ~ N(A z, 1)."""

    def __init__(self, sample_b_first: bool = False) -> None:
        super().__init__()
        self.A = torch.tensor([[1.0, 2.0], [0.5, -1.0], [-1.0, 0.3]], dtype=torch.float64)
        self.first = sample_b_first

    def forward(self, x: Tensor) -> None:
        zero = x.new_zeros((*x.shape[:-1], 1))
        if self.first:  # a guide equal to the prior, drawing its sites in the other order
            b = dgm.sample("b", Independent(Normal(zero, 0.1), 1))
            a = dgm.sample("a", Independent(Normal(zero, 1.0), 1))
            return
        a = dgm.sample("a", Independent(Normal(zero, 1.0), 1))
        b = dgm.sample("b", Independent(Normal(zero, 0.1), 1))
        z = torch.cat([a, b], -1)
        dgm.sample("x", Independent(Normal(z @ self.A.T, 1.0), 1), obs=x)

    def log_evidence(self, x: Tensor) -> Tensor:
        cov = self.A @ torch.diag(torch.tensor([1.0, 0.01]).double()) @ self.A.T + torch.eye(3)
        return MultivariateNormal(torch.zeros(3).double(), cov).log_prob(x)


def test_the_first_states_of_several_sites_are_drawn_under_their_names() -> None:
    # one step: importance sampling with the chains' first states; unbiased only if every
    # site's value reaches the name it was drawn under
    model, x = TwoScales(), torch.tensor([[0.5, -1.0, 0.3]], dtype=torch.float64)
    exact = model.log_evidence(x)
    for guide, start in ((TwoScales(sample_b_first=True), "guide"), (None, "prior")):
        r = ais(model, guide, x, num_steps=1, num_chains=20000, seed=8, start=start)
        w = (r.log_weights[:, 0] - exact).exp()
        assert abs(w.mean() - 1) < 4 * w.std() / math.sqrt(len(w)), (start, w.mean())


class PositiveScale(nn.Module):
    def forward(self, x: Tensor) -> None:
        s = dgm.sample("s", Independent(torch.distributions.Gamma(x.new_ones(x.shape), 1.0), 1))
        dgm.sample("x", Independent(Normal(x.new_zeros(x.shape), s), 1), obs=x)


class CannotRescore(nn.Module):
    """A guide whose distribution scores only its own draws (as a flow without an inverse)."""

    class Dist(Normal):
        def log_prob(self, value: Tensor) -> Tensor:
            raise NotImplementedError("no inverse")

    def forward(self, x: Tensor) -> None:
        dgm.sample("z", Independent(self.Dist(x.new_zeros((*x.shape[:-1], 2)), 1.0), 1))


def test_what_hmc_or_the_start_cannot_handle_is_refused_clearly() -> None:
    x = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"site 's' of the model has support .*unconstrained"):
        ais(PositiveScale(), None, x, start="prior", num_steps=3)
    model, data = problem(n=2)
    with pytest.raises(ValueError, match=r"guide's site 'z' cannot score a value it did not draw"):
        ais(model, CannotRescore(), data, num_steps=3)
    with pytest.raises(ValueError, match=r'start="guide" needs a guide'):
        ais(model, None, data, num_steps=3)
    with pytest.raises(ValueError, match="start must be one of guide, prior"):
        ais(model, None, data, num_steps=3, start="posterior")
    with pytest.raises(ValueError, match="num_chains must be >= 1"):
        ais(model, DiagonalGuide().double(), data, num_steps=3, num_chains=0)
