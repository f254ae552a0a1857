"""MCMC from q (Hoffman 2017): which gradient reaches which program, what the chain does,
and that the kernel's adaptation is saved with the objective."""

import pytest
import torch

import dgm
from dgm.infer import HMC, posterior_log_density
from dgm.models.vae import VAEGuide, VAEModel
from dgm.objectives import ELBO, MCMCFromQ
from tests.linear_gaussian import LinearGaussianModel, near_guide


def kernel() -> HMC:
    return HMC(num_leapfrog=4, step_size=0.2, shared_step_size=True, min_adapt_rate=0.01)


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()
    ]


def zero(*modules: torch.nn.Module) -> None:
    for m in modules:
        m.zero_grad(set_to_none=True)


def test_the_guide_gets_the_elbo_gradient_and_the_model_the_refined_samples() -> None:
    model = LinearGaussianModel(d=2, n=3)
    guide = near_guide(model)
    x = torch.randn(6, 3)
    torch.manual_seed(0)
    objective = MCMCFromQ(kernel(), num_steps=3, num_particles=4)
    bound = objective(model, guide, x)
    bound.mean().backward()
    guide_mcmc, model_mcmc = grads(guide), grads(model)

    zero(model, guide)
    torch.manual_seed(0)  # the same draws from q
    elbo = ELBO(4)(model, guide, x)
    elbo.mean().backward()
    torch.testing.assert_close(bound, elbo)  # its value is the bound
    for a, b in zip(guide_mcmc, grads(guide), strict=True):
        torch.testing.assert_close(a, b)  # the guide: exactly the ELBO's gradient
    model_elbo = grads(model)

    zero(model, guide)
    torch.manual_seed(0)  # replay the chain by hand: z_0 ~ q, three HMC transitions
    with dgm.trace() as q, dgm.particles(4):
        guide(x)
    z = q["z"].value.detach()
    target = posterior_log_density(model, "z", x)
    by_hand = kernel()
    for _ in range(3):
        z, _ = by_hand.step(z, target)
    target(z).mean(0).mean().backward()
    for a, b in zip(model_mcmc, grads(model), strict=True):
        torch.testing.assert_close(a, b)  # the model: grad of log p(x, z_T) only
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(model_mcmc, model_elbo, strict=True))


def test_the_chain_moves_q_samples_toward_the_exact_posterior() -> None:
    torch.manual_seed(1)
    model = LinearGaussianModel(d=2, n=3)
    guide = near_guide(model, scale=2.0, offset=0.8)  # too wide and shifted
    x = torch.randn(5, 3)
    mean, _ = model.posterior(x)
    with torch.no_grad(), dgm.trace() as q, dgm.particles(4000):
        guide(x)
    z0 = q["z"].value
    target = posterior_log_density(model, "z", x)
    chain = kernel()
    z = z0
    for _ in range(15):
        z, accept = chain.step(z, target)
    before = (z0.mean(0) - mean).abs().max()
    after = (z.mean(0) - mean).abs().max()
    assert before > 0.5 and after < 0.1 and accept.mean() > 0.5


def test_the_kernels_adaptation_is_saved_and_frozen_in_eval_mode() -> None:
    torch.manual_seed(2)
    model = LinearGaussianModel(d=2, n=3)
    guide = near_guide(model)
    x = torch.randn(6, 3)
    objective = MCMCFromQ(kernel(), num_steps=2)
    for _ in range(5):
        objective(model, guide, x)
    size = objective.kernel.step_size
    assert size is not None and size.shape == ()
    objective.eval()
    objective(model, guide, x)
    assert objective.kernel.step_size == size  # measuring does not adapt
    restored = MCMCFromQ(kernel(), num_steps=2)
    restored.load_state_dict(objective.state_dict())
    assert restored.kernel.step_size == size
    assert set(objective.diagnostics()) == {"hmc_accept", "hmc_step_size"}


def test_mcmc_from_q_refuses_several_latent_sites() -> None:
    model, guide = VAEModel(12, (4, 3), ((8,), (6,))), VAEGuide(12, (4, 3), ((8,), (6,)))
    x = (torch.rand(3, 12) < 0.5).float()
    with pytest.raises(ValueError, match=r"single latent site 'z'; the guide has \['z1', 'z2'\]"):
        MCMCFromQ(kernel())(model, guide, x)
    with pytest.raises(ValueError, match=r"num_steps must be >= 1"):
        MCMCFromQ(kernel(), num_steps=0)
