"""Per-step training time of dgm's flows against zuko's on the same architectures.

MAF (4 affine autoregressive steps, MADE widths 128-128, ReLU, orders reversed between steps)
and the autoregressive neural spline flow (4 steps of 8-bin rational-quadratic splines on the
same MADEs), on 64-dimensional data (the 8x8 digits' size) at batch 256, one Adam step of
-mean log p(x) per call. dgm: ``FLOWS["maf"]`` and ``FLOWS["nsf-ar"]`` (which also has an
ActNorm per step); zuko: ``zuko.flows.MAF`` and ``zuko.flows.NSF`` (zuko is an optional
benchmark dependency, never a runtime one). Median seconds per step over interleaved rounds.

    python benchmarks/flow_step_time.py [--rounds 20] [--steps 5]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, write_result
from dgm.models.flow_model import build_flow

D, HIDDEN, STEPS = 64, (128, 128), 4


def dgm_step(family: str) -> Callable[[torch.Tensor], None]:
    torch.manual_seed(0)
    flow = build_flow(family, (D,), steps=STEPS, hidden=HIDDEN, bins=8)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def step(x: torch.Tensor) -> None:
        loss = -flow.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def zuko_step(family: str) -> Callable[[torch.Tensor], None]:
    import zuko

    torch.manual_seed(0)
    if family == "maf":
        flow = zuko.flows.MAF(D, transforms=STEPS, hidden_features=HIDDEN)
    else:
        flow = zuko.flows.NSF(D, bins=8, transforms=STEPS, hidden_features=HIDDEN)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def step(x: torch.Tensor) -> None:
        loss = -flow().log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(256, D)
    rows, payload = [], {}
    for family, label in (("maf", "MAF"), ("nsf-ar", "NSF (autoregressive)")):
        med = interleaved_medians(
            {"dgm": dgm_step(family), "zuko": zuko_step(family)}, x, args.rounds, args.steps
        )
        payload[family] = {k: {"median_s": v} for k, v in med.items()}
        rows.append(
            f"| {label} | {med['dgm'] * 1e3:.2f} | {med['zuko'] * 1e3:.2f} | "
            f"{med['dgm'] / med['zuko']:.2f}x |"
        )
        print(rows[-1], flush=True)
    table = (
        f"One Adam step of -mean log p(x), D = {D}, batch 256, {STEPS} autoregressive steps "
        f"on MADEs of widths {HIDDEN}; median over {args.rounds} interleaved rounds of "
        f"{args.steps} steps.\n\n| flow | dgm ms | zuko ms | dgm / zuko |\n"
        "| --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    path = write_result("flow_step_time", {"rounds": args.rounds, "results": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
