"""Posterior families and priors of the VAE: normalized densities that agree with sampling,
batch and particle shapes, and the parts wired into VAEModel / VAEGuide."""

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

import dgm
from dgm.distributions import DiagonalGaussianMixture, MixtureOfGaussiansPrior, VampPrior
from dgm.flows import AutoregressivePrior
from dgm.models.posteriors import POSTERIORS, FullCovarianceLayer, posterior_layer
from dgm.models.vae import VAEGuide, VAEModel
from dgm.options import Options, option_names


def family(kind: str, **settings: object) -> Options:
    """The options of posterior ``kind`` with those of ``settings`` it takes."""
    takes = option_names(POSTERIORS[kind].options)  # type: ignore[arg-type]
    return POSTERIORS.options(kind, **{k: v for k, v in settings.items() if k in takes})


GRID = torch.linspace(-7, 7, 281)
CELL = (GRID[1] - GRID[0]) ** 2
POINTS = torch.cartesian_prod(GRID, GRID)


def randomized(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


@pytest.mark.parametrize("kind", POSTERIORS)
def test_every_posterior_scores_its_samples_with_a_normalized_density(kind: str) -> None:
    # E_q[g(z) / q(z)] = 1 for any normalized g: a wrong normalizer, a wrong log-determinant
    # or samples that do not follow log_prob all move it. g is a Gaussian fitted to the
    # samples, a little narrower than q, so that the ratio stays bounded.
    torch.manual_seed(0)
    layer = randomized(
        posterior_layer(family(kind, flow_length=3, flow_hidden=[8]), 3, (8,), 2, "tanh")
    )
    h = torch.randn(4, 3)  # four data points: four different posteriors
    with torch.no_grad():
        q = layer(h)
        z = q.rsample((100_000,))  # [N, 4, 2]
        log_q = q.log_prob(z)
        mean, centred = z.mean(0), z - z.mean(0)
        cov = torch.einsum("nbi,nbj->bij", centred, centred) / len(z)
        g = MultivariateNormal(mean, 0.6 * cov)
        ratio = torch.exp(g.log_prob(z) - log_q)
    assert z.shape == (100_000, 4, 2) and log_q.shape == (100_000, 4)
    torch.testing.assert_close(ratio.mean(0), torch.ones(4), atol=0.03, rtol=0)


@pytest.mark.parametrize("kind", ["full", "iaf"])
def test_invertible_posteriors_integrate_to_one_on_a_grid(kind: str) -> None:
    torch.manual_seed(1)
    layer = randomized(
        posterior_layer(family(kind, flow_length=2, flow_hidden=[8]), 3, (8,), 2, "tanh"), 0.1
    )
    with torch.no_grad():
        q = layer(torch.randn(1, 3))
        density = q.log_prob(POINTS.unsqueeze(1)).exp().squeeze(1)  # IAF: through its inverse
        samples = q.sample((40_000,)).squeeze(1)
    assert abs((density.sum() * CELL).item() - 1) < 0.02
    grid_mean = (density.unsqueeze(-1) * POINTS).sum(0) * CELL
    torch.testing.assert_close(samples.mean(0), grid_mean, atol=0.05, rtol=0)


def test_full_covariance_has_the_encoders_cholesky_factor() -> None:
    torch.manual_seed(2)
    layer = randomized(FullCovarianceLayer(3, (8,), 3, "tanh"), 0.5)
    q = layer(torch.randn(2, 3))
    tril = q.scale_tril
    assert torch.equal(tril, tril.tril()) and (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
    assert (tril[..., 1, 0] != 0).all()  # correlations, not a diagonal
    with torch.no_grad():
        z = q.sample((200_000,))
    centred = z - z.mean(0)
    cov = torch.einsum("nbi,nbj->bij", centred, centred) / len(z)
    torch.testing.assert_close(cov, tril @ tril.mT, atol=0.03, rtol=0.05)


@pytest.mark.parametrize("kind", POSTERIORS)
def test_guides_broadcast_over_particles_in_one_and_two_layers(kind: str) -> None:
    torch.manual_seed(3)
    x = (torch.rand(5, 12) < 0.5).float()
    for latent, hidden in (((4,), ((8,),)), ((4, 3), ((8,), (6,)))):
        model = VAEModel(12, latent, hidden)
        guide = VAEGuide(12, latent, hidden, posterior=family(kind, flow_hidden=[8]))
        lw = dgm.log_weights(model, guide, x, num_particles=7)
        assert lw.log_w.shape == (7, 5) and torch.isfinite(lw.log_w).all()
        for site in lw.guide_trace.latent:
            assert site.value is not None and site.value.shape[:2] == (7, 5)
            assert site.log_prob.shape == (7, 5)
        lw.log_w.mean().backward()  # gradients reach the flows and factors
        assert all(p.grad is not None for p in guide.parameters())


def test_diagonal_gaussian_mixture_equals_the_mixture_by_hand() -> None:
    torch.manual_seed(4)
    logits, loc, scale = torch.randn(6), torch.randn(6, 3), torch.rand(6, 3) + 0.2
    d = DiagonalGaussianMixture(logits, loc, scale, (5,))
    z = 2 * torch.randn(4, 5, 3)
    comps = Normal(loc, scale).log_prob(z.unsqueeze(-2)).sum(-1)  # [4, 5, 6]
    by_hand = torch.logsumexp(comps + torch.log_softmax(logits, 0), -1)
    torch.testing.assert_close(d.log_prob(z), by_hand, atol=1e-4, rtol=1e-5)
    assert d.batch_shape == (5,) and d.sample((2,)).shape == (2, 5, 3)
    draws = d.sample((100_000,))[:, 0]
    weights = torch.softmax(logits, 0)
    torch.testing.assert_close(
        draws.mean(0), (weights.unsqueeze(-1) * loc).sum(0), atol=0.03, rtol=0
    )
    torch.testing.assert_close(d.mean[0], (weights.unsqueeze(-1) * loc).sum(0))


def test_the_autoregressive_prior_integrates_to_one_and_matches_its_samples() -> None:
    torch.manual_seed(5)
    prior = randomized(AutoregressivePrior(2, length=2, hidden=(16, 16)), 0.15)
    with torch.no_grad():
        density = prior().log_prob(POINTS).exp()
        samples = prior((3,)).sample((10_000,))  # [N, 3 data points, 2]
    assert abs((density.sum() * CELL).item() - 1) < 0.02
    grid_mean = (density.unsqueeze(-1) * POINTS).sum(0) * CELL
    torch.testing.assert_close(samples.mean((0, 1)), grid_mean, atol=0.05, rtol=0)
    assert prior((7,)).log_prob(torch.zeros(4, 7, 2)).shape == (4, 7)


def test_a_full_covariance_vampprior_mixes_the_encoders_gaussians() -> None:
    torch.manual_seed(6)
    encoder = FullCovarianceLayer(6, (8,), 2, "tanh")
    prior = VampPrior(encoder.base, data_size=6, num_pseudo=4)
    z = torch.randn(3, 5, 2)
    q = encoder(prior.pseudo_inputs)
    by_hand = torch.logsumexp(q.log_prob(z.unsqueeze(-2)), -1) - math.log(4)
    torch.testing.assert_close(prior((5,)).log_prob(z), by_hand)


def test_vampprior_in_a_vae_trains_the_pseudo_inputs_and_leaves_the_encoder_to_the_guide() -> None:
    torch.manual_seed(7)
    guide = VAEGuide(12, (3,), ((8,),))
    model = VAEModel(12, (3,), ((8,),), prior=VampPrior(guide.layers[0].base, 12, 5))
    assert not {id(p) for p in model.parameters()} & {id(p) for p in guide.parameters()}
    assert not any(k.startswith("prior.encoder") for k in model.state_dict())
    x = (torch.rand(4, 12) < 0.5).float()
    dgm.elbo(dgm.log_weights(model, guide, x, num_particles=2)).mean().backward()
    prior = model.prior
    assert isinstance(prior, VampPrior) and prior.pseudo_inputs.grad is not None
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    mog = VAEModel(12, (3,), ((8,),), prior=MixtureOfGaussiansPrior(3, 4))
    assert mog(num_samples=6).shape == (6, 12)  # generation draws from the mixture


def test_flow_posteriors_report_active_units_from_sampled_means() -> None:
    torch.manual_seed(8)
    base = Independent(Normal(torch.tensor([[1.0, -2.0, 0.5]]), torch.ones(1, 3)), 1)
    flow = dgm.flows.FlowDistribution(base, dgm.flows.Permute(3))
    means = dgm.metrics.latent._mean(flow)
    torch.testing.assert_close(means, torch.tensor([[0.5, -2.0, 1.0]]), atol=0.15, rtol=0)
    guide = VAEGuide(12, (3,), ((8,),), posterior=family("iaf", flow_hidden=[8]))
    units = dgm.metrics.active_units(guide, (torch.rand(50, 12) < 0.5).float())
    assert set(units) == {"z"} and 0 <= units["z"] <= 3


def test_checkpoints_from_before_priors_were_modules_still_load() -> None:
    model = VAEModel(12, (3,), ((8,),))
    old = model.state_dict()
    old["prior_loc"], old["prior_scale"] = old.pop("prior.loc"), torch.ones(3)
    model.load_state_dict(old)  # strict: no missing or unexpected keys
