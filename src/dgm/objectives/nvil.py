"""NVIL: the ELBO's score-function gradient with a learned, input-dependent baseline."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import at_least
from ._surrogate import magic_box
from .weights import log_weights


class NVIL(nn.Module):
    """Neural variational inference and learning (Mnih & Gregor 2014) as a training objective.

    The learning signal l = log p(x, z) - log q(z | x) of each guide sample is centred by a
    baseline network C_psi(x) and a running mean c, and divided by max(1, running std):

        grad_phi ~ (l - C_psi(x) - c) / max(1, sqrt(v)) * grad_phi log q(z | x)

    (the paper's Algorithm 1 with alpha = 0.8). The model gets grad_theta log p(x, z); the
    baseline is trained to minimize (l - C_psi(x) - c)^2 by the same optimizer step (``fit``
    trains an objective's parameters along with the programs'). The baseline and the running
    statistics come from earlier batches only (the first batch starts them), so the estimator stays unbiased up to the
    positive scale 1 / max(1, sqrt(v)). Reparameterized guide sites keep their path gradient.
    The learned baseline serves every score-function site: a site's own ``infer={"baseline":
    b}`` (honoured by ``elbo`` and ``iwae``) is not used here.

    Args:
        baseline: maps the programs' arguments to one number per data point (``[B]`` or
            ``[B, 1]``), e.g. ``MLP((784, 100, 1))``; ``None`` keeps only the running mean.
        num_particles: samples per data point (the signal is per sample).
        decay: alpha of the running mean and variance.
    """

    signal_mean: Tensor
    signal_var: Tensor
    initialized: Tensor

    def __init__(
        self, baseline: nn.Module | None = None, num_particles: int = 1, decay: float = 0.8
    ) -> None:
        super().__init__()
        at_least("num_particles", num_particles, 1)
        self.baseline = baseline
        self.num_particles = num_particles
        self.decay = decay
        self.register_buffer("signal_mean", torch.zeros(()))
        self.register_buffer("signal_var", torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(model, guide, *args, num_particles=self.num_particles, **kwargs)
        signal = lw.log_w.detach()  # [K, B]
        bound = lw.log_w.mean(0)
        if self.baseline is not None:
            b = self.baseline(*args, **kwargs)
            b = b.reshape(b.shape[0]) if b.dim() == 2 and b.shape[-1] == 1 else b
        else:
            b = signal.new_zeros(signal.shape[1:])
        residual = signal - b.detach()  # l - C(x)
        if self.training:
            mean, var = self._update(residual)
        else:
            mean, var = self.signal_mean, self.signal_var
        centred = (residual - mean) / var.sqrt().clamp(min=1.0)
        score = lw.score_log_q()
        if score is not None:
            bound = bound + magic_box(centred * score).mean(0)
        if self.baseline is not None:
            # gradient of -(1/2)(l - c - C(x))^2 w.r.t. psi; zero in value
            bound = bound + magic_box(-0.5 * (signal - mean - b) ** 2).mean(0)
        return bound

    @torch.no_grad()
    def _update(self, residual: Tensor) -> tuple[Tensor, Tensor]:
        """The statistics this batch is centred with (the first batch starts them from its
        own), then the running averages updated with it; without a branch on the buffers,
        so that a compiled step has no graph break here."""
        batch_mean = residual.mean()
        batch_var = residual.var() if residual.numel() > 1 else residual.new_zeros(())
        mean = torch.where(self.initialized, self.signal_mean, batch_mean)
        var = torch.where(self.initialized, self.signal_var, batch_var)
        a = self.decay
        self.signal_mean.copy_(a * mean + (1 - a) * batch_mean)
        self.signal_var.copy_(a * var + (1 - a) * batch_var)
        self.initialized.fill_(True)
        return mean, var

    def extra_repr(self) -> str:
        return f"num_particles={self.num_particles}, decay={self.decay}"
