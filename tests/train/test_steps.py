"""Steps and the training state: the alternating step, its resume, its NaN stop, and the state."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dgm.train import (
    AlternatingStep,
    NonFiniteLossError,
    Output,
    Schedule,
    TrainState,
    Update,
    run,
)
from dgm.train import resume as dgm_resume
from dgm.train.batches import Batches

DATA = 2.0 + 0.5 * torch.randn(96, 1, generator=torch.Generator().manual_seed(0))


class Interrupt(Exception):
    pass


def players(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return nn.Linear(1, 1), nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))


def toy_run(
    ckpt: Path,
    steps: int,
    resume: bool = False,
    stop_at: int | None = None,
    seen: list[torch.Tensor] | None = None,
) -> TrainState:
    """A one-dimensional GAN: fresh noise every update (the global RNG), two critic updates."""
    generator, critic = players()
    opts = [
        torch.optim.Adam(critic.parameters(), 0.01),
        torch.optim.Adam(generator.parameters(), 0.01),
    ]
    calls = {"n": 0}

    def critic_loss(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if stop_at is not None and calls["n"] == stop_at:
            raise Interrupt
        if seen is not None:
            seen.append(x)
        fake = generator(torch.randn_like(x)).detach()
        return F.softplus(-critic(x)).mean() + F.softplus(critic(fake)).mean()

    def generator_loss(x: torch.Tensor) -> torch.Tensor:
        return F.softplus(-critic(generator(torch.randn_like(x)))).mean()

    step = AlternatingStep(
        Update("critic", critic_loss, opts[0]), Update("generator", generator_loss, opts[1]), 2
    )
    state = TrainState({"generator": generator, "critic": critic}, opts)

    def validate() -> dict[str, float]:
        with torch.no_grad():  # draws random numbers, as real validations do
            return {"score": -generator(torch.randn(64, 1)).mean().sub(2).abs().item()}

    if resume:  # the state restored before the loop, from one reading of the checkpoint
        dgm_resume(state, ckpt)
    run(
        state,
        step,
        DATA,
        Schedule(steps=steps, batch_size=16, seed=1, validate_every=3, checkpoint_every=4),
        validate=validate,
        output=Output(checkpoint_dir=ckpt),
    )
    return state


def flat(state: TrainState) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in state.params()])


def test_alternating_run_stopped_and_resumed_ends_with_the_same_parameters(tmp_path: Path) -> None:
    torch.manual_seed(7)
    straight = toy_run(tmp_path / "straight", steps=11)
    torch.manual_seed(7)
    with pytest.raises(Interrupt):
        toy_run(tmp_path / "resumed", steps=11, stop_at=2 * 9 + 1)  # dies in step 10
    torch.manual_seed(123)  # the resumed process starts from another RNG state
    resumed = toy_run(tmp_path / "resumed", steps=11, resume=True)
    assert straight.step == resumed.step == 11
    assert torch.equal(flat(straight), flat(resumed))
    assert resumed.best == straight.best and len(resumed.optimizers[0].state) == 4


def test_each_critic_update_takes_the_next_batch_and_the_budget_counts_batches(
    tmp_path: Path,
) -> None:
    seen: list[torch.Tensor] = []
    toy_run(tmp_path, steps=5, seen=seen)
    batches = Batches(DATA, 16, 1)
    assert len(seen) == 10
    for draw, x in enumerate(seen):
        assert torch.equal(x, batches(draw))  # consecutive draws, none repeated or skipped


def test_epochs_budget_of_an_alternating_step() -> None:
    generator, critic = players()
    opts = [torch.optim.SGD(critic.parameters(), 0.1), torch.optim.SGD(generator.parameters(), 0.1)]
    step = AlternatingStep(
        Update("critic", lambda x: critic(x).mean(), opts[0]),
        Update("generator", lambda x: critic(generator(x)).mean(), opts[1]),
        critic_steps=3,
    )
    state = TrainState({"generator": generator, "critic": critic}, opts)
    result = run(state, step, DATA, Schedule(epochs=2.0, batch_size=16))
    assert result.steps == 4 and result.epochs == pytest.approx(4 * 3 * 16 / 96)  # 6 per epoch


def test_a_nan_after_the_critic_updates_says_they_were_applied(tmp_path: Path) -> None:
    generator, critic = players()
    opts = [torch.optim.SGD(critic.parameters(), 0.1), torch.optim.SGD(generator.parameters(), 0.1)]
    before = [p.detach().clone() for p in generator.parameters()]
    step = AlternatingStep(
        Update("critic", lambda x: critic(x).mean(), opts[0]),
        Update("generator", lambda x: critic(generator(x)).mean() * float("nan"), opts[1]),
        critic_steps=2,
    )
    state = TrainState({"generator": generator, "critic": critic}, opts)
    with pytest.raises(NonFiniteLossError) as info:
        run(state, step, DATA, Schedule(steps=3, batch_size=16), output=Output(tmp_path))
    msg = str(info.value)
    assert msg.startswith("the generator loss is nan at step 1 (epoch 0.33); all 2 critic updates")
    assert "No checkpoint was written before it" in msg
    assert all(torch.equal(b, p) for b, p in zip(before, generator.parameters(), strict=True))


def test_the_state_refuses_what_it_cannot_restore(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"part names \['step'\] are reserved"):
        TrainState({"step": model})
    state = TrainState({"model": model}, [torch.optim.Adam(model.parameters())])
    state.save(tmp_path / "a.pt")
    two = TrainState({"model": model}, [torch.optim.Adam(model.parameters())] * 2)
    with pytest.raises(ValueError, match=r"holds 1 optimizer state\(s\) but this run has 2"):
        two.load(tmp_path / "a.pt")
    other = TrainState({"model": model, "critic": nn.Linear(1, 1)}, state.optimizers)
    with pytest.raises(KeyError, match=r"no entry for part 'critic'"):
        other.load(tmp_path / "a.pt")
    with pytest.raises(ValueError, match=r"critic_steps must be >= 1"):
        AlternatingStep(
            Update("c", lambda x: x, state.optimizers[0]),
            Update("g", lambda x: x, state.optimizers[0]),
            0,
        )
