"""Learning-rate schedules: their factors, and the rates the loop sets before every step."""

import math

import pytest
import torch

import dgm
from dgm.experiments.config import ConfigError
from dgm.experiments.registry import check, parse
from dgm.train.lr_schedule import IWAE_PHASES, LR_SCHEDULES, lr_schedule
from tests.linear_gaussian import DiagonalGuide, LinearGaussianModel


def test_the_iwae_staircase_gives_phase_i_a_share_3_to_the_i_at_ten_to_minus_i_over_7() -> None:
    f, total = lr_schedule("iwae"), 3280  # one step per pass of the paper's protocol
    factors = [f(i / total) for i in range(total)]
    for i in range(IWAE_PHASES):
        assert sum(math.isclose(v, 10 ** (-i / 7)) for v in factors) == 3**i, i
    assert factors == sorted(factors, reverse=True)
    assert f(1.0) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["exponential", "cosine", "iwae"])
def test_decaying_schedules_start_at_one_and_end_at_final(name: str) -> None:
    f = lr_schedule(name, final=0.05)
    assert f(0.0) == 1.0 and f(1.0) == pytest.approx(0.05)
    values = [f(t / 100) for t in range(101)]
    assert values == sorted(values, reverse=True)
    assert lr_schedule("exponential", 0.01)(0.5) == pytest.approx(0.1)
    assert lr_schedule("cosine", 0.0)(0.5) == pytest.approx(0.5)


def test_the_loop_sets_every_groups_rate_before_each_step_and_restores_it_after() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    opt = torch.optim.Adam(
        [{"params": model.parameters(), "lr": 0.01}, {"params": guide.parameters(), "lr": 0.1}]
    )
    seen: list[tuple[float, float]] = []

    def objective(m, g, x):  # type: ignore[no-untyped-def]
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        return dgm.elbo(dgm.log_weights(m, g, x))

    result = dgm.train.fit(
        model,
        guide,
        objective,
        torch.randn(40, 3),
        steps=10,
        batch_size=10,
        optimizer=opt,
        lr_schedule="exponential",
        lr_final=0.01,
        log_every=5,
    )
    expected = [0.01 ** ((i - 1) / 10) for i in range(1, 11)]
    assert [a for a, _ in seen] == pytest.approx([0.01 * e for e in expected])
    assert [b for _, b in seen] == pytest.approx([0.1 * e for e in expected])  # ratio kept
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    assert result.history[-1]["lr_factor"] == pytest.approx(expected[-1])


def test_schedules_are_checked_in_the_configuration() -> None:
    def config(**train: object):  # type: ignore[no-untyped-def]
        raw = {"name": "x", "task": "vae", "data": {"name": "digits"}, "train": train}
        cfg = parse(raw, "t")
        check(cfg)
        return cfg

    with pytest.raises(ConfigError, match=r"train\.lr_final must be in \(0, 1\]"):
        config(lr_schedule="exponential", lr_final=0.0)
    with pytest.raises(ConfigError, match="cosine"):
        config(lr_schedule="cosin")
    assert config(lr_schedule="cosine", lr_final=0.0).train.schedule().lr_final == 0.0
    assert set(LR_SCHEDULES) == {"constant", "exponential", "cosine", "iwae"}
