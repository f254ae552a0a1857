"""Sigmoid belief networks on statically binarized MNIST: every discrete-latent estimator, one budget.

Each variant trains the same SBN (default 200-200-200 binary units, linear layers) with Adam
(lr 3e-4, eps 1e-4, batch 100; for wake-sleep-style methods one Adam for the model and one for
the guide, same settings) for the same wall-clock budget, then reports test log p(x) with
K=5000 importance samples (the trained guide as proposal), the test ELBO, and the guide
gradient's signal-to-noise ratio and the importance weights' ESS at the end of training.
The published figures beside ours come from far longer training (see their protocols).

    DGM_DATA_DIR=../shared/data python benchmarks/sbn_mnist.py --minutes 3 --eval-points 500
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import write_result
from dgm.objectives import NVIL, RWS, Concrete, WakeSleep

# name: (label, objective factory, published figure and its protocol)
VARIANTS: dict[str, tuple[str, Any, str]] = {
    "ws": ("wake-sleep (K=1, sleep-phi)", lambda d: WakeSleep(), ""),
    "rws-wake-5": ("RWS K=5, wake-phi", lambda d: RWS(5, "wake"), ""),
    "rws-sleep-5": ("RWS K=5, sleep-phi", lambda d: RWS(5, "sleep"), ""),
    "rws-both-5": ("RWS K=5, wake+sleep-phi", lambda d: RWS(5, "both"), ""),
    "rws-wake-50": ("RWS K=50, wake-phi", lambda d: RWS(50, "wake"), ""),
    "nvil": (
        "NVIL (K=1)",
        lambda d: NVIL(dgm.nn.MLP((d, 100, 1))),
        "NVIL as re-implemented in the MuProp paper: test ELBO -97.5 for SBN 200-200-200",
    ),
    "vimco-5": (
        "VIMCO K=5",
        lambda d: dgm.IWAE(5),
        "Mnih & Rezende 2016: -93.6 for SBN 200-200-200, K=5 (long training)",
    ),
    "vimco-50": ("VIMCO K=50", lambda d: dgm.IWAE(50), ""),
    "concrete": ("concrete relaxation (lambda=2/3, K=1)", lambda d: Concrete(1, 2 / 3), ""),
    "reinforce": ("REINFORCE (K=1, leave-one-out baseline)", lambda d: dgm.ELBO(1), ""),
}


def train(
    name: str, layers: tuple[int, ...], x: torch.Tensor, minutes: float, seed: int
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model, guide = dgm.models.sbn.sbn(layers)
    model.set_output_bias(x.mean(0))
    objective = VARIANTS[name][1](x.shape[1])
    model_params = list(model.parameters())
    if isinstance(objective, nn.Module):
        model_params += list(objective.parameters())
    opts = [
        torch.optim.Adam(model_params, lr=3e-4, eps=1e-4),
        torch.optim.Adam(guide.parameters(), lr=3e-4, eps=1e-4),
    ]
    result = dgm.train.fit(
        model,
        guide,
        objective,
        x,
        steps=10**9,
        batch_size=100,
        optimizer=opts,
        seed=seed,
        log_every=500,
        time_limit=60 * minutes,
    )
    if isinstance(objective, nn.Module):
        objective.eval()
    probe = x[:100]
    stats = dgm.metrics.gradient_stats(objective, model, guide, probe, num_draws=20)
    with torch.no_grad():
        lw = dgm.log_weights(model, guide, probe, num_particles=50)
        ess = dgm.metrics.effective_sample_size(lw.log_w).mean().item()
    return {
        "model": model,
        "guide": guide,
        "steps": result.steps,
        "passes": result.epochs,
        "train_seconds": result.seconds,
        "final_loss": result.history[-1]["loss"] if result.history else math.nan,
        "guide_grad_snr": stats.snr,
        "ess_k50": ess,
        "history": result.history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--layers", type=int, nargs="+", default=[200, 200, 200])
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per variant")
    parser.add_argument("--eval-particles", type=int, default=5000)
    parser.add_argument("--eval-points", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    layers = tuple(args.layers)
    train_x = dgm.data.binarized_mnist("train")
    test_x = dgm.data.binarized_mnist("test")[: args.eval_points]
    rows, payload = [], {}
    for name in args.variants:
        label, _, paper = VARIANTS[name]
        print(f"{name}: training {args.minutes:g} min", flush=True)
        run = train(name, layers, train_x, args.minutes, args.seed)
        model, guide = run["model"], run["guide"]
        t0 = time.perf_counter()
        ll = dgm.metrics.log_likelihood(
            model, guide, test_x, num_particles=args.eval_particles, batch_size=100
        )
        eval_seconds = time.perf_counter() - t0
        terms = dgm.metrics.elbo_terms(model, guide, test_x, num_particles=10)
        stats = {
            "label": label,
            "steps": run["steps"],
            "passes": run["passes"],
            "train_seconds": run["train_seconds"],
            "ms_per_step": 1000 * run["train_seconds"] / max(run["steps"], 1),
            "test_log_likelihood": ll.mean().item(),
            "test_log_likelihood_stderr": (ll.std() / math.sqrt(len(ll))).item(),
            "test_elbo": terms.elbo.mean().item(),
            "guide_grad_snr": run["guide_grad_snr"],
            "ess_k50": run["ess_k50"],
            "eval_seconds": eval_seconds,
            "published": paper,
            "history": run["history"],
        }
        payload[name] = stats
        print(
            f"  {name}: {stats['passes']:.1f} passes, log p(x) {stats['test_log_likelihood']:.2f}"
            f" ± {stats['test_log_likelihood_stderr']:.2f}, ELBO {stats['test_elbo']:.2f}, "
            f"SNR {stats['guide_grad_snr']:.3f}, ESS {stats['ess_k50']:.1f}/50",
            flush=True,
        )
        rows.append(
            f"| {label} | {stats['passes']:.1f} | {stats['ms_per_step']:.1f} | "
            f"{stats['test_log_likelihood']:.2f} ± {stats['test_log_likelihood_stderr']:.2f} | "
            f"{stats['test_elbo']:.2f} | {stats['guide_grad_snr']:.3f} | "
            f"{stats['ess_k50']:.1f} | {paper or '-'} |"
        )
    arch = "-".join(map(str, layers))
    table = (
        f"SBN {arch} (linear layers, binary units) on statically binarized MNIST, "
        f"{args.minutes:g} min of training per variant on this machine (Adam lr 3e-4, batch 100); "
        f"test log p(x) with K={args.eval_particles} on the first {len(test_x)} test digits "
        "(± standard error over digits); test ELBO with 10 samples; guide-gradient SNR "
        "(||mean|| / sqrt(total variance) of the guide gradient over 20 draws on one batch of 100) and "
        "ESS of 50 importance weights at the end of training.\n\n"
        "| estimator | passes | ms / step | test log p(x) | test ELBO | guide grad SNR | "
        "ESS / 50 | published (long training) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    path = write_result("sbn_mnist", {"layers": list(layers), "variants": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
