"""The PacGAN Table 1 protocol on a CPU budget: modes covered on the ring and the grid.

Each variant is the packaged ``gan-ring`` / ``gan-grid`` experiment (PacGAN's 2-D networks,
Adam 1e-4 with beta1 0.8, 100 packs per step, 100000 training points) with its switches:

- ``gan``: the non-saturating GAN;
- ``pacgan2``, ``pacgan3``, ``pacgan4``: the critic scores 2, 3, 4 samples at once
  (``model.pack``; ``train.batch_size = 100 x pack``, as PacGAN counts batches in packs);
- ``wgan-gp``: Wasserstein critic and generator losses, gradient penalty 10, 5 critic
  updates per generator update, Adam (0.5, 0.9) (Gulrajani et al. 2017, Algorithm 1);
- ``unrolled``: 5 unrolled Adam steps of the critic in the generator's update (Metz et
  al. 2017).

Every variant trains ``--epochs`` epochs of 1000 generator updates (PacGAN: 400) for each of
``--seeds`` seeds; scored as PacGAN scores, on 2500 samples from fixed noise with the
generator's BatchNorm in evaluation mode: modes with at least one sample within 3 standard
deviations, the share of such high-quality samples, and the reverse KL (and JSD) of their
mode histogram to uniform. Published beside ours (other protocols: 400 epochs, 10 runs,
PacGAN's TensorFlow/Theano code; VEEGAN's own runs).

    python benchmarks/gan_modes.py --epochs 10 --seeds 5 --jobs 2
    python benchmarks/gan_modes.py --protocol full     # PacGAN's 400 epochs (a GPU)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import in_pool, run_or_reuse, write_result

VARIANTS: dict[str, list[str]] = {
    "gan": [],
    "pacgan2": ["model.pack=2"],
    "pacgan3": ["model.pack=3"],
    "pacgan4": ["model.pack=4"],
    "wgan-gp": [
        "model.critic_loss=wasserstein",
        "model.generator_loss=wasserstein",
        "model.gradient_penalty=10",
        "model.critic_steps=5",
        "model.beta1=0.5",
        "model.beta2=0.9",
    ],
    "unrolled": ["model.unroll=5"],
}

# PacGAN Table 1 (Lin et al. 2018: mean over 10 runs of modes, high-quality %, reverse KL),
# its GAN and PacGAN rows; VEEGAN's Table 1 (Srivastava et al. 2017) for the other methods.
PUBLISHED: dict[str, dict[str, tuple[float, float, float] | None]] = {
    "ring8": {
        "gan": (6.3, 98.2, 0.45),
        "pacgan2": (7.9, 95.6, 0.07),
        "pacgan3": (7.8, 98.5, 0.12),
        "pacgan4": (7.8, 98.8, 0.07),
        "wgan-gp": None,
        "unrolled": (7.6, 35.6, None),  # VEEGAN Table 1: modes, high-quality %
    },
    "grid25": {
        "gan": (17.3, 94.8, 0.70),
        "pacgan2": (23.8, 91.3, 0.13),
        "pacgan3": (24.6, 94.2, 0.06),
        "pacgan4": (24.8, 93.6, 0.04),
        "wgan-gp": None,
        "unrolled": (14.9, 95.1, None),
    },
}
PUBLISHED_NOTE = (
    "PacGAN Table 1 (400 epochs, mean of 10 runs: modes / high-quality % / reverse KL) for "
    "GAN and PacGAN2-4; VEEGAN Table 1 (Srivastava et al. 2017, their own runs, modes / "
    "high-quality %) for the unrolled GAN; neither reports WGAN-GP here."
)


def overrides(data: str, variant: str, seed: int, steps: int) -> list[str]:
    pack = next((int(s.split("=")[1]) for s in VARIANTS[variant] if s.startswith("model.pack")), 1)
    return [
        *VARIANTS[variant],
        f"train.batch_size={100 * pack}",
        f"train.seed={seed}",
        f"train.steps={steps}",
        f"train.validate_every={max(steps // 10, 1)}",
        f"train.checkpoint_every={max(steps // 10, 1)}",
    ]


def train_one(job: tuple[str, list[str], str, int, bool]) -> dict:
    """Train one (data, variant, seed) in its own process; its final metrics."""
    name, sets, out, threads, reuse = job
    return run_or_reuse(name, sets, out, reuse, threads)


def _mean_sd(values: list[float]) -> str:
    """Mean ± s.d. over the runs where the value is defined (reverse KL and JSD are NaN for a
    run without one sample near a mode: counted apart)."""
    defined = [v for v in values if not math.isnan(v)]
    if len(defined) < len(values):
        return (
            _mean_sd(defined) if defined else "-"
        ) + f" ({len(values) - len(defined)} undefined)"
    values = defined
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=PUBLISHED)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=float, default=10, help="of 1000 generator updates")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-gan-modes"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--note", default="", help="a sentence for the result file")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs of this budget")
    parser.add_argument("--protocol", choices=("cpu", "full"), default="cpu")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="DATA:VARIANT",
        help="combinations not run (a CPU budget); listed as such in the table",
    )
    args = parser.parse_args()
    if args.protocol == "full":
        args.epochs = 400
    steps = round(args.epochs * 1000)
    torch.set_num_threads(args.threads)
    experiment = {"ring8": "gan-ring", "grid25": "gan-grid"}
    jobs, keys = [], []
    for data in args.data:
        for variant in args.variants:
            if f"{data}:{variant}" in args.skip:
                continue
            for seed in range(args.seeds):
                out = args.out / f"{data}{args.tag}" / variant / f"seed{seed}"
                sets = overrides(data, variant, seed, steps)
                jobs.append((experiment[data], sets, str(out), args.threads, args.reuse))
                keys.append((data, variant, seed))
    finals = in_pool(train_one, jobs, args.jobs)
    payload: dict[str, dict[str, list[dict]]] = {}
    for (data, variant, _), final in zip(keys, finals, strict=True):
        payload.setdefault(data, {}).setdefault(variant, []).append(final)
    sections = []
    for data, variants in payload.items():
        rows = []
        for variant in args.variants:
            if variant not in variants:
                pub = PUBLISHED[data][variant]
                published = " / ".join("-" if v is None else f"{v:g}" for v in pub) if pub else "-"
                rows.append(f"| {variant} | not run (CPU budget) | | | | | | {published} |")
                continue
            runs = variants[variant]
            modes = [r["modes_covered"] for r in runs]
            hq = [100 * r["high_quality"] for r in runs]
            kl = [r["reverse_kl"] for r in runs]
            jsd = [r["jsd"] for r in runs]
            seconds = statistics.mean(r["train_seconds"] for r in runs)
            pub = PUBLISHED[data][variant]
            published = " / ".join("-" if v is None else f"{v:g}" for v in pub) if pub else "-"
            rows.append(
                f"| {variant} | {_mean_sd(modes)} | {_mean_sd(hq)} | {_mean_sd(kl)} | "
                f"{_mean_sd(jsd)} | {min(modes)}-{max(modes)} | {seconds:.0f} | {published} |"
            )
        total = next(iter(variants.values()))[0]["modes"]
        sections.append(
            f"### {data} ({total} modes)\n\n"
            "| variant | modes covered | high-quality % | reverse KL | JSD | range | train s "
            "per run | published (modes / hq % / KL) |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
        )
    table = (
        f"PacGAN Table 1 protocol at a CPU budget: {args.epochs:g} epochs of 1000 generator "
        f"updates per run (PacGAN: 400), {args.seeds} seeds per variant (PacGAN: 10), "
        f"{args.jobs} runs at a time with {args.threads} torch thread(s) each; mean ± s.d. over "
        "seeds of the metrics of the generator at the end of training on 2500 samples from "
        "fixed noise (BatchNorm in evaluation mode). The generator is updated "
        "after the critic (PacGAN updates both from one batch at once). Published: "
        + PUBLISHED_NOTE
        + "\n\n"
        + "\n\n".join(sections)
    )
    if args.note:
        table += f"\n\n{args.note}"
    name = f"gan_modes{args.tag}"
    path = write_result(name, {"epochs": args.epochs, "seeds": args.seeds, "runs": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
