"""The handlers behind wake-sleep and relaxations: uncondition, no_reparam, relax."""

import pytest
import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    Independent,
    Normal,
    OneHotCategorical,
    RelaxedBernoulli,
)

import dgm
from dgm.ppl import no_reparam, relax, relaxed, uncondition


def program(x: torch.Tensor) -> torch.Tensor:
    z = dgm.sample("z", Normal(torch.zeros_like(x), 1.0))
    return dgm.sample("x", Normal(z + 10.0, 0.1), obs=x)


def test_uncondition_simulates_the_observed_sites() -> None:
    torch.manual_seed(0)
    x = torch.zeros(2000)
    with dgm.trace() as tr, uncondition() as sim:
        out = program(x)
    assert sim.observations["x"] is x
    assert not tr["x"].is_observed and tr["x"] in tr.latent
    assert abs(out.mean().item() - 10.0) < 0.1 and out.shape == x.shape
    with dgm.trace() as plain:
        program(x)
    assert plain["x"].is_observed and torch.equal(plain["x"].value, x)


def test_no_reparam_draws_values_without_a_gradient_path() -> None:
    loc = torch.zeros(3, requires_grad=True)
    with dgm.trace() as tr:
        dgm.sample("z", Normal(loc, 1.0))
    assert tr["z"].value.requires_grad and tr["z"].is_reparameterized
    with dgm.trace() as tr, no_reparam():
        dgm.sample("z", Normal(loc, 1.0))
    assert not tr["z"].value.requires_grad and not tr["z"].is_reparameterized
    assert tr["z"].log_prob.requires_grad  # the density still depends on loc


def test_relax_replaces_discrete_sites_by_their_concrete_relaxation() -> None:
    torch.manual_seed(1)
    logits = torch.randn(5, 4, requires_grad=True)
    with dgm.trace() as tr, relax(0.5):
        h = dgm.sample("h", Independent(Bernoulli(logits=logits), 1))
        c = dgm.sample("c", OneHotCategorical(logits=logits))
        z = dgm.sample("z", Normal(torch.zeros(5), 1.0))
        dgm.sample("x", Bernoulli(logits=z), obs=torch.ones(5))
    assert ((h > 0) & (h < 1)).all() and h.requires_grad
    torch.testing.assert_close(c.sum(-1), torch.ones(5))
    assert tr["h"].is_reparameterized and tr["c"].is_reparameterized
    want = RelaxedBernoulli(torch.tensor(0.5), logits=logits).log_prob(h).sum(-1)
    torch.testing.assert_close(tr["h"].log_prob, want)
    assert isinstance(tr["z"].fn, Normal)  # continuous sites are unchanged
    assert isinstance(tr["x"].fn, Bernoulli)  # so are observed ones
    with pytest.raises(TypeError, match="OneHotCategorical"):
        relaxed(Categorical(logits=logits), 0.5)
    with pytest.raises(ValueError, match="temperature"):
        relax(0.0)
