import torch
from torch import nn
from torch.distributions import Independent, Normal

import dgm
from tests.linear_gaussian import LinearGaussianModel, near_guide


class HandGuide(nn.Module):
    """Unit 0 follows x strongly, unit 1 is constant, unit 2 follows x weakly (var 0.0025)."""

    def forward(self, x: torch.Tensor) -> None:
        loc = torch.stack([x[:, 0], torch.zeros_like(x[:, 0]), 0.05 * x[:, 0]], -1)
        dgm.sample("z", Independent(Normal(loc, 1.0), 1))


def test_active_units_on_a_hand_built_code() -> None:
    x = torch.randn(4000, 2)
    assert dgm.metrics.active_units(HandGuide(), x) == {"z": 1}
    a = dgm.metrics.activity(HandGuide(), x)["z"]
    assert abs(a[0].item() - 1.0) < 0.1 and a[1].item() == 0.0 and abs(a[2].item() - 0.0025) < 5e-4
    assert dgm.metrics.active_units(HandGuide(), x, threshold=0.001) == {"z": 2}


def test_elbo_terms_analytic_kl_matches_monte_carlo() -> None:
    model = LinearGaussianModel()
    guide = near_guide(model)
    x = torch.randn(6, 3)
    terms = dgm.metrics.elbo_terms(model, guide, x, num_particles=20000)
    lw = dgm.log_weights(model, guide, x, num_particles=20000)
    mc_kl = (lw.guide_trace["z"].log_prob - lw.model_trace["z"].log_prob).mean(0)
    torch.testing.assert_close(terms.kl, mc_kl, atol=0.03, rtol=0)
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)
    torch.testing.assert_close(terms.elbo, dgm.elbo(lw), atol=0.05, rtol=0)
    assert (terms.kl > 0).all()


def test_two_layer_means_and_mc_kl() -> None:
    model, guide = dgm.models.vae.two_layer()
    x = (torch.rand(7, 784) < 0.3).float()
    means = dgm.metrics.posterior_means(guide, x, num_particles=5)
    assert means["z1"].shape == (7, 100) and means["z2"].shape == (7, 50)
    terms = dgm.metrics.elbo_terms(model, guide, x, num_particles=3)
    assert terms.kl.shape == (7,) and torch.isfinite(terms.kl).all()
