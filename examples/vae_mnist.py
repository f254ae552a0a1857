"""A short VAE run: IWAE (K=5) on statically binarized MNIST, about two minutes on a CPU.

Trains the IWAE paper's one-layer network, then reports the importance-sampled test
log-likelihood and writes samples and reconstructions to runs/demo/.

    python examples/vae_mnist.py [--minutes 2] [--out runs/demo] [--device auto]

Data: set DGM_DATA_DIR to a directory with binarized_mnist.npz or the .amat files, or let
dgm download them (checksum-verified) into ~/.cache/dgm.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import dgm


def grid(images: torch.Tensor, path: Path, title: str) -> None:
    n = int(len(images) ** 0.5)
    tiles = images[: n * n].reshape(n, n, 28, 28).permute(0, 2, 1, 3).reshape(n * 28, n * 28)
    plt.figure(figsize=(4, 4))
    plt.imshow(tiles.cpu().numpy(), cmap="gray_r", interpolation="nearest")
    plt.title(title)
    plt.axis("off")
    plt.savefig(path, bbox_inches="tight", dpi=120)
    plt.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--test-points", type=int, default=1000)
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    try:
        train = dgm.data.binarized_mnist("train").to(device)
        test = dgm.data.binarized_mnist("test").to(device)
    except dgm.data.DataNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    model, guide = dgm.models.vae.one_layer()
    model.to(device)
    guide.to(device)
    model.set_output_bias(train.mean(0))
    print(f"training IWAE (K=5) for {args.minutes:g} min on {device} ...", flush=True)
    result = dgm.train.fit(
        model,
        guide,
        dgm.IWAE(5),
        train,
        epochs=1000,
        batch_size=100,
        lr=1e-3,
        progress=True,
        time_limit=60 * args.minutes,
    )
    t0 = time.perf_counter()
    x = test[: args.test_points]
    ll = dgm.metrics.log_likelihood(model, guide, x, num_particles=1000, batch_size=50)
    terms = dgm.metrics.elbo_terms(model, guide, x)
    au = dgm.metrics.active_units(guide, test)
    args.out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), dgm.trace() as tr:
        model(num_samples=64)
    grid(
        torch.sigmoid(model.decoder(tr["z"].value)),
        args.out / "samples.png",
        "samples (pixel means)",
    )
    with torch.no_grad(), dgm.trace() as q:
        guide(x[:32])
    recon = torch.sigmoid(model.decoder(q["z"].fn.mean)).detach()
    pairs = torch.stack([x[:32], recon], 1).reshape(64, 784)
    grid(pairs, args.out / "reconstructions.png", "data | reconstruction")
    print(
        f"\n{result.steps} steps ({result.epochs:.1f} epochs) in {result.seconds:.0f} s\n"
        f"test log p(x) (K=1000, {len(x)} digits): {ll.mean():.2f} nats  [IWAE paper, 3280 epochs: -87.63]\n"
        f"ELBO {terms.elbo.mean():.2f} = reconstruction {terms.reconstruction.mean():.2f} - KL {terms.kl.mean():.2f}\n"
        f"active units: {au['z']} of 50   (evaluation {time.perf_counter() - t0:.0f} s)\n"
        f"pictures: {args.out / 'samples.png'}, {args.out / 'reconstructions.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
