"""The SBN task: sigmoid belief networks (``dgm.models.sbn``), layers of binary latent units,
trained by the discrete-latent estimators: reweighted wake-sleep, wake-sleep, NVIL, VIMCO,
REINFORCE and the concrete relaxation.

YAML: ``task: sbn`` with ``data``, ``model`` (``latent_sizes``), ``objective``, ``train`` and
``eval``; the objective's choices are those of ``dgm.objectives.OBJECTIVES`` that train a
model on data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ...models.sbn import SBNGuide, SBNModel
from ..config import at_least
from .latent import LatentConfig, LatentVariableTask


@dataclass(kw_only=True)
class SBNModelConfig:
    """The binary layers' sizes, next to x first (e.g. ``[200, 200, 200]``); linear layers."""

    latent_sizes: list[int] = at_least(1, factory=lambda: [200])


@dataclass(kw_only=True)
class SBNConfig(LatentConfig):
    """A sigmoid-belief-network run."""

    task: str = "sbn"
    model: SBNModelConfig = field(default_factory=SBNModelConfig)


class SBNTask(LatentVariableTask[SBNConfig]):
    """Sigmoid belief networks and the estimators for discrete latents."""

    name = "sbn"
    continuous_latents = False
    Config = SBNConfig
    legacy_model = "sbn"

    @classmethod
    def upgrade(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        # before tasks, an SBN file had to say hidden_sizes: [] and likelihood: bernoulli
        model = raw.get("model")
        if isinstance(model, dict):
            if model.get("hidden_sizes") == []:
                del model["hidden_sizes"]
            if model.get("likelihood") == "bernoulli":
                del model["likelihood"]
            if model.get("activation") == "tanh":  # only ever NVIL's baseline's
                del model["activation"]
        return super().upgrade(raw, resolved)

    def programs(self, data_size: int) -> tuple[nn.Module, nn.Module]:
        sizes = self.cfg.model.latent_sizes
        return SBNModel(data_size, sizes), SBNGuide(data_size, sizes)
