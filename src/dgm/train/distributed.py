"""Multi-process training with torchrun: process group, rank, and the DDP wrapper."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints."""
        return self.rank == 0


SINGLE = World()
DEVICES = ("auto", "cpu", "cuda")  # what local_device accepts


def init(device: torch.device) -> World:
    """Join the process group that ``torchrun`` describes (gloo on CPU, nccl on CUDA).

    Without torchrun's environment (``WORLD_SIZE`` unset or 1) this is a single process.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def shutdown() -> None:
    """Leave the process group once every process has got here (no-op for a single process).

    Exiting with gloo's threads still alive aborts the process ("terminate called without an
    active exception"), so programs that called :func:`init` call this when training is over.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(module)`` when there are several processes, else ``module``."""
    if world.size == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def local_device(requested: str) -> torch.device:
    """``auto``: this process's GPU (``LOCAL_RANK``) when CUDA is available, else the CPU."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch.cuda.is_available() is False")
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
