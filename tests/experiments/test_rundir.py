"""Run directories that cannot be corrupted (issue 12, items 1, 2, 4, 5), through the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgm.cli import main
from dgm.train import checkpoint

TINY = [
    "model.hidden_sizes=[[16]]",
    "model.latent_sizes=[2]",
    "train.checkpoint_every=4",
    "train.validate_every=4",
    "train.steps=8",
]


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def train(out: Path, *sets: str, flags: tuple[str, ...] = ()) -> int:
    args = ["train", "quickstart", "--smoke", "--no-progress", "--out", str(out), *flags]
    for s in [*TINY, *sets]:
        args += ["--set", s]
    return main(args)


def records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_applies_a_changed_learning_rate_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    assert train(out, "train.lr=1e-4", "train.steps=12", flags=("--resume",)) == 0
    saved = checkpoint.load(out / "checkpoints" / "last.pt")
    assert saved["step"] == 12
    assert saved["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    (change,) = [r for r in records(out) if "config_change" in r]
    assert change.pop("resumed_at")  # when: a time stamp
    assert change == {
        "step": 8,
        "resumed_from": "last.pt",
        "config_change": {"train.lr": [0.001, 0.0001], "train.steps": [8, 12]},
    }


def test_resume_refuses_a_changed_architecture_and_leaves_the_run_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert train(out, "model.latent_sizes=[3]", flags=("--resume",)) == 2
    err = capsys.readouterr().err
    assert "cannot resume with these settings changed: model.latent_sizes: [2] -> [3]" in err
    assert "train.lr" in err  # what may change is listed
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert main(["eval", str(out), "--num-particles", "3"]) == 0


def test_a_directory_that_holds_a_run_is_refused_or_archived(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    first = (out / "metrics.jsonl").read_text()
    assert train(out) == 1
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == first  # untouched
    assert train(out, flags=("--overwrite",)) == 0
    (archived,) = tmp_path.glob("run.archived-*")
    assert (archived / "metrics.jsonl").read_text() == first
    assert "moved the earlier run" in capsys.readouterr().err
    assert not (out / ".lock").exists()  # released at the end


def test_a_live_lock_refuses_a_second_writer_and_a_stale_one_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": sleeper.pid, "host": os.uname().nodename, "started": "then"}
        (out / ".lock").write_text(json.dumps(lock))
        assert train(out) == 1
        assert f"another run (pid {sleeper.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        sleeper.kill()
        sleeper.wait()
    assert train(out) == 0  # its process is gone: the lock is stale and taken over
    assert "taking over the lock of an earlier run" in capsys.readouterr().err
    assert not (out / ".lock").exists()  # released at the end
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = {"pid": int(dead.stdout), "host": os.uname().nodename, "started": "then"}
    (out / ".lock").write_text(json.dumps(stale))  # a run killed while it held the lock
    assert train(out, "train.steps=10", flags=("--resume",)) == 0
    assert "taking over the lock of an earlier run" in capsys.readouterr().err


def test_an_unreadable_last_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    ck = out / "checkpoints"
    assert checkpoint.load(ck / "last.prev.pt")["step"] == 4
    (ck / "last.pt").write_bytes(b"\x00garbage")
    (ck / ".last.pt.x1y2.tmp").write_bytes(b"half a write")
    capsys.readouterr()
    assert train(out, "train.steps=8", flags=("--resume",)) == 0
    err = capsys.readouterr().err
    assert "last.pt cannot be read; resuming from" in err and "last.prev.pt" in err
    assert "removed" in err and not (ck / ".last.pt.x1y2.tmp").exists()
    resumes = [r for r in records(out) if "resumed_from" in r]
    assert [(r["step"], r["resumed_from"]) for r in resumes] == [(4, "last.prev.pt")]
    assert checkpoint.load(ck / "last.pt")["step"] == 8
    (ck / "last.pt").write_bytes(b"")
    (ck / "last.prev.pt").write_text("not a checkpoint")
    assert train(out, "train.steps=12", flags=("--resume",)) == 1
    err = capsys.readouterr().err
    assert "dgm: error: no readable checkpoint: the checkpoint" in err and "Traceback" not in err


def test_a_time_limit_says_it_stopped_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, "train.time_limit=1e-6", "train.steps=50") == 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["stopped_by_time_limit"] is True
    assert final["train_steps"] < final["train_steps_planned"] == 50
    err = capsys.readouterr().err
    assert f"stopped the run after {final['train_steps']} of 50 planned steps" in err
    assert "stopped_by_time_limit" in (out / "report.html").read_text()
    assert train(tmp_path / "full") == 0
    assert (
        json.loads((tmp_path / "full" / "final_metrics.json").read_text())["stopped_by_time_limit"]
        is False
    )


def test_a_full_disk_gives_one_clear_line_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1}, path)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.save_atomic({"step": 2}, path, keep_previous=True)
    msg = str(info.value)
    assert f"could not write the checkpoint {path}: No space left on device (" in msg
    assert "MiB free there" in msg and "previous checkpoint, if any, is intact" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1


def test_eval_reads_the_newest_checkpoint_it_can(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    capsys.readouterr()
    (out / "checkpoints" / "best.pt").write_bytes(b"garbage")
    assert main(["eval", str(out), "--num-particles", "3"]) == 0
    captured = capsys.readouterr()
    assert "best.pt cannot be read" in captured.err
    assert "evaluating " in captured.err and "last.pt (step 8) instead" in captured.err
    assert "eval_checkpoint                  last.pt" in captured.out
    final = json.loads((out / "final_metrics.json").read_text())
    assert (final["eval_checkpoint"], final["eval_step"]) == ("last.pt", 8)
    (out / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["eval", str(out), "--num-particles", "3"]) == 0  # last.prev.pt, said
    assert "last.prev.pt (step 4) instead" in capsys.readouterr().err
    final = json.loads((out / "final_metrics.json").read_text())
    assert (final["eval_checkpoint"], final["eval_step"]) == ("last.prev.pt", 4)
    (out / "checkpoints" / "last.prev.pt").write_bytes(b"")
    assert main(["eval", str(out), "--num-particles", "3"]) == 1
    assert "dgm: error: no readable checkpoint: the checkpoint" in capsys.readouterr().err


def test_resume_and_overwrite_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(out, flags=("--resume", "--overwrite")) == 2
    assert "--resume continues the run in --out; --overwrite archives it: give one" in (
        capsys.readouterr().err
    )
    assert not out.exists()
