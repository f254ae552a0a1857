"""The adversarial losses, penalties and the unrolled critic against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgm.objectives.adversarial import (
    CRITIC_LOSSES,
    GENERATOR_LOSSES,
    check_pair,
    gradient_penalty,
    r1_penalty,
    split_scores,
    unrolled_generator_loss,
)


def test_losses_against_their_formulas() -> None:
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    expect = {
        "minimax": -(sig(real).log().mean() + (1 - sig(fake)).log().mean()),
        "least_squares": 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(),
        "hinge": torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean(),
        "wasserstein": fake.mean() - real.mean(),
    }
    for name, value in expect.items():
        assert torch.allclose(CRITIC_LOSSES.build(name)(real, fake), value), name
    gen = {
        "minimax": (1 - sig(fake)).log().mean(),
        "non_saturating": -sig(fake).log().mean(),
        "least_squares": 0.5 * ((fake - 1) ** 2).mean(),
        "wasserstein": -fake.mean(),
    }
    for name, value in gen.items():
        assert torch.allclose(GENERATOR_LOSSES.build(name)(None, fake), value), name


def test_generator_losses_share_the_minimax_fixed_point() -> None:
    # at D = 1/2 everywhere the minimax critic loss is 2 log 2 (Goodfellow et al., Theorem 1)
    zero = torch.zeros(4)
    assert CRITIC_LOSSES.build("minimax")(zero, zero).item() == pytest.approx(2 * math.log(2))


def test_pairs_of_another_game_are_refused() -> None:
    check_pair("minimax", "non_saturating")
    check_pair("hinge", "wasserstein")
    with pytest.raises(
        ValueError, match=r"generator_loss 'non_saturating' .* use generator_loss 'least_squares'"
    ):
        check_pair("least_squares", "non_saturating")
    with pytest.raises(ValueError, match="unknown critic loss"):
        check_pair("hinje", "wasserstein")


def test_gradient_penalty_of_a_linear_critic() -> None:
    torch.manual_seed(0)
    critic = nn.Linear(3, 1)
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    w = critic.weight.detach().flatten()
    gp = gradient_penalty(lambda x: critic(x).squeeze(-1), real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-6)


def test_gradient_penalty_interpolates_per_packed_group() -> None:
    # D(x) = |x|^2 / 2 over a packed input: its gradient is the interpolate itself
    real, fake = torch.randn(6, 2), torch.randn(6, 2)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.reshape(3, 4).pow(2).sum(1)

    gp = gradient_penalty(critic, real, fake, pack=2, generator=torch.Generator().manual_seed(1))
    e = torch.rand(3, generator=torch.Generator().manual_seed(1)).repeat_interleave(2)[:, None]
    x_hat = (e * real + (1 - e) * fake).reshape(3, 4)
    assert gp.item() == pytest.approx(((x_hat.norm(dim=1) - 1) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="multiple of the pack"):
        gradient_penalty(critic, real[:5], fake[:5], pack=2)


def test_gradient_penalty_trains_a_critic_without_in_place_errors() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    opt = torch.optim.Adam(critic.parameters(), 1e-2)
    for _ in range(5):
        real, fake = torch.randn(16, 2) + 2, torch.randn(16, 2)
        scores = critic(torch.cat([real, fake])).squeeze(-1)
        loss = CRITIC_LOSSES.build("wasserstein")(*split_scores(scores, 16, 16))
        loss = loss + 10 * gradient_penalty(lambda x: critic(x).squeeze(-1), real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert all(torch.isfinite(p.grad).all() for p in critic.parameters())


def test_r1_of_a_quadratic_critic() -> None:
    real = torch.randn(5, 3)
    r1 = r1_penalty(lambda x: 0.5 * x.pow(2).sum(1), real)
    assert r1.item() == pytest.approx(real.pow(2).sum(1).mean().item(), rel=1e-6)


def test_split_scores_with_packing() -> None:
    scores = torch.arange(6.0)
    real, fake = split_scores(scores, 8, 4)  # pack 2: 4 real groups, 2 fake groups
    assert real.tolist() == [0, 1, 2, 3] and fake.tolist() == [4, 5]


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def _unrolled(
    theta: torch.Tensor,
    critic: nn.Module,
    real: torch.Tensor,
    z: torch.Tensor,
    k: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.Tensor:
    fake = theta[0] * z + theta[1]
    return unrolled_generator_loss(
        critic,
        CRITIC_LOSSES.build("minimax"),
        GENERATOR_LOSSES.build("non_saturating"),
        real,
        fake,
        steps=k,
        lr=0.5,
        optimizer=optimizer,
    )


@pytest.mark.parametrize("adam", [False, True])
def test_unrolled_gradient_differs_from_the_plain_one_and_matches_finite_differences(
    adam: bool,
) -> None:
    torch.manual_seed(0)
    critic = _Tiny().double()
    optimizer = None
    if adam:  # Adam unrolled from the critic optimizer's moments after two real updates
        optimizer = torch.optim.Adam(critic.parameters(), lr=0.05, betas=(0.5, 0.999))
        for _ in range(2):
            optimizer.zero_grad()
            critic(torch.randn(8, 1, dtype=torch.float64)).pow(2).mean().backward()
            optimizer.step()
    real, z = torch.randn(8, 1, dtype=torch.float64) + 2, torch.randn(8, 1, dtype=torch.float64)
    theta = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    before = [p.detach().clone() for p in critic.parameters()]

    plain = _unrolled(theta, critic, real, z, 0)
    direct = GENERATOR_LOSSES.build("non_saturating")(None, critic(theta[0] * z + theta[1]))
    assert torch.allclose(plain, direct)
    (g0,) = torch.autograd.grad(plain, theta)
    (g3,) = torch.autograd.grad(_unrolled(theta, critic, real, z, 3, optimizer), theta)
    assert (g3 - g0).abs().max() > 1e-3  # unrolling changes what the generator is told

    eps = 1e-6
    fd = torch.zeros(2, dtype=torch.float64)
    for i in range(2):
        d = torch.zeros(2, dtype=torch.float64)
        d[i] = eps
        up = _unrolled((theta + d).detach(), critic, real, z, 3, optimizer)
        down = _unrolled((theta - d).detach(), critic, real, z, 3, optimizer)
        fd[i] = (up - down) / (2 * eps)
    assert torch.allclose(g3, fd, rtol=1e-5, atol=1e-8)
    # the module's own parameters (and the optimizer's moments) are untouched
    assert all(torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
    if optimizer is not None:
        assert all(int(s["step"]) == 2 for s in optimizer.state.values())


def test_unrolled_adam_steps_equal_torchs_adam() -> None:
    # the differentiable Adam moves the critic exactly as torch.optim.Adam would
    torch.manual_seed(1)
    critic = _Tiny().double()
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.01, betas=(0.5, 0.9))
    real, fake = torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    loss_fn = CRITIC_LOSSES.build("minimax")
    for _ in range(2):  # moments to start from
        optimizer.zero_grad()
        loss_fn(*split_scores(critic(torch.cat([real, fake])), 8, 8)).backward()
        optimizer.step()
    probe = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    captured = {}

    def generator_loss(_: object, scores: torch.Tensor) -> torch.Tensor:
        captured["scores"] = scores
        return scores.sum()

    unrolled_generator_loss(critic, loss_fn, generator_loss, real, probe, 2, 0.0, optimizer)
    # the probe is scored by the unrolled critic; now step the real one twice, on real + probe
    for _ in range(2):
        optimizer.zero_grad()
        loss_fn(*split_scores(critic(torch.cat([real, probe])), 8, 5)).backward()
        optimizer.step()
    assert torch.allclose(captured["scores"], critic(probe), atol=1e-10)


def test_a_negative_number_of_unrolled_steps_is_refused() -> None:
    loss = CRITIC_LOSSES.build("minimax")
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -1"):
        unrolled_generator_loss(_Tiny(), loss, loss, torch.zeros(2, 1), torch.zeros(2, 1), -1, 0.1)
