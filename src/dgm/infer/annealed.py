"""Annealed importance sampling (AIS) with HMC transitions, and bidirectional Monte Carlo (BDMC).

AIS (Neal 2001) estimates log p(x) for a model with continuous latents by moving C chains per
data point from a normalized starting density f_0(z) (the guide's q(z | x), or the prior p(z))
to the unnormalized posterior p(x, z) through the geometric path

    log f_t(z) = log f_0(z) + beta_t * l(z),   l(z) = log p(x, z) - log f_0(z),

for 0 = beta_0 < ... < beta_T = 1. Each chain's log-weight sums (beta_t - beta_{t-1}) l(z_{t-1})
and its state moves by an HMC transition that leaves f_t invariant; the mean of the weights is
an unbiased estimate of p(x), so the log of it is a stochastic lower bound that is exact as T
grows. Run backwards from an exact posterior sample (on data simulated from the model, where
the latents that made x are one), the same procedure estimates 1 / p(x) without bias, which
gives a stochastic upper bound: the gap between the two certifies both (BDMC, Grosse et al.
2015; Wu et al. 2017 for decoder-based models).

Validity. The estimate stays unbiased only if every transition is fixed before the chain it
moves: step sizes are tuned in a separate *pilot* pass (its own chains, its weights discarded)
that adapts one step size per chain toward a target acceptance along a coarse copy of the
schedule; the real pass then uses those step sizes unchanged (``adapt=True``), or the given
``step_size`` throughout (``adapt=False``). Adapting during the real pass would bias it.

Random numbers are drawn per (data point, chain, temperature) from a counter-based generator
(splitmix64 on the indices), so the estimates for a seed do not depend on how the data and
the chains are split into chunks; memory is bounded by one chunk.

References:
    Neal, "Annealed importance sampling", Statistics and Computing, 2001.
    Grosse, Ghahramani and Adams, "Sandwiching the marginal likelihood using bidirectional
    Monte Carlo", 2015.
    Wu, Burda, Salakhutdinov and Grosse, "On the quantitative analysis of decoder-based
    generative models", ICLR 2017.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints

from ..inputs import as_data, float_dtype
from ..objectives.wake_sleep import dreamed_arguments
from ..ppl import condition, particles, trace, uncondition
from ..progress import tracked
from ..registry import Registry
from .hmc import HMC

SCHEDULES: Registry[Tensor] = Registry("AIS schedule")  # T -> betas [T + 1] from 0 to 1


def _linear(num_steps: int) -> Tensor:
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64)


def _geometric(num_steps: int) -> Tensor:
    rest = torch.logspace(-4.0, 0.0, num_steps, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), rest])


def _sigmoidal(num_steps: int, delta: float = 4.0) -> Tensor:
    s = torch.sigmoid(delta * (2 * _linear(num_steps) - 1))
    return (s - s[0]) / (s[-1] - s[0])


SCHEDULES.add("linear", _linear, "beta_t = t / T")
SCHEDULES.add("geometric", _geometric, "beta_t spaced evenly in log from 1e-4 to 1 (beta_0 = 0)")
SCHEDULES.add(
    "sigmoidal",
    _sigmoidal,
    "beta_t = sigmoid(4 (2t/T - 1)), rescaled to [0, 1] (Grosse et al. 2013; Wu et al. 2017)",
)
STARTS = ("guide", "prior")


def temperatures(schedule: str | Tensor | list[float], num_steps: int | None = None) -> Tensor:
    """The inverse temperatures beta_0..beta_T (float64) of a named schedule with ``num_steps``
    transitions, or of a given sequence, checked: at least two, from 0 to 1, non-decreasing."""
    if isinstance(schedule, str):
        if num_steps is None or num_steps < 1:
            raise ValueError(
                f"AIS needs at least two temperatures (beta = 0 and 1): num_steps must be >= 1, "
                f"got {num_steps}"
            )
        return SCHEDULES.build(schedule, num_steps)
    betas = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if len(betas) < 2:
        raise ValueError(
            f"AIS needs at least two temperatures (beta = 0 and 1), got {betas.tolist()}"
        )
    if betas[0] != 0 or betas[-1] != 1:
        raise ValueError(
            f"the schedule must start at beta = 0 and end at beta = 1, got {betas[0].item():g} "
            f"and {betas[-1].item():g}"
        )
    falls = (betas[1:] < betas[:-1]).nonzero()
    if len(falls):
        t = int(falls[0]) + 1
        raise ValueError(
            f"the schedule must not decrease: temperature {t} has beta {betas[t].item():g} "
            f"after {betas[t - 1].item():g}"
        )
    return betas


@dataclass(eq=False)
class AISResult:
    """What an AIS run gives, per data point and per temperature.

    Attributes:
        log_marginal: ``[N]`` the estimate of log p(x): log of the mean weight (forward: a
            stochastic lower bound), or minus log of the mean reverse weight (reverse: a
            stochastic upper bound).
        log_weights: ``[C, N]`` every chain's log-weight.
        ess: ``[N]`` effective sample size of the chains' weights, (sum w)^2 / sum w^2.
        acceptance: ``[T - 1]`` mean HMC acceptance probability at each intermediate temperature.
        step_size: ``[T - 1]`` mean step size used there.
        betas: ``[T + 1]`` the inverse temperatures, in the order the chains visited them.
        reverse: whether the chains ran from the posterior to the start (BDMC's upper bound).
    """

    log_marginal: Tensor
    log_weights: Tensor
    ess: Tensor
    acceptance: Tensor
    step_size: Tensor
    betas: Tensor
    reverse: bool = False


@dataclass(eq=False)
class BDMCResult:
    """Forward and reverse AIS on data simulated from the model.

    Attributes:
        data: ``[N, ...]`` the simulated data.
        latents: the latent values that produced it (exact posterior samples), by site.
        forward, reverse: the two runs; ``forward.log_marginal <= log p(x) <=
            reverse.log_marginal`` in expectation.
        gap: ``[N]`` reverse minus forward estimate: an upper bound (in expectation) on how far
            either is from the true log p(x).
    """

    data: Tensor
    latents: dict[str, Tensor]
    forward: AISResult
    reverse: AISResult

    @property
    def gap(self) -> Tensor:
        return self.reverse.log_marginal - self.forward.log_marginal


# -- counter-based random numbers: the same draws for a (point, chain, temperature), however
#    the work is chunked --------------------------------------------------------------------

_MASK = (1 << 64) - 1


def _s64(v: int) -> int:
    v &= _MASK
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN, _M1, _M2 = _s64(0x9E3779B97F4A7C15), _s64(0xBF58476D1CE4E5B9), _s64(0x94D049BB133111EB)


def _lsr(z: Tensor, k: int) -> Tensor:
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z: Tensor) -> Tensor:
    """splitmix64's finalizer on int64 tensors (multiplication wraps, shifts are logical)."""
    z = (z ^ _lsr(z, 30)) * _M1
    z = (z ^ _lsr(z, 27)) * _M2
    return z ^ _lsr(z, 31)


def _mix_int(v: int) -> int:
    v &= _MASK
    v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & _MASK
    return _s64(v ^ (v >> 31))


def _uniform(keys: Tensor) -> Tensor:
    """(0, 1) float64 from int64 keys (53 random bits, never 0 or 1)."""
    return (_lsr(_mix(keys), 11).double() + 0.5) * 2.0**-53


class _Streams:
    """Independent random numbers for chains (c, point n), indexed by a temperature and a use."""

    def __init__(self, seed: int, stream: int, points: Tensor, chains: Tensor) -> None:
        base = _mix_int(_mix_int(seed) ^ _mix_int(stream + 1))
        per_point = _mix(points.to(torch.int64) ^ base)
        self.keys = _mix(per_point[None, :] ^ (chains.to(torch.int64)[:, None] * _GOLDEN))

    def seed(self, t: int, use: int) -> int:
        return _mix_int(t * 4 + use)

    def uniform(self, t: int) -> Tensor:
        return _uniform(self.keys ^ self.seed(t, 0))

    def normal(self, t: int, size: int) -> Tensor:
        offsets = torch.arange(size, device=self.keys.device, dtype=torch.int64) * _GOLDEN
        return torch.special.ndtri(_uniform((self.keys ^ self.seed(t, 1))[..., None] + offsets))


def _point_seeds(seed: int, stream: int, points: Tensor) -> list[int]:
    """One torch seed per data point, for the programs' own draws of the first states."""
    base = _mix_int(_mix_int(seed) ^ _mix_int(stream + 101))
    return _lsr(_mix(points.to(torch.int64) ^ base), 1).tolist()


# -- the annealing path of one chunk ----------------------------------------------------------


class _Path:
    """log f_0 and l = log p(x, z) - log f_0 for the chains of one chunk, on a flat state."""

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any] | None,
        x: Tensor,
        shapes: dict[str, torch.Size],
        start: str,
    ) -> None:
        self.model, self.guide, self.x, self.shapes, self.start = model, guide, x, shapes, start
        self.sizes = [math.prod(s) for s in shapes.values()]

    def pack(self, values: Mapping[str, Tensor]) -> Tensor:
        lead = next(iter(values.values())).shape[:2]
        return torch.cat([values[n].reshape(*lead, -1) for n in self.shapes], -1)

    def unpack(self, z: Tensor) -> dict[str, Tensor]:
        parts = z.split(self.sizes, -1)
        return {
            n: p.reshape(*z.shape[:2], *s)
            for (n, s), p in zip(self.shapes.items(), parts, strict=True)
        }

    def terms(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(log f_0(z), l(z)), each ``[C, B]``."""
        values = self.unpack(z)
        with trace() as tp, condition(values):
            self.model(self.x)
        free = [s.name for s in tp.latent]
        if free:
            raise ValueError(
                f"AIS: the model has latent site(s) {free} that the "
                f"{'guide' if self.start == 'guide' else 'prior'} start does not give; AIS "
                "moves every latent site of the model"
            )
        shape = z.shape[:2]
        log_joint = tp.log_prob_sum().expand(shape)
        if self.start == "guide":
            assert self.guide is not None
            with trace() as tq, condition(values):
                self.guide(self.x)
            log_f0 = tq.log_prob_sum([tq[n] for n in self.shapes]).expand(shape)
        else:
            log_f0 = tp.log_prob_sum([tp[n] for n in self.shapes]).expand(shape)
        return log_f0, log_joint - log_f0

    def target(self, beta: float) -> Callable[[Tensor], Tensor]:
        def log_density(z: Tensor) -> Tensor:
            log_f0, ell = self.terms(z)
            return log_f0 + beta * ell

        return log_density

    def non_finite_sites(self, z: Tensor) -> list[str]:
        values = self.unpack(z)
        sites = []
        for program in (self.model, self.guide if self.start == "guide" else None):
            if program is None:
                continue
            with trace() as tr, condition(values):
                program(self.x)
            sites += [
                f"{s.name} ({'model' if program is self.model else 'guide'})"
                for s in tr
                if not torch.isfinite(s.log_prob).all()
            ]
        return sites


def _latent_shapes(
    model: Callable[..., Any], guide: Callable[..., Any] | None, x: Tensor, start: str
) -> dict[str, torch.Size]:
    """The latent sites AIS moves and their event shapes; refuses what HMC cannot move."""
    with torch.no_grad(), trace() as tm, particles(1):
        model(x)
    programs = [("model", tm)]
    if start == "guide":
        assert guide is not None
        with torch.no_grad(), trace() as tg, particles(1):
            guide(x)
        programs.append(("guide", tg))
    for program, tr in programs:
        for s in tr.latent:
            support = s.fn.support
            assert support is not None and s.value is not None
            while isinstance(support, constraints.independent):
                support = support.base_constraint
            if support.is_discrete:
                raise ValueError(
                    f"AIS: latent site {s.name!r} of the {program} is discrete "
                    f"({type(s.fn).__name__}); HMC cannot move it. Estimate log p(x) by importance "
                    "sampling (dgm.metrics.log_likelihood), or sum the discrete latent out"
                )
            if support is not constraints.real:
                raise ValueError(
                    f"AIS: latent site {s.name!r} of the {program} has support {s.fn.support}; "
                    "HMC moves latents in R^d, so sample an unconstrained variable (e.g. a log "
                    "scale) instead"
                )
            if program == "guide":
                try:  # a copy is not the value the guide drew: a flow must invert it
                    s.fn.log_prob(s.value.clone())
                except NotImplementedError as err:
                    raise ValueError(
                        f"AIS from the guide scores q(z | x) at every HMC state, but the guide's "
                        f"site {s.name!r} cannot score a value it did not draw ({err}); use "
                        'start="prior", or a guide whose distributions have log_prob everywhere'
                    ) from None
    source = programs[-1][1]
    return {s.name: s.value.shape[2:] for s in source.latent if s.value is not None}


def _initial(
    path: _Path, x: Tensor, seeds: list[int], chains: slice, num_chains: int
) -> dict[str, Tensor]:
    """The chains' first states, drawn from f_0: all ``num_chains`` chains of a data point
    from one torch seed per point, then the chunk's ``chains`` (so chunking changes nothing)."""
    values: dict[str, list[Tensor]] = {n: [] for n in path.shapes}
    devices = [x.device] if x.device.type == "cuda" else []
    program = path.guide if path.start == "guide" else path.model
    assert program is not None
    for j, seed in enumerate(seeds):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            with trace() as tr, particles(num_chains):
                program(x[j : j + 1])
        for n in path.shapes:
            value = tr[n].value
            assert value is not None
            values[n].append(value[chains, 0])
    return {n: torch.stack(v, 1) for n, v in values.items()}


def _first(
    path: _Path,
    initial: Mapping[str, Tensor] | None,
    stream: int,
    seed: int,
    points: Tensor,
    chains: slice,
    num_chains: int,
) -> Tensor:
    """The chunk's first states, flat: drawn from f_0, or the given exact posterior samples."""
    if initial is None:
        values = _initial(path, path.x, _point_seeds(seed, stream, points), chains, num_chains)
    else:
        b, c = len(points), chains.stop - chains.start
        start = int(points[0])
        values = {
            name: initial[name][start : start + b].to(path.x.device).expand(c, b, *shape)
            for name, shape in path.shapes.items()
        }
    return path.pack(values).detach()


def _anneal(
    path: _Path,
    z: Tensor,
    betas: Tensor,
    streams: _Streams,
    kernel: HMC,
    log_steps: Tensor | None,
    record: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the chains along ``betas`` (run order): log-weights [C, B], acceptance and mean step
    size per intermediate temperature, and (``record``) the step sizes after each transition."""
    num = len(betas) - 1
    log_w = torch.zeros(z.shape[:2], dtype=torch.float64, device=z.device)
    accept = torch.zeros(max(num - 1, 0), dtype=torch.float64)
    steps = torch.zeros(max(num - 1, 0), dtype=torch.float64)
    recorded = []
    kernel.init(z)
    for t in range(1, num + 1):
        with torch.no_grad():
            _, ell = path.terms(z)
        if not torch.isfinite(ell).all():
            bad = (~torch.isfinite(ell)).sum().item()
            raise ValueError(
                f"AIS: log p(x, z) - log f_0(z) is not finite for {bad} chain(s) at temperature "
                f"{t - 1} (beta = {betas[t - 1].item():.4g}); non-finite log-densities at site(s) "
                f"{path.non_finite_sites(z)}. Check the model's likelihood (e.g. a scale that "
                "reaches 0) or start from the guide"
            )
        log_w += (betas[t] - betas[t - 1]).item() * ell.double()
        if t == num:
            break  # the last transition would not change any weight
        if log_steps is not None:
            kernel.log_step_size = log_steps[min(t - 1, len(log_steps) - 1)]
        momentum = streams.normal(t, z.shape[-1]).to(z.dtype)
        uniform = streams.uniform(t).to(z.dtype)
        z, prob = kernel.step(z, path.target(betas[t].item()), momentum, uniform)
        assert kernel.log_step_size is not None
        accept[t - 1] = prob.double().mean().item()
        steps[t - 1] = kernel.log_step_size.exp().double().mean().item()
        if record:
            recorded.append(kernel.log_step_size.clone())
    trace_steps = torch.stack(recorded) if recorded else torch.empty(0)
    return log_w, accept, steps, trace_steps


def ais(
    model: Callable[..., Any],
    guide: Callable[..., Any] | None,
    data: Tensor,
    *,
    num_steps: int = 500,
    num_chains: int = 16,
    schedule: str | Tensor | list[float] = "sigmoidal",
    start: str = "guide",
    num_leapfrog: int = 5,
    step_size: float = 0.05,
    target_accept: float = 0.65,
    adapt: bool = True,
    pilot_steps: int = 100,
    initial: Mapping[str, Tensor] | None = None,
    batch_size: int = 100,
    max_elements: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> AISResult:
    """Estimate log p(x) for each data point by annealed importance sampling with HMC.

    Args:
        model, guide: the programs, called as ``model(x)`` and ``guide(x)`` on a chunk of
            ``data`` (the guide may be ``None`` with ``start="prior"``). Every latent site must
            be real-valued (HMC moves it); the guide must give q's density at any value.
        data: ``[N, ...]``.
        num_steps: T, the transitions between beta = 0 and beta = 1 (T + 1 temperatures).
        num_chains: C, chains per data point.
        schedule: a name in ``SCHEDULES`` (linear, geometric, sigmoidal) or the betas.
        start: ``"guide"`` (f_0 = q(z | x)) or ``"prior"`` (f_0 = p(z)).
        num_leapfrog, step_size, target_accept: the HMC transitions; ``step_size`` is the
            fixed step size (``adapt=False``) or where the pilot's adaptation starts.
        adapt: tune one step size per chain and temperature in a pilot pass of
            ``pilot_steps`` transitions along the schedule (a short schedule's temperatures
            repeat) whose chains and weights are discarded, so the estimate stays unbiased;
            ``False``: ``step_size`` throughout.
        initial: run in reverse (BDMC's upper bound) from these exact posterior samples, one
            per data point and site (``[N, *event]``); every chain starts there.
        batch_size: data points per chunk; chains are chunked so that a chunk's state has at
            most about ``max_elements`` entries (default 2**20 on CPU, 2**24 on GPU).
        seed: the estimate is a deterministic function of the seed, however it is chunked.
        progress: show progress over chunks (``dgm.progress``; ``None``: unless turned off
            there).
    """
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if start == "guide" and guide is None:
        raise ValueError('start="guide" needs a guide; pass one, or start="prior"')
    if num_chains < 1:
        raise ValueError(f"num_chains must be >= 1, got {num_chains}")
    betas = temperatures(schedule, num_steps)
    reverse = initial is not None
    run_betas = betas.flip(0) if reverse else betas
    tensor, cast = as_data(data, float_dtype(model, guide), "ais", several=False)
    assert isinstance(tensor, Tensor)
    n = tensor.shape[0]
    probe = cast.tensor(tensor[:1]) if cast is not None else tensor[:1]
    shapes = _latent_shapes(model, guide, probe, start)
    dim = sum(math.prod(s) for s in shapes.values())
    if max_elements is None:
        max_elements = 2**20 if tensor.device.type == "cpu" else 2**24
    batch_size = max(1, min(batch_size, n))
    chain_chunk = max(1, min(num_chains, max_elements // (batch_size * max(dim, 1))))
    # the pilot makes pilot_steps transitions (repeating temperatures of a short schedule)
    pilot = pilot_steps if adapt and len(run_betas) > 2 else 0
    log_w = torch.empty(num_chains, n, dtype=torch.float64, device=tensor.device)
    accept_sum = torch.zeros(max(len(run_betas) - 2, 0), dtype=torch.float64)
    step_sum = torch.zeros_like(accept_sum)
    chunks = [
        (b0, c0) for b0 in range(0, n, batch_size) for c0 in range(0, num_chains, chain_chunk)
    ]
    what = f"{'reverse ' if reverse else ''}AIS on {n} points, T={num_steps}, C={num_chains}"
    for b0, c0 in tracked(chunks, what, unit="chunk", show=progress):
        x = tensor[b0 : b0 + batch_size]
        if cast is not None:
            x = cast.tensor(x)
        b, c = len(x), min(chain_chunk, num_chains - c0)
        points = torch.arange(b0, b0 + b, device=x.device)
        chains = torch.arange(c0, c0 + c, device=x.device)
        path = _Path(model, guide, x, shapes, start)
        where = (seed, points, slice(c0, c0 + c), num_chains)
        kernel = HMC(
            num_leapfrog=num_leapfrog,
            step_size=step_size,
            target_accept=target_accept,
            adapt=False,
        )
        log_steps = None
        if pilot > 0:  # a coarse copy of the schedule, ending where the real one ends
            index = torch.linspace(1, len(run_betas) - 2, pilot).round().long()
            coarse = torch.cat([run_betas[:1], run_betas[index], run_betas[-1:]])
            tuner = HMC(
                num_leapfrog=num_leapfrog,
                step_size=step_size,
                target_accept=target_accept,
                min_adapt_rate=0.05,
            )
            pilot_streams = _Streams(seed, 2, points, chains)
            *_, recorded = _anneal(
                path, _first(path, initial, 1, *where), coarse, pilot_streams, tuner, None, True
            )
            # the real pass's transition t uses the pilot's step size at the nearest coarse
            # temperature at or before it
            at = torch.searchsorted(index, torch.arange(1, len(run_betas) - 1), right=True)
            log_steps = recorded[(at - 1).clamp(min=0)]
        streams = _Streams(seed, 0, points, chains)
        z0 = _first(path, initial, 0, *where)
        lw, acc, st, _ = _anneal(path, z0, run_betas, streams, kernel, log_steps)
        log_w[c0 : c0 + c, b0 : b0 + b] = lw
        accept_sum += acc * (b * c)
        step_sum += st * (b * c)
    total = n * num_chains
    mean = torch.logsumexp(log_w, 0) - math.log(num_chains)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    return AISResult(
        log_marginal=-mean if reverse else mean,
        log_weights=log_w,
        ess=ess,
        acceptance=accept_sum / total,
        step_size=step_sum / total,
        betas=run_betas,
        reverse=reverse,
    )


@torch.no_grad()
def simulate(
    model: Callable[..., Any], like: Tensor, seed: int = 0
) -> tuple[Tensor, dict[str, Tensor]]:
    """Data drawn from the model (as many points as ``like`` has, in its shape) and the latent
    values that produced each one: exact samples of p(z | x) for the simulated x."""
    devices = [like.device] if like.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with trace() as tr, uncondition() as simulated:
            model(like)
    if len(simulated.observations) != 1:
        raise ValueError(
            "BDMC simulates data from the model: it needs a model with exactly one observed "
            f"site, the data it is called with; this one observes {list(simulated.observations)}"
        )
    (data,), _ = dreamed_arguments(tr, simulated.observations, (like,), {})
    observed = next(iter(simulated.observations))
    latents = {s.name: s.value for s in tr if s.name != observed and s.value is not None}
    return data, latents


def bdmc(
    model: Callable[..., Any],
    guide: Callable[..., Any] | None,
    like: Tensor,
    *,
    seed: int = 0,
    **options: Any,
) -> BDMCResult:
    """Bidirectional Monte Carlo: forward and reverse AIS on data simulated from the model.

    ``like`` gives the number and shape of the data points to simulate (e.g. a batch of real
    data, which is only used for its shape); ``options`` are those of ``ais``. The true
    log p(x) of each simulated point lies between ``forward.log_marginal`` and
    ``reverse.log_marginal`` in expectation, so the gap bounds the error of both.
    """
    data, latents = simulate(model, like, seed)
    forward = ais(model, guide, data, seed=seed, **options)
    reverse = ais(model, guide, data, seed=seed + 1, initial=latents, **options)
    return BDMCResult(data, latents, forward, reverse)


__all__ = ["SCHEDULES", "AISResult", "BDMCResult", "ais", "bdmc", "simulate", "temperatures"]
