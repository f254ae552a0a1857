"""The name-to-constructor tables: lookup, capabilities, and that every entry builds what it says."""

from pathlib import Path

import pytest
import torch

from dgm.data import DATASETS
from dgm.models.posteriors import POSTERIORS
from dgm.models.priors import PRIORS
from dgm.objectives import IWAE, OBJECTIVES, RWS, Sleep
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
    needs = {"dataset_size": 100, "discriminator": torch.nn.Linear(2, 2)}  # disentangling ones
    for name in OBJECTIVES:
        assert callable(OBJECTIVES.build(name, num_particles=2, **needs))
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
    # a weight left None takes the method's published default; a given one is kept
    assert OBJECTIVES.build("beta-vae", beta=None).beta == 4.0
    assert OBJECTIVES.build("beta-tcvae", dataset_size=10, beta=None).beta == 6.0
    assert OBJECTIVES.build("beta-tcvae", dataset_size=10, beta=2.0, gamma=0.5).gamma == 0.5
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
        layer = POSTERIORS.build(name, 3, (8,), 2, "tanh", 2, (8,))
        q = layer(h)
        z = q.rsample()
        assert torch.isfinite(q.log_prob(z)).all()  # its own draws: always
        other = z.detach().clone()
        if POSTERIORS[name].rescorable:
            assert torch.isfinite(q.log_prob(other)).all()
        if POSTERIORS[name].factorized:  # a product of closed-form marginals
            assert isinstance(q, torch.distributions.Independent)
    with pytest.raises(NotImplementedError):  # planar flows have no inverse
        POSTERIORS.build("planar", 3, (8,), 2, "tanh", 2, (8,))(h).log_prob(torch.zeros(5, 2))


def test_every_prior_gives_a_distribution_over_the_latent_space() -> None:
    encoder = POSTERIORS.build("diagonal", 6, (8,), 3, "tanh", 2, (8,))
    for name in PRIORS:
        prior = PRIORS.build(
            name,
            3,
            data_size=6,
            encoder=encoder.base,
            components=4,
            flow_length=1,
            flow_hidden=(4,),
        )
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
