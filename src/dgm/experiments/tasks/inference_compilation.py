"""The inference-compilation task: learned proposals for non-conjugate polynomial regression.

Train an automatic proposal q(w | t, y) on simulations alone (``Sleep``), then for held-out
data sets compare four ways of drawing from p(w | t, y): samples from the prior, random-walk
Metropolis-Hastings, samples from the proposal, and the proposal's samples after importance
weighting; plus the independence sampler that uses the proposal. Numbers per method: ESS per
sample and per second, log-evidence and its spread over repeats, and the error of the
posterior mean and of the 90% credible interval against a long reference chain.

YAML: ``task: inference-compilation`` with ``data`` (how many simulated data sets),
``model`` (the regression and the proposal), ``train`` and ``eval`` (the study's budget).
The methods live in ``dgm.models`` (the model, ``AutoGuide``), ``dgm.objectives.Sleep`` and
``dgm.infer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...infer import importance_sampling, metropolis_hastings
from ...models import AutoGuide
from ...models.auto_guide import EMBEDDINGS
from ...models.regression import PolynomialRegression, simulate
from ...objectives import OBJECTIVES
from ...ppl import condition, trace
from ...train import Step, SurrogateStep
from ...train.optim import adam
from ..config import (
    ConfigError,
    RunConfig,
    RunKindError,
    at_least,
    choice,
    config_errors,
    resumable,
)
from ..task import Parts, Picture, Task, Wrap


@dataclass(kw_only=True)
class SimulationConfig:
    """How many data sets are simulated to train the proposal, and to validate it."""

    train_points: int = at_least(1, 50000)
    valid_points: int = at_least(1, 1000)


@dataclass(kw_only=True)
class RegressionModelConfig:
    """The regression (``dgm.models.regression``) and its proposal (``dgm.models.AutoGuide``)."""

    degree: int = at_least(1, 2)
    points: int = at_least(1, 10)  # points per data set (the maximum, with variable_points)
    variable_points: bool = False  # 3..points points per data set (needs embedding: set)
    embedding: str = choice(EMBEDDINGS, "mlp")
    components: int = at_least(1, 1)  # mixture components of the proposal
    hidden: list[int] = at_least(1, factory=lambda: [128, 128])  # proposal widths


@dataclass(kw_only=True)
class StudyConfig:
    """The study's budget on held-out data sets."""

    num_particles: int = at_least(1, 5000)  # importance samples per data set
    datasets: int = at_least(1, 50)  # held-out data sets scored (the first four are drawn)
    curves: int = at_least(1, 30)  # curves drawn per panel
    mcmc_samples: int = at_least(4, 4000)  # MH draws per data set (4 chains)
    repeats: int = at_least(1, 5)  # importance-sampling repeats for the log-evidence spread
    reference_samples: int = at_least(4, 40000)  # the long reference chain's draws per data set


@dataclass(kw_only=True)
class InferenceCompilationConfig(RunConfig):
    """An inference-compilation study."""

    task: str = "inference-compilation"
    data: SimulationConfig = field(default_factory=SimulationConfig)
    model: RegressionModelConfig = field(default_factory=RegressionModelConfig)
    eval: StudyConfig = resumable(factory=StudyConfig)

    def check(self) -> None:
        super().check()
        if self.train.batch_size > self.data.train_points:
            raise ConfigError(
                f"train.batch_size {self.train.batch_size} is larger than the "
                f"{self.data.train_points} simulated data sets (data.train_points)"
            )
        if self.model.variable_points and self.model.embedding != "set":
            raise ConfigError(
                "model.variable_points needs model.embedding=set (a permutation-invariant "
                "embedding that ignores padding)"
            )


@dataclass
class Simulations:
    """Simulated data sets: ``t``, ``y``, ``w`` (and ``mask``) for training, validation, test."""

    train: dict[str, Tensor]
    valid: dict[str, Tensor]
    transform: Callable[[Tensor], Tensor] | None = None


def _data(cfg: InferenceCompilationConfig, n: int, seed: int) -> dict[str, Tensor]:
    model = PolynomialRegression(cfg.model.degree)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the weights and the noise use the global generator
    t, y, mask, w = simulate(model, n, cfg.model.points, cfg.model.variable_points, g)
    out = {"t": t, "y": y, "w": w}
    if mask is not None:
        out["mask"] = mask
    return out


def _call(d: dict[str, Tensor], with_y: bool = True) -> dict[str, Tensor]:
    keys = ("t", "y", "mask") if with_y else ("t", "mask")
    return {k: d[k] for k in keys if k in d}


class InferenceCompilationTask(Task[InferenceCompilationConfig]):
    """A proposal compiled from simulations, against prior sampling and MH."""

    name = "inference-compilation"
    Config = InferenceCompilationConfig
    legacy_model = "polyreg"

    @classmethod
    def upgrade(cls, raw: dict[str, Any], resolved: bool) -> dict[str, Any]:
        # before tasks: data.name and objective.name were fixed to polyreg and sleep, and the
        # proposal's widths were the first entry of model.hidden_sizes
        data, model = raw.get("data"), raw.get("model")
        if isinstance(data, dict) and data.get("name") == "polyreg":
            del data["name"]
        if isinstance(raw.get("objective"), dict) and raw["objective"].get("name") == "sleep":
            del raw["objective"]
        if isinstance(model, dict) and "hidden_sizes" in model:
            hidden = model.pop("hidden_sizes")
            if hidden:
                model["hidden"] = hidden[0]
        return super().upgrade(raw, resolved)

    @classmethod
    def check(cls, cfg: InferenceCompilationConfig) -> None:
        keys = list(vars(cfg.model))
        with torch.random.fork_rng(), config_errors("model", keys):
            cls(cfg).build(None)

    def device(self) -> torch.device:
        """The study runs on the CPU: small sequential tensors (simulator, chains)."""
        return torch.device("cpu")

    def data(self) -> Simulations:
        seed, d = self.cfg.train.seed, self.cfg.data
        sims = _data(self.cfg, d.train_points, seed + 1)
        valid = _data(self.cfg, d.valid_points, seed + 2)
        return Simulations(_call(sims, with_y=False), valid)

    def build(self, data: Any, training: bool = True) -> Parts:
        """The model and its automatic guide (built from a fixed example: RNG untouched)."""
        m = self.cfg.model
        model = PolynomialRegression(m.degree)
        with torch.random.fork_rng():
            example = _data(self.cfg, 2, 0)
            guide = AutoGuide(
                model,
                embedding=m.embedding,
                hidden=tuple(m.hidden),
                components=m.components,
                **_call(example),
            )
        return {"model": model, "guide": guide}

    def optimizers(self, parts: Parts) -> list[torch.optim.Optimizer]:
        t = self.cfg.train
        return [adam(parts["guide"].parameters(), lr=t.lr, eps=t.adam_eps)]

    def step(self, parts: Parts, optimizers: list[torch.optim.Optimizer], wrap: Wrap) -> Step:
        sleep = OBJECTIVES.build("sleep", observed=["y"])
        programs = (wrap(parts["model"]), wrap(parts["guide"]))
        params = list(parts["guide"].parameters())
        return SurrogateStep(sleep, programs, optimizers, params, self.cfg.train.grad_clip)

    def validate(self, parts: Parts, data: Simulations) -> Callable[[], dict[str, float]]:
        guide, valid = parts["guide"], data.valid

        def validate() -> dict[str, float]:
            with torch.no_grad(), trace() as q, condition({"w": valid["w"]}):
                guide(**_call(valid))
            return {"valid/log_q_true_w": q["w"].log_prob.mean().item()}

        return validate

    @torch.no_grad()
    def evaluate(self, parts: Parts, data: Any) -> dict[str, Any]:
        """Score every method on held-out data sets (``eval.num_particles`` samples each)."""
        model, guide, e, seed = parts["model"], parts["guide"], self.cfg.eval, self.cfg.train.seed
        test = _data(self.cfg, e.datasets, seed + 3)
        call: dict[str, Any] = dict(_call(test))
        k = e.num_particles
        torch.manual_seed(seed + 4)
        t0 = time.perf_counter()
        reference = metropolis_hastings(
            model, num_samples=e.reference_samples // 4, warmup=2000, num_chains=4, **call
        )
        ref = _summaries(reference.flat("w"))
        metrics: dict[str, Any] = {
            "reference_chain": {
                "draws": e.reference_samples,
                "max_r_hat": reference.r_hat("w").max().item(),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        }
        drawn: dict[str, Tensor] = {}
        for name, proposal in (("prior_is", None), ("proposal_is", guide)):
            evidences, seconds = [], 0.0
            for _ in range(e.repeats):
                start = time.perf_counter()
                ws = importance_sampling(model, proposal, num_samples=k, **call)
                seconds += time.perf_counter() - start
                evidences.append(ws.log_evidence)
            seconds /= e.repeats
            ev = torch.stack(evidences)  # [repeats, B]
            ess = ws.ess
            metrics[name] = {
                "ess_per_sample": (ess / k).mean().item(),
                "ess_per_second": (ess / seconds).mean().item(),
                "log_evidence": ev.mean().item(),
                "log_evidence_spread": ev.std(0).mean().item() if e.repeats > 1 else 0.0,
                **_errors(_summaries(ws.values["w"], ws.weights), ref),
            }
            drawn[name] = ws.values["w"][: e.curves]
            if name == "proposal_is":
                drawn["importance_weighted"] = ws.resample(e.curves)["w"]
            else:
                drawn["prior"] = ws.values["w"][: e.curves]
        for name, proposal in (("mh_random_walk", None), ("mh_independence", guide)):
            chains = metropolis_hastings(
                model,
                num_samples=e.mcmc_samples // 4,
                warmup=min(1000, e.mcmc_samples),
                num_chains=4,
                proposal=proposal,
                **call,
            )
            ess = chains.ess("w").min(-1).values  # the worst coordinate, per data set
            draws = chains.flat("w")
            metrics[name] = {
                "ess_per_sample": (ess / draws.shape[0]).mean().item(),
                "ess_per_second": (ess / chains.seconds).mean().item(),
                "accept_rate": chains.accept_rate.mean().item(),
                **_errors(_summaries(draws), ref),
            }
            drawn[name] = draws[-e.curves :]
        metrics["proposal_samples"] = _errors(_summaries(drawn["proposal_is"]), ref)
        metrics["test_datasets"] = e.datasets
        self._drawn = (test, drawn)  # the figure shows these draws
        return metrics

    def sample(self, parts: Parts, data: Any, n: int, path: Path) -> Path:
        raise RunKindError(
            "an inference-compilation study has no images to sample; its figures are in "
            "posterior_curves.png and report.html (dgm eval re-runs the study)"
        )

    def pictures(self, parts: Parts, data: Any, run: Path) -> list[Picture]:
        if getattr(self, "_drawn", None) is None:
            return []
        test, drawn = self._drawn
        _figure(parts["model"], test, drawn, run / "posterior_curves.png")
        return [
            Picture("posterior_curves.png", "Posterior curves per method on held-out data sets")
        ]


def _summaries(draws: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
    """Mean and 5% / 95% quantiles of ``[S, B, D]`` draws (optionally weighted ``[S, B]``)."""
    if weights is None:
        weights = torch.full(draws.shape[:2], 1.0 / draws.shape[0])
    w = weights.unsqueeze(-1).expand_as(draws)
    order = draws.argsort(0)
    sorted_draws, cdf = draws.gather(0, order), w.gather(0, order).cumsum(0)

    def q(p: float) -> Tensor:
        idx = (cdf < p).sum(0, keepdim=True).clamp(max=draws.shape[0] - 1)
        return sorted_draws.gather(0, idx).squeeze(0)

    return {"mean": (w * draws).sum(0), "q05": q(0.05), "q95": q(0.95)}


def _errors(s: dict[str, Tensor], ref: dict[str, Tensor]) -> dict[str, float]:
    width = (ref["q95"] - ref["q05"]).clamp(min=1e-6)
    return {
        "mean_error": (s["mean"] - ref["mean"]).abs().mean().item(),
        "interval_error": ((s["q05"] - ref["q05"]).abs() + (s["q95"] - ref["q95"]).abs())
        .div(2 * width)
        .mean()
        .item(),
    }


def _figure(
    model: nn.Module, test: dict[str, Tensor], drawn: dict[str, Tensor], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert isinstance(model, PolynomialRegression)
    columns = [
        ("prior", "samples from the prior"),
        ("mh_random_walk", "Metropolis-Hastings"),
        ("proposal_is", "samples from the proposal"),
        ("importance_weighted", "after importance weighting"),
    ]
    rows = min(4, test["t"].shape[0])
    fig, axes = plt.subplots(rows, 4, figsize=(14, 3 * rows), squeeze=False, sharex=True)
    grid = torch.linspace(-2.2, 2.2, 100).expand(test["t"].shape[0], 100)
    for r in range(rows):
        mask = test["mask"][r].bool() if "mask" in test else torch.ones_like(test["t"][r]).bool()
        ys = test["y"][r][mask]
        lo, hi = ys.min().item(), ys.max().item()
        pad = max(2.0, 0.3 * (hi - lo))
        for c, (key, title) in enumerate(columns):
            ax = axes[r][c]
            curves = model.curve(drawn[key], grid)[:, r]  # [S, 100]
            for s in range(curves.shape[0]):
                ax.plot(grid[r], curves[s], color="tab:blue", alpha=0.15, lw=1)
            ax.scatter(test["t"][r][mask], ys, color="black", s=12, zorder=3)
            ax.set_ylim(lo - pad, hi + pad)
            if r == 0:
                ax.set_title(title)
    fig.suptitle("Posterior curves w0 + w1 t + w2 t^2 on held-out data sets (rows)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
