"""Effective sample size and gradient statistics."""

import math

import pytest
import torch

import dgm
from dgm.metrics import effective_sample_size, gradient_stats
from tests.objectives.test_wake_sleep import FourStateModel, GlobalGuide, enumerated_elbo_grad_phi


def test_effective_sample_size_bounds() -> None:
    equal = torch.zeros(10, 3)
    torch.testing.assert_close(effective_sample_size(equal), torch.full((3,), 10.0))
    one = torch.full((10, 2), -1000.0)
    one[4] = 0.0
    torch.testing.assert_close(effective_sample_size(one), torch.ones(2))
    log_w = torch.log(torch.tensor([[1.0], [3.0]]))
    torch.testing.assert_close(effective_sample_size(log_w), torch.tensor([16.0 / 10.0]))
    big = torch.tensor([[1e4], [1e4 + math.log(3.0)]])  # stable for huge log-weights
    torch.testing.assert_close(effective_sample_size(big), torch.tensor([1.6]), rtol=1e-2, atol=0)


def test_gradient_stats_mean_matches_the_enumerated_gradient_and_variance_is_positive() -> None:
    torch.manual_seed(0)
    model, guide = FourStateModel(), GlobalGuide()
    x = torch.full((5000,), 0.8)
    stats = gradient_stats(dgm.ELBO(1), model, guide, x, num_draws=10)
    torch.testing.assert_close(stats.mean, -enumerated_elbo_grad_phi(0.8), atol=0.03, rtol=0)
    assert stats.total_variance > 0 and 0 < stats.snr < math.inf
    assert guide.phi.grad is None  # measuring does not touch .grad


def test_gradient_stats_of_a_deterministic_objective_has_no_variance() -> None:
    model, guide = FourStateModel(), GlobalGuide()

    def exact(model: torch.nn.Module, guide: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(guide.phi, -1)[0] * x

    stats = gradient_stats(exact, model, guide, torch.ones(3), num_draws=3)
    assert stats.total_variance == 0.0 and stats.snr > 1e6
    with pytest.raises(ValueError, match="num_draws"):
        gradient_stats(exact, model, guide, torch.ones(3), num_draws=1)
