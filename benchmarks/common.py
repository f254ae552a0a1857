"""Shared helpers for the benchmark scripts: machine description, result files, training a
packaged experiment or reusing its finished run (``run_or_reuse``), and running jobs in a
process pool (``in_pool``)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def adam_step(
    loss: Callable[..., torch.Tensor],
    params: list[Any],
    compiled: bool,
    lr: float = 1e-3,
    fused: bool = True,
) -> Callable[..., None]:
    """A hand-written training step on ``loss(*args)``: the NaN check every dgm step makes,
    then the fused Adam every dgm task uses (``dgm.train.optim.adam``; ``fused=False``: the
    default per-parameter ``torch.optim.Adam``); ``compiled``: the loss (forward and
    backward) compiled by ``torch.compile`` for static shapes."""
    import dgm

    opt = dgm.train.optim.adam(params, lr=lr) if fused else torch.optim.Adam(params, lr=lr)
    fn = torch.compile(loss, dynamic=False) if compiled else loss

    def step(*args: Any) -> None:
        value = fn(*args)
        if not torch.isfinite(value):
            raise FloatingPointError("non-finite loss")
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    return step


def dgm_step(
    objective: Callable[..., torch.Tensor],
    programs: tuple[Any, ...],
    params: list[Any],
    compiled: bool,
    lr: float = 1e-3,
) -> Callable[[Any], None]:
    """``dgm.train.SurrogateStep`` as ``dgm train`` runs it: fused Adam, value checks off (the
    loop runs them on a fresh run's first step only), and with ``compiled`` its loss
    compiled (``train.compile=on``); called with one batch (a tensor, tuple or dict)."""
    import dgm
    from dgm.checks import validation

    update = dgm.train.SurrogateStep(objective, programs, [dgm.train.optim.adam(params, lr=lr)])
    if compiled:
        update = update.compiled(required=True)

    def step(batch: Any) -> None:
        with validation(False):
            update([batch])

    return step


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def interleaved_medians(
    impls: dict[str, Callable[[torch.Tensor], None]], x: torch.Tensor, rounds: int, steps: int
) -> dict[str, float]:
    """Median seconds per step of each implementation, run in rotating order round by round.

    Interleaving makes machine noise (another process, frequency changes) hit every
    implementation alike; three warm-up steps each come first.
    """
    for step in impls.values():
        for _ in range(3):
            step(x)
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(steps):
                impls[name](x)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def ratio_cells(med: dict[str, float], names: list[str], base: str) -> str:
    """``ms (ratio)`` cells of a markdown row for ``names`` (``-`` where not measured)."""
    b = med[base]
    return " | ".join(f"{med[n] * 1e3:.2f} ({med[n] / b:.2f}x)" if n in med else "-" for n in names)


def write_result(name: str, payload: dict[str, Any], markdown: str) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md`` with command, machine and date."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }
    full = {**meta, **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(full, indent=2) + "\n")
    header = (
        f"Command: `{meta['command']}`  \nDate: {meta['date']}  \n"
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
        f"torch {meta['machine']['torch']} ({meta['machine']['torch_threads']} threads)"
        + (f", GPU {meta['machine']['cuda']}" if meta["machine"]["cuda"] else ", no GPU")
        + "\n\n"
    )
    path = RESULTS / f"{name}.md"
    path.write_text(header + markdown.rstrip() + "\n")
    return path


def peak_rss_mib() -> float | None:
    """The process's peak resident memory (VmHWM) in MiB, on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mib() -> float | None:
    """The process's resident memory now (VmRSS) in MiB, on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def ais_beside(
    model: torch.nn.Module,
    guide: torch.nn.Module,
    points: torch.Tensor,
    iwae_ll: torch.Tensor,
    steps: int,
    chains: int,
    bdmc_like: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], torch.Tensor]:
    """AIS from q on ``points`` paired with the importance-sampled ``iwae_ll`` of the same
    points, and (``bdmc_like``: data giving the number and shape) the BDMC gap on simulated
    points; returns the statistics and the per-point AIS estimates."""
    import dgm

    options = {"num_steps": steps, "num_chains": chains}
    t0 = time.perf_counter()
    r = dgm.infer.ais(model, guide, points, seed=seed, **options)
    paired = r.log_marginal - iwae_ll.double()
    n = len(points) ** 0.5
    out = {
        "ais_points": len(points),
        "ais_steps": steps,
        "ais_chains": chains,
        "iwae_same_points": iwae_ll.mean().item(),
        "ais": r.log_marginal.mean().item(),
        "ais_sem": (r.log_marginal.std() / n).item(),
        "ais_minus_iwae": paired.mean().item(),
        "ais_minus_iwae_sem": (paired.std() / n).item(),
        "ais_acceptance": r.acceptance.mean().item(),
        "ais_ess": r.ess.mean().item(),
        "ais_seconds": time.perf_counter() - t0,
    }
    if bdmc_like is not None and len(bdmc_like):
        b = dgm.infer.bdmc(model, guide, bdmc_like, seed=seed, **options)
        out.update(
            {
                "bdmc_points": len(bdmc_like),
                "bdmc_forward": b.forward.log_marginal.mean().item(),
                "bdmc_reverse": b.reverse.log_marginal.mean().item(),
                "bdmc_gap": b.gap.mean().item(),
                "bdmc_gap_sem": (b.gap.std() / len(b.gap) ** 0.5).item(),
            }
        )
    return out, r.log_marginal


def run_or_reuse(
    experiment: str,
    sets: Sequence[str],
    out: str | Path,
    reuse: bool = False,
    threads: int | None = None,
    evaluate_again: bool = False,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Train ``experiment`` (by its named ``protocol``, if given) with the overrides ``sets``
    into ``out``; its final metrics, with ``reused`` and ``wall_seconds`` added.

    With ``reuse`` a run already in ``out`` is kept only when its resolved configuration is
    this one, key for key: finished, its metrics are read (``wall_seconds`` is then None);
    interrupted, it is resumed from its last checkpoint (a long run spans sessions). A run
    there with any other configuration is archived (``<out>.archived-<time>``) and trained
    afresh, saying which settings differ. ``threads``: torch's thread count in this process;
    ``evaluate_again``: a finished run kept is evaluated again (metrics added since).
    """
    from dgm import experiments
    from dgm.experiments import rundir, runner

    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(out)
    cfg = experiments.load(experiment, sets, protocol=protocol)
    final_path, last = out / "final_metrics.json", out / "checkpoints" / "last.pt"
    same = False
    if reuse and (out / "config.yaml").is_file():
        differ = rundir.differences(runner.load_config(out), cfg)
        same = not differ
        if not same:
            listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differ.items())
            print(f"{out}: another configuration ({listed}): trained afresh")
    if same and final_path.is_file():
        t0 = time.perf_counter()
        if evaluate_again:
            runner.evaluate(out)
        seconds = round(time.perf_counter() - t0, 1) if evaluate_again else None
        return {**json.loads(final_path.read_text()), "reused": True, "wall_seconds": seconds}
    resume = same and (last.is_file() or last.with_name("last.prev.pt").is_file())
    t0 = time.perf_counter()
    # progress: a line about every 30 s in a benchmark's log (DGM_PROGRESS=0: none)
    runner.train(cfg, out, resume=resume, progress=None, overwrite=not resume)
    final = json.loads(final_path.read_text())
    return {
        **final,
        "reused": False,
        "resumed": resume,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


J = TypeVar("J")
R = TypeVar("R")


def in_pool(fn: Callable[[J], R], jobs: Iterable[J], processes: int) -> list[R]:
    """``[fn(job) for job in jobs]``, ``processes`` at a time, each job in a fresh (spawned)
    process so that its thread count and RNG are its own; results in the jobs' order."""
    jobs = list(jobs)
    if processes <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, jobs))
