"""Sigmoid belief networks and the GMM with an exact posterior."""

import pytest
import torch

import dgm
from dgm.models.gmm import gmm, mixture_distance, posterior_distance
from dgm.models.sbn import sbn


def test_sbn_sites_shapes_and_sampling() -> None:
    model, guide = sbn((30, 20, 10), data_size=12)
    x = (torch.rand(7, 12) < 0.5).float()
    lw = dgm.log_weights(model, guide, x, num_particles=4)
    assert lw.log_p.shape == (4, 7) and lw.log_q.shape == (4, 7)
    assert [s.name for s in lw.model_trace] == ["h3", "h2", "h1", "x"]
    assert lw.guide_trace["h2"].value.shape == (4, 7, 20)
    assert not lw.guide_trace["h1"].is_reparameterized  # score-function sites
    with dgm.trace() as tr:
        model(num_samples=5)
    assert set(tr["x"].value.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="binary"):
        model(torch.full((2, 12), 0.5))


def test_sbn_log_joint_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    model, guide = sbn((3,), data_size=4)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    lw = dgm.log_weights(model, guide, x)
    h = lw.guide_trace["h1"].value[0]
    lin = model.generative[0]
    prior = torch.distributions.Bernoulli(logits=model.top_logits).log_prob(h).sum(-1)
    lik = torch.distributions.Bernoulli(logits=lin(h)).log_prob(x).sum(-1)
    torch.testing.assert_close(lw.log_p[0], prior + lik)


def test_gmm_posterior_is_exact_and_true_weights_are_proportional_to_c_plus_5() -> None:
    model, _, truth = gmm()
    probs = truth.mixture_probs()
    torch.testing.assert_close(probs, (torch.arange(20.0) + 5) / (torch.arange(20.0) + 5).sum())
    assert model.mixture_probs()[0] > 0.6  # started far from the truth
    x = torch.tensor([3.0, 97.0])
    # p(c | x) by enumeration through the program itself
    log_joint = []
    for c in range(20):
        onehot = torch.nn.functional.one_hot(torch.full((2,), c), 20).float()
        with dgm.trace() as tr, dgm.condition({"c": onehot}):
            truth(x)
        log_joint.append(tr.log_prob_sum())
    want = torch.softmax(torch.stack(log_joint, -1), -1)
    torch.testing.assert_close(truth.posterior(x), want)
    torch.testing.assert_close(
        truth.log_marginal(x), torch.logsumexp(torch.stack(log_joint, -1), -1)
    )


def test_rws_drives_the_gmm_guide_to_the_true_posterior() -> None:
    torch.manual_seed(0)
    _, guide, truth = gmm()
    data = truth.simulate(20000)
    held_out = truth.simulate(2000)
    before = posterior_distance(truth, guide, held_out)
    dgm.train.fit(
        truth, guide, dgm.objectives.RWS(10, "wake"), data, steps=600, batch_size=100, lr=1e-2
    )
    after = posterior_distance(truth, guide, held_out)
    assert before > 0.6
    assert after < 0.2, (before, after)


def test_rws_moves_the_gmm_mixture_weights_toward_the_truth() -> None:
    torch.manual_seed(1)
    model, guide, truth = gmm()
    data = truth.simulate(20000)
    before = mixture_distance(model, truth)
    opts = [torch.optim.Adam(model.parameters(), 0.03), torch.optim.Adam(guide.parameters(), 3e-3)]
    dgm.train.fit(model, guide, dgm.objectives.RWS(10), data, steps=600, optimizer=opts)
    assert mixture_distance(model, truth) < 0.5 * before
