"""A one-dimensional Gaussian mixture with a discrete cluster assignment whose posterior is exact.

The model of Le et al. (2019, Sec. 4.1): C = 20 components with means mu_c = 10 c and standard
deviation 5; the mixture weights are softmax(0.5 * theta), learned; the truth has
pi_c proportional to c + 5. The guide q(c | x) is an MLP 1-16-16-C (tanh) giving the logits.
Because p(c | x) can be computed exactly, it measures how well an objective trains the guide
(and the model) when the latent is discrete.

    c ~ OneHotCategorical(softmax(0.5 * theta)),   x ~ N(sum_c c * mu_c, 5^2)

References:
    Le, Kosiorek, Siddharth, Teh & Wood, "Revisiting Reweighted Wake-Sleep for Models with
    Stochastic Control Flow", UAI 2019.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Normal, OneHotCategorical

from ..nn import MLP
from ..ppl import sample

SOFTMAX_MULTIPLIER = 0.5


def true_logits(num_components: int = 20) -> Tensor:
    """theta of the true model: softmax(0.5 * theta) is proportional to c + 5."""
    probs = torch.arange(num_components, dtype=torch.float) + 5
    return torch.log(probs / probs.sum()) / SOFTMAX_MULTIPLIER


def far_logits(num_components: int = 20) -> Tensor:
    """The paper's start far from the truth: theta_c = 2 (C - 1 - c), mass piled on c = 0."""
    return 2.0 * torch.arange(num_components - 1, -1, -1, dtype=torch.float)


class GMMModel(nn.Module):
    """p(c, x) with learnable mixture logits theta (``[C]``); data ``x`` is ``[B]``."""

    def __init__(
        self,
        num_components: int = 20,
        logits: Tensor | None = None,
        spacing: float = 10.0,
        scale: float = 5.0,
    ) -> None:
        super().__init__()
        init = far_logits(num_components) if logits is None else logits.float()
        self.logits = nn.Parameter(init.clone())
        self.register_buffer("means", spacing * torch.arange(num_components, dtype=torch.float))
        self.scale = scale

    def mixture_probs(self) -> Tensor:
        """pi = softmax(0.5 * theta), ``[C]``."""
        return torch.softmax(SOFTMAX_MULTIPLIER * self.logits, -1)

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> Tensor:
        batch = x.shape if x is not None else torch.Size((num_samples,))
        if x is not None and x.dim() != 1:
            raise ValueError(f"GMMModel scores scalar data shaped [batch], got {list(x.shape)}")
        logits = (SOFTMAX_MULTIPLIER * self.logits).expand(*batch, -1)
        c = sample("c", OneHotCategorical(logits=logits, validate_args=False))
        loc = (c * self.get_buffer("means")).sum(-1)
        return sample("x", Normal(loc, self.scale, validate_args=False), obs=x)

    def log_joint(self, x: Tensor) -> Tensor:
        """log p(c, x) for every component c, ``[B, C]``."""
        means = self.get_buffer("means")
        log_prior = torch.log_softmax(SOFTMAX_MULTIPLIER * self.logits, -1)
        return log_prior + Normal(means, self.scale).log_prob(x.unsqueeze(-1))

    @torch.no_grad()
    def posterior(self, x: Tensor) -> Tensor:
        """The exact p(c | x), ``[B, C]``."""
        return torch.softmax(self.log_joint(x), -1)

    @torch.no_grad()
    def log_marginal(self, x: Tensor) -> Tensor:
        """The exact log p(x), ``[B]``."""
        return torch.logsumexp(self.log_joint(x), -1)

    @torch.no_grad()
    def simulate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` data points from the model, ``[n]``."""
        c = torch.multinomial(self.mixture_probs(), n, replacement=True, generator=generator)
        noise = torch.randn(n, generator=generator)
        return self.get_buffer("means")[c] + self.scale * noise


class GMMGuide(nn.Module):
    """q(c | x) = OneHotCategorical(logits = MLP(x)), an MLP 1-16-16-C with tanh."""

    def __init__(self, num_components: int = 20, hidden: tuple[int, ...] = (16, 16)) -> None:
        super().__init__()
        self.net = MLP((1, *hidden, num_components), "tanh")
        self.input_scale = 1.0 / (10.0 * num_components / math.sqrt(12))  # x spans ~[0, 10 C]

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> None:
        if x is None:
            raise ValueError("the guide q(c | x) needs data x")
        logits = self.net((x * self.input_scale).unsqueeze(-1))
        sample("c", OneHotCategorical(logits=logits, validate_args=False))

    @torch.no_grad()
    def probs(self, x: Tensor) -> Tensor:
        """q(c | x), ``[B, C]``."""
        return torch.softmax(self.net((x * self.input_scale).unsqueeze(-1)), -1)


@torch.no_grad()
def posterior_distance(model: GMMModel, guide: GMMGuide, x: Tensor) -> float:
    """Mean over ``x`` of the L2 distance between q(c | x) and the exact p(c | x)."""
    return float((guide.probs(x) - model.posterior(x)).norm(dim=-1).mean())


@torch.no_grad()
def mixture_distance(model: GMMModel, truth: GMMModel) -> float:
    """L2 distance between the learned and the true mixture weights."""
    return float((model.mixture_probs() - truth.mixture_probs()).norm())


def gmm(num_components: int = 20) -> tuple[GMMModel, GMMGuide, GMMModel]:
    """A model started far from the truth, its guide, and the true model (for data and scores)."""
    truth = GMMModel(num_components, true_logits(num_components))
    truth.requires_grad_(False)
    return GMMModel(num_components), GMMGuide(num_components), truth
