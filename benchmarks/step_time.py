"""Per-step training time: dgm against hand-written PyTorch and Pyro, interleaved in one process.

VAE (K=1, ELBO) and IWAE (K=5, K=50) on the IWAE paper's one-layer networks
(784-200-200-50, tanh, Bernoulli decoder), batch 100, Adam. The three implementations use
identical networks and data; each round runs a few steps of each, in rotating order, so that
machine noise hits all of them alike. Reported: median seconds per step and ratios.

    python benchmarks/step_time.py [--rounds 30] [--steps 5] [--no-pyro]
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
from common import interleaved_medians, write_result

LOG_2PI = math.log(2 * math.pi)


def make_nets(seed: int) -> tuple[dgm.models.vae.VAEModel, dgm.models.vae.VAEGuide]:
    torch.manual_seed(seed)
    return dgm.models.vae.one_layer()


def dgm_step(num_particles: int) -> Callable[[torch.Tensor], None]:
    """dgm's training step as ``dgm train`` runs it: ``dgm.train.SurrogateStep``."""
    model, guide = make_nets(0)
    opt = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-3)
    objective = dgm.ELBO(1) if num_particles == 1 else dgm.IWAE(num_particles)
    update = dgm.train.SurrogateStep(objective, (model, guide), [opt])

    def step(x: torch.Tensor) -> None:
        update([x])

    return step


def handwritten_step(num_particles: int) -> Callable[[torch.Tensor], None]:
    """The same arithmetic written directly: no distributions, no traces."""
    model, guide = make_nets(0)
    enc, dec = guide.layers[0].net, model.decoder
    opt = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-3)
    k = num_particles

    def step(x: torch.Tensor) -> None:
        loc, log_scale = enc(x).chunk(2, dim=-1)
        eps = torch.randn((k, *loc.shape))
        z = loc + log_scale.exp() * eps
        log_q = (-0.5 * eps.pow(2) - log_scale - 0.5 * LOG_2PI).sum(-1)
        log_prior = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
        logits = dec(z)
        log_lik = -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)
        log_w = log_lik + log_prior - log_q
        bound = log_w.mean(0) if k == 1 else torch.logsumexp(log_w, 0) - math.log(k)
        loss = -bound.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def pyro_step(num_particles: int) -> Callable[[torch.Tensor], None]:
    import pyro
    import pyro.distributions as pdist
    from pyro.infer import SVI, RenyiELBO, Trace_ELBO

    model_net, guide_net = make_nets(0)
    enc, dec = guide_net.layers[0].net, model_net.decoder
    pyro.clear_param_store()

    class PyroVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = enc, dec

        def model(self, x: torch.Tensor) -> None:
            pyro.module("dec", self.dec)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", pdist.Normal(x.new_zeros(50), 1.0).to_event(1))
                pyro.sample(
                    "x", pdist.Bernoulli(logits=self.dec(z), validate_args=False).to_event(1), obs=x
                )

        def guide(self, x: torch.Tensor) -> None:
            pyro.module("enc", self.enc)
            with pyro.plate("data", x.shape[0]):
                loc, log_scale = self.enc(x).chunk(2, dim=-1)
                pyro.sample("z", pdist.Normal(loc, log_scale.exp()).to_event(1))

    vae = PyroVAE()
    if num_particles == 1:
        loss = Trace_ELBO()
    else:
        loss = RenyiELBO(
            alpha=0, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
        )
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)

    def step(x: torch.Tensor) -> None:
        svi.step(x)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="steps per implementation per round")
    parser.add_argument("--particles", type=int, nargs="+", default=[1, 5, 50])
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
    for k in args.particles:
        impls = {"hand-written": handwritten_step(k), "dgm": dgm_step(k)}
        if have_pyro:
            impls["pyro"] = pyro_step(k)
        med = interleaved_medians(impls, x, args.rounds, args.steps)
        base = med["hand-written"]
        label = "VAE (ELBO, K=1)" if k == 1 else f"IWAE K={k}"
        payload[label] = {n: {"median_s": m, "ratio": m / base} for n, m in med.items()}
        pyro_cells = (
            f" {med['pyro'] * 1e3:.2f} | {med['pyro'] / base:.2f}x |" if have_pyro else " - | - |"
        )
        rows.append(
            f"| {label} | {base * 1e3:.2f} | {med['dgm'] * 1e3:.2f} | {med['dgm'] / base:.2f}x |{pyro_cells}"
        )
        print(rows[-1], flush=True)
    table = (
        "Per-step time, one-layer IWAE networks (784-200-200-50), batch 100, Adam; median over "
        f"{args.rounds} interleaved rounds of {args.steps} steps.\n\n"
        "| objective | hand-written ms | dgm ms | dgm / hand | Pyro ms | Pyro / hand |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    path = write_result(
        "step_time", {"rounds": args.rounds, "steps": args.steps, "results": payload}, table
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
