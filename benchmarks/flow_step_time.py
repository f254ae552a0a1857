"""Per-step training time of dgm's flows against zuko's and normflows' on the same architectures.

MAF (4 affine autoregressive steps, MADE widths 128-128, ReLU, orders reversed between steps)
and the autoregressive neural spline flow (4 steps of 8-bin rational-quadratic splines on the
same MADEs), on 64-dimensional data (the 8x8 digits' size) at batch 256, one Adam step of
-mean log p(x) per call. dgm: ``FLOWS["maf"]`` and ``FLOWS["nsf-ar"]`` (which also has an
ActNorm per step); zuko: ``zuko.flows.MAF`` and ``zuko.flows.NSF``; normflows:
``MaskedAffineAutoregressive`` (turned around so that it scores data in one pass, as
normflows' own spline wrapper does; ``--normflows-as-is`` times it unswapped, the D-pass
direction its ``forward_kld`` otherwise takes) and
``MaskedPiecewiseRationalQuadraticAutoregressive`` (linear tails at 3) with plain MADEs (``num_blocks=1, use_residual_blocks=False``: two hidden layers,
as in dgm and zuko; normflows' spline wrapper would add residual blocks) and random
permutations between steps, scored by ``NormalizingFlow.forward_kld``. zuko and normflows are
optional benchmark dependencies (``pip install zuko normflows``), never runtime ones; a
missing one's column says so. Median seconds per step over interleaved rounds; the table
lists each model's parameter count, so that "the same architecture" can be checked.

    python benchmarks/flow_step_time.py [--rounds 20] [--steps 5] [--threads 1]
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

    step.params = sum(p.numel() for p in flow.parameters())  # type: ignore[attr-defined]
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

    step.params = sum(p.numel() for p in flow.parameters())  # type: ignore[attr-defined]
    return step


def normflows_step(family: str, as_is: bool = False) -> Callable[[torch.Tensor], None]:
    import normflows as nf
    from normflows.flows.neural_spline.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressive,
    )

    class AutoregressiveSpline(nf.flows.Flow):  # the wrapper without its residual blocks
        def __init__(self) -> None:
            super().__init__()
            self.spline = MaskedPiecewiseRationalQuadraticAutoregressive(
                features=D,
                hidden_features=HIDDEN[0],
                num_bins=8,
                tails="linear",
                tail_bound=3,
                num_blocks=len(HIDDEN) - 1,
                use_residual_blocks=False,
                random_mask=False,
                activation=torch.nn.ReLU(),
            )

        def forward(self, z, context=None):
            z, log_det = self.spline.inverse(z, context=context)
            return z, log_det.view(-1)

        def inverse(self, z, context=None):
            z, log_det = self.spline(z, context=context)
            return z, log_det.view(-1)

    class OnePassMAF(nf.flows.Flow):
        # normflows' flows map noise to data and ``forward_kld`` scores data through each
        # flow's ``inverse``; ``MaskedAffineAutoregressive.inverse`` is its D-pass direction,
        # so a MAF built from it as it is scores in D network passes (``--normflows-as-is``).
        # Swapped, as normflows' own spline wrapper does, it scores in one pass, like MAF.
        def __init__(self) -> None:
            super().__init__()
            self.maf = nf.flows.MaskedAffineAutoregressive(
                D, HIDDEN[0], num_blocks=len(HIDDEN) - 1, use_residual_blocks=False
            )

        def forward(self, z, context=None):
            return self.maf.inverse(z, context=context)

        def inverse(self, z, context=None):
            return self.maf(z, context=context)

    torch.manual_seed(0)
    flows: list[torch.nn.Module] = []
    for _ in range(STEPS):
        if family == "maf" and as_is:
            flows.append(
                nf.flows.MaskedAffineAutoregressive(
                    D, HIDDEN[0], num_blocks=len(HIDDEN) - 1, use_residual_blocks=False
                )
            )
        elif family == "maf":
            flows.append(OnePassMAF())
        else:
            flows.append(AutoregressiveSpline())
        flows.append(nf.flows.Permute(D, mode="shuffle"))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False), flows)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: torch.Tensor) -> None:
        loss = model.forward_kld(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step.params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    return step


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--normflows-as-is",
        action="store_true",
        help="normflows' MaskedAffineAutoregressive unswapped (scores in D passes)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(256, D)
    peers = {
        "zuko": zuko_step,
        "normflows": lambda family: normflows_step(family, args.normflows_as_is),
    }
    present = [name for name in peers if _available(name)]
    rows, payload = [], {}
    for family, label in (("maf", "MAF"), ("nsf-ar", "NSF (autoregressive)")):
        impls = {"dgm": dgm_step(family), **{name: peers[name](family) for name in present}}
        med = interleaved_medians(impls, x, args.rounds, args.steps)
        params = {name: impl.params for name, impl in impls.items()}  # type: ignore[attr-defined]
        payload[family] = {k: {"median_s": v, "params": params[k]} for k, v in med.items()}
        cells = [f"{med['dgm'] * 1e3:.2f}"]
        for name in peers:
            cells += (
                [f"{med[name] * 1e3:.2f}", f"{med['dgm'] / med[name]:.2f}x"]
                if name in med
                else ["not installed", "-"]
            )
        counts = " / ".join(f"{params[name]}" for name in impls)
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {counts} |")
        print(rows[-1], flush=True)
    table = (
        f"One Adam step of -mean log p(x), D = {D}, batch 256, {STEPS} autoregressive steps "
        f"on MADEs of widths {HIDDEN}; median over {args.rounds} interleaved rounds of "
        f"{args.steps} steps, {args.threads} torch thread(s)"
        + (", normflows' MAF unswapped (D passes per score)" if args.normflows_as_is else "")
        + ".\n\n"
        "| flow | dgm ms | zuko ms | dgm / zuko | normflows ms | dgm / normflows | "
        f"parameters ({' / '.join(['dgm', *present])}) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    name = "flow_step_time" + ("_normflows_as_is" if args.normflows_as_is else "")
    path = write_result(name, {"rounds": args.rounds, "results": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
