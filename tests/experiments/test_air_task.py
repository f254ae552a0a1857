"""The AIR task: every estimator trains from the CLI, a short run learns to count, and bad
configurations and data are refused before training.

The digit pool is a fake MNIST test set of filled disks (written as IDX files and made the
canonical ones by their md5), so these tests need no download and no shared data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dgm.data.idx as idx
from dgm.cli import main
from dgm.data import Splits
from dgm.experiments import ConfigError, load, runner
from dgm.experiments.runner import load_run
from dgm.experiments.tasks.air import AIRTask
from tests.data.test_stacked import T10K, write_idx


@pytest.fixture
def disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory whose MNIST test set is 200 disks of radius 5-8 pixels."""
    d = tmp_path / "data"
    (d / "mnist").mkdir(parents=True)
    yy, xx = np.mgrid[:28, :28]
    radius = np.random.default_rng(0).uniform(5, 8, 200)
    images = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2)[None] < radius[:, None, None] ** 2) * 255
    write_idx(d / "mnist" / T10K[0], images.astype(np.uint8))
    write_idx(d / "mnist" / T10K[1], (np.arange(200) % 10).astype(np.uint8))
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (d / "mnist").glob("*.gz")}
    monkeypatch.setattr(idx, "_MNIST_MD5", {**idx._MNIST_MD5, **md5})
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    return d


ESTIMATORS = [
    ["objective.name=reinforce"],
    ["objective.name=nvil"],
    ["objective.name=vimco", "objective.num_particles=3"],
    ["objective.name=rws", "objective.num_particles=3"],
    ["objective.name=concrete"],
    ["objective.name=wake-sleep"],
]


@pytest.mark.parametrize("sets", ESTIMATORS, ids=lambda s: s[0].split("=")[1])
def test_every_estimator_trains_from_the_cli(disks: Path, tmp_path: Path, sets: list[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "air-multi-mnist-cpu", "--smoke", "--no-progress", "--out", str(out)]
    args += ["--set", f"data.data_dir={disks}"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert 0 <= final["test_count_accuracy"] <= 1
    assert np.array(final["test_count_confusion"]).sum() == final["test_points"]
    assert final["digit_source"].startswith("mnist")  # which digits the canvases hold
    assert np.isfinite(final["test_elbo"])
    assert (out / "reconstructions.png").stat().st_size > 0
    assert (out / "samples.png").stat().st_size > 0
    assert (out / "samples_2_objects.png").stat().st_size > 0


def test_samples_with_the_count_fixed_have_that_many_objects(disks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "air-multi-mnist-cpu", "--smoke", "--no-progress", "--out", str(out)]
    assert main([*args, "--set", f"data.data_dir={disks}"]) == 0
    _, task, parts, _ = load_run(out)
    for count in (0, 1, 2):
        _, steps = task.draw(parts, 6, count)
        assert steps.presence.sum(-1).tolist() == [count] * 6
    with pytest.raises(ValueError, match=r"count must be in 0\.\.3"):
        task.draw(parts, 2, 4)


def test_a_short_run_on_a_small_canvas_counts_well_above_chance(
    disks: Path, tmp_path: Path
) -> None:
    cfg = load(
        "air-multi-mnist-cpu",
        [
            f"data.data_dir={disks}",
            "data.train_points=2000",
            "data.valid_points=200",
            "data.test_points=200",
            "model.window_size=12",
            "model.rnn_hidden=64",
            "objective.baseline_hidden=64",
            "model.z_what_size=8",
            "model.encoder_hidden=[64]",
            "model.decoder_hidden=[64]",
            "model.predict_hidden=[64]",
            "train.steps=800",
            "train.batch_size=32",
            "train.lr=0.003",
            "train.baseline_lr=0.01",
            "train.validate_every=200",
            "train.checkpoint_every=800",
            "train.count_points=200",
            "train.valid_particles=2",
            "eval.num_particles=2",
            "eval.train_points=200",
        ],
    )
    torch.set_num_threads(1)
    runner.train(cfg, tmp_path / "run", progress=False)
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    # chance is 1/3 (counts are uniform over 0, 1, 2; one answer for all images gets 1/3)
    assert final["test_count_accuracy"] > 0.5, final
    assert final["test_box_iou"] > 0.3, final


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model.window_size=40"], "larger than the 32x32 canvas"),
        (["model.num_steps=1"], "below the largest count of multi_mnist_32"),
        (["data.name=mnist"], "data.name must be one of multi_mnist, multi_mnist_32"),
        (
            ["objective.name=rws", "objective.baselines=true"],
            r"objective.baselines: objective 'rws' does not take 'baselines'; it takes "
            r"objective.num_particles, objective.phi; baselines is an option of "
            r"objective.name=elbo or reinforce or iwae or vimco",
        ),
        (["objective.name=nvil", "objective.baseline_hidden=0"], "baseline_hidden must be >= 1"),
        (
            ["objective.name=vimco", "objective.dreg=true"],
            r"objective.dreg: .* the air task's are discrete",
        ),
        (["model.scale_prior=[3.0, 0.0]"], "model.scale_prior is"),
        (["eval.estimator=ais"], r"eval.estimator is a setting of task 'vae' and 'disentangle'"),
        (["eval.ais_steps=3"], r"eval.ais_steps is a setting of task 'vae' and 'disentangle'"),
        (["eval.bdmc_points=7"], r"eval.bdmc_points is a setting of task 'vae' and 'disentangle'"),
        (["train.grad_stats_draws=12"], r"train.grad_stats_draws is a setting of task 'vae'"),
        (["model.baseline_hidden=7"], r"Did you mean 'objective.baseline_hidden'"),
        (["model.z_pres_prior=1.5"], r"k of p\(n\) ~ k\^n\) must be in \(0, 1\]"),
        (["model.z_pres_prior=1.0", "model.z_pres_prior_raw=true"], "a probability < 1"),
    ],
)
def test_bad_configurations_are_refused_before_training(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load("air-multi-mnist-cpu", sets)


def test_images_outside_zero_one_are_refused_before_training() -> None:
    cfg = load("air-multi-mnist-cpu")
    x = torch.rand(4, 1024)
    bad = Splits(x, x, 255 * x, (32, 32))
    with pytest.raises(ValueError, match=r"the test split has values in \[0\.\d+, 255\]"):
        AIRTask(cfg).build(bad)


def test_the_baselines_get_their_own_learning_rate_and_only_where_they_are_used() -> None:
    cfg = load("air-multi-mnist-cpu", ["train.lr=2e-4", "train.baseline_lr=5e-3"])
    task = AIRTask(cfg)
    model, guide = task.programs(32 * 32)
    parts = {"model": model, "guide": guide, "objective": torch.nn.Module()}
    (opt,) = task.optimizers(parts)
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    baseline = {id(p) for n, p in guide.named_parameters() if n.startswith("baseline")}
    assert baseline and by_lr[5e-3] == baseline
    assert sum(len(g["params"]) for g in opt.param_groups) == len(
        [*model.parameters(), *guide.parameters()]
    )
    for name, on in (("reinforce", True), ("elbo", True), ("vimco", False), ("rws", False)):
        _, g = AIRTask(load("air-multi-mnist-cpu", [f"objective.name={name}"])).programs(1024)
        assert g.baselines is on, name
    _, g = AIRTask(
        load("air-multi-mnist-cpu", ["objective.name=vimco", "objective.baselines=true"])
    ).programs(1024)
    assert g.baselines
