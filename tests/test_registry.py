"""The name-to-constructor tables: lookup, capabilities, and that every entry builds what it says."""

from pathlib import Path

import pytest
import torch

from dgm.data import DATASETS
from dgm.models.posteriors import POSTERIORS
from dgm.models.priors import PRIORS
from dgm.objectives import IWAE, OBJECTIVES, RWS, Sleep
from dgm.objectives.registry import ObjectiveContext
from dgm.registry import Registry, UnknownChoiceError, at_least


def test_lookup_suggests_a_close_name_and_lists_the_choices() -> None:
    table: Registry[int] = Registry("colour")
    table.add("red", lambda: 1, "warm", warm=True)
    table.add("blue", lambda: 2, "cold", warm=False)
    assert table.build("blue") == 2 and table["red"].warm and table["red"].summary == "warm"
    assert table.names() == ["red", "blue"] and table.names(warm=False) == ["blue"]
    with pytest.raises(
        UnknownChoiceError,
        match=r"unknown colour 'rde'. Did you mean 'red'\? Choose one of red, blue",
    ):
        table["rde"]
    with pytest.raises(ValueError, match=r"colour 'red' is registered twice"):
        table.add("red", lambda: 3)
    with pytest.raises(AttributeError):
        table["red"].unknown_capability  # noqa: B018
    with pytest.raises(ValueError, match=r"^k must be >= 1, got 0$"):
        at_least("k", 0, 1)


def test_every_objective_builds_with_its_options() -> None:
    # what the disentangling ones need beyond their settings
    needs = ObjectiveContext(dataset_size=100, discriminator=torch.nn.Linear(2, 2))
    for name in OBJECTIVES:
        options = OBJECTIVES.options(name)
        if hasattr(options, "num_particles"):
            options.num_particles = 2
        assert callable(OBJECTIVES.create(options, needs))
    disentangle = OBJECTIVES.names(disentangle=True)
    assert disentangle == [
        "beta-vae",
        "annealed-capacity",
        "beta-tcvae",
        "factor-vae",
        "dip-vae-i",
        "dip-vae-ii",
    ]
    assert OBJECTIVES.names(critic=True) == ["factor-vae"]
    assert OBJECTIVES.names(factorized=True) == ["beta-tcvae", "dip-vae-i", "dip-vae-ii"]
    # each objective's options default to its method's published weights; given ones are kept
    assert OBJECTIVES.build("beta-vae").beta == 4.0
    tcvae = ObjectiveContext(dataset_size=10)
    assert OBJECTIVES.build("beta-tcvae", tcvae).beta == 6.0
    assert OBJECTIVES.build("beta-tcvae", tcvae, beta=2.0, gamma=0.5).gamma == 0.5
    assert OBJECTIVES.build("factor-vae", needs).gamma == 35.0
    assert OBJECTIVES.names(learns_model=False) == ["sleep"]
    iwae = OBJECTIVES.build("iwae", num_particles=3, dreg=True)
    assert isinstance(iwae, IWAE) and iwae.num_particles == 3 and iwae.dreg
    rws = OBJECTIVES.build("rws", num_particles=4, phi="both")
    assert isinstance(rws, RWS) and rws.phi == "both"
    assert isinstance(OBJECTIVES.build("sleep", observed=["y"]), Sleep)
    assert [n for n in OBJECTIVES if OBJECTIVES[n].bound] == ["elbo", "iwae"]
    assert OBJECTIVES.names(dreg=True) == ["iwae", "vimco"]


def test_rescorable_posteriors_are_those_that_score_values_they_did_not_draw() -> None:
    h = torch.randn(5, 3)
    for name in POSTERIORS:
        options = POSTERIORS.options(name)
        if hasattr(options, "flow_hidden"):
            options.flow_hidden = [8]
        layer = POSTERIORS.create(options, 3, (8,), 2, "tanh")
        q = layer(h)
        z = q.rsample()
        assert torch.isfinite(q.log_prob(z)).all()  # its own draws: always
        other = z.detach().clone()
        if POSTERIORS[name].rescorable:
            assert torch.isfinite(q.log_prob(other)).all()
        if POSTERIORS[name].factorized:  # a product of closed-form marginals
            assert isinstance(q, torch.distributions.Independent)
    with pytest.raises(NotImplementedError):  # planar flows have no inverse
        POSTERIORS.build("planar", 3, (8,), 2, "tanh")(h).log_prob(torch.zeros(5, 2))


def test_every_prior_gives_a_distribution_over_the_latent_space() -> None:
    encoder = POSTERIORS.build("diagonal", 6, (8,), 3, "tanh")
    small = {"components": 4, "flow_length": 1, "flow_hidden": [4]}
    for name in PRIORS:
        options = PRIORS.options(name)
        for key, value in small.items():
            if hasattr(options, key):
                setattr(options, key, value)
        prior = PRIORS.create(options, 3, 6, encoder.base)
        p = prior((7,))
        assert p.batch_shape == (7,) and p.event_shape == (3,), name
        assert p.log_prob(torch.zeros(7, 3)).shape == (7,), name


def test_data_set_shapes_match_what_they_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    splits = DATASETS.build(
        "dsprites", data_dir=None, seed=0, train_points=6, valid_points=2, test_points=3
    )
    assert splits.image_shape == DATASETS["dsprites"].shape and splits.train.shape == (6, 4096)
    assert (
        splits.side["factors"]["test"].shape == (3, 5) and splits.info["factor_names"][0] == "shape"
    )
    assert DATASETS.names(binarize=True) == ["mnist", "mnist_t10k", "fashion_mnist"]
