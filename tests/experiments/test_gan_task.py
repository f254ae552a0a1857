"""The GAN task: the switches train, the rules hold before training, resume is exact; and
packing rescues a 1-D GAN from mode collapse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from dgm.cli import main
from dgm.experiments import ConfigError, load
from dgm.models.gan import Discriminator
from dgm.objectives.adversarial import minimax_critic, non_saturating_generator, split_scores
from dgm.train import AlternatingStep, TrainState, Update, checkpoint, run
from dgm.train.loop import Schedule


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def _one_dimensional_gan(pack: int, seed: int, steps: int = 1500) -> tuple[float, float]:
    """A GAN on 0.5 N(-2, 0.1^2) + 0.5 N(2, 0.1^2): the share of its samples near each mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = 4 * torch.randint(0, 2, (20000, 1), generator=g).float() - 2
    data = data + 0.1 * torch.randn(20000, 1, generator=g)
    gen = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    net = nn.Sequential(
        nn.Linear(pack, 32),
        nn.LeakyReLU(0.2),
        nn.Linear(32, 32),
        nn.LeakyReLU(0.2),
        nn.Linear(32, 1),
    )
    critic = Discriminator(net, (1,), pack)
    opt_g = torch.optim.Adam(gen.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_c = torch.optim.Adam(critic.parameters(), 1e-3, betas=(0.5, 0.999))

    def critic_loss(x: Tensor) -> Tensor:
        with torch.no_grad():
            fake = gen(torch.randn(len(x), 4))
        return minimax_critic(*split_scores(critic(torch.cat([x, fake])), len(x), len(fake)))

    def generator_loss(x: Tensor) -> Tensor:
        return non_saturating_generator(None, critic(gen(torch.randn(len(x), 4))))

    step = AlternatingStep(
        Update("critic", critic_loss, opt_c), Update("generator", generator_loss, opt_g)
    )
    state = TrainState({"generator": gen, "critic": critic}, [opt_c, opt_g])
    run(state, step, data, Schedule(steps=steps, batch_size=64, seed=seed))
    with torch.no_grad():
        s = gen(torch.randn(5000, 4)).flatten()
    return ((s + 2).abs() < 0.5).float().mean().item(), ((s - 2).abs() < 0.5).float().mean().item()


@pytest.mark.slow
def test_packing_reaches_both_modes_of_a_one_dimensional_mixture() -> None:
    for seed in (0, 1):
        left, right = _one_dimensional_gan(pack=2, seed=seed)
        assert min(left, right) > 0.35, (seed, left, right)
    # the same GAN without packing collapses onto one mode for seed 0 (what packing fixes)
    assert min(_one_dimensional_gan(pack=1, seed=0)) < 0.05


QUICK = ["train.steps=6", "train.validate_every=3", "train.checkpoint_every=3"]


def sets(*assignments: str) -> list[str]:
    return [arg for a in assignments for arg in ("--set", a)]


@pytest.mark.parametrize(
    "switches",
    [
        ["model.pack=2"],
        [
            "model.critic_loss=wasserstein",
            "model.generator_loss=wasserstein",
            "model.gradient_penalty=10",
            "model.critic_steps=2",
        ],
        ["model.unroll=2", "model.spectral_norm=true", "model.minibatch_std=true"],
        ["model.critic_loss=hinge", "model.generator_loss=wasserstein", "model.r1=1"],
        ["model.critic_loss=least_squares", "model.generator_loss=least_squares"],
    ],
)
def test_every_switch_trains_a_ring_gan_from_the_cli(switches: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "gan-ring", "--smoke", "--no-progress", "--out", str(out)]
    assert main([*args, *sets(*QUICK, *switches)]) == 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["modes"] == 8 and 0 <= final["modes_covered"] <= 8
    assert 0 <= final["high_quality"] <= 1
    # undefined (NaN) when no sample is near a mode, as after six steps it may be
    assert final["reverse_kl"] >= 0 or (
        final["high_quality"] == 0 and math.isnan(final["reverse_kl"])
    )
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/critic" in r and "loss/generator" in r for r in log)
    assert any("valid/modes_covered" in r for r in log)
    assert (out / "samples_over_training.png").is_file()
    record = torch.load(out / "samples_over_training.pt")
    critic_steps = 2 if "model.critic_steps=2" in switches else 1
    assert sorted(record) == [3, 6]  # generator updates at each validation
    assert critic_steps >= 1


def test_a_gan_run_resumed_from_the_cli_matches_a_straight_run(tmp_path: Path) -> None:
    base = ["train", "gan-ring", "--smoke", "--no-progress", *sets(*QUICK, "model.pack=2")]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), *sets("train.steps=3")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for part in ("generator", "critic"):
        for key in a[part]:  # BatchNorm's running statistics and the update counter too
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert int(a["generator"]["updates"]) == 6
    ra, rb = (torch.load(tmp_path / r / "samples_over_training.pt") for r in "ab")
    assert sorted(ra) == sorted(rb) == [3, 6]
    assert all(torch.equal(ra[k], rb[k]) for k in ra)
    # and its final metrics are the straight run's: the evaluation is seeded from the run
    fa, fb = (json.loads((tmp_path / r / "final_metrics.json").read_text()) for r in "ab")
    scored = [
        k for k in fa if not k.startswith(("train_", "best_", "stopped_")) and "seconds" not in k
    ]
    assert {k: fa[k] for k in scored} == {k: fb[k] for k in scored}
    assert (fa["train_segments"], fb["train_segments"]) == (1, 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.critic_loss=least_squares"],
            r"model.generator_loss 'non_saturating' is derived for the critic losses minimax, "
            r"not 'least_squares': .* use generator_loss 'least_squares'",
        ),
        (
            ["model.pack=3"],
            r"train.batch_size 100 is not a multiple of model.pack 3: .* use a batch size of 99",
        ),
        (
            ["model.critic_loss=wasserstein", "model.generator_loss=wasserstein"],
            r"model.critic_loss=wasserstein needs a Lipschitz critic: set model.gradient_penalty",
        ),
        (
            ["data.name=mnist_t10k"],
            r"model.architecture=pacgan2d takes data of shape \[2\]; data.name=mnist_t10k has "
            r"\[28, 28\]: use model.architecture mlp or dcgan",
        ),
        (
            ["data.name=digits", "model.architecture=dcgan", "data.valid_points=100"],
            r"eval.quality_samples: the feature classifier takes 28x28 images .* data.name=digits "
            r"has 8x8: set eval.quality_samples=0",
        ),
        (
            ["data.name=digits", "model.architecture=dcgan", "eval.quality_samples=0"],
            r"model.architecture=dcgan takes data of shape \[1, 28, 28\] or",
        ),
        (["model.critic_loss=hinj"], r"model.critic_loss: 'hinj' is not one of .* hinge"),
    ],
)
def test_bad_combinations_fail_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load("gan-ring", overrides)
