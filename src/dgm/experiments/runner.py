"""Run an experiment: data, model and guide, objective, training, evaluation, pictures, report.

This is glue between the library's parts, driven by an ``ExperimentConfig``; the methods
themselves live in ``dgm.models``, ``dgm.objectives``, ``dgm.train`` and ``dgm.metrics``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from .. import data as datasets
from ..distributions import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from ..flows import AutoregressivePrior
from ..infer import HMC
from ..metrics import (
    active_units,
    effective_sample_size,
    elbo_terms,
    gradient_stats,
    log_likelihood,
)
from ..models.posteriors import FlowLayer, FullCovarianceLayer, GaussianLayer
from ..models.sbn import SBNGuide, SBNModel
from ..models.vae import VAEGuide, VAEModel
from ..nn import MLP
from ..objectives import (
    ELBO,
    IWAE,
    NVIL,
    RWS,
    Concrete,
    MCMCFromQ,
    WakeSleep,
    iwae,
    log_weights,
)
from ..ppl import replay, trace
from ..report import image_grid, write_report
from ..train import checkpoint, distributed, fit
from ..train.metrics_log import MetricsLog
from .config import ExperimentConfig, RunKindError, from_dict, to_dict


@dataclass
class Splits:
    """Train / validation / test tensors ``[N, D]`` and the image shape for pictures."""

    train: Tensor
    valid: Tensor
    test: Tensor
    image_shape: tuple[int, int]
    transform: Any = None


def load_data(cfg: ExperimentConfig) -> Splits:
    """The data set named by ``cfg.data``, split and cut to the configured sizes."""
    d = cfg.data
    if d.name == "dsprites":
        total = (d.train_points or 50000) + d.valid_points + d.test_points
        images = datasets.dsprites(total, seed=cfg.train.seed).images
        n_valid, n_test = d.valid_points, d.test_points
        return Splits(
            images[n_valid + n_test :],
            images[:n_valid],
            images[n_valid : n_valid + n_test],
            (64, 64),
        )
    if d.name == "binarized_mnist":
        train = datasets.binarized_mnist("train", d.data_dir)
        valid = datasets.binarized_mnist("valid", d.data_dir)[: d.valid_points]
        test = datasets.binarized_mnist("test", d.data_dir)[: d.test_points]
        return Splits(train[: d.train_points], valid, test, (28, 28))
    loader = datasets.mnist if d.name == "mnist" else datasets.fashion_mnist
    gen = torch.Generator().manual_seed(cfg.train.seed)
    train_all, _ = loader("train", d.data_dir)
    test_all, _ = loader("test", d.data_dir)
    train, valid = train_all[:50000], train_all[50000:][: d.valid_points]
    test = test_all[: d.test_points]
    transform = None
    if d.binarize == "dynamic":
        # a fresh binarization of every training batch; fixed draws for validation and test
        transform = datasets.dynamic_binarize
        valid, test = datasets.dynamic_binarize(valid, gen), datasets.dynamic_binarize(test, gen)
    elif d.binarize == "threshold":
        train, valid, test = ((t > 0.5).float() for t in (train, valid, test))
    return Splits(train[: d.train_points], valid, test, (28, 28), transform)


Programs = tuple[VAEModel, VAEGuide] | tuple[SBNModel, SBNGuide]


def build(cfg: ExperimentConfig, data_size: int) -> Programs:
    """The model and guide that ``cfg.model`` describes."""
    m = cfg.model
    if m.name == "sbn":
        return SBNModel(data_size, m.latent_sizes), SBNGuide(data_size, m.latent_sizes)
    hidden = [tuple(h) for h in m.hidden_sizes]
    guide = VAEGuide(
        data_size,
        m.latent_sizes,
        hidden,
        m.activation,
        m.posterior,
        m.flow_length,
        tuple(m.flow_hidden),
    )
    prior = build_prior(cfg, guide, data_size)
    model = VAEModel(data_size, m.latent_sizes, hidden, m.likelihood, m.activation, prior)
    return model, guide


def build_prior(cfg: ExperimentConfig, guide: VAEGuide, data_size: int) -> nn.Module:
    """The prior over the top latent layer that ``cfg.model.prior`` names."""
    m = cfg.model
    dim = m.latent_sizes[-1]
    if m.prior == "mog":
        return MixtureOfGaussiansPrior(dim, m.prior_components or 10)
    if m.prior == "vamp":
        encoder = guide.layers[0]
        assert isinstance(encoder, GaussianLayer | FullCovarianceLayer | FlowLayer)
        # the Gaussian part of q: a flow posterior's base (a mixture needs closed-form parts)
        return VampPrior(encoder.base, data_size, m.prior_components or 500)
    if m.prior == "maf":
        return AutoregressivePrior(dim, m.prior_flow_length, tuple(m.flow_hidden))
    return StandardNormalPrior(dim)


def build_objective(cfg: ExperimentConfig, data_size: int) -> Any:
    """The training objective that ``cfg.objective`` names (see ``config.OBJECTIVES``)."""
    o = cfg.objective
    if o.hmc_steps:
        kernel = HMC(
            num_leapfrog=o.hmc_leapfrog,
            step_size=o.hmc_step_size,
            target_accept=o.hmc_target_accept,
            shared_step_size=True,
            min_adapt_rate=0.01,
        )
        return MCMCFromQ(kernel, o.hmc_steps, o.num_particles, o.name)
    if o.name in ("elbo", "reinforce"):
        return ELBO(o.num_particles)
    if o.name in ("iwae", "vimco"):
        return IWAE(o.num_particles, o.dreg)
    if o.name == "rws":
        return RWS(o.num_particles, o.phi)
    if o.name == "wake-sleep":
        return WakeSleep()
    if o.name == "nvil":
        baseline = MLP((data_size, o.baseline_hidden, 1), cfg.model.activation)
        return NVIL(baseline, o.num_particles)
    if o.name == "concrete":
        return Concrete(o.num_particles, o.temperature)
    raise ValueError(f"unknown objective {o.name!r}")


def fit_settings(
    cfg: ExperimentConfig, run: Path, resume: bool, progress: bool, log: MetricsLog | None
) -> dict[str, Any]:
    """The ``fit`` arguments that ``cfg.train`` sets (budget, logging, validation, checkpoints)."""
    t = cfg.train
    return {
        "steps": t.steps,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "grad_clip": t.grad_clip,
        "seed": t.seed,
        "log_every": t.log_every,
        "progress": progress,
        "time_limit": t.time_limit,
        "validate_every": t.validate_every,
        "patience": t.patience,
        "checkpoint_dir": run / "checkpoints",
        "checkpoint_every": t.checkpoint_every,
        "resume": resume,
        "log": log,
    }


def train(
    cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> Path:
    """Train and evaluate ``cfg`` into ``run_dir``; return the path of ``report.html``.

    Under torchrun every process trains its share of each batch (DistributedDataParallel);
    rank 0 logs, checkpoints, evaluates and writes the report.
    """
    run = Path(run_dir)
    if cfg.model.name == "polyreg":
        from . import regression_study

        return regression_study.train(cfg, run, resume, progress)
    device = distributed.local_device(cfg.train.device)
    world = distributed.init(device)
    if resume and not (run / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(f"cannot resume: {run / 'checkpoints' / 'last.pt'} does not exist")
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    torch.manual_seed(cfg.train.seed)
    splits = load_data(cfg)
    model, guide = build(cfg, splits.train.shape[1])
    model.to(device)
    guide.to(device)
    if cfg.model.likelihood == "bernoulli":
        model.set_output_bias(splits.train.mean(0).to(device))
    valid = splits.valid.to(device)
    t = cfg.train

    objective = build_objective(cfg, splits.train.shape[1])
    if isinstance(objective, nn.Module):
        objective.to(device)
    probe = splits.train[: min(t.batch_size, 100)].to(device)

    def validate() -> dict[str, float]:
        k = t.valid_particles
        with torch.no_grad():
            lw = log_weights(model, guide, valid, num_particles=k)
            metrics = {
                f"valid/iwae_k{k}": iwae(lw).mean().item(),
                f"valid/ess_k{k}": effective_sample_size(lw.log_w).mean().item(),
            }
        if isinstance(objective, nn.Module):
            objective.eval()  # measuring must not move NVIL's running statistics
        stats = gradient_stats(objective, model, guide, probe, num_draws=t.grad_stats_draws)
        if isinstance(objective, MCMCFromQ):
            metrics.update({f"valid/{k}": v for k, v in objective.diagnostics().items()})
        metrics["valid/guide_grad_snr"] = stats.snr
        metrics["valid/guide_grad_variance"] = stats.total_variance
        return metrics

    model_params = [*model.parameters()]
    if isinstance(objective, nn.Module):
        model_params += list(objective.parameters())
    if t.guide_lr is None:
        optimizer: Any = torch.optim.Adam(
            [*model_params, *guide.parameters()], lr=t.lr, eps=t.adam_eps
        )
    else:  # the model and the guide each with their own Adam (wake-sleep style)
        optimizer = [
            torch.optim.Adam(model_params, lr=t.lr, eps=t.adam_eps),
            torch.optim.Adam(guide.parameters(), lr=t.guide_lr, eps=t.adam_eps),
        ]
    log = MetricsLog(run) if world.is_main else None
    try:
        result = fit(
            model,
            guide,
            objective,
            splits.train,
            optimizer=optimizer,
            transform=splits.transform,
            validate=validate,
            world=world,
            **fit_settings(cfg, run, resume, progress, log),
        )
    finally:
        if log is not None:
            log.close()
    distributed.shutdown()  # rank 0 evaluates alone; the others may exit
    if not world.is_main:
        return run / "report.html"
    summary = {
        "train_steps": result.steps,
        "train_epochs": round(result.epochs, 3),
        "train_seconds": round(result.seconds, 1),
        "best_valid": result.best,
        "stopped_early": result.stopped_early,
    }
    evaluate(run, extra=summary)
    return write_report(run)


def load_run(
    run_dir: str | Path, which: str = "best", device: str | None = None
) -> tuple[ExperimentConfig, nn.Module, nn.Module, Splits]:
    """Config, trained model and guide, and data of a run directory."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{run} is not a dgm run directory (no config.yaml); give the --out directory of `dgm train`"
        )
    cfg: ExperimentConfig = from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    if cfg.model.name == "polyreg":
        raise RunKindError(
            f"{run} is a polynomial-regression study: it has no images to sample; its "
            "figures are in posterior_curves.png and report.html (dgm eval re-runs the study)"
        )
    path = run / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        path = run / "checkpoints" / "last.pt"
    dev = distributed.local_device(cfg.train.device if device is None else device)
    state = checkpoint.load(path, map_location=dev)
    splits = load_data(cfg)
    model, guide = build(cfg, splits.train.shape[1])
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    model.to(dev).eval()
    guide.to(dev).eval()
    return cfg, model, guide, splits


def evaluate(
    run_dir: str | Path, num_particles: int | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Test log-likelihood, ELBO terms and active units of a run; write final_metrics.json and pictures."""
    run = Path(run_dir)
    if _kind(run) == "polyreg":
        from . import regression_study

        return regression_study.evaluate(run, num_particles, extra=extra or _kept_summary(run))
    cfg, model, guide, splits = load_run(run)
    k = num_particles or cfg.eval.num_particles
    test = splits.test.to(next(model.parameters()).device)
    t0 = time.perf_counter()
    ll = log_likelihood(model, guide, test, num_particles=k, batch_size=cfg.eval.batch_size)
    terms = elbo_terms(model, guide, test)
    metrics = dict(extra or {})
    previous = run / "final_metrics.json"
    if not metrics and previous.is_file():
        metrics = {
            key: v
            for key, v in json.loads(previous.read_text()).items()
            if key.startswith(("train_", "best_", "stopped_"))
        }
    metrics.update(
        {
            f"test_log_likelihood_k{k}": ll.mean().item(),
            "test_log_likelihood_stderr": (ll.std() / math.sqrt(len(ll))).item()
            if len(ll) > 1
            else 0.0,
            "test_elbo": terms.elbo.mean().item(),
            "test_reconstruction": terms.reconstruction.mean().item(),
            "test_kl": terms.kl.mean().item(),
            "active_units": active_units(guide, test),
            "test_points": len(test),
            "eval_seconds": round(time.perf_counter() - t0, 1),
        }
    )
    (run / "final_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_pictures(run, model, guide, splits)
    return metrics


def _kind(run: Path) -> str:
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{run} is not a dgm run directory (no config.yaml); give the --out directory of `dgm train`"
        )
    return str(
        (yaml.safe_load((run / "config.yaml").read_text()) or {})
        .get("model", {})
        .get("name", "vae")
    )


def _kept_summary(run: Path) -> dict[str, Any]:
    """The training summary of an earlier evaluation, kept when re-evaluating."""
    previous = run / "final_metrics.json"
    if not previous.is_file():
        return {}
    return {
        key: v
        for key, v in json.loads(previous.read_text()).items()
        if key.startswith(("train_", "best_", "stopped_"))
    }


@torch.no_grad()
def save_pictures(
    run: Path, model: nn.Module, guide: nn.Module, splits: Splits, num_samples: int = 64
) -> None:
    """samples.png (pixel means of x ~ p(x | z), z ~ p(z)) and reconstructions.png."""
    sample_images(model, num_samples, splits.image_shape, run / "samples.png")
    x = splits.test[:32].to(next(model.parameters()).device)
    with trace() as q:
        guide(x)
    with trace() as p, replay(q):
        model(x)
    recon = p["x"].fn.mean
    pairs = torch.stack([x, recon], 1).reshape(2 * len(x), -1)
    image_grid(
        pairs,
        splits.image_shape,
        run / "reconstructions.png",
        "data (left) | reconstruction (right)",
        columns=16,
    )


@torch.no_grad()
def sample_images(model: nn.Module, n: int, image_shape: tuple[int, int], path: Path) -> Path:
    """Draw ``n`` samples from the model and save their pixel means as a grid."""
    with trace() as tr:
        model(num_samples=n)
    return image_grid(tr["x"].fn.mean, image_shape, path, f"{n} samples (pixel means)")
