"""Per-step time of Attend-Infer-Repeat: dgm against hand-written PyTorch and Pyro.

The CPU recipe's sizes (``air-multi-mnist-cpu``: 32x32 canvas, 3 steps, 20x20 window, z_what
50, LSTM 256 with a baseline LSTM 256, batch 64) and its estimator: REINFORCE for z_pres with
per-step baselines fitted by least squares, pathwise gradients for z_where and z_what. The
three implementations share the networks (``dgm.models.air``'s modules, the spatial
transformer of ``dgm.nn.spatial``), the data and the optimizer (one fused Adam), and are timed
in interleaved rounds:

- ``dgm``: the model and the guide as programs, ``OBJECTIVES["reinforce"]`` (the task's step);
- ``hand``: the same densities, masks and surrogate written out in PyTorch;
- ``pyro``: the same model and guide written with ``pyro.sample`` under a plate and
  ``poutine.mask``, ``TraceGraph_ELBO`` (per-step ``baseline_value``, Pyro's AIR recipe),
  with the same fused Adam stepping the parameters after ``loss_and_grads``.

    python benchmarks/air_step_time.py [--rounds 20] [--steps 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, write_result
from dgm.models.air import AIRGuide, AIRModel
from dgm.nn.spatial import image_to_window, window_to_image
from dgm.objectives import OBJECTIVES

CANVAS, WINDOW, STEPS, WHAT, BATCH = 32, 20, 3, 50, 64
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def programs() -> tuple[AIRModel, AIRGuide, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model, guide = AIRModel(CANVAS, WINDOW, STEPS, WHAT), AIRGuide(CANVAS, WINDOW, STEPS, WHAT)
    opt = torch.optim.Adam([*model.parameters(), *guide.parameters()], 1e-4, fused=True)
    return model, guide, opt


def dgm_step() -> Callable[[Tensor], None]:
    model, guide, opt = programs()
    objective = OBJECTIVES.build("reinforce")

    def step(x: Tensor) -> None:
        loss = -objective(model, guide, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def normal_lp(v: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - HALF_LOG_2PI).sum(-1)


def hand_step() -> Callable[[Tensor], None]:
    model, guide, opt = programs()
    g, m = guide, model

    def step(x: Tensor) -> None:
        b = x.shape[0]
        images = x.reshape(b, CANVAS, CANVAS)
        image, bl_image = g.rnn.project(x), g.baseline_rnn.project(x)
        h = c = x.new_zeros(b, 256)
        bh = bc = x.new_zeros(b, 256)
        z_where, z_what, presence = x.new_zeros(b, 3), x.new_zeros(b, WHAT), x.new_ones(b)
        log_q, log_p = x.new_zeros(b), x.new_zeros(b)
        canvas = x.new_zeros(b, CANVAS, CANVAS)
        scores = []
        for t in range(STEPS):
            inputs = torch.cat([z_where, z_what, presence[:, None]], -1)
            h, c = g.rnn(image, inputs, h, c)
            out = g.predict(h)
            logit = out[:, 0]
            bh, bc = g.baseline_rnn(bl_image, inputs.detach(), bh, bc)
            baseline = g.baseline_head(bh)[:, 0]
            alive = presence > 0.5
            z = torch.bernoulli(torch.sigmoid(logit.detach()))
            lq_pres = torch.where(
                alive, -F.binary_cross_entropy_with_logits(logit, z, reduction="none"), 0.0
            )
            prior = m.pres_logits[t].expand(b)
            lp_pres = torch.where(
                alive, -F.binary_cross_entropy_with_logits(prior, z, reduction="none"), 0.0
            )
            scores.append((lq_pres, baseline, alive))
            presence = presence * z
            keep = presence > 0.5
            loc = out[:, 1:4] + g.where_loc
            scale = F.softplus(out[:, 4:]) * g.where_scale
            z_where = loc + scale * torch.randn_like(loc)
            window = image_to_window(images, z_where, WINDOW)
            what_loc, what_scale = g.encoder(window.flatten(-2)).chunk(2, -1)
            what_scale = F.softplus(what_scale) + 1e-4
            z_what = what_loc + what_scale * torch.randn_like(what_loc)
            lq = normal_lp(z_where, loc, scale) + normal_lp(z_what, what_loc, what_scale)
            lp = normal_lp(z_where, m.where_loc, m.where_scale) + normal_lp(
                z_what, torch.zeros_like(z_what), torch.ones_like(z_what)
            )
            log_q = log_q + lq_pres + torch.where(keep, lq, 0.0)
            log_p = log_p + lp_pres + torch.where(keep, lp, 0.0)
            canvas = canvas + presence[:, None, None] * window_to_image(
                m.decode(z_what), z_where, CANVAS
            )
        log_p = log_p + normal_lp(x, canvas.flatten(1), torch.full_like(x, 0.3))
        log_w = log_p - log_q
        signal = log_w.detach()
        surrogate = log_w
        for lq_pres, baseline, alive in scores:
            fit = torch.where(alive, -0.5 * (signal - baseline) ** 2, 0.0)
            term = (signal - baseline.detach()) * lq_pres + fit
            surrogate = surrogate + term - term.detach()
        loss = -surrogate.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def pyro_step() -> Callable[[Tensor], None] | None:
    try:
        import pyro
        import pyro.distributions as dist
        from pyro import poutine
        from pyro.infer import TraceGraph_ELBO
    except ImportError:
        return None
    model, guide, opt = programs()
    g, m = guide, model

    def p_model(x: Tensor) -> None:
        pyro.module("model", m)
        b = x.shape[0]
        with pyro.plate("data", b):
            presence = x.new_ones(b)
            canvas = x.new_zeros(b, CANVAS, CANVAS)
            for t in range(STEPS):
                with poutine.mask(mask=presence > 0.5):
                    z = pyro.sample(
                        f"z_pres_{t}",
                        dist.Bernoulli(logits=m.pres_logits[t].expand(b, 1)).to_event(1),
                    )
                presence = presence * z[:, 0]
                with poutine.mask(mask=presence > 0.5):
                    z_where = pyro.sample(
                        f"z_where_{t}",
                        dist.Normal(m.where_loc.expand(b, 3), m.where_scale.expand(b, 3)).to_event(
                            1
                        ),
                    )
                    z_what = pyro.sample(
                        f"z_what_{t}", dist.Normal(x.new_zeros(b, WHAT), 1.0).to_event(1)
                    )
                drawn = window_to_image(m.decode(z_what), z_where, CANVAS)
                canvas = canvas + presence[:, None, None] * drawn
            pyro.sample("x", dist.Normal(canvas.flatten(1), 0.3).to_event(1), obs=x)

    def p_guide(x: Tensor) -> None:
        pyro.module("guide", g)
        b = x.shape[0]
        images = x.reshape(b, CANVAS, CANVAS)
        image, bl_image = g.rnn.project(x), g.baseline_rnn.project(x)
        h = c = x.new_zeros(b, 256)
        bh = bc = x.new_zeros(b, 256)
        z_where, z_what, presence = x.new_zeros(b, 3), x.new_zeros(b, WHAT), x.new_ones(b)
        with pyro.plate("data", b):
            for t in range(STEPS):
                inputs = torch.cat([z_where, z_what, presence[:, None]], -1)
                h, c = g.rnn(image, inputs, h, c)
                out = g.predict(h)
                bh, bc = g.baseline_rnn(bl_image, inputs.detach(), bh, bc)
                baseline = g.baseline_head(bh)[:, 0]
                with poutine.mask(mask=presence > 0.5):
                    z = pyro.sample(
                        f"z_pres_{t}",
                        dist.Bernoulli(logits=out[:, :1]).to_event(1),
                        infer={"baseline": {"baseline_value": baseline}},
                    )
                presence = presence * z[:, 0]
                with poutine.mask(mask=presence > 0.5):
                    loc = out[:, 1:4] + g.where_loc
                    scale = F.softplus(out[:, 4:]) * g.where_scale
                    z_where = pyro.sample(f"z_where_{t}", dist.Normal(loc, scale).to_event(1))
                    window = image_to_window(images, z_where, WINDOW)
                    what_loc, what_scale = g.encoder(window.flatten(-2)).chunk(2, -1)
                    z_what = pyro.sample(
                        f"z_what_{t}",
                        dist.Normal(what_loc, F.softplus(what_scale) + 1e-4).to_event(1),
                    )

    elbo = TraceGraph_ELBO()

    def step(x: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        elbo.loss_and_grads(p_model, p_guide, x)
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = (torch.rand(BATCH, CANVAS * CANVAS) < 0.1).float()
    impls: dict[str, Callable[[Tensor], None]] = {"hand": hand_step(), "dgm": dgm_step()}
    pyro = pyro_step()
    if pyro is not None:
        impls["pyro"] = pyro
    medians = interleaved_medians(impls, x, args.rounds, args.steps)
    hand = medians["hand"]
    lines = [
        "Attend-Infer-Repeat training step (REINFORCE with per-step baselines), the CPU "
        f"recipe's sizes: {CANVAS}x{CANVAS} canvas, {STEPS} steps, window {WINDOW}, z_what "
        f"{WHAT}, LSTMs 256, batch {BATCH}; one fused Adam; one torch thread; median of "
        f"{args.rounds} interleaved rounds of {args.steps} steps.",
        "",
        "| implementation | ms / step | ratio to hand-written |",
        "| --- | --- | --- |",
    ]
    for name, t in medians.items():
        lines.append(f"| {name} | {1000 * t:.1f} | {t / hand:.2f}x |")
    payload = {"ms_per_step": {k: 1000 * v for k, v in medians.items()}}
    print(write_result("air_step_time", payload, "\n".join(lines)).read_text())


if __name__ == "__main__":
    main()
