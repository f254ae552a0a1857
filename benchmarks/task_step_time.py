"""Per-step time of every family's training step, eager against compiled (``train.compile``).

For one packaged experiment per family, the step ``dgm train`` runs is built twice through
the task contract (data, parts, optimizers, ``Task.step``, the data's transform) and the two
copies are timed in interleaved rounds on the same batches, one eagerly and one with
``step.compiled(required=True)``, both with value checks off (the loop runs them on a fresh
run's first step only). Before the rounds each copy takes two steps; the compiled copy's
first step (tracing and compilation, forward and backward, one update) is reported as
compile seconds, and the steps whose savings would pay it back. Torch's compilation cache
(``TORCHINDUCTOR_CACHE_DIR``, ``/tmp/torchinductor_$USER``) makes a second run compile
faster; clear it for first-run figures.

    DGM_DATA_DIR=../shared/data python benchmarks/task_step_time.py [--rounds 10] [--steps 3]
        [--experiments vae-mnist sbn-rws-mnist ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import write_result
from dgm.checks import validation
from dgm.experiments import load, runner
from dgm.train import Batches
from dgm.train.step import compile_step

# one experiment per family (and the IWAE objective on the VAE family's network)
EXPERIMENTS = [
    "vae-mnist",
    "iwae-mnist",
    "sbn-rws-mnist",
    "sbn-nvil-mnist",
    "polyreg-ic",
    "flow-digits-glow",
    "gan-ring",
    "gan-fashion-dcgan",
    "disentangle-beta-tcvae-dsprites",
    "disentangle-factor-vae-dsprites",
    "air-multi-mnist-cpu",
]


def built_step(name: str, compiled: bool) -> tuple[Callable[[int], None], str]:
    """The experiment's step (a fresh copy, seeded alike) and a description of its batch."""
    cfg = load(name)
    task = runner.create(cfg)
    torch.manual_seed(cfg.train.seed)
    data = task.data()
    parts = task.build(data)
    step = task.step(parts, task.optimizers(parts), lambda m: m)
    if compiled:
        step, _ = compile_step(step, required=True)
    batches = Batches(data.train, cfg.train.batch_size, cfg.train.seed)
    k = step.num_batches

    def run(i: int) -> None:
        xs = [batches(i * k + j) for j in range(k)]
        if data.transform is not None:
            xs = [data.transform(x) for x in xs]
        with validation(False):
            step(xs)

    return run, f"batch {cfg.train.batch_size}" + (f", {k} batches per step" if k > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    args = parser.parse_args()
    rows, payload = [], {}
    for name in args.experiments:
        torch._dynamo.reset()
        eager, batch = built_step(name, False)
        compiled, _ = built_step(name, True)
        eager(0), eager(1)
        t0 = time.perf_counter()
        compiled(0)  # the first compiled step (value checks are off: it compiles)
        compile_s = time.perf_counter() - t0
        compiled(1)
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        i = 2
        for r in range(args.rounds):
            order: list[tuple[str, Any]] = [("eager", eager), ("compiled", compiled)]
            for variant, fn in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                for j in range(args.steps):
                    fn(i + j)
                times[variant].append((time.perf_counter() - t0) / args.steps)
            i += args.steps
        med = {v: statistics.median(ts) for v, ts in times.items()}
        saved = med["eager"] - med["compiled"]
        payback = math.ceil((compile_s - med["compiled"]) / saved) if saved > 0 else None
        task = load(name).task
        payload[name] = {
            "task": task,
            "batch": batch,
            "eager_s": med["eager"],
            "compiled_s": med["compiled"],
            "ratio": med["compiled"] / med["eager"],
            "compile_s": compile_s,
            "payback_steps": payback,
        }
        rows.append(
            f"| {name} | {task} | {batch} | {med['eager'] * 1e3:.2f} | {med['compiled'] * 1e3:.2f} "
            f"| {med['compiled'] / med['eager']:.2f}x | {compile_s:.1f} | "
            f"{payback if payback is not None else 'never'} |"
        )
        print(rows[-1], flush=True)
    table = (
        "Per-step time of each family's training step as `dgm train` builds it, eager and with "
        f"`train.compile=on`; median ms over {args.rounds} interleaved rounds of {args.steps} "
        "steps, value checks off as in every step after a run's first. Compile s: the first "
        "compiled step (tracing, compilation of forward and backward, one update). Pays back "
        "after: the steps whose savings cover it.\n\n"
        "| experiment | task | batch | eager ms | compiled ms | compiled / eager | compile s "
        "| pays back after (steps) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
    )
    path = write_result(
        "task_step_time", {"rounds": args.rounds, "steps": args.steps, "results": payload}, table
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    _ = dgm
    main()
