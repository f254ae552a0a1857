"""Per-step time of the GAN task's step against a hand-written PyTorch step doing the same
arithmetic: the same networks (weights copied), one critic update on a fresh batch, then one
generator update, Adam for both; interleaved in one process, medians of rounds, as ratios.

Rows: PacGAN's 2-D networks (non-saturating GAN, and PacGAN4 with 400 points per step),
WGAN-GP (5 critic updates with the gradient penalty), and the DCGAN on 28x28 images. The
hand-written step is what a user writes without dgm: ``torch.randn`` noise, ``torch.cat``
of real and fake for one critic forward, ``F.softplus`` losses, ``autograd.grad`` for the
penalty.

    python benchmarks/gan_step_time.py [--rounds 15 --steps 10]
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, write_result
from dgm import experiments
from dgm.experiments.runner import create

ROWS: dict[str, tuple[str, list[str]]] = {
    "gan (PacGAN 2-D nets, batch 100)": ("gan-ring", []),
    "pacgan4 (400 points per step)": ("gan-ring", ["model.pack=4", "train.batch_size=400"]),
    "wgan-gp (5 critic updates)": (
        "gan-ring",
        [
            "model.critic_loss=wasserstein",
            "model.generator_loss=wasserstein",
            "model.gradient_penalty=10",
            "model.critic_steps=5",
        ],
    ),
    "dcgan (28x28, batch 64)": ("gan-fashion-dcgan", ["data.train_points=2048"]),
}


def hand_written(parts: dict[str, nn.Module], cfg: object) -> Callable[[list[Tensor]], None]:
    """The same update written directly: copies of the task's networks (their ``net``s, with
    the packing reshape inline), plain Adam, plain losses."""
    m = cfg.model  # type: ignore[attr-defined]
    lr, critic_lr = cfg.train.lr, m.critic_lr or cfg.train.lr  # type: ignore[attr-defined]
    gen_net = copy.deepcopy(parts["generator"].net)
    critic_net = copy.deepcopy(parts["critic"].net)
    shape, latent, pack = parts["generator"].shape, parts["generator"].latent_size, m.pack
    betas = (m.beta1, m.beta2)
    opt_c = torch.optim.Adam(critic_net.parameters(), critic_lr, betas)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr, betas)
    wasserstein = m.critic_loss == "wasserstein"
    image = len(shape) == 3

    def critic(x: Tensor) -> Tensor:
        b = x.shape[0] // pack
        packed = x.reshape(b, pack * shape[0], *shape[1:]) if image else x.reshape(b, -1)
        return critic_net(packed).squeeze(-1)

    def generate(n: int) -> Tensor:
        return gen_net(torch.randn(n, latent)).reshape(n, *shape)

    def step(batches: list[Tensor]) -> None:
        for x in batches:
            x = x.reshape(len(x), *shape)
            with torch.no_grad():
                fake = generate(len(x))
            scores = critic(torch.cat([x, fake]))
            real_s, fake_s = scores[: len(x) // pack], scores[len(x) // pack :]
            if wasserstein:
                loss = fake_s.mean() - real_s.mean()
                e = (
                    torch.rand(len(x) // pack)
                    .repeat_interleave(pack)
                    .reshape(-1, *[1] * len(shape))
                )
                x_hat = (e * x + (1 - e) * fake).requires_grad_(True)
                (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
                gp = (g.reshape(len(x) // pack, -1).norm(dim=1) - 1).pow(2).mean()
                loss = loss + m.gradient_penalty * gp
            else:
                loss = F.softplus(-real_s).mean() + F.softplus(fake_s).mean()
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
        fake_s = critic(generate(len(batches[-1])))
        g_loss = -fake_s.mean() if wasserstein else F.softplus(-fake_s).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, payload = [], {}
    for label, (name, sets) in ROWS.items():
        torch.manual_seed(0)
        cfg = experiments.load(name, sets)
        task = create(cfg)
        data = task.data()
        parts = task.build(data)
        dgm_step = task.step(parts, task.optimizers(parts), lambda m: m)
        hand = hand_written(parts, cfg)
        n = dgm_step.num_batches
        batches = [
            data.train[i * cfg.train.batch_size : (i + 1) * cfg.train.batch_size] for i in range(n)
        ]
        medians = interleaved_medians(
            {"dgm": dgm_step, "hand-written": hand},
            batches,  # type: ignore[arg-type]
            args.rounds,
            args.steps,
        )
        ratio = medians["dgm"] / medians["hand-written"]
        payload[label] = {**medians, "ratio": ratio}
        rows.append(
            f"| {label} | {1000 * medians['dgm']:.2f} | {1000 * medians['hand-written']:.2f} | {ratio:.2f}x |"
        )
        print(rows[-1], flush=True)
    table = (
        f"Median seconds per training step over {args.rounds} interleaved rounds of "
        f"{args.steps} steps, {args.threads} torch thread(s); dgm: the `gan` task's "
        "AlternatingStep; hand-written: the same networks and updates in plain PyTorch.\n\n"
        "| workload | dgm ms | hand-written ms | dgm / hand-written |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
    )
    path = write_result("gan_step_time", payload, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
