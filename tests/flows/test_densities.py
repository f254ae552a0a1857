"""Flow distributions and learnable priors: densities integrate to one, sampling agrees, mixtures by hand."""

import math

import torch
from torch.distributions import Independent, Normal

import dgm
from dgm.distributions import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from dgm.flows import IAF, MAF, Compose, FlowDistribution, Permute, Planar
from dgm.models.vae import GaussianLayer

GRID = torch.linspace(-7, 7, 281)
CELL = (GRID[1] - GRID[0]) ** 2
POINTS = torch.cartesian_prod(GRID, GRID)  # [281^2, 2]


def randomize(m: torch.nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))


def standard(batch: tuple[int, ...] = ()) -> Independent:
    return Independent(Normal(torch.zeros(*batch, 2), torch.ones(*batch, 2)), 1)


def test_a_maf_density_integrates_to_one_and_matches_its_samples() -> None:
    torch.manual_seed(0)
    flow = Compose([MAF(2, (16, 16)), Permute(2), MAF(2, (16, 16))])
    randomize(flow, 0.15)  # non-trivial, with its mass inside the grid
    d = FlowDistribution(standard(), flow)
    with torch.no_grad():
        density = d.log_prob(POINTS).exp()
        assert abs((density.sum() * CELL).item() - 1) < 0.02
        samples = d.sample((20000,))
        grid_mean = (density.unsqueeze(-1) * POINTS).sum(0) * CELL
    torch.testing.assert_close(samples.mean(0), grid_mean, atol=0.05, rtol=0)


def test_own_samples_are_scored_without_an_inverse_and_agree_with_it() -> None:
    torch.manual_seed(1)
    context = torch.randn(5, 3)
    iaf = IAF(2, (16,), context_size=3)
    randomize(iaf)
    d = FlowDistribution(standard((5,)), iaf, context)
    z = d.rsample((4,))  # [particles, data points, D]
    cached = d.log_prob(z)
    assert cached.shape == (4, 5) and z.requires_grad
    torch.testing.assert_close(cached, d.log_prob(z.clone()), atol=1e-4, rtol=1e-4)  # via inverse
    planar = FlowDistribution(standard((5,)), Planar(2, context_size=3), context)
    planar.log_prob(planar.rsample())  # cached: no inverse needed


def test_mixture_prior_equals_the_mixture_by_hand_and_integrates_to_one() -> None:
    torch.manual_seed(2)
    prior = MixtureOfGaussiansPrior(2, components=3)
    randomize(prior)
    z = torch.randn(6, 4, 2)  # particles x data points
    got = prior((4,)).log_prob(z)
    logw = torch.log_softmax(prior.logits, 0)
    comps = torch.stack(
        [Normal(prior.means[k], prior.log_scales[k].exp()).log_prob(z).sum(-1) for k in range(3)],
        -1,
    )
    torch.testing.assert_close(got, torch.logsumexp(comps + logw, -1))
    with torch.no_grad():
        assert abs((prior().log_prob(POINTS).exp().sum() * CELL).item() - 1) < 0.02


def test_vampprior_is_the_average_of_the_encoders_posteriors_at_the_pseudo_inputs() -> None:
    torch.manual_seed(3)
    encoder = GaussianLayer(6, (8,), 2, "tanh")
    prior = VampPrior(encoder, data_size=6, num_pseudo=5)
    z = torch.randn(3, 4, 2)
    got = prior((4,)).log_prob(z)
    q = encoder(prior.pseudo_inputs)  # batch [5], event [2]
    by_hand = torch.logsumexp(q.log_prob(z.unsqueeze(-2)), -1) - math.log(5)
    torch.testing.assert_close(got, by_hand)
    got.sum().backward()
    assert prior.pseudo_inputs.grad is not None  # the pseudo-inputs learn
    with torch.no_grad():
        assert abs((prior().log_prob(POINTS).exp().sum() * CELL).item() - 1) < 0.02


def test_priors_broadcast_over_batch_and_particles() -> None:
    for prior in (StandardNormalPrior(2), MixtureOfGaussiansPrior(2, 4)):
        d = prior((7,))
        assert d.batch_shape == (7,) and d.event_shape == (2,)
        assert d.log_prob(torch.zeros(3, 7, 2)).shape == (3, 7)
    assert dgm.flows.FlowDistribution(standard((7,)), Permute(2)).sample((3,)).shape == (3, 7, 2)
