"""The task contract, for every registered task: build, one step, validate, evaluate,
pictures, sample, and an exact resume, on the smoke size of one of its packaged experiments."""

from pathlib import Path
from typing import Any

import pytest
import torch

from dgm.experiments import load
from dgm.experiments.config import RunKindError
from dgm.experiments.registry import TASKS
from dgm.experiments.runner import create
from dgm.experiments.task import Picture, Task
from dgm.train import Output, TrainState, resume, run
from tests.conftest import shared_data_dir

# one packaged experiment per task; those that need the real MNIST files say so
EXAMPLES = {
    "vae": ("quickstart", False),
    "sbn": ("sbn-rws-mnist", True),
    "inference-compilation": ("polyreg-ic", False),
    "flow": ("flow-moons", False),
    "disentangle": ("disentangle-beta-vae-dsprites", False),
    "air": ("air-multi-mnist-cpu", True),
    "gan": ("gan-ring", False),
}


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def test_every_registered_task_has_an_example_here() -> None:
    assert sorted(EXAMPLES) == sorted(TASKS)


def prepared(name: str) -> tuple[Task[Any], Any]:
    experiment, needs_mnist = EXAMPLES[name]
    if needs_mnist and shared_data_dir() is None:
        pytest.skip("DGM_DATA_DIR is not set to the real data")
    cfg = load(experiment, ["train.steps=3", "train.validate_every=2"], smoke=True)
    torch.manual_seed(cfg.train.seed)
    task = create(cfg)
    return task, task.data()


def trained(task: Task[Any], data: Any, steps: int, ckpt: Path, again: bool = False) -> TrainState:
    """``steps`` of the task's own update from a fresh build (``again``: resumed from ``ckpt``)."""
    torch.manual_seed(task.cfg.train.seed)
    parts = task.build(data)
    optimizers = task.optimizers(parts)
    state = TrainState(parts, optimizers)
    step = task.step(parts, optimizers, lambda m: m)
    validate = task.validate(parts, data)
    if again:
        resume(state, ckpt)
    schedule = task.cfg.train.schedule()
    schedule.steps, schedule.epochs, schedule.checkpoint_every = steps, None, 1
    run(state, step, data.train, schedule, transform=data.transform, validate=validate,
        output=Output(ckpt))  # fmt: skip
    return state


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_task_builds_steps_validates_evaluates_draws_and_resumes_exactly(
    name: str, tmp_path: Path
) -> None:
    task, data = prepared(name)
    straight = trained(task, data, 3, tmp_path / "straight")
    assert straight.step == 3
    validate = task.validate(straight.parts, data)
    if validate is not None:
        score, *_ = validate().values()
        assert isinstance(score, float)
    for part in straight.parts.values():
        part.eval()
    metrics = task.evaluate(straight.parts, data)
    assert metrics and all(isinstance(k, str) for k in metrics)
    pictures = task.pictures(straight.parts, data, tmp_path)
    assert all(isinstance(p, Picture) and (tmp_path / p.file).is_file() for p in pictures)
    try:
        drawn = task.sample(straight.parts, data, 4, tmp_path / "drawn.png")
        assert drawn.is_file()
    except RunKindError as err:  # a study without samples says so
        assert name in str(err)
    # two steps, then the third from the checkpoint: the same parameters as three straight
    trained(task, data, 2, tmp_path / "resumed")
    resumed = trained(task, data, 3, tmp_path / "resumed", again=True)
    for (part, a), b in zip(straight.parts.items(), resumed.parts.values(), strict=True):
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), f"{name}: {part}.{key} differs after resuming"
