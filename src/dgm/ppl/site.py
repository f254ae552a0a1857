"""One random choice of a program: a ``Site`` record filled in by the handler stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution


@dataclass(eq=False)
class Site:
    """A sample site as it passes through the handler stack.

    Attributes:
        name: the site's name, unique within one run of a program.
        fn: the distribution the value is drawn from (or scored under, if observed).
        value: the value; ``None`` until a handler or the default draw fills it in.
        is_observed: ``True`` for ``obs=`` sites and sites fixed by ``condition``.
        sample_shape: extra leading shape for the default draw (set by ``particles``).
        reparam: draw with ``rsample`` where the distribution has it (``no_reparam`` clears
            it: the value then carries no gradient, as score-function and wake-sleep
            estimators need).
        infer: metadata for objectives, from ``dgm.sample(..., infer={...})``; each site has
            its own dict. ``"baseline"``: the site's own control variate for its
            score-function term (see ``dgm.objectives.elbo``).
        scale: factor multiplying the log-density (set by ``scale``; ``None``: 1), a number
            or a tensor broadcastable with it (``[B]``, ``[K, B]``).
        mask: where ``False`` the log-density is exactly 0 (set by ``mask``; ``None``: kept
            everywhere), a bool or a boolean tensor broadcastable with it.
        program: which program the site belongs to (``"model"``, ``"guide"``), set by a
            ``trace(program=...)`` that records it (``log_weights`` labels its two traces);
            error tables show it. ``None``: not known.
    """

    name: str
    fn: Distribution
    value: Tensor | None = None
    is_observed: bool = False
    sample_shape: torch.Size = field(default_factory=torch.Size)
    reparam: bool = True
    infer: dict[str, Any] = field(default_factory=dict)
    scale: float | Tensor | None = None
    mask: bool | Tensor | None = None
    program: str | None = None
    _unscaled_log_prob: Tensor | None = field(default=None, repr=False)
    _log_prob: Tensor | None = field(default=None, repr=False)

    @property
    def is_reparameterized(self) -> bool:
        """Whether gradients flow through the value (a latent drawn with ``rsample``)."""
        return not self.is_observed and self.reparam and self.fn.has_rsample

    @property
    def log_prob(self) -> Tensor:
        """log fn(value), summed over event dimensions, masked, then scaled; computed once.

        Every density of a program (``Trace.log_prob_sum``, ``log_weights``) is a sum of these.
        """
        if self._log_prob is None:
            lp = self.unscaled_log_prob
            self._log_prob = lp if self.scale is None else lp * self.scale
        return self._log_prob

    @property
    def unscaled_log_prob(self) -> Tensor:
        """log fn(value), summed over event dimensions and masked but not scaled; computed once.

        The log-density of the distribution the value was actually drawn from: score-function
        terms differentiate this one, since ``scale`` reweights a site's contribution to a
        bound but does not change what it is sampled from. The mask is applied with
        ``torch.where``: a -inf or NaN log-density where the mask is ``False`` becomes an
        exact 0, and the gradient flowing back into ``fn.log_prob`` there is exactly 0 (a
        multiplication by 0 would give NaN for both). Masking comes before scaling, so the
        gradient with respect to a scale factor is 0 there too. NaN *inputs* of ``fn``
        still reach their own gradients through its backward (0 * NaN): mask those as well.
        """
        if self._unscaled_log_prob is None:
            assert self.value is not None, f"site {self.name!r} has no value yet"
            lp = self.fn.log_prob(self.value)
            if self.mask is not None:
                keep = self.mask
                if not isinstance(keep, Tensor):
                    keep = torch.tensor(keep, device=lp.device)
                lp = torch.where(keep, lp, 0.0)
            self._unscaled_log_prob = lp
        return self._unscaled_log_prob

    def draw(self) -> Tensor:
        """The default draw: ``rsample`` where the distribution has it (and ``reparam``), else ``sample``."""
        if self.reparam and self.fn.has_rsample:
            return self.fn.rsample(self.sample_shape)
        return self.fn.sample(self.sample_shape)
