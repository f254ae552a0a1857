"""Run by tests/train/test_distributed.py, alone or under torchrun: train and save parameters."""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import dgm
from dgm.train import distributed


def objective(model: torch.nn.Module, guide: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A deterministic per-point objective that still calls both programs (so DDP syncs them)."""
    z = {"z": torch.tanh(x[:, :3] - 0.5)}
    with dgm.trace() as q, dgm.condition(z):
        guide(x)
    with dgm.trace() as p, dgm.condition(z):
        model(x)
    return p.log_prob_sum() + q.log_prob_sum()


def alternating(out: Path) -> None:
    """A one-dimensional GAN on the alternating step, with noise fixed per data point."""
    world = distributed.init(torch.device("cpu"))
    torch.manual_seed(0)
    generator = torch.nn.Linear(1, 1)
    critic = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    g = torch.Generator().manual_seed(0)
    data = (2.0 + 0.5 * torch.randn(96, 1, generator=g), torch.randn(96, 1, generator=g))
    opts = [
        torch.optim.Adam(critic.parameters(), lr=0.01),
        torch.optim.Adam(generator.parameters(), lr=0.01),
    ]
    g_call = distributed.wrap(generator, world, torch.device("cpu"))
    d_call = distributed.wrap(critic, world, torch.device("cpu"))

    def critic_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, z = batch
        with torch.no_grad():
            fake = g_call(z)
        scores = d_call(torch.cat([x, fake]))
        return F.softplus(-scores[: len(x)]).mean() + F.softplus(scores[len(x) :]).mean()

    def generator_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.softplus(-d_call(g_call(batch[1]))).mean()

    step = dgm.train.AlternatingStep(
        dgm.train.Update("critic", critic_loss, opts[0]),
        dgm.train.Update("generator", generator_loss, opts[1]),
        critic_steps=2,
    )
    state = dgm.train.TrainState({"generator": generator, "critic": critic}, opts)
    schedule = dgm.train.Schedule(steps=9, batch_size=16, seed=3, checkpoint_every=3)
    execution = dgm.train.Execution(world=world)
    dgm.train.run(
        state, step, data, schedule, output=dgm.train.Output(out / "ck"), execution=execution
    )
    params = torch.cat([p.detach().flatten() for p in state.params()])
    torch.save(params, out / f"params_rank{world.rank}_of{world.size}.pt")
    distributed.shutdown()


def kill_and_resume(out: Path, phase: str) -> None:
    """Random objective, validation drawing random numbers on rank 0 only; ``killed`` dies in
    step 10 (every rank), ``continue`` resumes it from the step-8 checkpoint."""
    world = distributed.init(torch.device("cpu"))
    torch.manual_seed(0)
    model = dgm.models.vae.VAEModel(20, (3,), ((16,),))
    guide = dgm.models.vae.VAEGuide(20, (3,), ((16,),))
    data = (torch.rand(96, 20, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    objective, calls = dgm.IWAE(2), {"n": 0}

    def counted(m: torch.nn.Module, g: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if phase == "killed" and calls["n"] == 10:
            raise SystemExit(3)
        return objective(m, g, x)

    def validate() -> dict[str, float]:
        return {"score": torch.randn(7).sum().item()}  # rank 0's stream moves on alone

    if phase == "continue":
        torch.manual_seed(99)  # a new process starts from another state
    dgm.train.fit(
        model,
        guide,
        counted,
        data,
        steps=14,
        batch_size=16,
        lr=0.01,
        seed=3,
        world=world,
        validate=validate,
        validate_every=3,
        checkpoint_dir=out / "ck",
        checkpoint_every=4,
        resume=phase == "continue",
    )
    params = torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])
    torch.save(params, out / f"params_rank{world.rank}_of{world.size}.pt")
    distributed.shutdown()


def main(out: Path) -> None:
    world = distributed.init(torch.device("cpu"))
    torch.manual_seed(0)
    model = dgm.models.vae.VAEModel(20, (3,), ((16,),))
    guide = dgm.models.vae.VAEGuide(20, (3,), ((16,),))
    data = (torch.rand(96, 20, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    dgm.train.fit(
        model,
        guide,
        objective,
        data,
        steps=15,
        batch_size=16,
        lr=0.01,
        seed=3,
        world=world,
        checkpoint_dir=out / "ck",
        checkpoint_every=5,
    )
    params = torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])
    torch.save(params, out / f"params_rank{world.rank}_of{world.size}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    if sys.argv[2:] == ["alternating"]:
        alternating(Path(sys.argv[1]))
    elif sys.argv[2:]:
        kill_and_resume(Path(sys.argv[1]), sys.argv[2])
    else:
        main(Path(sys.argv[1]))
