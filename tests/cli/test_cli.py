"""The dgm command: every packaged experiment end to end at smoke size, and the other verbs."""

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgm import experiments
from dgm.cli import main
from dgm.data import DATASETS
from dgm.train import checkpoint
from tests.conftest import shared_data_dir
from tests.data.test_tabular import fake_power

NEEDS_MNIST = {
    n
    for n in experiments.available()
    if getattr(experiments.load(n), "data", None) is not None
    and getattr(experiments.load(n).data, "name", None)
    in (
        "binarized_mnist",
        "mnist",
        "mnist_t10k",
        "fashion_mnist",
        "stacked_mnist",
        "multi_mnist",  # drawn from MNIST digits
        "multi_mnist_32",
    )
}

# opt-in downloads (MAF's tabular sets, 1 GB): run on a generated raw file of the same format
FAKE_RAW = {"power": fake_power}
OPT_IN = {
    n: experiments.load(n).data.name  # type: ignore[attr-defined]
    for n in experiments.available()
    if getattr(getattr(experiments.load(n), "data", None), "name", None)
    in DATASETS.names(download="opt-in")
}


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.mark.parametrize("name", sorted(experiments.available()))
def test_every_packaged_experiment_runs_end_to_end_at_smoke_size(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if name in NEEDS_MNIST and shared_data_dir() is None:
        pytest.skip("DGM_DATA_DIR is not set to the real data")
    if name in OPT_IN:
        monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
        FAKE_RAW[OPT_IN[name]](tmp_path / "data", monkeypatch)
    out = tmp_path / name
    assert main(["train", name, "--smoke", "--no-progress", "--out", str(out)]) == 0
    assert f"report: {(out / 'report.html').resolve()}" in capsys.readouterr().out
    cfg = experiments.load(name, smoke=True)
    study = cfg.task == "inference-compilation"
    if study:
        pictures: tuple[str, ...] = ("posterior_curves.png",)
    elif cfg.task == "flow":  # images: samples at two temperatures; 2-D points: the density
        images = cfg.data.name == "digits"  # type: ignore[attr-defined]
        pictures = ("samples.png", "samples_t07.png") if images else ("density.png",)
    elif cfg.task == "gan":  # the last samples, and samples from fixed noise over training
        pictures = ("samples.png", "samples_over_training.png")
    elif cfg.task == "air":  # samples from the prior, and with one and two objects
        pictures = ("samples.png", "reconstructions.png")
        pictures += ("samples_1_object.png", "samples_2_objects.png")
    elif cfg.task == "disentangle":
        pictures = ("samples.png", "reconstructions.png", "traversals.png")
        pictures += ("mutual_information.png",)  # dSprites has ground-truth factors
    else:
        pictures = ("samples.png", "reconstructions.png")
    listed = [p["file"] for p in json.loads((out / "pictures.json").read_text())]
    assert sorted(listed) == sorted(pictures)
    for file in (
        "config.yaml",
        "metrics.jsonl",
        "final_metrics.json",
        *pictures,
        "learning_curves.png",
        "report.html",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (out / file).is_file(), file
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["train_steps"] == cfg.train.steps
    if study:  # every method of the study is scored
        for method in ("prior_is", "proposal_is", "mh_random_walk", "mh_independence"):
            assert final[method]["ess_per_sample"] > 0, method
        assert "Posterior curves" in (out / "report.html").read_text()
        capsys.readouterr()
        assert main(["sample", str(out)]) == 1
        assert "no images to sample" in capsys.readouterr().err
    elif cfg.task == "gan":
        if cfg.data.name in ("ring8", "grid25"):  # type: ignore[attr-defined]
            assert 0 <= final["modes_covered"] <= final["modes"]
        else:  # sample quality on the features of dgm's classifier, labelled as such
            assert math.isfinite(final["fid_classifier"]) and final["fid_classifier"] >= 0
            assert 0 <= final["precision"] <= 1 and "not Inception" in final["features"]
            assert final["classifier_test_accuracy"] > 0.1
        if cfg.data.name == "stacked_mnist":  # type: ignore[attr-defined]
            assert 1 <= final["stacked_modes"] <= 1000
    elif cfg.task == "air":  # counts, boxes and the bounds
        assert 0 <= final["test_count_accuracy"] <= 1 and 0 <= final["train_count_accuracy"] <= 1
        assert math.isfinite(final[f"test_iwae_k{cfg.eval.num_particles}"])  # type: ignore[attr-defined]
    elif cfg.task == "flow":
        score = [v for k, v in final.items() if k.startswith(("test_nll", "test_bits_per_dim_k"))]
        assert score and all(math.isfinite(v) and v > 0 for v in score)
    else:
        assert final[f"test_log_likelihood_k{cfg.eval.num_particles}"] < 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "overrides",
    [
        ["objective.name=reinforce", "objective.num_particles=1"],
        ["objective.phi=sleep"],
        ["objective.phi=both", "train.guide_lr=1e-3"],
        ["objective.name=vimco", "model.latent_sizes=[12]"],
    ],
)
def test_the_other_discrete_estimators_train_an_sbn_from_the_cli(
    overrides: list[str], tmp_path: Path
) -> None:
    if shared_data_dir() is None:
        pytest.skip("DGM_DATA_DIR is not set to the real data")
    sets = [a for o in overrides for a in ("--set", o)]
    out = tmp_path / "run"
    args = ["train", "sbn-rws-mnist", "--smoke", "--no-progress", "--out", str(out), *sets]
    assert main(args) == 0
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("valid/guide_grad_snr" in r for r in log)
    assert json.loads((out / "final_metrics.json").read_text())["train_steps"] == 8


def test_eval_sample_and_report_on_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "quickstart",
                "--smoke",
                "--no-progress",
                "--out",
                str(out),
                "--set",
                "train.steps=6",
            ]
        )
        == 0
    )
    assert main(["eval", str(out), "--num-particles", "7"]) == 0
    printed = capsys.readouterr().out
    assert "test_log_likelihood_k7" in printed
    final = json.loads((out / "final_metrics.json").read_text())
    assert "test_log_likelihood_k7" in final and final["train_steps"] == 6
    assert main(["sample", str(out), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_eval_with_ais_writes_both_estimates_and_the_bdmc_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "quickstart", "--smoke", "--no-progress", "--out", str(out)]
    assert main([*args, "--set", "train.steps=6", "--set", "train.lr_schedule=cosine"]) == 0
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    factors = [r["lr_factor"] for r in log if "lr_factor" in r]
    assert factors and factors == sorted(factors, reverse=True) and factors[-1] < 0.5
    capsys.readouterr()
    evaluation = ["eval", str(out), "--estimator", "ais", "--ais-steps", "10", "--chains", "2"]
    sets = ["--set", "eval.ais_points=6", "--set", "eval.bdmc_points=4", "--num-particles", "20"]
    assert main([*evaluation, *sets]) == 0
    assert "test_log_likelihood_ais" in capsys.readouterr().out
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["ais_points"] == 6 and final["bdmc_points"] == 4 and final["ais_steps"] == 10
    for key in ("test_log_likelihood_k20", "test_log_likelihood_ais", "ais_minus_k20", "bdmc_gap"):
        assert math.isfinite(final[key]), key
    assert final["ais_minus_k20"] == pytest.approx(
        final["test_log_likelihood_ais"] - final["test_log_likelihood_k20_on_ais_points"]
    )
    assert final["bdmc_forward"] + final["bdmc_gap"] == pytest.approx(final["bdmc_reverse"])
    report = (out / "report.html").read_text()
    assert "test_log_likelihood_ais" in report and "bdmc_gap" in report


def test_ais_is_refused_before_it_runs_where_hmc_or_q_cannot_do_it() -> None:
    with pytest.raises(
        experiments.ConfigError,
        match=r"eval.estimator is a setting of task 'vae' and 'disentangle'",
    ):
        experiments.load("sbn-rws-mnist", ["eval.estimator=ais"])
    with pytest.raises(experiments.ConfigError, match=r"eval\.ais_start=prior"):
        experiments.load("vae-planar-mnist", ["eval.estimator=ais"])
    cfg = experiments.load("vae-planar-mnist", ["eval.estimator=ais", "eval.ais_start=prior"])
    assert cfg.eval.ais_start == "prior"  # type: ignore[attr-defined]


RICH = [
    "objective.name=elbo",
    "objective.hmc_steps=1",
    "model.posterior=iaf",
    "model.prior=mog",
]


@pytest.mark.parametrize("sets", [[], RICH], ids=["quickstart", "iaf-mog-hmc"])
def test_resume_from_the_cli_matches_a_straight_run(tmp_path: Path, sets: list[str]) -> None:
    # with HMC refinement the kernel's step size must come back from the checkpoint too
    args = ["train", "quickstart", "--smoke", "--no-progress"]
    for s in ["train.checkpoint_every=4", "train.validate_every=4", *sets]:
        args += ["--set", s]
    assert main([*args, "--out", str(tmp_path / "a"), "--set", "train.steps=12"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--set", "train.steps=8"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--set", "train.steps=12", "--resume"]) == 0
    a = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["guide"]:
        assert torch.equal(a["guide"][key], b["guide"][key]), key
    assert str(a["objective"]) == str(b["objective"])
    if sets:  # the HMC kernel's adaptation travels with the checkpoint
        assert "_extra_state" in a["objective"]


def test_user_errors_exit_non_zero_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "quickstart", "--set", "train.lrr=1"]) == 2
    assert "Did you mean 'train.lr'?" in capsys.readouterr().err
    assert main(["train", "no-such-experiment"]) == 2
    assert "unknown experiment 'no-such-experiment'" in capsys.readouterr().err
    assert main(["train", "quickstart", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["train", "quickstart", "--resume", "--out", str(tmp_path / "none")]) == 1
    assert "cannot resume" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 1
    assert "is not a dgm run directory" in capsys.readouterr().err


def test_list_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in experiments.available())
    for verb in ("train", "eval", "sample", "report", "list"):
        with pytest.raises(SystemExit) as info:
            main([verb, "--help"])
        assert info.value.code == 0
        assert "usage: dgm" in capsys.readouterr().out


def test_console_script_and_python_m(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for cmd in (
        [sys.executable, "-m", "dgm", "list"],
        [str(Path(sys.executable).with_name("dgm")), "list"],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0 and "quickstart" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dgm", "train", "quickstart", "--set", "x=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (
        bad.returncode == 2
        and "unknown config key 'x'" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_a_reader_that_goes_away_ends_the_listing_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # closed by main: not pytest's capture
    assert main(["list"]) == 0  # `dgm list | head -1`: no traceback
