"""Objectives under the per-site channel: own baselines (``infer``), ``scale`` and ``mask``."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal

import dgm
from dgm.objectives._surrogate import leave_one_out_baseline, magic_box
from dgm.ppl import mask, scale

LOG_2PI = math.log(2 * math.pi)
PRIOR_A, PRIOR_C = 0.3, 0.6


class TwoBitModel(nn.Module):
    """a ~ Bernoulli(0.3), c ~ Bernoulli(0.6), x | a, c ~ N(a + 2c - 1, 1)."""

    def forward(self, x: torch.Tensor) -> None:
        a = dgm.sample("a", Bernoulli(probs=torch.full_like(x, PRIOR_A)))
        c = dgm.sample("c", Bernoulli(probs=torch.full_like(x, PRIOR_C)))
        dgm.sample("x", Normal(a + 2 * c - 1, 1.0), obs=x)


class TwoBitGuide(nn.Module):
    """q(a) q(c), one logit each; site a may carry its own baseline."""

    def __init__(self, baseline: torch.Tensor | float | None = None, n: int | None = None) -> None:
        super().__init__()
        shape = () if n is None else (n,)  # one logit per data point: per-point gradients
        self.logit_a = nn.Parameter(torch.full(shape, -0.4))
        self.logit_c = nn.Parameter(torch.full(shape, 0.9))
        self.baseline = baseline

    def forward(self, x: torch.Tensor) -> None:
        infer = {} if self.baseline is None else {"baseline": self.baseline}
        dgm.sample("a", Bernoulli(logits=self.logit_a.expand_as(x)), infer=infer)
        dgm.sample("c", Bernoulli(logits=self.logit_c.expand_as(x)))


def bernoulli_lp(v: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(v; sigmoid(logit)), written out."""
    return v * F.logsigmoid(logit) + (1 - v) * F.logsigmoid(-logit)


def hand_log_w(
    guide: TwoBitGuide, a: torch.Tensor, c: torch.Tensor, x: torch.Tensor, beta_a: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log w (site a's densities weighted by beta_a), log q(a), log q(c), from the formulas."""
    log_p = (
        beta_a * (a * math.log(PRIOR_A) + (1 - a) * math.log(1 - PRIOR_A))
        + c * math.log(PRIOR_C)
        + (1 - c) * math.log(1 - PRIOR_C)
        - 0.5 * (x - (a + 2 * c - 1)) ** 2
        - 0.5 * LOG_2PI
    )
    log_qa, log_qc = bernoulli_lp(a, guide.logit_a), bernoulli_lp(c, guide.logit_c)
    return log_p - beta_a * log_qa - log_qc, log_qa, log_qc


def grads(bound: torch.Tensor, guide: TwoBitGuide) -> torch.Tensor:
    g = torch.autograd.grad(bound.sum(), [guide.logit_a, guide.logit_c], retain_graph=True)
    return torch.stack(g)


X = torch.tensor([0.3, -1.2])  # B = 2
# the site's own baseline, per particle and data point [K=3, B=2]; far from any log w
OWN_B = torch.tensor([[4.0, -3.0], [2.5, 0.5], [-6.0, 1.0]])


def draws(lw: dgm.objectives.LogWeights) -> tuple[torch.Tensor, torch.Tensor]:
    return lw.guide_trace["a"].value, lw.guide_trace["c"].value


@pytest.mark.parametrize("beta_a", [1.0, 0.5])
def test_elbo_gradient_with_one_sites_own_baseline_matches_the_hand_surrogate(
    beta_a: float,
) -> None:
    """With beta_a != 1 site a is also scaled (model and guide): its score term stays unscaled."""
    torch.manual_seed(0)
    b = OWN_B.clone().requires_grad_(True)
    guide = TwoBitGuide(baseline=b)
    with scale(beta_a, sites={"a"}):
        lw = dgm.log_weights(TwoBitModel(), guide, X, num_particles=3)
    bound = dgm.elbo(lw)
    a, c = draws(lw)
    log_w, log_qa, log_qc = hand_log_w(guide, a, c, X, beta_a)
    s = log_w.detach()
    loo = (s.sum(0, keepdim=True) - s) / 2  # mean of the other two particles
    hand = (
        log_w.mean(0)
        + magic_box((s - OWN_B) * log_qa).mean(0)  # a: its own baseline, unscaled log q
        + magic_box((s - loo) * log_qc).mean(0)  # c: the default leave-one-out baseline
    )
    torch.testing.assert_close(bound, hand)
    torch.testing.assert_close(grads(bound, guide), grads(hand, guide))
    bound.sum().backward()
    # the score term detaches the baseline; a learned one gets only its least-squares fit,
    # the gradient of mean_k -(1/2) (log w_k - b_k)^2
    assert b.grad is not None
    torch.testing.assert_close(b.grad, (s - OWN_B) / 3)


def test_iwae_gradient_with_one_sites_own_baseline_matches_the_hand_surrogate() -> None:
    torch.manual_seed(1)
    guide = TwoBitGuide(baseline=OWN_B)
    lw = dgm.log_weights(TwoBitModel(), guide, X, num_particles=3)
    bound = dgm.iwae(lw)
    a, c = draws(lw)
    log_w, log_qa, log_qc = hand_log_w(guide, a, c, X)
    s = log_w.detach()
    log_l = torch.logsumexp(s, 0) - math.log(3)
    vimco_rows = []  # log L - log L^{-k}: log w_k replaced by the mean of the other two
    for k in range(3):
        others = torch.cat([s[:k], s[k + 1 :]])
        replaced = torch.cat([others, others.mean(0, keepdim=True)])
        vimco_rows.append(log_l - (torch.logsumexp(replaced, 0) - math.log(3)))
    vimco = torch.stack(vimco_rows)
    hand = (
        torch.logsumexp(log_w, 0)
        - math.log(3)
        + magic_box((log_l - OWN_B) * log_qa).sum(0)  # a: b stands in for log L^{-k}
        + magic_box(vimco * log_qc).sum(0)  # c: VIMCO's control variate
    )
    torch.testing.assert_close(bound, hand)
    torch.testing.assert_close(grads(bound, guide), grads(hand, guide))


def test_iwae_with_one_particle_treats_an_own_baseline_as_elbo_does() -> None:
    torch.manual_seed(2)
    guide = TwoBitGuide(baseline=torch.tensor([1.5, -2.0]))
    lw = dgm.log_weights(TwoBitModel(), guide, X)  # K = 1: log L_1 = log w_1
    torch.testing.assert_close(grads(dgm.iwae(lw), guide), grads(dgm.elbo(lw), guide))


def test_without_own_baselines_the_score_term_is_computed_exactly_as_before() -> None:
    torch.manual_seed(3)
    guide = TwoBitGuide()
    lw = dgm.log_weights(TwoBitModel(), guide, X, num_particles=4)
    s = lw.log_w.detach()
    score = lw.guide_trace["a"].log_prob + lw.guide_trace["c"].log_prob  # one group, in order
    before = lw.log_w.mean(0) + magic_box((s - leave_one_out_baseline(s)) * score).mean(0)
    assert torch.equal(grads(dgm.elbo(lw), guide), grads(before, guide))  # bit for bit


def test_an_own_baseline_keeps_the_elbo_gradient_unbiased() -> None:
    """A constant (poor) baseline on site a: the mean gradient is still the exact one."""
    x0 = 0.4
    t = torch.tensor([-0.4, 0.9], requires_grad=True)
    exact = torch.zeros(())
    for a, c in itertools.product([0.0, 1.0], repeat=2):
        av, cv = torch.tensor(a), torch.tensor(c)
        log_q = bernoulli_lp(av, t[0]) + bernoulli_lp(cv, t[1])
        log_p = (
            Bernoulli(probs=torch.tensor(PRIOR_A)).log_prob(av)
            + Bernoulli(probs=torch.tensor(PRIOR_C)).log_prob(cv)
            + Normal(av + 2 * cv - 1, 1.0).log_prob(torch.tensor(x0))
        )
        exact = exact + log_q.exp() * (log_p - log_q)
    (expected,) = torch.autograd.grad(exact, t)
    torch.manual_seed(4)
    n = 40000
    guide = TwoBitGuide(baseline=3.0, n=n)
    per_point = grads(dgm.elbo(dgm.log_weights(TwoBitModel(), guide, torch.full((n,), x0))), guide)
    mean, stderr = per_point.mean(1), per_point.std(1) / math.sqrt(n)
    assert (stderr < 0.02).all()  # precise enough to tell a biased estimator apart
    assert ((mean - expected).abs() < 4 * stderr).all(), (mean, expected, stderr)


def test_a_baseline_of_the_wrong_shape_or_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"site 'a': infer\['baseline'\] has shape \[3, 2, 1\]"):
        dgm.elbo(
            dgm.log_weights(TwoBitModel(), TwoBitGuide(torch.zeros(3, 2, 1)), X, num_particles=3)
        )
    with pytest.raises(TypeError, match=r"site 'a': infer\['baseline'\] must be a tensor"):
        dgm.iwae(dgm.log_weights(TwoBitModel(), TwoBitGuide("b"), X, num_particles=3))  # type: ignore[arg-type]


# scale and mask in the objectives


class CModel(nn.Module):
    """c ~ Bernoulli(0.3), x | c ~ N(2c - 1, 1)."""

    def forward(self, x: torch.Tensor) -> None:
        c = dgm.sample("c", Bernoulli(probs=torch.full_like(x, PRIOR_A)))
        dgm.sample("x", Normal(2 * c - 1, 1.0), obs=x)


class CGuide(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("c", Bernoulli(logits=self.logits.expand_as(x)))


def test_scaled_score_function_site_gets_the_gradient_of_the_beta_weighted_elbo() -> None:
    """beta * KL with a discrete latent: score terms use the unscaled log q (sampling is q's)."""
    x0, logit, beta = 0.4, -0.5, 0.3
    t = torch.tensor(logit, requires_grad=True)
    exact = torch.zeros(())
    for c in (0.0, 1.0):
        cv = torch.tensor(c)
        log_q = bernoulli_lp(cv, t)
        log_pc = Bernoulli(probs=torch.tensor(PRIOR_A)).log_prob(cv)
        log_px = Normal(2 * cv - 1, 1.0).log_prob(torch.tensor(x0))
        exact = exact + log_q.exp() * (log_px + beta * (log_pc - log_q))
    (expected,) = torch.autograd.grad(exact, t)
    torch.manual_seed(5)
    n = 40000
    guide = CGuide(torch.full((n,), logit))  # one logit per data point: per-point gradients
    with scale(beta, sites={"c"}):
        lw = dgm.log_weights(CModel(), guide, torch.full((n,), x0), num_particles=2)
    site = lw.guide_trace["c"]
    torch.testing.assert_close(lw.log_q, beta * site.unscaled_log_prob)  # the bound: scaled
    assert lw.score_log_q() is site.unscaled_log_prob  # the score term: unscaled
    (per_point,) = torch.autograd.grad(dgm.elbo(lw).sum(), guide.logits)
    mean, stderr = per_point.mean(), per_point.std() / math.sqrt(n)
    # scaling the score term too would give beta * the score part: about 0.1 below here
    assert stderr < 0.005 and abs(mean - expected) < 4 * stderr, (mean, expected, stderr)


def test_a_masked_score_function_site_contributes_nothing_where_masked() -> None:
    torch.manual_seed(6)
    m = torch.tensor([True, False, True])
    x = torch.tensor([0.3, -1.2, 2.0])
    guide = CGuide(torch.tensor([-0.4, 0.2, 0.9]))
    with mask(m, sites={"c"}):
        lw = dgm.log_weights(CModel(), guide, x, num_particles=3)
    c = lw.guide_trace["c"].value
    log_q = torch.where(m, bernoulli_lp(c, guide.logits), 0.0)
    log_p = torch.where(m, Bernoulli(probs=torch.tensor(PRIOR_A)).log_prob(c), 0.0) + Normal(
        2 * c - 1, 1.0
    ).log_prob(x)
    log_w = log_p - log_q
    s = log_w.detach()
    hand = log_w.mean(0) + magic_box((s - leave_one_out_baseline(s)) * log_q).mean(0)
    (got,) = torch.autograd.grad(dgm.elbo(lw).sum(), guide.logits)
    (want,) = torch.autograd.grad(hand.sum(), guide.logits)
    torch.testing.assert_close(got, want)
    assert got[1].item() == 0.0 and got[0].item() != 0.0


class ZModel(nn.Module):
    """z ~ N(0, 1), x | z ~ N(z, 1)."""

    def forward(self, x: torch.Tensor) -> None:
        z = dgm.sample("z", Normal(torch.zeros_like(x), 1.0))
        dgm.sample("x", Normal(z, 1.0), obs=x)


class ZGuide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.tensor([0.1, -0.3, 0.5]))
        self.log_scale = nn.Parameter(torch.tensor([-0.2, 0.1, 0.3]))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("z", Normal(self.loc, self.log_scale.exp()))


def dreg_gradients(mask_around_the_objective_too: bool) -> torch.Tensor:
    torch.manual_seed(7)
    x, m, guide = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([True, False, True]), ZGuide()
    if mask_around_the_objective_too:
        with mask(m, sites={"z"}):
            bound = dgm.iwae(dgm.log_weights(ZModel(), guide, x, num_particles=4), dreg=True)
    else:
        with mask(m, sites={"z"}):
            lw = dgm.log_weights(ZModel(), guide, x, num_particles=4)
        bound = dgm.iwae(lw, dreg=True)  # re-runs the guide outside the mask
    return torch.stack(torch.autograd.grad(bound.sum(), [guide.loc, guide.log_scale]))


def test_dreg_rescores_with_the_masks_of_the_first_run_and_refuses_scaled_guides() -> None:
    torch.testing.assert_close(dreg_gradients(False), dreg_gradients(True))
    with scale(0.5, sites={"z"}):
        lw = dgm.log_weights(ZModel(), ZGuide(), torch.zeros(3), num_particles=4)
    with pytest.raises(ValueError, match=r"unscaled guide sites; \['z'\] are scaled"):
        dgm.iwae(lw, dreg=True)
