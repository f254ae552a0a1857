"""The flow task: a model with no guide, trained by maximum likelihood, checked before training."""

import math
from pathlib import Path

import pytest
import torch

from dgm.experiments import ConfigError, load
from dgm.experiments.runner import create
from dgm.train import TrainState, run


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def test_a_flow_trained_briefly_lowers_its_test_nll() -> None:
    torch.manual_seed(0)
    cfg = load(
        "flow-moons",
        [
            "data.train_points=4096",
            "data.test_points=1000",
            "model.steps=4",
            "model.hidden=[32, 32]",
        ],
    )
    task = create(cfg)
    data = task.data()
    parts = task.build(data)
    before = task.evaluate(parts, data)["test_nll"]
    optimizers = task.optimizers(parts)
    step = task.step(parts, optimizers, lambda m: m)
    schedule = cfg.train.schedule()
    schedule.steps, schedule.batch_size = 300, 256
    run(TrainState(parts, optimizers), step, data.train, schedule)
    after = task.evaluate(parts, data)["test_nll"]
    assert after < before - 0.5, (before, after)
    # and it has learned more than any Gaussian can: the best one, fitted to the training set
    x = data.train
    gaussian = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    best_gaussian = -gaussian.log_prob(data.test).mean().item()
    assert after < best_gaussian - 0.2, (after, best_gaussian)


def test_image_data_are_scored_in_their_integer_levels() -> None:
    cfg = load("flow-digits-glow", smoke=True)
    data = create(cfg).data()
    assert data.train.shape[1:] == (1, 8, 8)
    assert torch.equal(data.train, data.train.round()) and data.train.max() == 16


def test_image_data_off_their_integer_levels_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load("flow-digits-glow", smoke=True)
    load_splits = type(cfg.data).load

    def shifted(self: object, seed: int) -> object:  # pixels a third of a level off
        splits = load_splits(self, seed)  # type: ignore[arg-type]
        splits.valid = splits.valid + 1 / 48
        return splits

    monkeypatch.setattr(type(cfg.data), "load", shifted)
    with pytest.raises(ConfigError, match="valid pixels are not integer levels of 17"):
        create(cfg).data()


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        (
            "flow-moons",
            ["data.holdout=0"],
            r"data.holdout is read only when data.name=mnist or fashion_mnist",
        ),
        (
            "flow-moons",
            ["model.family=glow"],
            r"model.family=glow is an image flow; data.name=moons",
        ),
        (
            "flow-digits-glow",
            ["model.levels=4"],
            r"model: glow: level 4 of 4 squeezes a \[8, 1, 1\]",
        ),
        (
            "flow-digits-glow",
            ["preprocess.logit_alpha=0.5"],
            r"preprocess.logit_alpha must be in \(0, 0.5\)",
        ),
        # settings the chosen family, or the data, does not read
        (
            "flow-moons",
            ["model.bins=4"],
            r"flow 'realnvp' does not take 'bins'.*family=nsf or nsf-ar",
        ),
        ("flow-moons", ["model.levels=3"], r"flow 'realnvp' does not take 'levels'"),
        (
            "flow-moons",
            ["preprocess.dequantization=uniform"],
            r"applies to images; data.name=moons",
        ),
        ("flow-digits-glow", ["model.hidden=[64, 32]"], r"glow's couplings take one width"),
        ("flow-moons", ["model.hidden=[64, 32]"], r"realnvp's couplings take one width, repeated"),
        ("flow-digits-glow", ["model.logit_alpha=0.1"], r"did you mean 'preprocess.logit_alpha'"),
        ("flow-moons", ["model.family=flowww"], r"model.family: 'flowww' is not one of realnvp"),
        (
            "flow-moons",
            ["objective.name=iwae"],
            r"objective.name is a setting of task 'vae', 'sbn', 'disentangle' and 'air', not of task 'flow'",
        ),
        ("flow-digits-glow", ["train.batch_size=2000"], r"larger than the training set \(1257"),
    ],
)
def test_bad_flow_settings_fail_before_training(
    name: str, overrides: list[str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(name, overrides)


def test_evaluation_reports_the_median_and_the_images_worse_than_uniform() -> None:
    cfg = load("flow-digits-glow", smoke=True)
    task = create(cfg)
    data = task.data()
    model = task.build(data, training=False)["model"]
    dims = data.test[0].numel()

    def log_prob(x: torch.Tensor) -> torch.Tensor:  # image i costs exactly mean(x_i) bits/dim
        return -x.flatten(1).mean(1) * dims * math.log(2)

    model.log_prob = log_prob  # type: ignore[method-assign]
    metrics = task.evaluate({"model": model}, data)
    bits = data.test.flatten(1).mean(1)
    assert metrics["test_bits_per_dim_k2_median"] == pytest.approx(bits.median().item(), abs=1e-4)
    uniform = math.log2(17)  # the 8x8 digits have 17 levels
    assert metrics["test_points_worse_than_uniform"] == int((bits > uniform).sum())
    assert 0 < metrics["test_points_worse_than_uniform"] < len(bits)  # the check can tell
    assert metrics["test_bits_per_dim_k2"] == pytest.approx(bits.mean().item(), abs=1e-4)
