"""report.html: self-contained, with metrics, config and pictures; renders in headless Chromium."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from dgm.report import image_grid, write_report
from dgm.train.metrics_log import MetricsLog


def make_run(run: Path) -> None:
    import torch

    run.mkdir()
    (run / "config.yaml").write_text(
        yaml.safe_dump({"name": "demo <run>", "description": "a test run", "train": {"lr": 0.001}})
    )
    (run / "final_metrics.json").write_text(
        json.dumps(
            {
                "test_log_likelihood_k5000": -87.1234,
                "active_units": {"z": 21},
                "test_count_confusion": [[7, 1], [2, 9]],
                "eval_checkpoint": "best.pt",
                "eval_step": 20,
            }
        )
    )
    record = {
        "time": "2026-12-08T01:02:03",
        "seconds": 1.5,
        "checkpoint": "best.pt",
        "step": 20,
        "overrides": ["eval.num_particles=5000"],
        "seed": 7,
        "after_training": False,
        "metrics": {"test_log_likelihood_k5000": -87.1234},
    }
    (run / "evaluations.jsonl").write_text(json.dumps(record) + "\n")
    with MetricsLog(run, tensorboard=False) as log:
        for step in range(1, 21):
            log.write(step, loss=100.0 / step, **{f"valid/m{i}": step * i for i in range(10)})
        log.write(20, **{"valid/iwae_k50": -90.0})
    image_grid(torch.rand(16, 784), (28, 28), run / "samples.png", "samples")
    image_grid(torch.rand(8, 784), (28, 28), run / "reconstructions.png")


def test_report_is_self_contained_with_metrics_config_and_pictures(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    page = write_report(run).read_text()
    assert "<title>dgm run: demo &lt;run&gt;</title>" in page  # escaped
    assert "test_log_likelihood_k5000" in page and "-87.12" in page and "z: 21" in page
    assert "lr: 0.001" in page
    # a confusion matrix as a labelled table; the evaluated checkpoint; every evaluation
    assert 'class="matrix"' in page and "true \\ predicted" in page
    assert "<code>checkpoints/best.pt</code> (step 20)" in page
    assert 'id="evaluations"' in page and "--set eval.num_particles=5000" in page
    # twelve learning curves in rows of four, not one 5000-pixel row
    from matplotlib.image import imread

    curves = imread(str(run / "learning_curves.png"))
    assert curves.shape[1] <= 1500 and curves.shape[0] >= 3 * 250
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # curves, samples, reconstructions, all embedded
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert 'src="http' not in page and "<link" not in page and "<script" not in page


def test_report_of_a_non_run_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a dgm run directory"):
        write_report(tmp_path)


CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian packages chromium and chromium-driver)",
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    report = write_report(run)
    shot = tmp_path / "shot.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="metrics"' in dom.stdout and "test_log_likelihood_k5000" in dom.stdout
    assert 'class="matrix"' in dom.stdout and 'id="evaluations"' in dom.stdout
    proc = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] == 1600 and pixels.shape[1] == 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page: text and images rendered


def test_image_grid_draws_colour_and_refuses_other_channel_counts(tmp_path: Path) -> None:
    assert image_grid(torch.rand(4, 3 * 784), (3, 28, 28), tmp_path / "rgb.png").is_file()
    with pytest.raises(
        ValueError,
        match=r"image_shape must be \(H, W\), \(1, H, W\) or \(3, H, W\), got \(2, 28, 28\)",
    ):
        image_grid(torch.rand(4, 2 * 784), (2, 28, 28), tmp_path / "bad.png")
