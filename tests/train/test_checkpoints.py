"""Checkpoints, resume, NaN handling, validation and early stopping in dgm.train.fit."""

from pathlib import Path

import pytest
import torch

import dgm
from dgm.train import NonFiniteLossError, checkpoint
from dgm.train.metrics_log import MetricsLog, read_metrics


def small_vae(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    model = dgm.models.vae.VAEModel(20, (3,), ((16,),))
    guide = dgm.models.vae.VAEGuide(20, (3,), ((16,),))
    return model, guide


DATA = (torch.rand(120, 20, generator=torch.Generator().manual_seed(0)) < 0.4).float()


class Interrupt(Exception):
    pass


def run(
    tmp: Path,
    steps: int,
    resume: bool = False,
    stop_at: int | None = None,
    log: MetricsLog | None = None,
    lr_schedule: str = "constant",
) -> dgm.train.FitResult:
    model, guide = small_vae()
    calls = {"n": 0}
    objective = dgm.IWAE(3)

    def maybe_interrupt(m, g, x):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if stop_at is not None and calls["n"] == stop_at:
            raise Interrupt
        return objective(m, g, x)

    def validate() -> dict[str, float]:
        with torch.no_grad():
            return {
                "valid": dgm.iwae(dgm.log_weights(model, guide, DATA[:30], num_particles=4))
                .mean()
                .item()
            }

    result = dgm.train.fit(
        model,
        guide,
        maybe_interrupt,
        DATA,
        steps=steps,
        batch_size=10,
        seed=1,
        validate=validate,
        validate_every=4,
        checkpoint_dir=tmp,
        checkpoint_every=5,
        resume=resume,
        log=log,
        log_every=2,
        lr_schedule=lr_schedule,
    )
    result.params = torch.cat(
        [p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]]
    )  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resumed_run_ends_with_the_same_parameters(tmp_path: Path, schedule: str) -> None:
    torch.manual_seed(123)
    straight = run(tmp_path / "straight", steps=23, lr_schedule=schedule)
    torch.manual_seed(123)
    with pytest.raises(Interrupt):
        run(tmp_path / "resumed", steps=23, stop_at=13, lr_schedule=schedule)  # dies in step 13
    assert checkpoint.load(tmp_path / "resumed" / "last.pt")["step"] == 10
    torch.manual_seed(999)  # the resumed process starts from another RNG state
    resumed = run(tmp_path / "resumed", steps=23, resume=True, lr_schedule=schedule)
    assert resumed.steps == 23
    assert torch.equal(straight.params, resumed.params)  # type: ignore[attr-defined]
    assert resumed.best == straight.best


def test_checkpoints_hold_everything_and_leave_no_temporary_files(tmp_path: Path) -> None:
    run(tmp_path, steps=12)
    state = checkpoint.load(tmp_path / "last.pt")
    assert set(state) == {
        "step",
        "model",
        "guide",
        "objective",
        "optimizers",
        "rng",
        "seconds",
        "cpu_seconds",
        "best",
        "bad_validations",
    }
    assert (
        state["step"] == 12
        and len(state["optimizers"]) == 1
        and {"torch", "numpy", "python"} <= set(state["rng"])
    )
    assert (tmp_path / "best.pt").is_file()
    # the previous last.pt is kept as a fallback (issue 12); no temporary file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.prev.pt", "last.pt"]


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save_atomic({"step": 2, "bad": Unpicklable()}, path)
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing.pt")


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    model, guide = small_vae()
    calls = {"n": 0}

    def objective(m, g, x):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        bound = dgm.ELBO()(m, g, x)
        return bound + float("nan") if calls["n"] == 8 else bound

    with pytest.raises(NonFiniteLossError) as info:
        dgm.train.fit(
            model,
            guide,
            objective,
            DATA,
            steps=20,
            batch_size=10,
            checkpoint_dir=tmp_path,
            checkpoint_every=5,
        )
    msg = str(info.value)
    assert "the loss is nan at step 8" in msg and f"{tmp_path / 'last.pt'} (step 5), is kept" in msg
    saved = checkpoint.load(tmp_path / "last.pt")
    assert saved["step"] == 5
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_best_checkpoint_and_early_stopping(tmp_path: Path) -> None:
    model, guide = small_vae()
    scores = iter([1.0, 3.0, 2.0, 2.5, 2.9, 5.0])

    def validate() -> dict[str, float]:
        return {"score": next(scores)}

    log = MetricsLog(tmp_path, tensorboard=False)
    result = dgm.train.fit(
        model,
        guide,
        dgm.ELBO(),
        DATA,
        steps=60,
        batch_size=10,
        validate=validate,
        validate_every=2,
        patience=3,
        checkpoint_dir=tmp_path / "ck",
        log=log,
        log_every=1,
    )
    log.close()
    assert result.stopped_early and result.steps == 10 and result.best == 3.0
    assert checkpoint.load(tmp_path / "ck" / "best.pt")["step"] == 4
    assert checkpoint.load(tmp_path / "ck" / "last.pt")["step"] == 10
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["score"] for r in records if "score" in r] == [1.0, 3.0, 2.0, 2.5, 2.9]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 11))


def test_resume_truncates_metrics_written_after_the_checkpoint(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    with pytest.raises(Interrupt):
        run(tmp_path / "ck", steps=12, stop_at=8, log=log)
    assert max(r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")) == 6
    run(tmp_path / "ck", steps=12, resume=True, log=log)
    log.close()
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_several_optimizers_all_step(tmp_path: Path) -> None:
    model, guide = small_vae()
    opts = [
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.optim.Adam(guide.parameters(), lr=0.01),
    ]
    before = [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]
    dgm.train.fit(model, guide, dgm.ELBO(), DATA, steps=3, batch_size=10, optimizer=opts)
    after = list(model.parameters()) + list(guide.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert opts[1].state_dict()["state"]  # Adam has moments, so it stepped
