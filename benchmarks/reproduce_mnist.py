"""The IWAE paper's one-layer VAE (k=1) and IWAE (k=5) and the one-layer VampPrior VAE on
statically binarized MNIST, trained by dgm's CPU recipe, with AIS beside the importance-sampled
log p(x) and the BDMC gap that certifies it.

Each model is a packaged experiment trained by ``dgm train`` (``vae-mnist-reproduce``,
``iwae-mnist-reproduce``, ``vampprior-mnist-reproduce``). The CPU recipe (``--protocol cpu``,
the experiments as packaged) deviates from the papers in the batch (100, not 20, for the IWAE
networks: a step costs little more at batch 100 than at 20 here, so a pass is about 3x cheaper), in the
number of passes (1000 / 500 / 300, chosen to fit about 90 minutes each) and in the
learning-rate schedule (1e-3 decayed exponentially to 1e-4 over the budget, instead of the IWAE
paper's staircase of 3^i passes at 1e-3 * 10^(-i/7)); Adam's eps is the paper's 1e-4. Models are
picked on 1000 validation digits (IWAE bound, K=50) every 10 passes and scored on all 10000
test digits with K=5000. ``--protocol paper`` trains with the published schedules unchanged
(IWAE: batch 20, 3280 passes, the staircase; VampPrior: lr 5e-4, up to 2000 epochs, early
stopping after 50 epochs without improvement): hours on a GPU, days here.

AIS (``dgm.infer.ais``) runs from q on the first ``--ais-points`` test digits; the table pairs
it with the K=5000 estimate on the same digits. BDMC (``dgm.infer.bdmc``) runs forward and
reverse AIS on ``--bdmc-points`` digits simulated from each trained model.

    DGM_DATA_DIR=../shared/data python benchmarks/reproduce_mnist.py --runs runs/reproduce
    DGM_DATA_DIR=../shared/data python benchmarks/reproduce_mnist.py --runs runs/reproduce --reuse
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import ais_beside, run_or_reuse, write_result
from dgm.experiments import runner

# experiment: (what it is, published test log p(x), source and protocol)
MODELS = {
    "vae-mnist-reproduce": (
        "VAE k=1, 784-200-200-50",
        -88.71,
        "Burda et al. 2016, App. D: batch 20, 3280 passes, K=5000",
    ),
    "iwae-mnist-reproduce": (
        "IWAE k=5, 784-200-200-50",
        -87.63,
        "Burda et al. 2016, App. D: batch 20, 3280 passes, K=5000",
    ),
    "vampprior-mnist-reproduce": (
        "VampPrior (500), 40 latents, 300-300",
        -85.57,
        "Tomczak & Welling 2018, Table 2: gated dense layers, KL warm-up 100 epochs, "
        "lr 5e-4, early stopping, K=5000",
    ),
}

PAPER_PROTOCOL = {
    "vae-mnist-reproduce": [
        "train.batch_size=20",
        "train.epochs=3280",
        "train.lr_schedule=iwae",
        "train.lr_final=0.1",
        "train.validate_every=25000",
        "train.checkpoint_every=25000",
    ],
    "vampprior-mnist-reproduce": [
        "train.lr=0.0005",
        "train.lr_schedule=constant",
        "train.epochs=2000",
        "train.validate_every=500",
        "train.checkpoint_every=500",
        "train.patience=50",
    ],
}
PAPER_PROTOCOL["iwae-mnist-reproduce"] = PAPER_PROTOCOL["vae-mnist-reproduce"]


def measure(run_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    """AIS and the K=5000 estimate on the same test digits, and BDMC on simulated ones."""
    _, _, parts, data = runner.load_run(run_dir, device=args.device)
    model, guide = parts["model"], parts["guide"]
    device = next(model.parameters()).device
    points = data.test[: args.ais_points].to(device)
    t0 = time.perf_counter()
    iw = dgm.metrics.log_likelihood(model, guide, points, num_particles=args.eval_particles)
    iw_seconds = time.perf_counter() - t0
    like = data.test[: args.bdmc_points].to(device)
    out, _ = ais_beside(
        model, guide, points, iw, args.ais_steps, args.ais_chains, like, seed=args.seed
    )
    return {**out, "iwae_seconds": iw_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--protocol", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce"))
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate the run directories already in --runs"
    )
    parser.add_argument("--device", default=None, choices=[None, "cpu", "cuda"])
    parser.add_argument("--eval-particles", type=int, default=5000)
    parser.add_argument("--ais-points", type=int, default=200)
    parser.add_argument("--ais-steps", type=int, default=500)
    parser.add_argument("--ais-chains", type=int, default=8)
    parser.add_argument("--bdmc-points", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows, payload = [], {}
    for name in args.models:
        what, paper, source = MODELS[name]
        run_dir = args.runs / name
        sets = PAPER_PROTOCOL[name] if args.protocol == "paper" else []
        sets = sets + ([f"train.device={args.device}"] if args.device else [])
        print(f"{name}: training ({args.protocol} protocol) into {run_dir}", flush=True)
        final = run_or_reuse(name, sets, run_dir, args.reuse)
        config = runner.load_config(run_dir)
        print(
            f"{name}: AIS on {args.ais_points} test digits, BDMC on {args.bdmc_points}", flush=True
        )
        stats = {**final, **measure(run_dir, args), "paper": paper, "paper_source": source}
        stats["config_train"] = {
            k: getattr(config.train, k)
            for k in ("batch_size", "epochs", "lr", "lr_schedule", "lr_final", "adam_eps")
        }
        payload[name] = stats
        k = args.eval_particles
        ll, sem = final[f"test_log_likelihood_k{k}"], final["test_log_likelihood_stderr"]
        cpu = final.get("train_cpu_seconds")
        rows.append(
            f"| {what} | {final['train_epochs']:.0f} | {final['train_seconds'] / 60:.0f} | "
            + (f"{cpu / 60:.0f}" if cpu is not None else "see note")
            + f" | {ll:.2f} ± {sem:.2f} | {paper:.2f} | {ll - paper:+.2f} | "
            f"{stats['iwae_same_points']:.2f} | {stats['ais']:.2f} | "
            f"{stats['ais_minus_iwae']:+.2f} ± {stats['ais_minus_iwae_sem']:.2f} | "
            + (
                f"{stats['bdmc_gap']:.2f} ± {stats['bdmc_gap_sem']:.2f}"
                if "bdmc_gap" in stats
                else "-"
            )
            + f" | {final['test_elbo']:.2f} | {final['test_kl']:.2f} |"
        )
        print(rows[-1], flush=True)
    table = (
        f"Statically binarized MNIST ({args.protocol} protocol; see the script's docstring for "
        "every deviation from the papers). Test log p(x): importance sampling from q with "
        f"K={args.eval_particles} on all 10000 test digits (± standard error over digits), "
        "beside the published value. AIS: dgm.infer.ais from q, "
        f"{args.ais_steps} sigmoidal temperatures, {args.ais_chains} chains, HMC with 5 leapfrog "
        f"steps and pilot-tuned step sizes, on the first {args.ais_points} test digits, paired "
        f"with the K={args.eval_particles} estimate on the same digits. BDMC gap: reverse minus "
        f"forward AIS (same settings) on {args.bdmc_points} digits simulated from each model; "
        "it bounds the AIS error on data like the model's own.\n\n"
        "| model | passes | train wall min | train CPU min | test log p(x), K=5000 | paper | "
        "ours - paper | K=5000 (AIS digits) | AIS | AIS - K=5000 (paired) | BDMC gap | "
        "test ELBO | KL |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n\nPublished protocols: "
        + "; ".join(f"{MODELS[n][0]}: {MODELS[n][2]}" for n in args.models)
        + "."
    )
    path = write_result(
        f"reproduce_mnist_{args.protocol}",
        {
            "protocol": args.protocol,
            "options": vars(args) | {"runs": str(args.runs)},
            "results": payload,
        },
        table,
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
