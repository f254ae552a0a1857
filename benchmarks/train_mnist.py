"""Budgeted training on statically binarized MNIST, beside the IWAE paper's Table 3.

Protocol of Burda et al. (2016), App. D: Adam (eps 1e-4), batch 20, 3^i passes over the
training set at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3280 passes). With
``--minutes`` the protocol is followed from its start and cut off when the budget is spent;
the table says how many passes each variant got. On a GPU, ``--minutes 0`` runs it in full.

Evaluation: importance-sampled log p(x) with K=5000 on the test set (all 10000 digits by
default), active units (Cov_x E_q[z_u] > 0.01), ELBO terms, and the evaluation's wall time
and peak memory.

    DGM_DATA_DIR=../shared/data python benchmarks/train_mnist.py --minutes 5
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import peak_rss_mib, reset_peak_rss, write_result

# name: (stochastic layers, particles, objective, IWAE paper Table 3 test log-likelihood)
VARIANTS = {
    "vae-1": (1, 1, "vae", -88.71),
    "iwae5-1": (1, 5, "iwae", -87.63),
    "iwae50-1": (1, 50, "iwae", -87.10),
    "vae-2": (2, 1, "vae", -88.08),
    "iwae50-2": (2, 50, "iwae", -85.32),
}


def train(
    name: str, train_x: torch.Tensor, minutes: float, device: torch.device, seed: int
) -> dict:
    layers, k, kind, _ = VARIANTS[name]
    torch.manual_seed(seed)
    model, guide = dgm.models.vae.one_layer() if layers == 1 else dgm.models.vae.two_layer()
    model.to(device)
    guide.to(device)
    model.set_output_bias(train_x.mean(0))
    objective = dgm.ELBO(1) if kind == "vae" else dgm.IWAE(k)
    params = [*model.parameters(), *guide.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-4)
    budget = math.inf if minutes <= 0 else 60 * minutes
    start, passes, history = time.perf_counter(), 0.0, []
    for i in range(8):
        remaining = budget - (time.perf_counter() - start)
        if remaining <= 0:
            break
        for group in opt.param_groups:
            group["lr"] = 1e-3 * 10 ** (-i / 7)
        result = dgm.train.fit(
            model,
            guide,
            objective,
            train_x,
            epochs=3**i,
            batch_size=20,
            optimizer=opt,
            seed=seed * 100 + i,
            log_every=2500,
            time_limit=None if math.isinf(remaining) else remaining,
        )
        passes += result.epochs
        history += [{**h, "phase": i} for h in result.history]
        print(
            f"  {name}: phase {i} lr {opt.param_groups[0]['lr']:.2e}: {passes:.1f} passes, loss {result.history[-1]['loss']:.2f}",
            flush=True,
        )
    return {
        "model": model,
        "guide": guide,
        "passes": passes,
        "train_seconds": time.perf_counter() - start,
        "history": history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="training budget per variant (0: full protocol)"
    )
    parser.add_argument("--eval-particles", type=int, default=5000)
    parser.add_argument("--eval-points", type=int, default=10000)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--save",
        type=Path,
        default=Path("runs/bench-mnist"),
        help="where to keep the trained weights",
    )
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    train_x = dgm.data.binarized_mnist("train").to(device)
    test_x = dgm.data.binarized_mnist("test")[: args.eval_points].to(device)
    rows, payload = [], {}
    for name in args.variants:
        layers, k, kind, paper = VARIANTS[name]
        print(
            f"{name}: training ({'full protocol' if args.minutes <= 0 else f'{args.minutes:g} min budget'}) on {device}",
            flush=True,
        )
        run = train(name, train_x, args.minutes, device, args.seed)
        model, guide = run["model"], run["guide"]
        args.save.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"model": model.state_dict(), "guide": guide.state_dict()}, args.save / f"{name}.pt"
        )
        reset_peak_rss()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        ll = dgm.metrics.log_likelihood(
            model, guide, test_x, num_particles=args.eval_particles, batch_size=100
        )
        eval_seconds = time.perf_counter() - t0
        peak = (
            torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
        )
        terms = dgm.metrics.elbo_terms(model, guide, test_x)
        au = dgm.metrics.active_units(guide, test_x)
        stats = {
            "layers": layers,
            "objective": kind,
            "k": k,
            "passes": run["passes"],
            "train_seconds": run["train_seconds"],
            "test_log_likelihood": ll.mean().item(),
            "test_log_likelihood_sem": (ll.std() / math.sqrt(len(ll))).item(),
            "test_elbo": terms.elbo.mean().item(),
            "test_kl": terms.kl.mean().item(),
            "active_units": au,
            "eval_seconds": eval_seconds,
            "eval_peak_memory_mib": peak,
            "paper_test_log_likelihood": paper,
            "history": run["history"],
        }
        payload[name] = stats
        au_text = " + ".join(str(v) for v in au.values())
        rows.append(
            f"| {layers} | {kind.upper()} k={k} | {run['passes']:.1f} | {run['train_seconds'] / 60:.1f} | "
            f"{stats['test_log_likelihood']:.2f} ± {stats['test_log_likelihood_sem']:.2f} | {paper:.2f} | "
            f"{stats['test_elbo']:.2f} | {stats['test_kl']:.2f} | {au_text} | {eval_seconds:.0f} | "
            f"{peak:.0f} |"
        )
        print(rows[-1], flush=True)
    table = (
        f"Statically binarized MNIST; test log p(x) estimated with K={args.eval_particles} on "
        f"{len(test_x)} test digits (± standard error over digits). Training follows the IWAE "
        "paper's protocol (Adam eps 1e-4, batch 20, 3^i passes at lr 1e-3*10^(-i/7)) "
        + (
            "in full"
            if args.minutes <= 0
            else f"from its start, cut off after {args.minutes:g} minutes per variant"
        )
        + "; the paper's column is after all 3280 passes.\n\n"
        "| layers | objective | passes | train min | test log p(x) | paper (3280 passes) | test ELBO | KL | active units | eval s | eval peak MiB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    path = write_result(
        "train_mnist",
        {
            "minutes": args.minutes,
            "eval_particles": args.eval_particles,
            "eval_points": len(test_x),
            "results": payload,
        },
        table,
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
