"""Peak resident memory of packaged experiments, stage by stage: loading the data, building
the parts, a few training steps, one validation and the final evaluation (``ru_maxrss`` of a
fresh process per experiment, one torch thread).

    DGM_DATA_DIR=../shared/data python benchmarks/peak_memory.py
    DGM_DATA_DIR=../shared/data python benchmarks/peak_memory.py --experiments air-multi-mnist-cpu
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import in_pool, write_result

# experiment: overrides (the evaluation's slow extras left out: they do not hold much memory)
EXPERIMENTS = {
    "disentangle-beta-tcvae-dsprites": ["eval.metrics=[]"],
    "air-multi-mnist-cpu": [],
}
STAGES = ("start", "data", "build", "train", "validate", "evaluate")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(job: tuple[str, list[str], int]) -> dict[str, Any]:
    """The peak after each stage, in a fresh process (``in_pool`` spawns one per job)."""
    from dgm.experiments import load
    from dgm.experiments.runner import create
    from dgm.train import TrainState, run

    name, sets, steps = job
    torch.set_num_threads(1)
    peaks = {"start": _peak_mib()}
    cfg = load(name, sets)
    task = create(cfg)
    data = task.data()
    peaks["data"] = _peak_mib()
    parts = task.build(data)
    peaks["build"] = _peak_mib()
    optimizers = task.optimizers(parts)
    step = task.step(parts, optimizers, lambda m: m)
    schedule = cfg.train.schedule()
    schedule.steps, schedule.epochs = steps, None
    run(TrainState(parts, optimizers), step, data.train, schedule, transform=data.transform)
    peaks["train"] = _peak_mib()
    validate = task.validate(parts, data)
    if validate is not None:
        validate()
    peaks["validate"] = _peak_mib()
    for part in parts.values():
        part.eval()
    task.evaluate(parts, data)
    peaks["evaluate"] = _peak_mib()
    return {"experiment": name, "overrides": sets, "steps": steps, "peak_mib": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--steps", type=int, default=20, help="training steps measured")
    args = parser.parse_args()
    jobs = [(name, EXPERIMENTS.get(name, []), args.steps) for name in args.experiments]
    rows = in_pool(measure, jobs, processes=max(2, len(jobs)))  # a fresh process each
    lines = [
        f"| {r['experiment']} | {' '.join(r['overrides']) or '-'} | "
        + " | ".join(f"{r['peak_mib'][s]:.0f}" for s in STAGES)
        + " |"
        for r in rows
    ]
    table = (
        f"Peak resident memory (MiB, ru_maxrss) after each stage: loading the data, building the "
        f"parts, {args.steps} training steps, one validation, the final evaluation; one torch "
        "thread, a fresh process per experiment.\n\n"
        "| experiment | overrides | " + " | ".join(STAGES) + " |\n"
        "| --- | --- | " + " | ".join("---" for _ in STAGES) + " |\n" + "\n".join(lines)
    )
    path = write_result("peak_memory", {"rows": rows}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
