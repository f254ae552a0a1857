"""Chain diagnostics: effective sample size and split R-hat (Vehtari et al. 2021, basic forms)."""

from __future__ import annotations

import torch
from torch import Tensor


def _check(x: Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(
            f"chain diagnostics need draws shaped [samples, chains, ...], got {list(x.shape)}"
        )


def r_hat(x: Tensor) -> Tensor:
    """Split R-hat of draws ``[S, C, ...]`` -> ``[...]``: near 1 when the chains agree.

    Each chain is split in half (so a chain that drifts shows as two that disagree); R-hat is
    sqrt of the pooled variance estimate over the within-chain variance. Values above about
    1.01-1.05 say the chains have not mixed.
    """
    _check(x)
    s = x.shape[0] // 2
    if s < 2:
        raise ValueError("r_hat needs at least 4 draws per chain")
    halves = torch.cat([x[:s], x[s : 2 * s]], 1)  # [s, 2C, ...]
    chain_means = halves.mean(0)
    within = halves.var(0).mean(0)
    between = s * chain_means.var(0)
    pooled = (s - 1) / s * within + between / s
    return torch.sqrt(pooled / within.clamp(min=1e-30))


def effective_sample_size(x: Tensor) -> Tensor:
    """ESS of draws ``[S, C, ...]`` -> ``[...]`` from the chains' autocorrelations.

    Autocorrelations are averaged over chains (with the between-chain variance, as in
    Stan), and summed over lags with Geyer's initial positive sequence: pairs of lags are
    added while their sum is positive.
    """
    _check(x)
    n, chains = x.shape[0], x.shape[1]
    if n < 4:
        raise ValueError("effective_sample_size needs at least 4 draws per chain")
    centred = x - x.mean(0)
    # autocovariance of every chain by FFT, [n, C, ...]
    size = 2 * n
    f = torch.fft.rfft(centred, n=size, dim=0)
    acov = torch.fft.irfft(f * f.conj(), n=size, dim=0)[:n] / n
    chain_var = acov[0] * n / (n - 1)
    mean_var = chain_var.mean(0)
    between = x.mean(0).var(0) * n if chains > 1 else torch.zeros_like(mean_var)
    var_plus = mean_var * (n - 1) / n + between / n
    rho = 1 - (mean_var - acov.mean(1)) / var_plus.clamp(min=1e-30)  # [n, ...]
    rho[0] = 1.0
    # Geyer: sum pairs (rho_2t + rho_2t+1) while positive
    pairs = rho[: (n // 2) * 2].reshape(n // 2, 2, *rho.shape[1:]).sum(1)
    positive = (pairs > 0).int().cumprod(0).bool()
    tau = -1 + 2 * (pairs * positive).sum(0)
    return (n * chains) / tau.clamp(min=1.0 / (n * chains) ** 0.5)
