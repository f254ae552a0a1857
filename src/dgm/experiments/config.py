"""Typed experiment configuration: dataclasses, YAML, and validated ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


class RunKindError(ValueError):
    """A command that does not apply to this kind of run (e.g. images from a regression study)."""


@dataclass
class DataConfig:
    """Which data set, how much of it, and how to binarize."""

    name: str = "binarized_mnist"  # binarized_mnist | mnist | fashion_mnist | dsprites | polyreg
    data_dir: str | None = None
    train_points: int | None = None  # a subset of the training set (None: all)
    valid_points: int = 1000
    test_points: int = 1000
    binarize: str | None = None  # mnist / fashion_mnist: dynamic | threshold


@dataclass
class ModelConfig:
    """The programs: a VAE (dgm.models.vae) or a sigmoid belief network (dgm.models.sbn)."""

    name: str = "vae"  # vae | sbn | polyreg
    latent_sizes: list[int] = field(default_factory=lambda: [50])  # sbn: binary layer sizes
    hidden_sizes: list[list[int]] = field(default_factory=lambda: [[200, 200]])  # sbn: []
    likelihood: str = "bernoulli"
    activation: str = "tanh"
    # vae: the posterior family of every layer, and the prior over the top layer
    posterior: str = "diagonal"  # diagonal | full | planar | iaf
    flow_length: int = 2  # planar / iaf steps per layer
    flow_hidden: list[int] = field(default_factory=lambda: [100, 100])  # MADE widths (iaf, maf)
    prior: str = "normal"  # normal | mog | vamp | maf
    prior_components: int | None = None  # mog components (10) / vamp pseudo-inputs (500)
    prior_flow_length: int = 2  # maf steps of the autoregressive prior
    # polyreg (dgm.models.regression, proposal dgm.models.AutoGuide with hidden_sizes[0])
    degree: int = 2
    points: int = 10  # points per data set (the maximum, with variable_points)
    variable_points: bool = False  # 3..points points per data set (needs embedding: set)
    embedding: str = "mlp"  # mlp | set
    components: int = 1  # mixture components of the proposal


@dataclass
class ObjectiveConfig:
    """The training objective (dgm.objectives)."""

    name: str = "iwae"  # see OBJECTIVES
    num_particles: int = 5
    dreg: bool = False  # iwae: the doubly-reparameterized guide gradient
    phi: str = "wake"  # rws: the guide's update, wake | sleep | both
    temperature: float = 0.6667  # concrete: the relaxation's temperature
    baseline_hidden: int = 100  # nvil: hidden units of the baseline network C(x)
    # elbo / iwae: refine q's samples with HMC on p(z | x); the decoder learns from them
    hmc_steps: int = 0  # HMC transitions per training step (0: no refinement)
    hmc_leapfrog: int = 5  # leapfrog steps per transition
    hmc_step_size: float = 0.05  # initial step size (adapted toward hmc_target_accept)
    hmc_target_accept: float = 0.8


OBJECTIVES = {
    "elbo": "the ELBO (score-function terms with a leave-one-out baseline for discrete latents)",
    "reinforce": "the ELBO with score-function gradients (same as elbo; named for discrete models)",
    "iwae": "the importance-weighted bound (VIMCO control variates for discrete latents)",
    "vimco": "the importance-weighted bound with VIMCO control variates (same as iwae)",
    "rws": "reweighted wake-sleep: wake-theta, and objective.phi for the guide",
    "wake-sleep": "the wake-sleep algorithm (one particle, sleep-phi)",
    "nvil": "the ELBO with NVIL's learned baseline and variance normalization",
    "concrete": "the concrete relaxation of the ELBO (K=1) or IWAE bound",
    "sleep": "inference compilation: the guide fitted to the model's simulations",
}


@dataclass
class TrainConfig:
    """The training loop (dgm.train.fit)."""

    steps: int | None = None
    epochs: float | None = 10.0
    batch_size: int = 100
    lr: float = 1e-3
    guide_lr: float | None = None  # a separate Adam for the guide (wake-sleep); None: one Adam
    adam_eps: float = 1e-8
    grad_clip: float | None = None
    seed: int = 0
    log_every: int = 50
    validate_every: int = 500
    checkpoint_every: int = 500
    patience: int | None = None  # early stopping: validations without improvement
    valid_particles: int = 50
    grad_stats_draws: int = 10  # gradient draws per validation for the guide's gradient SNR
    time_limit: float | None = None  # seconds
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class EvalConfig:
    """Final evaluation: importance-sampled log-likelihood and latent statistics."""

    num_particles: int = 5000
    batch_size: int = 100
    # polyreg study
    datasets: int = 50  # held-out data sets scored (the first four are drawn)
    curves: int = 30  # curves drawn per panel
    mcmc_samples: int = 4000  # MH draws per data set (4 chains)
    repeats: int = 5  # importance-sampling repeats for the log-evidence spread
    reference_samples: int = 40000  # the long reference chain's draws per data set


@dataclass
class ExperimentConfig:
    """A whole experiment; ``smoke`` holds overrides for a seconds-long run."""

    name: str = "experiment"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    smoke: dict[str, Any] = field(default_factory=dict)


def valid_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every settable dotted key, e.g. ``train.lr``."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            keys += valid_keys(t, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            keys.append(prefix + f.name)
    return keys


def _type_name(t: Any) -> str:
    if t is type(None):
        return "null"
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(t))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(t))}]"
    return getattr(t, "__name__", str(t))


def _coerce(value: Any, t: Any, key: str) -> Any:
    """Check ``value`` against type ``t`` (int widens to float); raise ConfigError if it fails."""
    origin = typing.get_origin(t)
    if t is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(t):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
    elif t is type(None):
        if value is None:
            return None
    elif origin is list:
        (item,) = typing.get_args(t)
        if isinstance(value, list):
            return [_coerce(v, item, key) for v in value]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t is bool:
        if isinstance(value, bool):
            return value
    elif t is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: expected {_type_name(t)}, got {value!r} ({type(value).__name__})")


def _unknown(key: str, options: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(options)}")


def from_dict(raw: dict[str, Any], cls: type = ExperimentConfig, prefix: str = "") -> Any:
    """Build a config dataclass from nested dicts, checking keys and types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        if k not in names:
            raise _unknown(prefix + str(k), valid_keys(ExperimentConfig))
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = from_dict(v or {}, t, f"{prefix}{k}.")  # type: ignore[arg-type]
        else:
            kwargs[k] = _coerce(v, t, prefix + k)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dicts (for YAML)."""
    return dataclasses.asdict(cfg)


def apply_override(cfg: ExperimentConfig, assignment: str) -> None:
    """Apply one ``key=value`` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(
            f"override {assignment!r} is not of the form key=value (e.g. train.lr=3e-4)"
        )
    key, text = assignment.split("=", 1)
    key = key.strip()
    keys = valid_keys()
    if key not in keys:
        raise _unknown(key, keys)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{key}: cannot parse {text!r}: {e}") from None
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    *parents, leaf = key.split(".")
    target: Any = cfg
    for p in parents:
        target = getattr(target, p)
    hint = typing.get_type_hints(type(target))[leaf]
    setattr(target, leaf, _coerce(value, hint, key))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_config(
    path: str | Path, overrides: Sequence[str] = (), smoke: bool = False
) -> ExperimentConfig:
    """Read a YAML experiment, then apply its ``smoke`` overrides (if asked) and ``overrides``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    cfg: ExperimentConfig = from_dict(raw)
    if smoke:
        for k, v in cfg.smoke.items():
            apply_override(
                cfg,
                f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}",
            )
    for assignment in overrides:
        apply_override(cfg, assignment)
    check(cfg)
    return cfg


def check(cfg: ExperimentConfig) -> None:
    """Cross-field checks that types alone do not catch."""
    choices = {
        "data.name": (
            cfg.data.name,
            ("binarized_mnist", "mnist", "fashion_mnist", "dsprites", "polyreg"),
        ),
        "model.name": (cfg.model.name, ("vae", "sbn", "polyreg")),
        "model.embedding": (cfg.model.embedding, ("mlp", "set")),
        "model.likelihood": (cfg.model.likelihood, ("bernoulli", "gaussian")),
        "objective.name": (cfg.objective.name, tuple(OBJECTIVES)),
        "objective.phi": (cfg.objective.phi, ("wake", "sleep", "both")),
        "model.posterior": (cfg.model.posterior, ("diagonal", "full", "planar", "iaf")),
        "model.prior": (cfg.model.prior, ("normal", "mog", "vamp", "maf")),
        "train.device": (cfg.train.device, ("auto", "cpu", "cuda")),
    }
    for key, (value, options) in choices.items():
        if value not in options:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(options)}")
    if (cfg.train.steps is None) == (cfg.train.epochs is None):
        raise ConfigError("set exactly one of train.steps and train.epochs (the other to null)")
    if cfg.model.name == "vae" and len(cfg.model.hidden_sizes) != len(cfg.model.latent_sizes):
        raise ConfigError(
            "model.hidden_sizes needs one list of widths per entry of model.latent_sizes"
        )
    polyreg = (
        cfg.model.name == "polyreg",
        cfg.data.name == "polyreg",
        cfg.objective.name == "sleep",
    )
    if any(polyreg) and not all(polyreg):
        raise ConfigError(
            "the polynomial-regression study needs model.name, data.name and objective.name "
            "set together to polyreg, polyreg and sleep"
        )
    if cfg.model.name == "polyreg" and cfg.model.variable_points and cfg.model.embedding != "set":
        raise ConfigError(
            "model.variable_points needs model.embedding=set (a permutation-invariant "
            "embedding that ignores padding)"
        )
    if cfg.model.name == "sbn":
        if cfg.model.hidden_sizes:
            raise ConfigError(
                "model.hidden_sizes: a sigmoid belief network's layers are linear; set it to [] "
                "and give the binary layers' sizes in model.latent_sizes"
            )
        if cfg.model.likelihood != "bernoulli":
            raise ConfigError("model.likelihood: a sigmoid belief network models binary data")
    if cfg.objective.dreg and cfg.objective.name not in ("iwae", "vimco"):
        raise ConfigError("objective.dreg applies to objective.name=iwae only")
    _check_vae_parts(cfg)
    if not cfg.objective.temperature > 0:
        raise ConfigError(f"objective.temperature must be > 0, got {cfg.objective.temperature}")
    counts = {
        "train.batch_size": cfg.train.batch_size,
        "objective.num_particles": cfg.objective.num_particles,
    }
    for key, count in counts.items():
        if count < 1:
            raise ConfigError(f"{key} must be >= 1, got {count}")
    if cfg.train.grad_stats_draws < 2:
        raise ConfigError(
            f"train.grad_stats_draws must be >= 2 (a variance needs two draws), "
            f"got {cfg.train.grad_stats_draws}"
        )


def _check_vae_parts(cfg: ExperimentConfig) -> None:
    """Posterior, prior and HMC refinement: what combines with what."""
    m, o = cfg.model, cfg.objective
    rich = (m.posterior != "diagonal", m.prior != "normal", o.hmc_steps != 0)
    if m.name != "vae" and any(rich):
        raise ConfigError(
            "model.posterior, model.prior and objective.hmc_steps apply to model.name=vae; "
            "leave them at diagonal, normal and 0"
        )
    if o.dreg and m.posterior in ("planar", "iaf"):
        raise ConfigError(
            f"objective.dreg re-scores the guide's samples under a detached copy of q, which "
            f"needs q's inverse; a {m.posterior} flow has none (or a slow one): use "
            "model.posterior=diagonal or full, or objective.dreg=false"
        )
    if m.prior == "vamp" and len(m.latent_sizes) != 1:
        raise ConfigError(
            "model.prior=vamp mixes the encoder's posteriors at pseudo-inputs: it needs one "
            "stochastic layer (model.latent_sizes with one entry)"
        )
    if m.prior_components is not None and m.prior_components < 1:
        raise ConfigError(f"model.prior_components must be >= 1, got {m.prior_components}")
    lengths = {"model.flow_length": m.flow_length, "model.prior_flow_length": m.prior_flow_length}
    for key, n in lengths.items():
        if n < 1:
            raise ConfigError(f"{key} must be >= 1, got {n}")
    flows = m.posterior == "iaf" or m.prior == "maf"
    if flows and any(w < max(m.latent_sizes) - 1 for w in m.flow_hidden):
        raise ConfigError(
            f"model.flow_hidden: every MADE width must be >= latent size - 1 "
            f"({max(m.latent_sizes) - 1}) so that each input reaches the later outputs; "
            f"got {m.flow_hidden}"
        )
    if o.hmc_steps < 0:
        raise ConfigError(f"objective.hmc_steps must be >= 0, got {o.hmc_steps}")
    if o.hmc_steps:
        if o.name not in ("elbo", "iwae"):
            raise ConfigError(
                "objective.hmc_steps (MCMC from q) refines samples for objective.name=elbo or "
                f"iwae, not {o.name}"
            )
        if len(m.latent_sizes) != 1:
            raise ConfigError(
                "objective.hmc_steps moves one latent site: use one stochastic layer "
                "(model.latent_sizes with one entry)"
            )
        if o.dreg:
            raise ConfigError("objective.hmc_steps and objective.dreg do not combine")
        if o.hmc_leapfrog < 1 or not o.hmc_step_size > 0 or not 0 < o.hmc_target_accept < 1:
            raise ConfigError(
                "objective.hmc_leapfrog must be >= 1, objective.hmc_step_size > 0 and "
                "objective.hmc_target_accept in (0, 1)"
            )
