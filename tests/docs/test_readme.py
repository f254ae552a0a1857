"""The README's example runs as written (on a small random data set)."""

import re
from pathlib import Path

import pytest
import torch

import dgm

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    code = blocks[0]
    assert code.count("\n") <= 22
    data = (torch.rand(300, 784) < 0.2).float()
    monkeypatch.setattr(dgm.data, "binarized_mnist", lambda split="train", **_: data)
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    value = float(re.search(r"tensor\((-?[0-9.]+)", printed).group(1))  # type: ignore[union-attr]
    assert -784 * 0.7 < value < 0


def test_the_vae_improvements_page_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    page = README.parent / "docs" / "vae-improvements.md"
    (code,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    data = (torch.rand(200, 784) < 0.2).float()
    monkeypatch.setattr(dgm.data, "binarized_mnist", lambda split="train", **_: data)
    namespace: dict[str, object] = {}
    exec(compile(code, str(page), "exec"), namespace)
    kernel = namespace["kernel"]
    assert isinstance(kernel, dgm.infer.HMC) and kernel.step_size is not None  # it ran


def test_the_disentanglement_page_example_runs(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    page = README.parent / "docs" / "disentanglement.md"
    (code,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile(code, str(page), "exec"), namespace)
    metrics = namespace["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) == {"mig[disentanglement_lib]", "mig[chen2018]", "sap"}
    assert all(0 <= v <= 1 for v in metrics.values())
    assert "mig[chen2018]" in capsys.readouterr().out


def test_the_gan_page_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    page = README.parent / "docs" / "gans.md"
    (code,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile(code, str(page), "exec"), namespace)
    cover = namespace["cover"]
    modes, high_quality = capsys.readouterr().out.split()
    assert int(modes) == cover.modes_covered  # type: ignore[attr-defined]
    assert cover.modes_covered >= 1 and 0 <= float(high_quality) <= 1  # type: ignore[attr-defined]


def test_the_evaluation_page_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = README.parent / "docs" / "evaluation.md"
    (code,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    data = (torch.rand(20, 784) < 0.2).float()
    monkeypatch.setattr(dgm.data, "binarized_mnist", lambda split="train", **_: data)
    # the page's budget, shrunk to seconds
    small = code.replace("num_steps=500", "num_steps=5").replace(
        "num_particles=5000", "num_particles=50"
    )
    small = small.replace("x[:50]", "x[:4]")
    assert small != code
    exec(compile(small, str(page), "exec"), {})
    printed = capsys.readouterr().out
    low, high = re.findall(r"(-?[0-9.]+) <= log p\(x\) <= (-?[0-9.]+)", printed)[0]
    assert float(low) < 0 and float(high) < 0 and "AIS - IWAE" in printed


def test_the_air_page_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    page = README.parent / "docs" / "air.md"
    (code,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disks = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) < 36).float().flatten().repeat(50, 1)
    pool = (disks, torch.arange(50) % 10, "disks (test)")
    module = importlib.import_module("dgm.data.multi_digit")
    monkeypatch.setattr(module, "digit_pool", lambda data_dir=None: pool)
    small = code.replace("multi_mnist_set(2000", "multi_mnist_set(300").replace(
        "steps=200", "steps=3"
    )
    assert small != code
    exec(compile(small, str(page), "exec"), {})
    accuracy = float(capsys.readouterr().out.split()[-1])
    assert 0 <= accuracy <= 1


def test_the_design_notes_family_in_one_file_trains_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sys

    from dgm.cli import main

    page = README.parent / "docs" / "design.md"
    part = page.read_text().split("### A family in one file", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", part, flags=re.S)[:1]
    (tmp_path / "gauss_family.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gauss_family", raising=False)
    (tmp_path / "gauss.yaml").write_text(
        "task: gauss_family:GaussTask\n"
        "train: {steps: 400, epochs: null, batch_size: 64, lr: 0.05, validate_every: 200}\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "gauss.yaml"), "--no-progress", "--out", str(out)]) == 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert abs(final["mean"] - 3.0) < 0.15 and abs(final["std"] - 0.5) < 0.1, final
    assert (out / "report.html").is_file()
    (tmp_path / "bad.yaml").write_text("task: gauss_family:GaussTask\nmodel: {width: 3}\n")
    assert main(["train", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "bad")]) == 2
    assert "model is a setting of task" in capsys.readouterr().err  # of the others, not this one
