"""Discrete latents train correctly through the score-function terms of elbo and iwae."""

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Normal

import dgm

MEANS = torch.tensor([-3.0, 0.0, 3.0])


class Mixture(nn.Module):
    """c ~ Categorical(1/3, 1/3, 1/3), x | c ~ N(MEANS[c], 1)."""

    def forward(self, x: torch.Tensor) -> None:
        c = dgm.sample("c", Categorical(logits=torch.zeros(len(x), 3)))
        dgm.sample("x", Normal(MEANS[c], 1.0), obs=x)

    @staticmethod
    def posterior(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(Normal(MEANS, 1.0).log_prob(x.unsqueeze(-1)), -1)


class Assignment(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = dgm.nn.MLP((1, 16, 3))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("c", Categorical(logits=self.net(x.unsqueeze(-1))))


@pytest.mark.parametrize("objective", [dgm.ELBO(4), dgm.IWAE(4)], ids=repr)
def test_guide_learns_the_exact_posterior_of_a_discrete_latent(objective) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x = MEANS[torch.randint(0, 3, (600,))] + torch.randn(600)
    guide = Assignment()
    dgm.train.fit(Mixture(), guide, objective, x, steps=400, batch_size=100, lr=0.03)
    with torch.no_grad():
        q = torch.softmax(guide.net(x.unsqueeze(-1)), -1)
        p = Mixture.posterior(x)
        kl = (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(-1).mean()
    assert kl < 0.05, kl
