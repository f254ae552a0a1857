"""Run by tests/train/test_distributed.py, alone or under torchrun: train and save parameters."""

import sys
from pathlib import Path

import torch

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
    main(Path(sys.argv[1]))
