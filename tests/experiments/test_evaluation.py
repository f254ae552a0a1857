"""Evaluation you can rerun and trust (issue 28): `dgm eval` merges and records, is seeded,
names its checkpoint; run directories, interrupted runs, read-only places and bookkeeping."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from dgm.cli import commands, main
from dgm.experiments import rundir
from dgm.train import checkpoint
from tests.experiments.test_rundir import train  # a tiny quickstart run: 8 steps

AIS = ["--estimator", "ais", "--ais-steps", "4", "--chains", "2", "--set", "eval.ais_points=3"]
AIS_KEYS = ("test_log_likelihood_ais", "ais_points")


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def final(out: Path) -> dict[str, object]:
    return json.loads((out / "final_metrics.json").read_text())


def evaluations(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def untimed(metrics: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in metrics.items() if "seconds" not in k}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluation") / "run"
    assert train(out) == 0
    return out


def test_an_evaluation_adds_its_keys_and_keeps_every_other(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = final(out)
    assert (before["eval_checkpoint"], before["eval_step"]) == ("best.pt", 8)
    assert main(["eval", str(out), *AIS, "--no-progress"]) == 0
    with_ais = final(out)
    assert all(any(k.startswith(p) for k in with_ais) for p in AIS_KEYS)
    assert main(["eval", str(out), "--no-progress"]) == 0  # the default: no AIS asked for
    after = final(out)
    assert {k: after[k] for k in with_ais if k.startswith(AIS_KEYS)} == {
        k: with_ais[k] for k in with_ais if k.startswith(AIS_KEYS)
    }
    assert after["train_steps"] == 8  # the training summary stays
    # every evaluation recorded: when, which checkpoint, which settings, what it gave
    history = evaluations(out)
    assert [r["after_training"] for r in history] == [True, False, False]
    assert history[1]["overrides"] == [
        "eval.ais_points=3",
        "eval.estimator=ais",
        "eval.ais_steps=4",
        "eval.ais_chains=2",
    ]
    assert history[1]["settings"]["estimator"] == "ais" and history[2]["checkpoint"] == "best.pt"
    assert any(k.startswith("test_log_likelihood_ais") for k in history[1]["metrics"])
    page = (out / "report.html").read_text()
    assert 'id="evaluations"' in page and "--set eval.estimator=ais" in page
    # an evaluation of another state of the run (another step) starts the results afresh
    held = final(out)
    held["eval_step"] = 4
    (out / "final_metrics.json").write_text(json.dumps(held))
    assert main(["eval", str(out), "--no-progress"]) == 0
    assert not any(k.startswith(AIS_KEYS) for k in final(out))
    assert final(out)["train_steps"] == 8


def test_the_same_checkpoint_and_settings_give_the_same_numbers(
    trained: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    torch.manual_seed(123)  # whatever the process drew before
    assert main(["eval", str(out), "--no-progress"]) == 0
    first = final(out)
    torch.rand(7)
    assert main(["eval", str(out), "--no-progress"]) == 0
    assert untimed(final(out)) == untimed(first)
    assert untimed(first) == untimed(final(trained))  # as evaluated after training


def test_eval_takes_only_evaluation_settings(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(trained), "--set", "model.latent_sizes=[3]"]) == 2
    err = capsys.readouterr().err
    assert "model.latent_sizes: only evaluation settings (eval.*) may change" in err


def test_training_time_and_segments_count_every_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    last = out / "checkpoints" / "last.pt"
    saved = checkpoint.load(last)
    assert saved["seconds"] > 0 and saved["cpu_seconds"] > 0
    saved["seconds"], saved["cpu_seconds"] = 1000.0, 900.0  # as if the first segment took long
    checkpoint.save_atomic(saved, last)
    assert train(out, "train.steps=12", flags=("--resume",)) == 0
    summary = final(out)
    assert summary["train_seconds"] >= 1000 and summary["train_cpu_seconds"] >= 900
    assert summary["train_segments"] == 2
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    (resumed,) = [r for r in log if "resumed_from" in r]
    assert resumed["step"] == 8 and resumed["resumed_from"] == "last.pt" and resumed["resumed_at"]


def test_a_run_stopped_before_its_first_checkpoint_starts_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("name: quickstart\n")  # what a run writes first
    (out / "metrics.jsonl").write_text('{"step": 3, "loss": 1.0}\n')
    assert train(out, flags=("--resume",)) == 1
    assert "cannot resume" in capsys.readouterr().err
    assert train(out) == 0
    assert "stopped before its first checkpoint; starting it afresh" in capsys.readouterr().err
    assert final(out)["train_steps"] == 8
    # the interrupted command's advice: resume only where there is a checkpoint
    assert "--resume" in commands._interrupted(out)
    assert "nothing to resume" in commands._interrupted(tmp_path / "empty")
    assert commands._interrupted(None) == "dgm: interrupted"


def test_out_that_cannot_hold_a_run_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert train(a_file) == 1
    assert "is a file, not a directory" in capsys.readouterr().err
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    assert train(foreign) == 1
    assert "is not empty and holds no dgm run (thesis.tex)" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "mine"

    def read_only(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(rundir.os, "open", read_only)
    assert train(tmp_path / "ro") == 1
    err = capsys.readouterr().err
    assert f"cannot write to {tmp_path / 'ro'}: Read-only file system" in err
    assert not (tmp_path / "ro").exists()  # a run that failed before writing leaves nothing


def test_a_read_only_run_directory_is_explained(
    trained: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(rundir.os, "open", read_only)
    assert main(["eval", str(trained), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write to {trained}: Read-only file system" in err
    monkeypatch.undo()

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", denied)
    assert main(["report", str(trained)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dgm: error: cannot write ") and "Permission denied" in err


def test_a_run_that_fails_on_missing_data_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path / "nothing"))
    out = tmp_path / "run"
    args = ["train", "vae-mnist", "--smoke", "--no-progress", "--out", str(out)]
    assert main(args) == 1
    assert "dgm: error:" in capsys.readouterr().err
    assert not out.exists()


def test_sample_never_replaces_the_reports_pictures(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = (out / "samples.png").read_bytes()
    assert main(["sample", str(out), "-n", "4"]) == 0
    (drawn,) = (out / "sampled").glob("samples-*.png")
    assert drawn.is_file() and (out / "samples.png").read_bytes() == before
