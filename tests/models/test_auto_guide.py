"""AutoGuide: a proposal family per support, correct shapes, and clear refusals."""

import pytest
import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Dirichlet,
    Gamma,
    Independent,
    Laplace,
    Normal,
    Uniform,
)

import dgm
from dgm.models import AutoGuide
from dgm.models.regression import PolynomialRegression, simulate


class Mixed(nn.Module):
    """One latent of every supported kind, observed through y."""

    def forward(self, y: torch.Tensor) -> None:
        b = y.shape[0]
        loc = dgm.sample("loc", Independent(Normal(torch.zeros(b, 2), 1.0), 1))
        scale = dgm.sample("scale", Gamma(torch.full((b,), 2.0), 1.0))
        frac = dgm.sample("frac", Beta(torch.full((b,), 2.0), 2.0))
        width = dgm.sample("width", Uniform(torch.full((b,), -1.0), 3.0))
        flip = dgm.sample("flip", Bernoulli(probs=torch.full((b,), 0.3)))
        k = dgm.sample("k", Categorical(logits=torch.zeros(b, 4)))
        mean = loc.sum(-1) + frac + width + flip + k
        noise = Normal(mean.unsqueeze(-1) + torch.zeros_like(y), scale.unsqueeze(-1))
        dgm.sample("y", Independent(noise, 1), obs=y)


def test_each_support_gets_its_family_and_values_respect_it() -> None:
    torch.manual_seed(0)
    y = torch.randn(16, 5)
    guide = AutoGuide(Mixed(), y)
    families = {p.name: p.family for p in guide.plans}
    assert families == {
        "loc": "normal",
        "scale": "lognormal",
        "frac": "interval",
        "width": "interval",
        "flip": "bernoulli",
        "k": "categorical",
    }
    lw = dgm.log_weights(Mixed(), guide, y, num_particles=50)
    v = {s.name: s.value for s in lw.guide_trace.latent}
    assert (v["scale"] > 0).all()  # a positive site never gets negative proposals
    assert ((v["frac"] > 0) & (v["frac"] < 1)).all()
    assert ((v["width"] > -1) & (v["width"] < 3)).all()
    assert set(v["flip"].unique().tolist()) <= {0.0, 1.0}
    assert v["k"].dtype == torch.long and set(v["k"].unique().tolist()) <= {0, 1, 2, 3}
    assert v["loc"].shape == (50, 16, 2)
    assert lw.log_q.shape == (50, 16) and torch.isfinite(lw.log_q).all()
    assert torch.isfinite(lw.log_p).all()


def test_unsupported_supports_are_refused_with_a_clear_message() -> None:
    class Simplex(nn.Module):
        def forward(self, y: torch.Tensor) -> None:
            p = dgm.sample("p", Dirichlet(torch.ones(y.shape[0], 3)))
            dgm.sample("y", Independent(Normal(p, 1.0), 1), obs=y)

    with pytest.raises(ValueError, match=r"site 'p'.*write a guide program by hand"):
        AutoGuide(Simplex(), torch.zeros(4, 3))


def test_the_set_embedding_is_permutation_invariant_and_ignores_padding() -> None:
    torch.manual_seed(1)
    model = PolynomialRegression()
    t, y, mask, _ = simulate(model, 6, 10, variable=True)
    assert mask is not None
    guide = AutoGuide(model, embedding="set", t=t, y=y, mask=mask)
    h = guide.embedding(t=t, y=y, mask=mask)
    perm = torch.randperm(10)
    torch.testing.assert_close(h, guide.embedding(t=t[:, perm], y=y[:, perm], mask=mask[:, perm]))
    garbage = torch.where(mask.bool(), y, torch.full_like(y, 1e3))
    torch.testing.assert_close(h, guide.embedding(t=t, y=garbage, mask=mask))


def test_polynomial_regression_site_is_a_full_covariance_proposal() -> None:
    model = PolynomialRegression()
    t, y, _, _ = simulate(model, 3, 10)
    guide = AutoGuide(model, t=t, y=y)
    with dgm.trace() as tr:
        guide(t=t, y=y)
    fn = tr["w"].fn
    assert isinstance(fn, torch.distributions.MultivariateNormal) and fn.event_shape == (3,)
    assert isinstance(Laplace(0.0, 1.0).support, type(torch.distributions.constraints.real))
