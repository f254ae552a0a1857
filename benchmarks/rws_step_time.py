"""Per-step time of reweighted wake-sleep: dgm against hand-written PyTorch and Pyro's RWS.

Two models, K=5 particles, wake-theta + wake-phi, batch 100, one Adam over all parameters
(fused, as in dgm's tasks, for dgm and hand-written; eager and with the loss compiled):
a Gaussian VAE (the IWAE paper's one-layer networks, 784-200-200-50) and a sigmoid belief
network with 200 binary units (linear layers). The three implementations share networks and
data and are timed in interleaved rounds. Pyro's ``ReweightedWakeSleep`` keeps one weight per
particle for the whole minibatch (its documented limitation), so it computes less than the
other two; it is timed as shipped.

    python benchmarks/rws_step_time.py [--rounds 30] [--steps 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import adam_step, dgm_step, interleaved_medians, ratio_cells, write_result

LOG_2PI = math.log(2 * math.pi)
K = 5


def nets(kind: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    if kind == "vae":
        return dgm.models.vae.one_layer()
    return dgm.models.sbn.sbn((200,))


def dgm_rws_step(kind: str, compiled: bool) -> Callable[[torch.Tensor], None]:
    model, guide = nets(kind)
    params = [*model.parameters(), *guide.parameters()]
    return dgm_step(dgm.objectives.RWS(K, "wake"), (model, guide), params, compiled)


def rws_loss(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """-(wake-theta + wake-phi) for [K, B] log-densities at detached samples."""
    wake_theta = torch.logsumexp(log_p - log_q.detach(), 0) - math.log(K)
    w = torch.softmax((log_p - log_q).detach(), 0)
    return -(wake_theta + (w * log_q).sum(0)).mean()


def handwritten_step(kind: str, compiled: bool) -> Callable[[torch.Tensor], None]:
    """The same arithmetic written directly: no distributions objects, no traces."""
    model, guide = nets(kind)
    if kind == "vae":
        enc, dec = guide.layers[0].net, model.decoder

        def log_densities(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            loc, log_scale = enc(x).chunk(2, dim=-1)
            z = (loc + log_scale.exp() * torch.randn((K, *loc.shape))).detach()
            log_q = (-0.5 * ((z - loc) / log_scale.exp()).pow(2) - log_scale - 0.5 * LOG_2PI).sum(
                -1
            )
            log_prior = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
            logits = dec(z)
            log_lik = -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none"
            ).sum(-1)
            return log_prior + log_lik, log_q

    else:
        enc, dec, top = guide.recognition[0], model.generative[0], model.top_logits

        def log_densities(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            q_logits = enc(x)
            h = torch.bernoulli(torch.sigmoid(q_logits).expand(K, *q_logits.shape))
            log_q = -F.binary_cross_entropy_with_logits(
                q_logits.expand_as(h), h, reduction="none"
            ).sum(-1)
            log_prior = -F.binary_cross_entropy_with_logits(
                top.expand_as(h), h, reduction="none"
            ).sum(-1)
            logits = dec(h)
            log_lik = -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none"
            ).sum(-1)
            return log_prior + log_lik, log_q

    params = [*model.parameters(), *guide.parameters()]
    return adam_step(lambda x: rws_loss(*log_densities(x)), params, compiled)


def pyro_step(kind: str) -> Callable[[torch.Tensor], None]:
    import pyro
    import pyro.distributions as pdist
    from pyro.infer import SVI, ReweightedWakeSleep

    model_net, guide_net = nets(kind)
    pyro.clear_param_store()

    if kind == "vae":
        enc, dec = guide_net.layers[0].net, model_net.decoder

        def model(x: torch.Tensor) -> None:
            pyro.module("dec", dec)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", pdist.Normal(x.new_zeros(50), 1.0).to_event(1))
                pyro.sample(
                    "x", pdist.Bernoulli(logits=dec(z), validate_args=False).to_event(1), obs=x
                )

        def guide(x: torch.Tensor) -> None:
            pyro.module("enc", enc)
            with pyro.plate("data", x.shape[0]):
                loc, log_scale = enc(x).chunk(2, dim=-1)
                pyro.sample("z", pdist.Normal(loc, log_scale.exp()).to_event(1))

    else:
        enc, dec = guide_net.recognition[0], model_net.generative[0]
        top = model_net.top_logits

        def model(x: torch.Tensor) -> None:
            pyro.module("dec", model_net)
            with pyro.plate("data", x.shape[0]):
                h = pyro.sample(
                    "h1", pdist.Bernoulli(logits=top.expand(x.shape[0], 200)).to_event(1)
                )
                pyro.sample(
                    "x", pdist.Bernoulli(logits=dec(h), validate_args=False).to_event(1), obs=x
                )

        def guide(x: torch.Tensor) -> None:
            pyro.module("enc", enc)
            with pyro.plate("data", x.shape[0]):
                pyro.sample("h1", pdist.Bernoulli(logits=enc(x)).to_event(1))

    loss = ReweightedWakeSleep(num_particles=K, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)

    def step(x: torch.Tensor) -> None:
        svi.step(x)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="steps per implementation per round")
    parser.add_argument("--no-pyro", action="store_true")
    args = parser.parse_args()
    try:
        import pyro  # noqa: F401

        have_pyro = not args.no_pyro
    except ImportError:
        have_pyro = False
    torch.manual_seed(0)
    x = (torch.rand(100, 784) < 0.3).float()
    rows, payload = [], {}
    names = ["hand-written", "hand-written compiled", "dgm", "dgm compiled"]
    names += ["pyro"] if have_pyro else []
    for kind, label in (("vae", "Gaussian VAE 784-200-200-50"), ("sbn", "SBN 200 binary units")):
        torch._dynamo.reset()
        impls = {
            "hand-written": handwritten_step(kind, False),
            "hand-written compiled": handwritten_step(kind, True),
            "dgm": dgm_rws_step(kind, False),
            "dgm compiled": dgm_rws_step(kind, True),
        }
        if have_pyro:
            impls["pyro"] = pyro_step(kind)
        med = interleaved_medians(impls, x, args.rounds, args.steps)
        base = med["hand-written"]
        payload[label] = {n: {"median_s": m, "ratio": m / base} for n, m in med.items()}
        rows.append(f"| {label} | {ratio_cells(med, names, 'hand-written')} |")
        print(rows[-1], flush=True)
    table = (
        f"Per-step time in ms (ratio to hand-written eager) of reweighted wake-sleep (K={K}, "
        f"wake-theta + wake-phi), batch 100; median over {args.rounds} interleaved rounds of "
        f"{args.steps} steps. Hand-written and dgm use the fused Adam of dgm's tasks, Pyro its "
        "own; compiled: the loss (forward and backward) compiled by torch.compile. Pyro's "
        "ReweightedWakeSleep pools the minibatch into one weight per particle.\n\n"
        f"| model | {' | '.join(names)} |\n| --- |" + " --- |" * len(names) + "\n" + "\n".join(rows)
    )
    path = write_result(
        "rws_step_time", {"rounds": args.rounds, "steps": args.steps, "results": payload}, table
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
