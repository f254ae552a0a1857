"""Every numeric setting is range-checked where the configuration is read (issue 12, items 6-8)."""

import re
from pathlib import Path

import pytest
import torch

from dgm.cli import main
from dgm.experiments import ConfigError, load


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lr=0"], "train.lr must be a finite number > 0, got 0.0"),
        (["train.lr=-1e-3"], "train.lr must be a finite number > 0"),
        (["train.lr=.inf"], "train.lr must be a finite number > 0, got inf"),
        (["train.adam_eps=0"], "train.adam_eps must be a finite number > 0"),
        (["train.grad_clip=-1"], "train.grad_clip must be a finite number > 0, got -1.0"),
        (["train.log_every=0"], "train.log_every must be >= 1, got 0"),
        (["train.validate_every=0"], "train.validate_every must be >= 1, got 0"),
        (["train.checkpoint_every=0"], "train.checkpoint_every must be >= 1, got 0"),
        (["train.steps=0"], "train.steps must be >= 1, got 0"),
        (["train.steps=null", "train.epochs=0"], "train.epochs must be a finite number > 0"),
        (["train.batch_size=0"], "train.batch_size must be >= 1, got 0"),
        (["train.batch_size=301"], "train.batch_size 301 is larger than the training set (300"),
        (["train.patience=0"], "train.patience must be >= 1, got 0"),
        (["train.time_limit=0"], "train.time_limit must be a finite number > 0"),
        (["train.guide_lr=0"], "train.guide_lr must be a finite number > 0"),
        (["data.valid_points=0"], "data.valid_points must be >= 1, got 0"),
        (["data.test_points=0"], "data.test_points must be >= 1, got 0"),
        (["train.valid_particles=0"], "train.valid_particles must be >= 1, got 0"),
        (["eval.num_particles=0"], "eval.num_particles must be >= 1, got 0"),
        (["objective.num_particles=0"], "objective.num_particles must be >= 1, got 0"),
        (["model.hidden_sizes=[[0]]"], "model.hidden_sizes must be >= 1, got [[0]]"),
        (["model.latent_sizes=[0]"], "model.latent_sizes must be >= 1, got [0]"),
        (["train.seed=-1"], "train.seed must be >= 0, got -1"),
    ],
)
def test_a_bad_number_fails_with_one_config_error_line(
    overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load("quickstart", overrides, smoke=True)
    args = ["train", "quickstart", "--smoke", *(a for o in overrides for a in ("--set", o))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dgm: config error: ") and "Traceback" not in err
    assert err.count("\n") == 1


def test_the_inference_compilation_study_checks_its_numbers() -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size 41 is larger than the 40 simulated"):
        load("polyreg-ic", ["train.batch_size=41", "data.train_points=40"])
    with pytest.raises(ConfigError, match=r"eval.repeats must be >= 1"):
        load("polyreg-ic", ["eval.repeats=0"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "quickstart", "--smoke", "--device", "cuda"]) == 2
    assert "cuda was asked for, but torch.cuda.is_available() is False" in capsys.readouterr().err


def test_command_line_counts_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["sample", str(tmp_path), "-n", "0"],
        ["eval", str(tmp_path), "--num-particles", "-3"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "must be >= 1" in capsys.readouterr().err


def test_smoke_on_a_file_without_a_smoke_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("task: vae\ndata: {name: dsprites}\n")
    with pytest.raises(
        ConfigError, match=r"plain.yaml: --smoke: this file has no `smoke:` section"
    ):
        load(str(path), smoke=True)
    assert load(str(path)).task == "vae"  # without --smoke it is a normal run


def test_suggestions_prefer_the_same_section_then_the_same_name_elsewhere() -> None:
    with pytest.raises(ConfigError) as info:
        load("vae-mnist", ["train.num_particles=5"])
    msg = str(info.value)
    assert "Did you mean 'objective.num_particles' or 'eval.num_particles'?" in msg
    assert "Valid keys of train: train.steps" in msg and "model.posterior" not in msg
    with pytest.raises(ConfigError, match=r"\(did you mean 'objective.num_particles'\?\)"):
        load("vae-mnist", ["objective.num_particle=5"])
    with pytest.raises(ConfigError, match=r"Did you mean 'model.prior.name'\? Valid keys: name"):
        load("vae-mnist", ["modle.prior=mog"])
