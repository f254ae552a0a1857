"""The inference-compilation study: learned proposals for non-conjugate polynomial regression.

Train an automatic proposal q(w | t, y) on simulations alone (``Sleep``), then for held-out
data sets compare four ways of drawing from p(w | t, y): samples from the prior, random-walk
Metropolis-Hastings, samples from the proposal, and the proposal's samples after importance
weighting; plus the independence sampler that uses the proposal. Numbers per method: ESS per
sample and per second, log-evidence and its spread over repeats, and the error of the
posterior mean and of the 90% credible interval against a long reference chain.

This is glue like ``runner.py``: the methods live in ``dgm.models`` (the model, ``AutoGuide``),
``dgm.objectives.Sleep`` and ``dgm.infer``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from ..infer import importance_sampling, metropolis_hastings
from ..models import AutoGuide
from ..models.regression import PolynomialRegression, simulate
from ..objectives import Sleep
from ..ppl import condition, trace
from ..report import write_report
from ..train import checkpoint, fit
from ..train.metrics_log import MetricsLog
from . import runner
from .config import ExperimentConfig, from_dict, to_dict


def _data(cfg: ExperimentConfig, n: int, seed: int) -> dict[str, Tensor]:
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


def build(cfg: ExperimentConfig) -> tuple[PolynomialRegression, AutoGuide]:
    """The model and its automatic guide, as ``cfg.model`` describes them."""
    model = PolynomialRegression(cfg.model.degree)
    example = _data(cfg, 2, 0)
    guide = AutoGuide(
        model,
        embedding=cfg.model.embedding,
        hidden=tuple(cfg.model.hidden_sizes[0]) if cfg.model.hidden_sizes else (128, 128),
        components=cfg.model.components,
        **_call(example),
    )
    return model, guide


def train(cfg: ExperimentConfig, run: Path, resume: bool, progress: bool) -> Path:
    """Compile the proposal from simulations, evaluate it, write the report; return its path."""
    if resume and not (run / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(f"cannot resume: {run / 'checkpoints' / 'last.pt'} does not exist")
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    t = cfg.train
    torch.manual_seed(t.seed)
    model, guide = build(cfg)
    sims = _data(cfg, cfg.data.train_points or 50000, t.seed + 1)
    valid = _data(cfg, cfg.data.valid_points, t.seed + 2)

    def validate() -> dict[str, float]:
        with torch.no_grad(), trace() as q, condition({"w": valid["w"]}):
            guide(**_call(valid))
        return {"valid/log_q_true_w": q["w"].log_prob.mean().item()}

    log = MetricsLog(run)
    try:
        result = fit(
            model,
            guide,
            Sleep(observed=["y"]),
            _call(sims, with_y=False),
            optimizer=torch.optim.Adam(guide.parameters(), lr=t.lr, eps=t.adam_eps),
            validate=validate,
            **runner.fit_settings(cfg, run, resume, progress, log),
        )
    finally:
        log.close()
    summary = {
        "train_steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "best_valid": result.best,
    }
    evaluate(run, extra=summary)
    return write_report(run)


def load_run(run: Path) -> tuple[ExperimentConfig, PolynomialRegression, AutoGuide]:
    cfg: ExperimentConfig = from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    model, guide = build(cfg)
    path = run / "checkpoints" / "best.pt"
    if not path.is_file():
        path = run / "checkpoints" / "last.pt"
    guide.load_state_dict(checkpoint.load(path, map_location="cpu")["guide"])
    guide.eval()
    return cfg, model, guide


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


@torch.no_grad()
def evaluate(
    run_dir: str | Path, num_particles: int | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Score every method on held-out data sets; write final_metrics.json and the figure.

    ``num_particles`` overrides ``eval.num_particles`` (importance samples per data set).
    """
    run = Path(run_dir)
    cfg, model, guide = load_run(run)
    e = cfg.eval
    test = _data(cfg, e.datasets, cfg.train.seed + 3)
    call: dict[str, Any] = dict(_call(test))
    k = num_particles or e.num_particles
    torch.manual_seed(cfg.train.seed + 4)
    t0 = time.perf_counter()
    reference = metropolis_hastings(
        model, num_samples=e.reference_samples // 4, warmup=2000, num_chains=4, **call
    )
    ref = _summaries(reference.flat("w"))
    metrics: dict[str, Any] = dict(extra or {})
    metrics["reference_chain"] = {
        "draws": e.reference_samples,
        "max_r_hat": reference.r_hat("w").max().item(),
        "seconds": round(time.perf_counter() - t0, 1),
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
    (run / "final_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _figure(model, test, drawn, run / "posterior_curves.png")
    return metrics


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


__all__ = ["build", "evaluate", "load_run", "train"]
