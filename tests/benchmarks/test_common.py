"""The benchmarks' shared run-or-reuse: a kept run is one of exactly this configuration."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from common import in_pool, run_or_reuse

SMOKE = ["train.steps=4", "train.validate_every=2", "train.checkpoint_every=2"]


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_run_is_reused_only_with_the_same_configuration_and_resumed_when_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    sets = ["data.train_points=200", "data.valid_points=20", "data.test_points=10", *SMOKE]
    sets += ["eval.num_particles=4", "train.batch_size=20"]
    first = run_or_reuse("quickstart", sets, out, reuse=True)
    assert first["reused"] is False and first["train_steps"] == 4
    again = run_or_reuse("quickstart", sets, out, reuse=True)
    assert again["reused"] is True and again["test_elbo"] == first["test_elbo"]
    # another setting: trained afresh, the earlier run archived beside it, and said why
    other = run_or_reuse("quickstart", [*sets, "train.lr=0.002"], out, reuse=True)
    assert other["reused"] is False and "train.lr: 0.001 -> 0.002" in capsys.readouterr().out
    assert len(list(tmp_path.glob("run.archived-*"))) == 1
    # a run cut short (no final metrics) with this configuration continues from its checkpoint
    (out / "final_metrics.json").unlink()
    resumed = run_or_reuse("quickstart", [*sets, "train.lr=0.002"], out, reuse=True)
    assert resumed["resumed"] is True and resumed["test_elbo"] == other["test_elbo"]
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["step"] == 4


def _square(x: int) -> int:
    return x * x


def test_jobs_in_a_pool_keep_their_order() -> None:
    assert in_pool(_square, range(5), 1) == [0, 1, 4, 9, 16]
