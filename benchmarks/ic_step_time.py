"""Per-step time of proposal training (inference compilation) on polynomial regression.

One step simulates a batch of B data sets (w ~ Laplace(0, 2)^3, 10 points t ~ U(-2, 2),
y ~ StudentT(4, w0 + w1 t + w2 t^2, 1)) and takes an Adam step on -mean log q(w | t, y), with
the same network everywhere: ``dgm.models.AutoGuide``'s (an MLP embedding 20-128-128 of
(t, y) and a head 128-128-9 giving a full-covariance Gaussian over w).

- dgm: ``dgm.train.SurrogateStep`` with ``dgm.objectives.Sleep(observed=["y"])`` and the
  AutoGuide, eager and compiled (``train.compile=on``);
- hand-written PyTorch: the same simulation and loss written directly, batched, eager and
  with the loss compiled by ``torch.compile``;
- Pyro CSIS as shipped: one simulated data set per model call, ``training_batch_size=B``
  (its loop runs in Python);
- Pyro CSIS with a plate: the model and guide vectorized over the B data sets with
  ``pyro.plate``, ``training_batch_size=1``.

    python benchmarks/ic_step_time.py [--batch 256] [--rounds 20]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.distributions import Laplace, MultivariateNormal, StudentT

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import adam_step, dgm_step, interleaved_medians, write_result
from dgm.models import AutoGuide
from dgm.models.regression import PolynomialRegression, simulate


def network(pool: torch.Tensor) -> tuple[PolynomialRegression, AutoGuide]:
    torch.manual_seed(0)
    model = PolynomialRegression()
    t, y, _, _ = simulate(model, 2, 10)
    return model, AutoGuide(model, t=t, y=y)


def head(guide: AutoGuide, t: torch.Tensor, y: torch.Tensor) -> MultivariateNormal:
    out = guide.heads[0](guide.embed(torch.cat([t, y], -1)))
    return MultivariateNormal(out[..., :3], scale_tril=guide._tril(out[..., 3:], 3))


def dgm_ic_step(pool: torch.Tensor, batch: int, compiled: bool) -> Callable[[int], None]:
    model, guide = network(pool)
    objective = dgm.objectives.Sleep(observed=["y"])
    update = dgm_step(objective, (model, guide), list(guide.parameters()), compiled)

    def step(i: int) -> None:
        update({"t": pool[(i * batch) % len(pool) :][:batch]})

    return step


def handwritten_step(pool: torch.Tensor, batch: int, compiled: bool) -> Callable[[int], None]:
    _, guide = network(pool)
    powers = torch.arange(3)

    def loss(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            w = Laplace(0.0, 2.0).sample((batch, 3))
            mean = (t.unsqueeze(-1) ** powers * w.unsqueeze(-2)).sum(-1)
            y = mean + StudentT(4.0).sample(t.shape)
        return -head(guide, t, y).log_prob(w).mean()

    update = adam_step(loss, list(guide.parameters()), compiled)

    def step(i: int) -> None:
        update(pool[(i * batch) % len(pool) :][:batch])

    return step


def pyro_step(pool: torch.Tensor, batch: int, plate: bool) -> Callable[[int], None]:
    import pyro
    import pyro.distributions as pdist
    from pyro.infer import CSIS

    _, guide_net = network(pool)
    pyro.clear_param_store()
    powers = torch.arange(3)

    def model(t: torch.Tensor, observations: dict | None = None) -> None:
        obs = (observations or {}).get("y")
        if plate:
            with pyro.plate("datasets", t.shape[0]):
                w = pyro.sample("w", pdist.Laplace(t.new_zeros(t.shape[0], 3), 2.0).to_event(1))
                mean = (t.unsqueeze(-1) ** powers * w.unsqueeze(-2)).sum(-1)
                pyro.sample("y", pdist.StudentT(4.0, mean, 1.0).to_event(1), obs=obs)
        else:
            w = pyro.sample("w", pdist.Laplace(t.new_zeros(3), 2.0).to_event(1))
            mean = (t.unsqueeze(-1) ** powers * w).sum(-1)
            pyro.sample("y", pdist.StudentT(4.0, mean, 1.0).to_event(1), obs=obs)

    def guide(t: torch.Tensor, observations: dict | None = None) -> None:
        pyro.module("guide", guide_net)
        y = (observations or {})["y"]
        q = head(guide_net, t, y)
        if plate:
            with pyro.plate("datasets", t.shape[0]):
                pyro.sample("w", pdist.MultivariateNormal(q.loc, scale_tril=q.scale_tril))
        else:
            pyro.sample("w", pdist.MultivariateNormal(q.loc, scale_tril=q.scale_tril))

    csis = CSIS(
        model,
        guide,
        pyro.optim.Adam({"lr": 1e-3}),
        num_inference_samples=10,
        training_batch_size=1 if plate else batch,
    )

    def step(i: int) -> None:
        # the placeholder observation marks y as observed; CSIS replaces it by simulations
        if plate:
            t = pool[(i * batch) % len(pool) :][:batch]
        else:
            t = pool[i % len(pool)]  # one t per step: CSIS re-simulates w and y B times
        csis.step(t, observations={"y": torch.zeros_like(t)})

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3, help="steps per implementation per round")
    parser.add_argument("--no-pyro", action="store_true")
    args = parser.parse_args()
    try:
        import pyro  # noqa: F401

        have_pyro = not args.no_pyro
    except ImportError:
        have_pyro = False
    torch.manual_seed(0)
    pool = (torch.rand(100 * args.batch, 10) * 4 - 2).sort(-1).values
    impls = {
        "hand-written": handwritten_step(pool, args.batch, False),
        "hand-written compiled": handwritten_step(pool, args.batch, True),
        "dgm": dgm_ic_step(pool, args.batch, False),
        "dgm compiled": dgm_ic_step(pool, args.batch, True),
    }
    if have_pyro:
        impls["Pyro CSIS (as shipped)"] = pyro_step(pool, args.batch, plate=False)
        impls["Pyro CSIS (plate)"] = pyro_step(pool, args.batch, plate=True)
    counters = dict.fromkeys(impls, 0)

    def counted(name: str) -> Callable[[torch.Tensor], None]:
        def run(_: torch.Tensor) -> None:
            impls[name](counters[name])
            counters[name] += 1

        return run

    med = interleaved_medians({n: counted(n) for n in impls}, pool, args.rounds, args.steps)
    base = med["hand-written"]
    rows = [f"| {n} | {m * 1e3:.2f} | {m / base:.2f}x |" for n, m in med.items()]
    table = (
        f"Proposal training step for polynomial regression, {args.batch} simulated data sets of "
        f"10 points per step; median over {args.rounds} interleaved rounds of "
        f"{args.steps} steps. Hand-written and dgm use the fused Adam of dgm's tasks, Pyro its "
        "own; compiled: the loss (simulation, forward and backward) compiled by "
        "torch.compile.\n\n| implementation | ms / step | / hand-written |\n"
        "| --- | --- | --- |\n" + "\n".join(rows)
    )
    path = write_result(
        "ic_step_time",
        {"batch": args.batch, "rounds": args.rounds, "results": {n: m for n, m in med.items()}},
        table,
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
