"""A linear-Gaussian model whose evidence and posterior are known in closed form.

z ~ N(0, I_d),   x | z ~ N(A z + b, sigma^2 I_n)
p(x) = N(b, A A^T + sigma^2 I),   p(z | x) = N(S A^T (x - b) / sigma^2, S),
S = (I + A^T A / sigma^2)^-1
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Independent, MultivariateNormal, Normal

import dgm


class LinearGaussianModel(nn.Module):
    def __init__(self, d: int = 2, n: int = 3, sigma: float = 0.7) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.A = nn.Parameter(torch.randn(n, d, generator=g))
        self.b = nn.Parameter(torch.randn(n, generator=g))
        self.sigma = sigma
        self.d = d

    def forward(self, x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros((*x.shape[:-1], self.d)), 1.0), 1))
        dgm.sample("x", Independent(Normal(z @ self.A.T + self.b, self.sigma), 1), obs=x)

    def log_evidence(self, x: Tensor) -> Tensor:
        cov = self.A @ self.A.T + self.sigma**2 * torch.eye(len(self.b))
        return MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean [B, d] and covariance [d, d] of p(z | x)."""
        s = torch.linalg.inv(torch.eye(self.d) + self.A.T @ self.A / self.sigma**2)
        mean = (x - self.b) @ self.A @ s.T / self.sigma**2
        return mean, s


class DiagonalGuide(nn.Module):
    """q(z | x) = N(C x + c, diag(exp(2 s))), learnable."""

    def __init__(self, d: int = 2, n: int = 3) -> None:
        super().__init__()
        self.C = nn.Parameter(torch.zeros(d, n))
        self.c = nn.Parameter(torch.zeros(d))
        self.log_scale = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor) -> None:
        loc = x @ self.C.T + self.c
        dgm.sample("z", Independent(Normal(loc, self.log_scale.exp().expand_as(loc)), 1))


class ExactGuide(nn.Module):
    """q(z | x) = p(z | x), a full-covariance Gaussian."""

    def __init__(self, model: LinearGaussianModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> None:
        mean, cov = self.model.posterior(x)
        dgm.sample("z", MultivariateNormal(mean, cov))


def near_guide(
    model: LinearGaussianModel, scale: float = 1.6, offset: float = 0.3
) -> DiagonalGuide:
    """A diagonal guide near the posterior: shifted mean, too wide: a clear but modest gap."""
    guide = DiagonalGuide(model.d, len(model.b))
    with torch.no_grad():
        s = torch.linalg.inv(torch.eye(model.d) + model.A.T @ model.A / model.sigma**2)
        C = s @ model.A.T / model.sigma**2
        guide.C.copy_(C)
        guide.c.copy_(-C @ model.b + offset)
        guide.log_scale.copy_((scale * s.diagonal().sqrt()).log())
    return guide


class FullCovGuide(nn.Module):
    """q(z | x) = N(C x + c, L L^T) with its own parameters, initialized at p(z | x)."""

    def __init__(self, model: LinearGaussianModel) -> None:
        super().__init__()
        with torch.no_grad():
            s = torch.linalg.inv(torch.eye(model.d) + model.A.T @ model.A / model.sigma**2)
            C = s @ model.A.T / model.sigma**2
        self.C = nn.Parameter(C.clone())
        self.c = nn.Parameter((-C @ model.b).detach().clone())
        self.L = nn.Parameter(torch.linalg.cholesky(s))

    def forward(self, x: Tensor) -> None:
        dgm.sample("z", MultivariateNormal(x @ self.C.T + self.c, scale_tril=self.L.tril()))
