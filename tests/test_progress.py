"""dgm.progress: a line about every interval in a log, with the time left; messages on their
own lines; off when asked."""

import io

import pytest

from dgm import progress
from dgm.progress import Progress, say, tracked


def test_a_log_gets_a_line_per_interval_with_the_time_left() -> None:
    log = io.StringIO()
    with Progress(10, "AIS, T=5", "chunk", show=True, interval=0.0, file=log) as p:
        p.update(4)
        p.set_postfix({"loss": "1.5"})
        p.update(6)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("AIS, T=5: 4/10 chunk (40%), 0:00 elapsed, about 0:00 left")
    assert lines[1].startswith("AIS, T=5: 10/10 chunk (100%)") and "left" not in lines[1]
    assert lines[1].endswith("loss 1.5") and lines[-1] == lines[1]  # and a last line at the end


def test_a_short_computation_writes_nothing_to_a_log() -> None:
    log = io.StringIO()
    assert list(tracked(range(3), "quick", show=True)) == [0, 1, 2]
    with Progress(3, "quick", show=True, interval=60.0, file=log) as p:
        p.update(3)
    assert log.getvalue() == ""


def test_progress_is_off_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    with progress.enabled_as(False), Progress(2, "off", interval=0.0, file=log) as p:
        p.update(2)
    assert log.getvalue() == ""
    monkeypatch.setenv("DGM_PROGRESS", "0")
    assert not progress.enabled()
    monkeypatch.setenv("DGM_PROGRESS", "1")
    assert progress.enabled()


def test_messages_go_on_their_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(5, "training", show=True, interval=0.0) as p:
        p.update(1)
        say("dgm: a message")
        p.update(1)
    err = capsys.readouterr().err.splitlines()
    assert "dgm: a message" in err  # a whole line, not glued to a progress line
    assert all(line.startswith(("training: ", "dgm: a message")) for line in err)
