"""The inference-compilation study's numbers: run the packaged experiments and tabulate them.

Runs ``dgm train polyreg-ic`` (10 points per data set, MLP embedding) and
``polyreg-ic-variable`` (3 to 10 points, set embedding) into ``runs/bench-polyreg/``, then
writes one table per experiment: per method, ESS per sample and per second, log-evidence
and its spread over repeated importance-sampling runs, and the errors of the posterior mean
and of the 90% credible interval against a long reference MH chain (interval error in units
of the reference interval's width), averaged over the held-out data sets.

    python benchmarks/polyreg_study.py [--set train.steps=6000 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result
from dgm import experiments
from dgm.experiments import runner

METHODS = (
    ("prior_is", "samples from the prior, importance-weighted"),
    ("proposal_is", "learned proposal, importance-weighted"),
    ("proposal_samples", "learned proposal, unweighted"),
    ("mh_random_walk", "Metropolis-Hastings, random walk"),
    ("mh_independence", "Metropolis-Hastings, learned proposal"),
)


def table(final: dict) -> str:
    rows = []
    for key, label in METHODS:
        m = final[key]

        def cell(name: str, fmt: str = "{:.3f}", m: dict = m) -> str:
            return fmt.format(m[name]) if name in m else "-"

        rows.append(
            f"| {label} | {cell('ess_per_sample')} | {cell('ess_per_second', '{:.0f}')} | "
            f"{cell('log_evidence', '{:.2f}')} | {cell('log_evidence_spread')} | "
            f"{cell('accept_rate', '{:.2f}')} | {cell('mean_error')} | {cell('interval_error')} |"
        )
    return (
        "| method | ESS / sample | ESS / s | log-evidence | spread (sd over repeats) | "
        "acceptance | posterior-mean error | 90% interval error |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", action="append", default=[], help="config override, key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-polyreg"))
    args = parser.parse_args()
    parts, payload = [], {}
    for name in ("polyreg-ic", "polyreg-ic-variable"):
        cfg = experiments.load(name, args.set)
        run = args.out / name
        runner.train(cfg, run, progress=None, overwrite=True)  # a re-run archives the last one
        final = json.loads((run / "final_metrics.json").read_text())
        payload[name] = final
        ref = final["reference_chain"]
        parts.append(
            f"### {name}\n\n{cfg.description} Proposal trained for {final['train_steps']} steps "
            f"({final['train_seconds']} s) of {cfg.train.batch_size} simulated data sets; "
            f"{cfg.eval.datasets} held-out data sets; {cfg.eval.num_particles} importance "
            f"samples ({cfg.eval.repeats} repeats); {cfg.eval.mcmc_samples} MH draws (4 chains); "
            f"reference: {ref['draws']} random-walk MH draws per data set (max R-hat "
            f"{ref['max_r_hat']:.3f}).\n\n" + table(final) + "\n"
        )
    path = write_result("polyreg_study", payload, "\n".join(parts))
    print(path.read_text())


if __name__ == "__main__":
    main()
