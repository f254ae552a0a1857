"""Gradient estimators against analytic and enumerated gradients."""

import itertools
import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

import dgm
from tests.linear_gaussian import DiagonalGuide, FullCovGuide, LinearGaussianModel


class ScalarModel(nn.Module):
    """z ~ N(0, 1), x | z ~ N(z, 1)."""

    def forward(self, x: torch.Tensor) -> None:
        z = dgm.sample("z", Normal(torch.zeros_like(x), 1.0))
        dgm.sample("x", Normal(z, 1.0), obs=x)


class ScalarGuide(nn.Module):
    """q(z) = N(m, s^2)."""

    def __init__(self, m: float, s: float) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.tensor(m))
        self.log_s = nn.Parameter(torch.tensor(math.log(s)))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("z", Normal(self.m.expand_as(x), self.log_s.exp()))


def test_reparameterized_elbo_gradient_matches_closed_form() -> None:
    x0, m, s = 1.3, 0.2, 0.8
    guide = ScalarGuide(m, s)
    x = torch.full((40000,), x0)  # 40000 independent one-particle estimates
    dgm.elbo(dgm.log_weights(ScalarModel(), guide, x)).mean().backward()
    # ELBO = const - ((x-m)^2 + s^2)/2 - (m^2 + s^2)/2 + log s
    grad_m = (x0 - m) - m
    grad_log_s = (-2 * s + 1 / s) * s
    assert guide.m.grad is not None and guide.log_s.grad is not None
    assert abs(guide.m.grad.item() - grad_m) < 0.02
    assert abs(guide.log_s.grad.item() - grad_log_s) < 0.02


class DiscreteModel(nn.Module):
    """c ~ Bernoulli(0.3), x | c ~ N(2c - 1, 1)."""

    def forward(self, x: torch.Tensor) -> None:
        c = dgm.sample("c", Bernoulli(probs=torch.full_like(x, 0.3)))
        dgm.sample("x", Normal(2 * c - 1, 1.0), obs=x)


class DiscreteGuide(nn.Module):
    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(logit))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("c", Bernoulli(logits=self.logit.expand_as(x)))


def log_joint(c: torch.Tensor, x: float) -> torch.Tensor:
    return Bernoulli(probs=torch.tensor(0.3)).log_prob(c) + Normal(2 * c - 1, 1.0).log_prob(
        torch.tensor(x)
    )


def enumerated_iwae_grad(logit: float, x: float, k: int) -> float:
    """d/dlogit of E_q[log (1/K) sum_k w_k], enumerating all 2^K particle states."""
    t = torch.tensor(logit, requires_grad=True)
    q = Bernoulli(logits=t)
    total = torch.zeros(())
    for states in itertools.product([0.0, 1.0], repeat=k):
        c = torch.tensor(states)
        log_q = q.log_prob(c)
        log_w = log_joint(c, x) - log_q
        total = total + log_q.sum().exp() * (torch.logsumexp(log_w, 0) - math.log(k))
    total.backward()
    assert t.grad is not None
    return t.grad.item()


@pytest.mark.parametrize("k", [1, 3])
def test_score_function_gradients_are_unbiased_for_a_discrete_latent(k: int) -> None:
    x0, logit = 0.4, -0.5
    expected = enumerated_iwae_grad(logit, x0, k)
    guide = DiscreteGuide(logit)
    x = torch.full((60000,), x0)
    objective = dgm.elbo if k == 1 else dgm.iwae
    objective(dgm.log_weights(DiscreteModel(), guide, x, num_particles=k)).mean().backward()
    assert guide.logit.grad is not None
    assert abs(guide.logit.grad.item() - expected) < 0.01, (guide.logit.grad.item(), expected)


def test_elbo_score_gradient_with_particles_matches_enumeration() -> None:
    x0, logit = -0.3, 0.7
    expected = enumerated_iwae_grad(logit, x0, 1)  # the ELBO gradient
    guide = DiscreteGuide(logit)
    dgm.elbo(
        dgm.log_weights(DiscreteModel(), guide, torch.full((5000,), x0), num_particles=8)
    ).mean().backward()
    assert guide.logit.grad is not None
    assert abs(guide.logit.grad.item() - expected) < 0.01


def test_without_baseline_the_score_gradient_is_noisier() -> None:
    """The leave-one-out baseline reduces variance; a zero baseline is still unbiased."""
    x0, logit = 0.4, -0.5
    grads = {}
    for name, baseline in [("loo", None), ("none", torch.zeros(()))]:
        guide = DiscreteGuide(logit)
        lw = dgm.log_weights(DiscreteModel(), guide, torch.full((4000,), x0), num_particles=4)
        per_point = dgm.elbo(lw, baseline=baseline)
        g = torch.stack(
            [torch.autograd.grad(b, guide.logit, retain_graph=True)[0] for b in per_point[:400]]
        )
        grads[name] = g
    assert grads["loo"].var() < 0.5 * grads["none"].var()
    assert abs(grads["loo"].mean() - grads["none"].mean()) < 3 * grads["none"].std() / 20


def _grads(model: nn.Module, guide: nn.Module, bound: torch.Tensor) -> list[torch.Tensor]:
    params = [*model.parameters(), *guide.parameters()]
    return list(torch.autograd.grad(bound.mean(), params))


def test_dreg_gradient_agrees_with_iwae_gradient_in_expectation() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    with torch.no_grad():
        guide.C.normal_(0, 0.3)
    x = (torch.randn(1, 3) * 1.5).repeat(30000, 1)
    torch.manual_seed(1)
    plain = _grads(model, guide, dgm.iwae(dgm.log_weights(model, guide, x, num_particles=5)))
    torch.manual_seed(2)
    dreg = _grads(
        model, guide, dgm.iwae(dgm.log_weights(model, guide, x, num_particles=5), dreg=True)
    )
    for p, d in zip(plain, dreg, strict=True):
        torch.testing.assert_close(d, p, atol=0.03, rtol=0.05)


def test_dreg_guide_gradient_vanishes_at_the_exact_posterior() -> None:
    """With q = p(z|x), log w_k is constant in z, so every DReG guide gradient is exactly 0,
    while the plain IWAE guide gradient is zero only on average."""
    model = LinearGaussianModel()
    guide = FullCovGuide(model)
    x = torch.randn(1, 3).repeat(64, 1)
    for dreg in (True, False):
        lw = dgm.log_weights(model, guide, x, num_particles=4)
        bound = dgm.iwae(lw, dreg=dreg)
        torch.testing.assert_close(bound, model.log_evidence(x), atol=1e-4, rtol=1e-5)
        per_point = torch.stack(
            [torch.autograd.grad(b, guide.c, retain_graph=True)[0] for b in bound[:16]]
        )
        if dreg:
            assert per_point.abs().max() < 1e-4
        else:
            assert per_point.abs().max() > 1e-2


def test_dreg_has_lower_guide_gradient_variance_than_iwae_for_large_k() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    x = torch.randn(1, 3).repeat(200, 1)

    def per_point_grads(dreg: bool) -> torch.Tensor:
        lw = dgm.log_weights(model, guide, x, num_particles=64)
        b = dgm.iwae(lw, dreg=dreg)
        return torch.stack(
            [torch.autograd.grad(bi, guide.c, retain_graph=True)[0] for bi in b[:100]]
        )

    assert per_point_grads(True).var(0).sum() < 0.5 * per_point_grads(False).var(0).sum()


def test_dreg_rejects_discrete_guides_and_reused_weights() -> None:
    lw = dgm.log_weights(DiscreteModel(), DiscreteGuide(0.0), torch.zeros(4), num_particles=2)
    with pytest.raises(ValueError, match=r"dreg=True\) needs reparameterized guide sites; \['c'\]"):
        dgm.iwae(lw, dreg=True)
    model, guide = LinearGaussianModel(), DiagonalGuide()
    lw = dgm.log_weights(model, guide, torch.randn(4, 3), num_particles=2)
    dgm.iwae(lw, dreg=True)
    with pytest.raises(RuntimeError, match="compute fresh log_weights"):
        dgm.elbo(lw)


def test_objective_callables_match_the_functions() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    x = torch.randn(4, 3)
    torch.manual_seed(5)
    a = dgm.IWAE(7)(model, guide, x)
    torch.manual_seed(5)
    b = dgm.iwae(dgm.log_weights(model, guide, x, num_particles=7))
    torch.testing.assert_close(a, b)
    assert "IWAE(num_particles=7" in repr(dgm.IWAE(7)) and "ELBO(num_particles=1)" in repr(
        dgm.ELBO()
    )
    assert isinstance(Independent(Normal(torch.zeros(2), 1.0), 1), Independent)
