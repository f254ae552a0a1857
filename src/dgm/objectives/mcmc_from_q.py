"""MCMC started from q: the decoder learns from posterior samples sharpened by a kernel."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..ppl import posterior_log_density
from ..registry import at_least
from ._surrogate import frozen, magic_box, unwrap
from .evidence_bound import elbo
from .importance_weighted import iwae
from .weights import log_weights


class Kernel(Protocol):
    """A transition kernel whose target is given per call (``dgm.infer.HMC`` is one).

    ``state_dict`` / ``load_state_dict`` carry its adaptation (step sizes) through
    checkpoints; ``adapt`` switches the adaptation on and off.
    """

    adapt: bool

    def step(self, z: Tensor, log_prob: Any = None) -> tuple[Tensor, Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MCMCFromQ(nn.Module):
    """Hoffman (2017): q(z | x) starts a Markov chain on p(z | x); the decoder learns from its end.

    Each step draws z_0 ~ q(z | x) (K particles per data point), runs ``num_steps``
    transitions of ``kernel`` on p(z | x) (every chain at once, each accepted on its own),
    and returns a surrogate whose gradient is

        guide phi:   grad_phi of the ELBO (or IWAE bound) of q, with the model held fixed;
        model theta: grad_theta (1/K) sum_k log p_theta(x, z_T^k),   z_T held fixed,

    so the encoder keeps its variational objective while the decoder is fitted to samples
    closer to the true posterior than q's (Hoffman 2017, Alg. 1). Its value is the bound.
    A prior that calls the guide's encoder (the VampPrior) also passes the gradient of
    log p(z_T) to the encoder: only the model's own parameters are held fixed in the bound.
    The chain's last acceptance rate and the kernel's step size are in ``diagnostics()``.
    It is a module without parameters: its state is the kernel's adaptation, saved in
    checkpoints, and in ``eval()`` mode the kernel does not adapt.

    References:
        Hoffman, "Learning Deep Latent Gaussian Models with Markov Chain Monte Carlo",
        ICML 2017.

    Args:
        kernel: e.g. ``dgm.infer.HMC(shared_step_size=True, min_adapt_rate=0.01)``.
        num_steps: T, transitions per training step.
        num_particles: K.
        bound: the guide's objective, ``"elbo"`` or ``"iwae"``.
        site: the latent site the chain moves (the model's only latent site).
    """

    def __init__(
        self,
        kernel: Kernel,
        num_steps: int = 1,
        num_particles: int = 1,
        bound: str = "elbo",
        site: str = "z",
    ) -> None:
        at_least("num_steps", num_steps, 1)
        if bound not in ("elbo", "iwae"):
            raise ValueError(f"MCMCFromQ: bound must be 'elbo' or 'iwae', got {bound!r}")
        super().__init__()
        self.kernel = kernel
        self.num_steps = num_steps
        self.num_particles = num_particles
        self.bound = bound
        self.site = site
        self._accept: Tensor | None = None

    def forward(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Tensor:
        lw = log_weights(frozen(model), guide, *args, num_particles=self.num_particles, **kwargs)
        latent = [s.name for s in lw.guide_trace.latent]
        if latent != [self.site]:
            raise ValueError(
                f"MCMCFromQ moves the single latent site {self.site!r}; the guide has "
                f"{latent}. Use a one-layer model (or name the site with site=)"
            )
        value = elbo(lw) if self.bound == "elbo" else iwae(lw)
        z0 = lw.guide_trace[self.site].value
        assert z0 is not None
        z = z0.detach()
        target = posterior_log_density(unwrap(model), self.site, *args, **kwargs)
        adapt, self.kernel.adapt = self.kernel.adapt, self.kernel.adapt and self.training
        try:
            for _ in range(self.num_steps):
                z, accept = self.kernel.step(z, target)
        finally:
            self.kernel.adapt = adapt
        self._accept = accept.mean().detach()
        decoder = posterior_log_density(model, self.site, *args, **kwargs)(z)  # [K, B]
        return value + magic_box(decoder.mean(0))

    def diagnostics(self) -> dict[str, float]:
        """The last step's mean acceptance probability and the kernel's mean step size."""
        out: dict[str, float] = {}
        if self._accept is not None:
            out["hmc_accept"] = self._accept.item()
        size = getattr(self.kernel, "step_size", None)
        if isinstance(size, torch.Tensor):
            out["hmc_step_size"] = size.mean().item()
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return self.kernel.state_dict()

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.kernel.load_state_dict(state)

    def extra_repr(self) -> str:
        return (
            f"kernel={type(self.kernel).__name__}, num_steps={self.num_steps}, "
            f"num_particles={self.num_particles}, bound={self.bound!r}"
        )
