"""GANs on 28x28 images at a CPU budget: stacked-MNIST modes, and sample quality on dgm's
own classifier features (FID, KID, precision, recall, density, coverage).

``--data stacked_mnist`` trains the packaged ``gan-stacked-mnist-dcgan`` experiment with and
without packing (``dcgan``, ``pacdcgan2`` ...: the critic scores ``pack`` images at once, 64
packs per step, as PacGAN's DCGAN runs count batches in packs) and counts the modes among
1000 found in 26000 samples by dgm's MNIST classifier, and their KL to uniform. ``--data
fashion_mnist`` / ``mnist_t10k`` train ``gan-fashion-dcgan`` (with the data set switched) and
score 10000 samples against the test images. Every number here is computed on the features
of dgm's classifier (trained deterministically on the data at hand, see
``dgm.metrics.classifier``): not Inception features, not comparable with published FIDs.

    python benchmarks/gan_images.py --data stacked_mnist --steps 3000 --variants dcgan pacdcgan2
    python benchmarks/gan_images.py --data fashion_mnist mnist_t10k --steps 3000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import in_pool, run_or_reuse, write_result

EXPERIMENT = {
    "stacked_mnist": "gan-stacked-mnist-dcgan",
    "fashion_mnist": "gan-fashion-dcgan",
    "mnist_t10k": "gan-fashion-dcgan",
    "mnist": "gan-fashion-dcgan",
}
PACKS = {"dcgan": 1, "pacdcgan2": 2, "pacdcgan3": 3, "pacdcgan4": 4}
# as the issue cites PacGAN (Lin et al. 2018) Tables 2 and 3: stacked-MNIST modes of 1000
PUBLISHED = {"dcgan": "78.9 modes", "pacdcgan2": "1000", "pacdcgan3": "1000", "pacdcgan4": "1000"}


def overrides(args: argparse.Namespace, data: str, variant: str) -> list[str]:
    pack = PACKS[variant]
    every = max(args.steps // 5, 1)
    # mnist_t10k holds out 1000 + 1000 of MNIST's test digits: score on its 1000 test digits
    quality = min(args.quality_samples, 1000) if data == "mnist_t10k" else args.quality_samples
    held_out = ["data.valid_points=1000", "eval.valid_samples=1000"] if data == "mnist_t10k" else []
    return [
        *held_out,
        f"data.name={data}",
        f"model.pack={pack}",
        f"model.hidden={args.hidden}",
        f"train.batch_size={64 * pack}",
        f"train.steps={args.steps}",
        f"train.seed={args.seed}",
        f"train.validate_every={every}",
        f"train.checkpoint_every={every}",
        f"eval.quality_samples={quality}",
        f"data.test_points={quality}",
    ]


def train_one(job: tuple[str, list[str], str, int, bool]) -> dict:
    name, sets, out, threads, reuse = job
    return run_or_reuse(name, sets, out, reuse, threads)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["stacked_mnist"], choices=EXPERIMENT)
    parser.add_argument("--variants", nargs="+", default=["dcgan", "pacdcgan2"], choices=PACKS)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=64, help="DCGAN's base channels")
    parser.add_argument("--quality-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-gan-images"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tag", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs of this budget")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keys = [(d, v) for d in args.data for v in args.variants]
    jobs = [
        (
            EXPERIMENT[d],
            overrides(args, d, v),
            str(args.out / f"{d}{args.tag}" / v),
            args.threads,
            args.reuse,
        )
        for d, v in keys
    ]
    finals = in_pool(train_one, jobs, args.jobs)
    rows, payload = [], {}
    for (data, variant), final in zip(keys, finals, strict=True):
        payload.setdefault(data, {})[variant] = final
        stacked = data == "stacked_mnist"
        rows.append(
            f"| {data} | {variant} | "
            + (
                f"{final['stacked_modes']} | {final['stacked_kl']:.3f} | "
                if stacked
                else "- | - | "
            )
            + f"{final['fid_classifier']:.1f} | {final['kid_classifier']:.4g} ± "
            f"{final['kid_classifier_std']:.2g} | {final['precision']:.3f} | "
            f"{final['recall']:.3f} | {final['density']:.3f} | {final['coverage']:.3f} | "
            f"{final['train_steps']} | {final['train_seconds']:.0f} | "
            f"{PUBLISHED[variant] if stacked else '-'} |"
        )
        print(rows[-1], flush=True)
    classifiers = sorted(
        {
            f"{f['classifier_source']}: test accuracy {f['classifier_test_accuracy']:.4f}"
            for v in payload.values()
            for f in v.values()
        }
    )
    table = (
        f"DCGAN (28x28 variant, base width {args.hidden}, no BatchNorm in the critic), "
        f"non-saturating loss, Adam 2e-4 (0.5, 0.999), 64 packs per step, {args.steps} steps, "
        f"seed {args.seed}, {args.jobs} runs at a time with {args.threads} torch thread(s) "
        "each; the generator at the end of training is scored. Stacked MNIST: modes among "
        "1000 in 26000 samples and KL(p || uniform); every other column on "
        f"{args.quality_samples} samples against as many test images (mnist_t10k: its 1000), "
        "on the features of "
        "dgm's classifier (NOT Inception: not comparable with published FIDs; the features are "
        "unnormalized, so KID's cubic kernel gives large values; its s.d. is over 100 subsets "
        "of up to 1000 points, 0 when a subset is the whole set). "
        "Classifiers: " + "; ".join(classifiers) + ". Published (PacGAN Tables 2 and 3, as "
        "the issue cites them; GPU budgets of tens of epochs of 128000 images, carpedm20's "
        "DCGAN in TensorFlow): DCGAN 78.9 modes, PacDCGAN2-4 1000.\n\n"
        "| data | variant | modes | KL | FID (classifier) | KID (classifier) | precision | recall | "
        "density | coverage | steps | train s | published |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
    )
    if args.note:
        table += f"\n\n{args.note}"
    name = "gan_images_" + "_".join(args.data) + args.tag
    path = write_result(name, {"steps": args.steps, "hidden": args.hidden, "runs": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
