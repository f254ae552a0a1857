"""TensorBoard event files, written beside metrics.jsonl when tensorboard is installed."""

from pathlib import Path

import pytest

from dgm.train.metrics_log import MetricsLog


def test_scalars_reach_the_event_files(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is optional and not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLog(tmp_path) as log:
        log.write(10, loss=2.5)
        log.write(20, loss=1.5, **{"valid/iwae_k50": -90.0})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(10, 2.5), (20, 1.5)]
    assert [e.value for e in events.Scalars("valid/iwae_k50")] == [-90.0]
