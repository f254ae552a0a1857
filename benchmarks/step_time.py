"""Per-step training time: dgm eager and compiled against hand-written PyTorch and Pyro.

VAE (K=1, ELBO) and IWAE (K=5, 50) on the IWAE paper's one-layer networks (784-200-200-50,
tanh, Bernoulli decoder), Adam, at batch 20 (the paper's) and 100. Every implementation
uses the same networks and data, and all but two the same optimizer, the fused Adam every
dgm task uses (``dgm.train.optim.adam``); "hand-written, torch.optim.Adam" is the
hand-written step with the default (per-parameter) Adam a tutorial writes, and Pyro uses
its own ``pyro.optim.Adam`` (one torch Adam per parameter):

- hand-written: the bound written directly with tensors (no distribution objects, no
  traces), eager, and with its loss compiled by ``torch.compile``;
- dgm (plain distributions): the model and guide written as a user writes them, with
  ``Independent(Normal(...))`` and ``Independent(Bernoulli(logits=...))``, trained by
  ``dgm.train.SurrogateStep``, eager and with ``step.compiled()`` (``train.compile=on``);
- dgm (dgm.models.vae): the same step on dgm's own VAE programs (fused Bernoulli density);
- Pyro: ``Trace_ELBO`` (K=1) or ``RenyiELBO(alpha=0)`` vectorized over particles (K>1),
  and ``JitTrace_ELBO`` (K=1; Pyro has no JIT Renyi objective).

Every step after each implementation's first runs as ``dgm train`` runs it, with value
checks off (``dgm.checks.validation(False)``: dgm's data checks and torch.distributions'
argument validation, which the loop runs on a run's first step only). Each round runs a few
steps of each implementation in rotating order, so that machine noise hits all alike.
Compiled variants are compiled (and timed) before the rounds. Reported: median ms per step
and ratios to hand-written eager.

    python benchmarks/step_time.py [--rounds 15] [--steps 3] [--batch 20 100] [--particles 1 5 50]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import adam_step, dgm_step, interleaved_medians, write_result

LOG_2PI = math.log(2 * math.pi)
Step = Callable[[torch.Tensor], None]


def make_nets(seed: int = 0) -> tuple[dgm.models.vae.VAEModel, dgm.models.vae.VAEGuide]:
    torch.manual_seed(seed)
    return dgm.models.vae.one_layer()


class PlainModel(nn.Module):
    """p(z) p(x | z) with plain torch.distributions, as the README writes it."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 50), 1.0), 1))
        dgm.sample("x", Independent(Bernoulli(logits=self.decoder(z)), 1), obs=x)


class PlainGuide(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> None:
        loc, log_scale = self.encoder(x).chunk(2, dim=-1)
        dgm.sample("z", Independent(Normal(loc, log_scale.exp()), 1))


def objective(k: int) -> Callable[..., torch.Tensor]:
    return dgm.ELBO(1) if k == 1 else dgm.IWAE(k)


def dgm_vae_step(k: int, programs: str, compiled: bool) -> Step:
    """``dgm.train.SurrogateStep`` as ``dgm train`` runs it (value checks after step 1 off)."""
    model, guide = make_nets()
    if programs == "plain":
        model, guide = PlainModel(model.decoder), PlainGuide(guide.layers[0].net)
    return dgm_step(
        objective(k), (model, guide), [*model.parameters(), *guide.parameters()], compiled
    )


def handwritten_step(k: int, compiled: bool, fused: bool = True) -> Step:
    """The same arithmetic written directly: no distributions, no traces."""
    model, guide = make_nets()
    enc, dec = guide.layers[0].net, model.decoder

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
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
        return -bound.mean()

    params = [*model.parameters(), *guide.parameters()]
    return adam_step(loss_fn, params, compiled, fused=fused)


def pyro_step(k: int, jit: bool) -> Step:
    import pyro
    import pyro.distributions as pdist
    from pyro.infer import SVI, JitTrace_ELBO, RenyiELBO, Trace_ELBO

    model_net, guide_net = make_nets()
    enc, dec = guide_net.layers[0].net, model_net.decoder
    pyro.clear_param_store()

    def model(x: torch.Tensor) -> None:
        pyro.module("dec", dec)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pdist.Normal(x.new_zeros(50), 1.0).to_event(1))
            pyro.sample("x", pdist.Bernoulli(logits=dec(z), validate_args=False).to_event(1), obs=x)

    def guide(x: torch.Tensor) -> None:
        pyro.module("enc", enc)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = enc(x).chunk(2, dim=-1)
            pyro.sample("z", pdist.Normal(loc, log_scale.exp()).to_event(1))

    if k == 1:
        loss = JitTrace_ELBO() if jit else Trace_ELBO()
    else:
        loss = RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)

    def step(x: torch.Tensor) -> None:
        svi.step(x)

    return step


COLUMNS = {
    "hand default adam": (
        "hand-written, eager, torch.optim.Adam",
        lambda k: handwritten_step(k, False, fused=False),
    ),
    "hand eager": ("hand-written, eager (the 1.00x)", lambda k: handwritten_step(k, False)),
    "hand compiled": ("hand-written, compiled", lambda k: handwritten_step(k, True)),
    "dgm eager": ("dgm, plain distributions, eager", lambda k: dgm_vae_step(k, "plain", False)),
    "dgm compiled": (
        "dgm, plain distributions, compiled",
        lambda k: dgm_vae_step(k, "plain", True),
    ),
    "dgm models eager": ("dgm, dgm.models.vae, eager", lambda k: dgm_vae_step(k, "models", False)),
    "pyro": ("Pyro Trace_ELBO / RenyiELBO", lambda k: pyro_step(k, False)),
    "pyro jit": ("Pyro JitTrace_ELBO", lambda k: pyro_step(k, True)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps per implementation per round")
    parser.add_argument("--batch", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--particles", type=int, nargs="+", default=[1, 5, 50])
    parser.add_argument("--no-pyro", action="store_true")
    args = parser.parse_args()
    try:
        import pyro  # noqa: F401

        have_pyro = not args.no_pyro
    except ImportError:
        have_pyro = False
    rows, payload = [], {}
    names = [n for n in COLUMNS if have_pyro or not n.startswith("pyro")]
    for batch in args.batch:
        torch.manual_seed(0)
        x = (torch.rand(batch, 784) < 0.3).float()
        for k in args.particles:
            impls, compile_s = {}, {}
            torch._dynamo.reset()  # each configuration compiles afresh
            for name in names:
                if name == "pyro jit" and k > 1:
                    continue
                impls[name] = COLUMNS[name][1](k)
                t0 = time.perf_counter()
                impls[name](x)  # the first step: compiles the compiled variants
                impls[name](x)
                compile_s[name] = time.perf_counter() - t0
            med = interleaved_medians(impls, x, args.rounds, args.steps)
            base = med["hand eager"]
            label = f"B={batch}, " + ("ELBO K=1" if k == 1 else f"IWAE K={k}")
            payload[label] = {
                n: {"median_s": m, "ratio": m / base, "first_two_steps_s": compile_s[n]}
                for n, m in med.items()
            }
            cells = [
                f"{med[n] * 1e3:.2f} ({med[n] / base:.2f}x)" if n in med else "-" for n in names
            ]
            extra = f"{med['dgm compiled'] / med['hand compiled']:.2f}x"
            rows.append(f"| {label} | " + " | ".join(cells) + f" | {extra} |")
            print(rows[-1], flush=True)
    header = " | ".join(COLUMNS[n][0] for n in names)
    table = (
        "Per-step time in ms (ratio to hand-written eager), one-layer IWAE networks "
        f"(784-200-200-50), Adam; median over {args.rounds} interleaved rounds of {args.steps} "
        "steps. Last column: dgm compiled / hand-written compiled. Compiled means the loss "
        "(forward and backward) compiled by torch.compile (inductor, static shapes), the "
        "optimizer step eager.\n\n"
        f"| step | {header} | dgm compiled / hand compiled |\n"
        "| --- |" + " --- |" * (len(names) + 1) + "\n" + "\n".join(rows)
    )
    path = write_result(
        "step_time", {"rounds": args.rounds, "steps": args.steps, "results": payload}, table
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
