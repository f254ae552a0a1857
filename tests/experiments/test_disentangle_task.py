"""The disentangle task: its objectives train from the CLI, its metrics are printed by
``dgm eval --metrics``, a FactorVAE run resumes exactly, and bad settings fail before training."""

import json
from pathlib import Path

import pytest
import torch

from dgm.cli import main
from dgm.experiments import ConfigError, load
from dgm.experiments.runner import load_run
from dgm.metrics.disentanglement_suite import DISENTANGLEMENT_METRICS, code_factor_information
from dgm.train import checkpoint

QUICK = ["eval.metrics=[]", "eval.num_particles=2"]


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def untimed(metrics: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in metrics.items() if not k.endswith("seconds")}


def sets(*assignments: str) -> list[str]:
    return [a for s in assignments for a in ("--set", s)]


def test_eval_metrics_prints_every_metric_with_its_convention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "disentangle-beta-tcvae-dsprites", "--smoke", "--no-progress"]
    assert main([*args, "--out", str(out), *sets(*QUICK)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--metrics", ",".join(DISENTANGLEMENT_METRICS)]) == 0
    printed = capsys.readouterr().out
    for key in (
        "mig[disentanglement_lib]",
        "mig[chen2018]",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness_test",
        "sap",
        "modularity",
        "explicitness_test",
        "factor_vae_score",
        "beta_vae_score",
    ):
        assert key in printed, key
    final = json.loads((out / "final_metrics.json").read_text())
    assert 0 <= final["mig[disentanglement_lib]"] <= 1 and 0 <= final["beta_vae_score"] <= 1
    assert (out / "mutual_information.png").is_file() and (out / "traversals.png").is_file()
    # one metric alone: it alone is recomputed (the same number: each metric draws its own
    # seeded points, DCI's trees are seeded), and every other result stays
    assert main(["eval", str(out), "--metrics", "sap"]) == 0
    assert "dci_disentanglement" not in capsys.readouterr().out
    assert untimed(json.loads((out / "final_metrics.json").read_text())) == untimed(final)
    assert main(["eval", str(out), "--metrics", "dci,factor_vae"]) == 0
    assert untimed(json.loads((out / "final_metrics.json").read_text())) == untimed(final)
    history = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert "sap" in history[-2]["metrics"] and "dci_completeness" not in history[-2]["metrics"]
    assert "dci_completeness" in history[-1]["metrics"] and "sap" not in history[-1]["metrics"]
    assert history[-1]["settings"]["metrics"] == ["dci", "factor_vae"]
    # the heatmap's MIG is the table's: the same draws
    _, task, parts, data = load_run(out)
    _, score = code_factor_information(parts["guide"], data.info["factor_data"], task.settings())
    assert score == final["mig[disentanglement_lib]"]
    assert main(["eval", str(out), "--metrics", "mig,migg"]) == 2  # a config error
    err = capsys.readouterr().err
    assert "'migg' is not one of mig, mig_chen" in err and "did you mean 'mig'" in err


def test_a_factor_vae_run_resumed_from_the_cli_matches_a_straight_run(tmp_path: Path) -> None:
    # validation draws random numbers: the shorter run ends on a step the straight one validates
    base = ["train", "disentangle-factor-vae-dsprites", "--smoke", "--no-progress"]
    args = [*base, *sets(*QUICK)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), *sets("train.steps=3")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for part in ("model", "guide", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    # the two players kept their own optimizers: the discriminator's Adam has betas (0.5, 0.9)
    assert [g["betas"] for g in a["optimizers"][1]["param_groups"]] == [(0.5, 0.9)]
    log = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/discriminator" in r and "loss/vae" in r for r in log)
    assert any("valid/total_correlation" in r for r in log)


def test_annealed_capacity_resumes_its_schedule(tmp_path: Path) -> None:
    base = ["train", "disentangle-annealed-capacity-dsprites", "--smoke", "--no-progress"]
    args = [*base, *sets(*QUICK)]
    assert main([*args, "--out", str(tmp_path / "b"), *sets("train.steps=3")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert int(b["objective"]["step"]) == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.name=digits", "data.valid_points=100", "data.test_points=100"],
            r"eval.metrics \(mig, .*\) compare the code with ground-truth factors, and "
            r"data.name=digits has none: use data.name=dsprites or dsprites32",
        ),
        (
            ["model.posterior=full"],
            r"objective.name=beta-tcvae needs q\(z \| x\) to factorize .* use "
            r"model.posterior=diagonal",
        ),
        (
            ["train.batch_size=1"],
            r"train.batch_size=1: objective.name=beta-tcvae estimates its penalty across the "
            r"points of a batch .* give train.batch_size >= 2",
        ),
        (
            ["objective.name=factor-vae", "train.batch_size=1"],
            r"train.batch_size=1: objective.name=factor-vae estimates",
        ),
        (
            ["data.holdout=0"],
            r"data.holdout is read only when data.name=mnist or fashion_mnist",
        ),
        (
            ["model.posterior=iaf", "objective.name=beta-vae", "eval.metrics=[mig_chen]"],
            r"mig_chen estimates entropies from q\(z_d \| x\)",
        ),
        (
            ["train.batch_size=128", "data.train_points=100"],
            r"train.batch_size 128 is larger than the training set \(100 points",
        ),
        (["objective.estimator=mws2"], r"objective.estimator: 'mws2' is not one of mss, mws"),
        (["objective.name=iwae"], r"objective.name: 'iwae' is not one of beta-vae"),
        (["eval.metrics=[dci, mig_chenn]"], r"'mig_chenn' is not one of"),
        (["objective.beta=-1"], r"objective.beta must be >= 0"),
    ],
)
def test_bad_settings_fail_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load("disentangle-beta-tcvae-dsprites", overrides)
