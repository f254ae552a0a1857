"""beta-VAE, annealed capacity, DIP-VAE and FactorVAE objectives."""

import math
from fractions import Fraction

import pytest
import torch

import dgm
from dgm.metrics import elbo_terms
from dgm.models.vae import VAEGuide, VAEModel
from dgm.objectives import LogWeights
from dgm.objectives.dip_vae import DIPVAE, dip_covariance, dip_penalty
from dgm.objectives.factor_vae import (
    Discriminator,
    FactorVAE,
    density_ratio_tc,
    discriminator_loss,
    factor_vae_critic_loss,
    permute_dims,
)
from dgm.objectives.kl_weighted import (
    AnnealedCapacity,
    BetaVAE,
    annealed_capacity,
    beta_vae,
    kl_terms,
)


def programs(posterior: str = "diagonal") -> tuple[VAEModel, VAEGuide]:
    model = VAEModel(6, (3,), ((8,),), "gaussian")
    return model, VAEGuide(6, (3,), ((8,),), posterior=posterior)


def seeded(seed: int, f, *args):
    torch.manual_seed(seed)
    return f(*args)


# beta-VAE


def test_beta_vae_with_beta_one_is_elbo_terms_elbo_and_beta_weights_the_kl() -> None:
    model, guide = programs()
    x = torch.randn(20, 6)
    terms = seeded(3, elbo_terms, model, guide, x, 1)
    torch.testing.assert_close(seeded(3, BetaVAE(1.0), model, guide, x).detach(), terms.elbo)
    value = seeded(3, BetaVAE(4.0), model, guide, x).detach()
    torch.testing.assert_close(value, terms.reconstruction - 4 * terms.kl)
    # the KL is analytic: it is not the one-sample log q - log p
    lw = seeded(3, dgm.log_weights, model, guide, x)
    mc = (lw.guide_trace["z"].log_prob - lw.model_trace["z"].log_prob)[0]
    assert not torch.allclose(kl_terms(lw).kl, mc)
    torch.testing.assert_close(
        kl_terms(lw).kl, torch.distributions.kl_divergence(lw.guide_trace["z"].fn, prior(lw))
    )


def prior(lw: LogWeights) -> torch.distributions.Distribution:
    return lw.model_trace["z"].fn


def test_beta_vae_falls_back_to_monte_carlo_without_a_registered_kl() -> None:
    model, guide = programs("full")  # MultivariateNormal q against an Independent(Normal) prior
    x = torch.randn(20, 6)
    torch.testing.assert_close(
        seeded(4, BetaVAE(1.0), model, guide, x), seeded(4, dgm.ELBO(), model, guide, x)
    )
    lw = dgm.log_weights(model, guide, x)
    t = kl_terms(lw)
    torch.testing.assert_close(
        beta_vae(lw, 3.0), t.reconstruction - 3 * (lw.log_q - lw.model_trace["z"].log_prob)[0]
    )


def test_beta_vae_weights_only_the_named_site_and_checks_it() -> None:
    model = VAEModel(6, (3, 2), ((8,), (4,)), "gaussian")
    guide = VAEGuide(6, (3, 2), ((8,), (4,)))
    x = torch.randn(10, 6)
    lw = dgm.log_weights(model, guide, x)
    t = kl_terms(lw, "z2")
    # the other site's log p - log q stays in the bound: beta = 1 is the one-sample ELBO
    z2_kl = torch.distributions.kl_divergence(lw.guide_trace["z2"].fn, lw.model_trace["z2"].fn)
    assert lw.guide_trace["z2"].fn.batch_shape == (1, 10)  # conditioned on particled z1: MC
    torch.testing.assert_close(
        t.kl, (lw.guide_trace["z2"].log_prob - lw.model_trace["z2"].log_prob)[0]
    )
    assert not torch.allclose(t.kl, z2_kl[0])
    torch.testing.assert_close(beta_vae(lw, 1.0, "z2"), dgm.elbo(lw))
    torch.testing.assert_close(beta_vae(lw, 5.0, "z2"), dgm.elbo(lw) - 4 * t.kl)
    with pytest.raises(ValueError, match="no latent site 'z3'"):
        kl_terms(lw, "z3")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        BetaVAE(-1.0)


def test_annealed_capacity_schedule_state_and_eval_mode() -> None:
    model, guide = programs()
    x = torch.randn(16, 6)
    objective = AnnealedCapacity(gamma=10.0, capacity=2.0, capacity_steps=4)
    seen = []
    for call in range(6):
        c = objective.current_capacity().item()
        seen.append(c)
        value = seeded(call, objective, model, guide, x)
        lw = seeded(call, dgm.log_weights, model, guide, x)
        t = kl_terms(lw)
        expected = t.reconstruction - 10.0 * (t.kl.mean() - c).abs()
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(value, annealed_capacity(lw, 10.0, c))
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    state = objective.state_dict()
    assert state["step"].dtype == torch.long and state["step"].item() == 6
    # eval mode uses C(t) but does not advance t
    objective.step.fill_(2)
    objective.eval()
    for _ in range(3):
        objective(model, guide, x)
    assert objective.step.item() == 2 and objective.current_capacity().item() == 1.0
    # a resumed run continues the schedule
    resumed = AnnealedCapacity(gamma=10.0, capacity=2.0, capacity_steps=4)
    resumed.load_state_dict({"step": torch.tensor(3)})
    assert resumed.current_capacity().item() == 1.5
    resumed(model, guide, x)
    assert resumed.current_capacity().item() == 2.0
    with pytest.raises(ValueError, match="capacity_steps must be >= 1"):
        AnnealedCapacity(capacity_steps=0)


# DIP-VAE


def test_dip_covariance_and_penalty_by_hand() -> None:
    loc = torch.tensor([[1.0, 2.0], [3.0, 0.0], [2.0, 4.0]], dtype=torch.float64)
    scale = torch.tensor([[1.0, 0.5], [2.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    # mean (2, 2); centered rows (-1, 0), (1, -2), (0, 2); divided by B = 3
    cov_i = torch.tensor([[2 / 3, -2 / 3], [-2 / 3, 8 / 3]], dtype=torch.float64)
    # mean scale^2: (1 + 4 + 0.25) / 3 = 1.75 and (0.25 + 1 + 0.25) / 3 = 0.5
    cov_ii = cov_i + torch.diag(torch.tensor([1.75, 0.5], dtype=torch.float64))
    torch.testing.assert_close(dip_covariance(loc, scale, "i"), cov_i)
    torch.testing.assert_close(dip_covariance(loc, scale, "ii"), cov_ii)
    # I: 10 * 2 * (2/3)^2 + 100 * ((2/3 - 1)^2 + (8/3 - 1)^2) = 80/9 + 2600/9
    expected_i = Fraction(80, 9) + Fraction(2600, 9)
    # II: 10 * 8/9 + 10 * ((29/12 - 1)^2 + (19/6 - 1)^2) = 80/9 + 9650/144
    expected_ii = Fraction(80, 9) + Fraction(9650, 144)
    assert dip_penalty(cov_i, 10.0, 100.0).item() == pytest.approx(float(expected_i))
    assert dip_penalty(cov_ii, 10.0, 10.0).item() == pytest.approx(float(expected_ii))
    with pytest.raises(ValueError, match="kind must be one of"):
        dip_covariance(loc, scale, "iii")


def test_dip_vae_is_the_elbo_minus_the_batch_penalty() -> None:
    assert DIPVAE("i", lambda_od=10.0).lambda_d == 100.0
    assert DIPVAE("II", lambda_od=10.0).lambda_d == 10.0
    assert DIPVAE("ii", lambda_od=2.0, lambda_d=7.0).lambda_d == 7.0
    model, guide = programs()
    x = torch.randn(24, 6)
    q = guide.layers[0](x)
    for kind in ("i", "ii"):
        objective = DIPVAE(kind, lambda_od=3.0)
        value = seeded(5, objective, model, guide, x)
        elbo = seeded(5, BetaVAE(1.0), model, guide, x)
        cov = dip_covariance(q.base_dist.loc, q.base_dist.scale, kind)
        penalty = dip_penalty(cov, 3.0, objective.lambda_d)
        torch.testing.assert_close(value, elbo - penalty)
    with pytest.raises(ValueError, match="DIP-VAE needs a factorized"):
        DIPVAE()(*programs("full"), x)


# FactorVAE


def test_permute_dims_keeps_each_column_and_breaks_the_dependence() -> None:
    base = torch.randn(20000)
    z = torch.stack([base, 2 * base + 1, -base], dim=1)
    g = torch.Generator().manual_seed(0)
    p = permute_dims(z, g)
    torch.testing.assert_close(p.sort(0).values, z.sort(0).values)
    assert torch.corrcoef(z.T)[0, 1] > 0.999
    corr = torch.corrcoef(p.T)
    assert corr[0, 1].abs() < 0.05 and corr[0, 2].abs() < 0.05 and corr[1, 2].abs() < 0.05
    # a seeded generator repeats the permutation
    torch.testing.assert_close(permute_dims(z, torch.Generator().manual_seed(0)), p)


def trained_discriminator_tc(rho: float, steps: int = 300) -> float:
    cov = torch.tensor([[1.0, rho], [rho, 1.0]])
    chol = torch.linalg.cholesky(cov)
    disc = Discriminator(2, hidden=64, layers=2)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # steadies the estimate
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        z_q = torch.randn(512, 2) @ chol.T
        z_perm = permute_dims(torch.randn(512, 2) @ chol.T, g)
        loss = discriminator_loss(disc(z_q), disc(z_perm))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        return density_ratio_tc(disc(torch.randn(20000, 2) @ chol.T)).mean().item()


def test_a_trained_discriminator_estimates_the_total_correlation() -> None:
    assert abs(trained_discriminator_tc(0.0)) < 0.1
    exact = -0.5 * math.log(1 - 0.9**2)  # TC of a bivariate Gaussian: 0.83 nats
    assert abs(trained_discriminator_tc(0.9) - exact) < 0.15


def test_discriminator_shape_and_losses() -> None:
    disc = Discriminator(3, hidden=16, layers=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in disc.modules()) == 4
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in disc.modules()) == 3
    logits = disc(torch.randn(5, 3))
    assert logits.shape == (5, 2)
    probs = logits.softmax(-1)
    torch.testing.assert_close(density_ratio_tc(logits), (probs[:, 0] / probs[:, 1]).log())
    a, b = torch.randn(4, 2), torch.randn(6, 2)
    expected = 0.5 * (-a.log_softmax(-1)[:, 0].mean() - b.log_softmax(-1)[:, 1].mean())
    torch.testing.assert_close(discriminator_loss(a, b), expected)


def test_factor_vae_objective_and_critic_loss_train_their_own_parameters() -> None:
    model, guide = programs()
    disc = Discriminator(3, hidden=16, layers=2)
    x = torch.randn(10, 6)
    value = seeded(6, FactorVAE(disc, gamma=7.0), model, guide, x)
    lw = seeded(6, dgm.log_weights, model, guide, x)
    z = lw.guide_trace["z"].value[0]
    torch.testing.assert_close(value, beta_vae(lw, 1.0) - 7.0 * density_ratio_tc(disc(z)))
    value.mean().backward()
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in guide.parameters())
    guide.zero_grad()
    model.zero_grad()
    loss = factor_vae_critic_loss(model, guide, disc, x, torch.Generator().manual_seed(0))
    assert loss.dim() == 0
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in guide.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    with pytest.raises(ValueError, match="at least 2 points, got 1"):
        factor_vae_critic_loss(model, guide, disc, x[:1])
    with pytest.raises(ValueError, match="latent site 'w'"):
        FactorVAE(disc, site="w")(model, guide, x)
