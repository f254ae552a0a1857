"""HMC: invariance on Gaussian targets, step-size adaptation, one call for every chain."""

import pytest
import torch
from torch.distributions import MultivariateNormal

from dgm.infer import HMC, posterior_log_density
from tests.infer.conjugate import GaussianMeanModel, posterior

MEANS = torch.tensor([[0.0, 0.0], [3.0, -1.0], [-2.0, 5.0]])
COVS = torch.stack(
    [
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        torch.tensor([[2.0, 1.2], [1.2, 1.0]]),
        torch.tensor([[0.05, 0.0], [0.0, 0.2]]),  # a narrow target: a smaller step size
    ]
)
TARGET = MultivariateNormal(MEANS, COVS)  # batch of 3 targets


def run(kernel: HMC, chains: int, warmup: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.zeros(chains, 3, 2)
    for _ in range(warmup):
        z, _ = kernel.step(z)
    kernel.adapt = False
    kept, probs = [], []
    for _ in range(samples):
        z, p = kernel.step(z)
        kept.append(z)
        probs.append(p)
    return torch.stack(kept), torch.stack(probs)


def test_hmc_leaves_gaussian_targets_invariant_in_one_vectorized_call() -> None:
    torch.manual_seed(0)
    kernel = HMC(TARGET.log_prob, event_dims=1, num_leapfrog=5, step_size=0.5)
    draws, _ = run(kernel, chains=8, warmup=300, samples=1500)
    flat = draws.reshape(-1, 3, 2)  # [samples * chains, 3 targets, 2]
    torch.testing.assert_close(flat.mean(0), MEANS, atol=0.12, rtol=0)
    centred = flat - flat.mean(0)
    cov = torch.einsum("nbi,nbj->bij", centred, centred) / (len(flat) - 1)
    torch.testing.assert_close(cov, COVS, atol=0.02, rtol=0.15)
    assert kernel.step_size is not None and kernel.step_size.shape == (8, 3)
    # each target got its own step size: the narrow one a smaller step
    assert kernel.step_size[:, 2].mean() < 0.5 * kernel.step_size[:, 0].mean()


def test_step_sizes_adapt_toward_the_target_acceptance() -> None:
    for target in (0.6, 0.9):
        torch.manual_seed(1)
        kernel = HMC(TARGET.log_prob, num_leapfrog=3, step_size=2.0, target_accept=target)
        _, probs = run(kernel, chains=16, warmup=400, samples=300)
        assert abs(probs.mean().item() - target) < 0.1, (target, probs.mean().item())


def test_hmc_on_a_programs_posterior() -> None:
    torch.manual_seed(2)
    x = torch.tensor([[0.3, 0.8, 0.1], [-2.0, -1.5, -2.4]])
    kernel = HMC(posterior_log_density(GaussianMeanModel(), "z", x), event_dims=0)
    z = torch.randn(16, 2)  # 16 chains per data set, from the prior
    for _ in range(200):
        z, _ = kernel.step(z)
    kernel.adapt = False
    kept = []
    for _ in range(500):
        z, _ = kernel.step(z)
        kept.append(z)
    draws = torch.cat(kept)
    mean, sd = posterior(x)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(draws.std(0), sd, rtol=0.1, atol=0)


def test_a_shared_step_size_follows_targets_given_per_call() -> None:
    torch.manual_seed(3)
    kernel = HMC(num_leapfrog=3, step_size=2.0, target_accept=0.7, shared_step_size=True)
    z = torch.zeros(16, 3, 2)
    probs = []
    for i in range(600):
        z, p = kernel.step(z, TARGET.log_prob)  # the target comes with each call
        if i >= 300:
            probs.append(p.mean())
    assert kernel.step_size is not None and kernel.step_size.shape == ()
    assert abs(torch.stack(probs).mean().item() - 0.7) < 0.1
    with pytest.raises(ValueError, match=r"no target; pass log_prob="):
        HMC().step(z)
