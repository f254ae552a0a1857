import pytest
import torch

import dgm
from dgm.models import vae
from tests.conftest import shared_data_dir


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_iwae_paper_architectures() -> None:
    model, guide = vae.one_layer()
    # encoder 784-200-200-(50 mean, 50 log-scale); decoder 50-200-200-784
    assert n_params(guide) == (784 * 200 + 200) + (200 * 200 + 200) + (200 * 100 + 100)
    assert n_params(model) == (50 * 200 + 200) + (200 * 200 + 200) + (200 * 784 + 784)
    model2, guide2 = vae.two_layer()
    enc = (
        (784 * 200 + 200)
        + (200 * 200 + 200)
        + (200 * 200 + 200)
        + (100 * 100 + 100)
        + (100 * 100 + 100)
        + (100 * 100 + 100)
    )
    assert n_params(guide2) == enc
    assert [s.name for s in dgm.log_weights(model2, guide2, torch.zeros(2, 784)).model_trace] == [
        "z2",
        "z1",
        "x",
    ]


@pytest.mark.parametrize("factory", [vae.one_layer, vae.two_layer])
def test_weights_and_generation_shapes(factory) -> None:  # type: ignore[no-untyped-def]
    model, guide = factory()
    x = (torch.rand(6, 784) < 0.3).float()
    lw = dgm.log_weights(model, guide, x, num_particles=4)
    assert lw.log_p.shape == (4, 6) and torch.isfinite(lw.log_w).all()
    with dgm.trace() as tr:
        model(num_samples=3)
    sample = tr["x"].value
    assert sample.shape == (3, 784) and set(sample.unique().tolist()) <= {0.0, 1.0}


def test_gaussian_likelihood_scores_continuous_data() -> None:
    model, guide = vae.one_layer(likelihood="gaussian", data_size=10)
    lw = dgm.log_weights(model, guide, torch.randn(5, 10), num_particles=3)
    assert lw.log_p.shape == (3, 5)
    assert isinstance(lw.model_trace["x"].fn.base_dist, torch.distributions.Normal)


def test_bad_data_gives_errors_that_say_what_to_do() -> None:
    model, guide = vae.one_layer()
    with pytest.raises(
        ValueError, match=r"VAEGuide expects data shaped \[batch, 784\].*got \[6, 28, 28\].*reshape"
    ):
        dgm.log_weights(model, guide, torch.zeros(6, 28, 28))
    gray = torch.rand(6, 784)
    with pytest.raises(
        ValueError, match=r"Bernoulli likelihood needs binary data.*binarize.*gaussian"
    ):
        dgm.log_weights(model, guide, gray)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        vae.VAEModel(likelihood="poisson")


@pytest.mark.skipif(shared_data_dir() is None, reason="DGM_DATA_DIR is not set to the real data")
def test_brief_training_on_a_subset_improves_test_log_likelihood() -> None:
    train = dgm.data.binarized_mnist("train", download=False)[:3000]
    test = dgm.data.binarized_mnist("test", download=False)[:200]
    model, guide = vae.one_layer()
    model.set_output_bias(train.mean(0))
    before = dgm.metrics.log_likelihood(model, guide, test, num_particles=100).mean()
    dgm.train.fit(model, guide, dgm.IWAE(5), train, epochs=6, batch_size=50, lr=1e-3)
    after = dgm.metrics.log_likelihood(model, guide, test, num_particles=100).mean()
    # better than independent pixels at the training means, a model with no latent at all
    marginal = torch.distributions.Bernoulli(probs=train.mean(0).clamp(1e-3, 1 - 1e-3))
    no_latent = marginal.log_prob(test).sum(-1).mean()
    assert after > before + 40 and after > no_latent + 30, (before, after, no_latent)
    assert dgm.metrics.active_units(guide, test)["z"] >= 3
