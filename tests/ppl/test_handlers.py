import re

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

import dgm
from dgm.ppl import DuplicateSiteError, MissingSiteError, ProgramError, ShapeError


class Model(nn.Module):
    """z ~ N(0, I_4) per data point, c ~ Bernoulli(0.3), x ~ N(W z, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(x.shape[0], 4), 1.0), 1))
        c = dgm.sample("c", Bernoulli(probs=x.new_full((x.shape[0],), 0.3)))
        dgm.sample("x", Independent(Normal(self.lin(z) + c.unsqueeze(-1), 1.0), 1), obs=x)


class Guide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("z", Independent(Normal(self.lin(x), 0.5), 1))
        dgm.sample("c", Bernoulli(logits=x.sum(-1)))


def test_sample_without_handlers_draws_or_returns_obs() -> None:
    d = Normal(torch.zeros(3), 1.0)
    assert dgm.sample("z", d).shape == (3,)
    obs = torch.ones(3)
    assert dgm.sample("z", d, obs=obs) is obs


def test_trace_records_value_distribution_log_prob_and_flags() -> None:
    x = torch.randn(5, 3)
    with dgm.trace() as tr:
        Model()(x)
    assert [s.name for s in tr] == ["z", "c", "x"]
    z, c, obs = tr["z"], tr["c"], tr["x"]
    assert z.value.shape == (5, 4) and z.log_prob.shape == (5,)
    torch.testing.assert_close(z.log_prob, Normal(0.0, 1.0).log_prob(z.value).sum(-1))
    assert z.is_reparameterized and not z.is_observed
    assert not c.is_reparameterized and not c.is_observed
    assert obs.is_observed and not obs.is_reparameterized and obs.value is x
    assert [s.name for s in tr.latent] == ["z", "c"] and [s.name for s in tr.observed] == ["x"]
    total = z.log_prob + c.log_prob + obs.log_prob
    torch.testing.assert_close(tr.log_prob_sum(), total)


def test_replay_reuses_guide_values_and_keeps_observations() -> None:
    x = torch.randn(5, 3)
    with dgm.trace() as guide_tr:
        Guide()(x)
    with dgm.trace() as model_tr, dgm.replay(guide_tr):
        Model()(x)
    assert model_tr["z"].value is guide_tr["z"].value
    assert model_tr["c"].value is guide_tr["c"].value
    assert model_tr["x"].value is x and model_tr["x"].is_observed


def test_condition_fixes_values_as_observed() -> None:
    x = torch.randn(5, 3)
    z = torch.zeros(5, 4)
    with dgm.trace() as tr, dgm.condition({"z": z}):
        Model()(x)
    assert tr["z"].value is z and tr["z"].is_observed and not tr["z"].is_reparameterized


def test_particles_add_a_leading_dimension_and_models_broadcast() -> None:
    x = torch.randn(5, 3)
    k = 7
    with dgm.trace() as guide_tr, dgm.particles(k):
        Guide()(x)
    assert guide_tr["z"].value.shape == (k, 5, 4) and guide_tr["c"].value.shape == (k, 5)
    with dgm.trace() as model_tr, dgm.replay(guide_tr):
        Model()(x)  # nn.Linear broadcasts over [K, B, 4]
    assert model_tr["x"].log_prob.shape == (k, 5)
    assert model_tr["z"].log_prob.shape == (k, 5)


def test_particles_do_not_duplicate_an_already_particled_dimension() -> None:
    def chain(x: torch.Tensor) -> None:
        z1 = dgm.sample("z1", Independent(Normal(x, 1.0), 1))  # batch [B]
        z2 = dgm.sample("z2", Independent(Normal(2 * z1, 1.0), 1))  # batch [K, B]
        dgm.sample("g", Independent(Normal(torch.zeros(2), 1.0), 1))  # global: batch []
        assert z2.shape == z1.shape

    with dgm.trace() as tr, dgm.particles(3):
        chain(torch.zeros(3, 2))  # B == K must not confuse the rule
    assert tr["z1"].value.shape == (3, 3, 2) and tr["z2"].value.shape == (3, 3, 2)
    assert tr["g"].value.shape == (3, 1, 2)


def test_particle_values_are_independent_draws() -> None:
    with dgm.trace() as tr, dgm.particles(4000):
        dgm.sample("z", Normal(torch.zeros(2), 1.0))
    v = tr["z"].value
    assert v.shape == (4000, 2)
    assert abs(float(v.mean())) < 0.05 and abs(float(v.std()) - 1.0) < 0.05


def test_duplicate_site_names_are_reported_with_the_site_table() -> None:
    def program() -> None:
        dgm.sample("z", Normal(0.0, 1.0))
        dgm.sample("z", Normal(0.0, 1.0))

    with (
        pytest.raises(DuplicateSiteError, match="two sample sites are named 'z'") as info,
        dgm.trace(),
    ):
        program()
    assert "site | kind" in str(info.value) and "latent" in str(info.value)


def test_missing_model_site_in_replayed_guide_names_the_site() -> None:
    x = torch.randn(5, 3)

    def partial_guide(x: torch.Tensor) -> None:
        dgm.sample("z", Independent(Normal(x.new_zeros(5, 4), 1.0), 1))

    with pytest.raises(MissingSiteError, match="latent site 'c' has no value") as info:
        dgm.log_weights(Model(), partial_guide, x)
    assert re.search(r"\n\s+guide\s+\| z\s+\| latent\s+\| \[1, 5, 4\]", str(info.value))


def test_shape_mismatch_inside_a_program_is_reraised_with_the_sites_so_far() -> None:
    guide = Guide()
    with pytest.raises(ProgramError, match="RuntimeError inside the program") as info, dgm.trace():
        guide(torch.randn(5, 6))  # nn.Linear(3, 4) on 6 features
    assert "no sample sites yet" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError) and isinstance(info.value, RuntimeError)
    with pytest.raises(ProgramError) as info2:
        dgm.log_weights(Model(), Guide(), torch.randn(5, 3), num_particles=2, extra=1)
    assert "unexpected keyword argument" in str(info2.value)
    assert isinstance(info2.value, TypeError)  # still caught by `except TypeError`


def test_forgotten_to_event_is_a_shape_error_with_advice() -> None:
    def guide(x: torch.Tensor) -> None:
        dgm.sample("z", Normal(x.new_zeros(5, 4), 1.0))  # batch [5, 4]: event dim not declared

    with pytest.raises(ShapeError, match=r"site 'z' has batch shape \[5, 4\].*Independent"):
        dgm.log_weights(Model(), guide, torch.randn(5, 3), num_particles=2)


def test_guide_site_absent_from_model_is_an_error() -> None:
    def guide(x: torch.Tensor) -> None:
        Guide()(x)
        dgm.sample("extra", Normal(x.new_zeros(5), 1.0))

    with pytest.raises(
        ProgramError, match=r"guide site\(s\) \['extra'\] do not appear in the model"
    ):
        dgm.log_weights(Model(), guide, torch.randn(5, 3))


def test_handlers_must_exit_in_order() -> None:
    a, b = dgm.trace(), dgm.particles(2)
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        a.__exit__(None, None, None)
    b.__exit__(None, None, None)
    a.__exit__(None, None, None)


def test_sample_rejects_non_distributions() -> None:
    with pytest.raises(TypeError, match=r"expected a torch\.distributions\.Distribution"):
        dgm.sample("z", torch.zeros(3))  # type: ignore[arg-type]
