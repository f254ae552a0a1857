"""Two processes under torchrun (gloo, CPU) against one process with the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env_extra or {})}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["surrogate", "alternating"])
def test_two_processes_match_one_process_with_the_same_global_batch(
    tmp_path: Path, kind: str
) -> None:
    mode = ["alternating"] if kind == "alternating" else []
    proc = torchrun(str(WORKER), str(tmp_path), *mode, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "single"), *mode],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    rank0 = torch.load(tmp_path / "params_rank0_of2.pt")
    rank1 = torch.load(tmp_path / "params_rank1_of2.pt")
    one = torch.load(tmp_path / "single" / "params_rank0_of1.pt")
    assert torch.equal(rank0, rank1)  # the processes stay identical
    torch.testing.assert_close(rank0, one, atol=1e-5, rtol=1e-4)  # and match one process
    assert not torch.equal(one, torch.zeros_like(one))
    written = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert written == ["last.prev.pt", "last.pt"]  # rank 0 alone writes


def test_cli_under_torchrun_writes_one_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = torchrun(
        "-m",
        "dgm",
        "train",
        "quickstart",
        "--smoke",
        "--no-progress",
        "--out",
        str(out),
        cwd=tmp_path,
        env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("report:") == 1
    assert (out / "report.html").is_file() and (out / "checkpoints" / "last.pt").is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))  # one writer


def test_cli_under_torchrun_runs_a_task_on_the_alternating_step(tmp_path: Path) -> None:
    raw = {
        "name": "toy",
        "task": "tests.experiments.toy_gan:ToyGANTask",
        "train": {"steps": 6, "epochs": None, "batch_size": 32, "log_every": 2},
    }
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    proc = torchrun(
        "-m",
        "dgm",
        "train",
        str(tmp_path / "toy.yaml"),
        "--no-progress",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("report:") == 1
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) and "loss/generator" in lines[0]  # one writer
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=False)["step"] == 6


def test_a_run_killed_and_resumed_under_torchrun_ends_as_a_straight_one(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    resumed.mkdir()
    assert torchrun(str(WORKER), str(straight), "straight", cwd=tmp_path).returncode == 0
    assert torchrun(str(WORKER), str(resumed), "killed", cwd=tmp_path).returncode != 0
    assert torch.load(resumed / "ck" / "last.pt", weights_only=False)["step"] == 8
    proc = torchrun(str(WORKER), str(resumed), "continue", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        a = torch.load(straight / f"params_rank{rank}_of2.pt")
        b = torch.load(resumed / f"params_rank{rank}_of2.pt")
        assert torch.equal(a, b), rank  # every rank's random numbers came back


def test_a_config_error_under_torchrun_is_said_once(tmp_path: Path) -> None:
    proc = torchrun("-m", "dgm", "train", "quickstart", "--set", "train.lrr=1", cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("dgm: config error: ") == 1, proc.stderr[-3000:]
    assert "Did you mean 'train.lr'?" in proc.stderr
