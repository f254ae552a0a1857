"""Typed run configuration: dataclass sections, YAML, and validated ``key=value`` overrides.

A run's configuration is a ``RunConfig`` subclass that a task defines: the keys every run
has (``name``, ``description``, ``task``, ``train``, ``smoke``) and the task's own sections
(``data``, ``model`` ...). A field can declare its valid choices (``choice(TABLE)``, listed
from a registry) and its range (``at_least(n)``) in its metadata; everything else a
configuration must satisfy is its ``check()`` method. This module names no task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..compiling import COMPILE_MODES, TORCH_COMPILE_MODES
from ..options import (
    UnknownOptionError,
    above,
    at_least,
    choice,
    option_names,
    read_when,
    resumable,
)
from ..train.distributed import DEVICES
from ..train.loop import Schedule
from ..train.lr_schedule import LR_SCHEDULES, lr_schedule


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


class RunKindError(ValueError):
    """A command that does not apply to this kind of run (e.g. images from a regression study)."""


class UnknownKeyError(ConfigError):
    """A key the configuration does not have; ``key`` and ``options`` let callers add context.

    The suggestion prefers a close key in the same section, then the same name in another
    section (``train.num_particles`` -> ``objective.num_particles``), then any close key; the
    message lists the keys of the section the key names (or the sections, for a top-level
    key), not every key.
    """

    def __init__(self, key: str, options: list[str], candidates: list[str] | None = None) -> None:
        self.key, self.options = key, options
        section = key.rpartition(".")[0]
        # candidates: the keys to suggest from (those of every component, where a section
        # chose one); options: the keys of the chosen ones, listed
        hint = _suggestion(key, candidates or options)
        listed = [k for k in options if section and k.startswith(section + ".")]
        if listed:
            where = f"Valid keys of {section}: {', '.join(listed)}"
        else:
            top = [k for k in options if "." not in k]
            sections = list(dict.fromkeys(k.split(".")[0] for k in options if "." in k))
            where = f"Valid keys: {', '.join(top)}; sections: {', '.join(sections)}"
        super().__init__(f"unknown config key {key!r}.{hint} {where}")


# names other libraries use for dgm's keys, suggested before spelling neighbours
ALIASES = {
    "learning_rate": "lr",
    "lr_scheduler": "lr_schedule",
    "scheduler": "lr_schedule",
    "max_epochs": "epochs",
    "max_steps": "steps",
}


def _suggestion(key: str, options: list[str]) -> str:
    section, _, leaf = key.rpartition(".")
    same = [k for k in options if k.rpartition(".")[0] == section]
    alias = (section + "." if section else "") + ALIASES.get(leaf, "")
    if leaf in ALIASES and alias in same:
        return f" Did you mean {alias!r}?"
    close = difflib.get_close_matches(leaf, [k.rpartition(".")[2] for k in same], n=1, cutoff=0.8)
    if close:
        return f" Did you mean {(section + '.' if section else '') + close[0]!r}?"
    elsewhere = [k for k in options if k.rpartition(".")[2] == leaf and k != key]
    if elsewhere:
        return " Did you mean " + " or ".join(repr(k) for k in elsewhere) + "?"
    close = difflib.get_close_matches(key, same, n=1, cutoff=0.5) or difflib.get_close_matches(
        key, options, n=1, cutoff=0.5
    )
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Component:
    """A section that is one component of a table, chosen by its ``name`` (a tagged union):
    the keys it takes are the chosen component's ``Options`` fields.

    ``names`` limits the table's choices (e.g. the objectives that train a model on data);
    ``variants`` gives a task's own options class for some names (the VAE's bounds also take
    MCMC-from-q settings).
    """

    table: Any  # a dgm.registry.Registry whose entries have options classes
    default: str
    names: Callable[[], Collection[str]] | None = None
    variants: Mapping[str, type] = field(default_factory=dict)

    def choices(self) -> dict[str, type]:
        """``name -> Options class`` for every valid name."""
        names = self.names() if self.names is not None else list(self.table)
        return {n: self.variants.get(n) or self.table[n].options for n in names}

    def make(self, name: str, values: Mapping[str, Any], key: str, root: type | None = None) -> Any:
        """The options of component ``name`` from ``values`` (types checked), under ``key``."""
        choices = self.choices()
        if name not in choices:
            raise ConfigError(_not_one_of(f"{key}.{self.table.tag}", name, list(choices)))
        tag = self.table.tag
        cls = choices[name]
        return from_dict({**values, tag: name}, cls, key + ".", root or cls, component=self)


def component(
    table: Any,
    default: str,
    names: Callable[[], Collection[str]] | None = None,
    variants: Mapping[str, type] | None = None,
    resumable: bool = False,
) -> Any:
    """A section holding one component of ``table`` (``dgm.registry.Registry``), chosen by its
    ``name`` (``default`` when the file does not say); see ``Component``."""
    spec = Component(table, default, names, dict(variants or {}))
    return field(
        default_factory=lambda: spec.choices()[default](**{table.tag: default}),
        metadata={"component": spec, "resumable": resumable},
    )


def extended(table: Any, names: Collection[str], mixin: type) -> dict[str, type]:
    """For each of ``names``, its options class in ``table`` with the fields of ``mixin`` (a
    kw-only dataclass) added: a task's own settings of some components, as ``component``'s
    ``variants`` (the VAE's bounds take MCMC from q's settings, AIR's site-baseline
    estimators the per-step baselines'). Names sharing an options class share the result."""
    made: dict[type, type] = {}
    for name in names:
        base = table[name].options
        if base not in made:
            cls = type(
                f"{mixin.__name__}{base.__name__}", (mixin, base), {"__doc__": mixin.__doc__}
            )
            made[base] = dataclass(kw_only=True)(cls)
    return {name: made[table[name].options] for name in names}


def component_of(f: dataclasses.Field[Any]) -> Component | None:
    """The ``Component`` a field declares, or ``None``."""
    return f.metadata.get("component")


class ComponentKeyError(ConfigError):
    """A key the chosen component does not take (another component of the section may, or
    another section: ``candidates``, the configuration's keys)."""

    def __init__(
        self, key: str, spec: Component, name: str, candidates: Collection[str] = ()
    ) -> None:
        section, _, leaf = key.rpartition(".")
        tag, choices = spec.table.tag, spec.choices()
        takers = [n for n, c in choices.items() if leaf in option_names(c) and n != name]
        err = UnknownOptionError(spec.table.kind, name, leaf, choices[name], section + ".", tag)
        hint = f"; {leaf} is an option of {section}.{tag}={' or '.join(takers)}" if takers else ""
        elsewhere = [
            k
            for k in candidates
            if k.rpartition(".")[2] == leaf and not k.startswith(section + ".")
        ]
        if elsewhere:
            hint += f" (did you mean {' or '.join(repr(k) for k in elsewhere)}?)"
        super().__init__(f"{err}{hint}")
        self.key = key


def _not_one_of(key: str, value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key}: {value!r} is not one of {', '.join(options)}{hint}"


def resumable_keys(cls: type, prefix: str = "", inherited: bool = False) -> list[str]:
    """The dotted keys of ``cls`` that may change on resume (``resumable`` fields, and every
    key of a ``resumable`` section; for a component section, of any of its components)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        allowed = inherited or bool(f.metadata.get("resumable"))
        t = hints[f.name]
        spec = component_of(f)
        if spec is not None:
            for c in spec.choices().values():
                keys += resumable_keys(c, f"{prefix}{f.name}.", allowed)
            keys = list(dict.fromkeys(keys))
        elif dataclasses.is_dataclass(t):
            keys += resumable_keys(t, f"{prefix}{f.name}.", allowed)  # type: ignore[arg-type]
        elif allowed:
            keys.append(prefix + f.name)
    return keys


@contextlib.contextmanager
def config_errors(
    section: str, keys: Collection[str], renames: dict[str, str] | None = None
) -> Iterator[None]:
    """Re-raise a constructor's ``ValueError`` as a ``ConfigError`` under ``section``.

    Constructors state a rule about one argument as ``"<argument> must ..."``; when the
    argument is (after ``renames``) one of the section's ``keys``, the message is re-keyed
    (``flow_length must be >= 1`` in section ``model`` -> ``model.flow_length must be >= 1``),
    else prefixed with the section. This is how a rule is written once, in the constructor,
    and still reported before training under the key that set it.
    """
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        first, _, rest = str(err).partition(" ")
        key = (renames or {}).get(first, first)
        if key in keys and rest:
            raise ConfigError(f"{section}.{key} {rest}") from None
        raise ConfigError(f"{section}: {err}") from None


def options_of(f: dataclasses.Field[Any]) -> list[str] | None:
    """The valid choices a field declares, or ``None``."""
    options = f.metadata.get("choices")
    if options is None:
        return None
    return list(options() if callable(options) else options)


@dataclass(kw_only=True)
class TrainConfig:
    """The training loop (``dgm.train.loop``) and the optimizers' common settings."""

    steps: int | None = at_least(1, None, resumable=True)
    epochs: float | None = above(0, 10.0, resumable=True)
    batch_size: int = at_least(1, 100)
    lr: float = above(0, 1e-3, resumable=True)
    lr_schedule: str = choice(LR_SCHEDULES, "constant", resumable=True)
    # the factor a decaying schedule ends at (None: its own)
    lr_final: float | None = read_when(
        lambda t: t.lr_schedule != "constant", "train.lr_schedule decays", resumable(None)
    )
    adam_eps: float = above(0, 1e-8)
    grad_clip: float | None = above(0, None)
    seed: int = at_least(0, 0)
    log_every: int = at_least(1, 50, resumable=True)
    validate_every: int = at_least(1, 500, resumable=True)
    checkpoint_every: int = at_least(1, 500, resumable=True)
    # early stopping: validations without improvement
    patience: int | None = at_least(1, None, resumable=True)
    time_limit: float | None = above(0, None, resumable=True)  # seconds
    device: str = choice(DEVICES, "auto")
    # torch.compile for the step's losses (dgm.compiling): auto compiles on CUDA only
    compile: str = choice(COMPILE_MODES, "auto", resumable=True)
    compile_mode: str = read_when(
        lambda t: t.compile != "off",
        "train.compile is on or auto",
        choice(TORCH_COMPILE_MODES, "default", resumable=True),
    )

    def schedule(self) -> Schedule:
        """The loop's schedule: the fields this section shares with ``Schedule``."""
        return Schedule(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Schedule)})


@dataclass(kw_only=True)
class RunConfig:
    """The keys every run has; a task's configuration subclasses it with its own sections.

    ``smoke`` holds ``key: value`` overrides for a seconds-long run (``dgm train --smoke``);
    ``protocols`` named sets of them (``dgm train --protocol paper``: e.g. a paper's published
    schedule beside the packaged CPU recipe).
    """

    name: str = resumable("experiment")
    description: str = resumable("")
    task: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    smoke: dict[str, Any] = resumable(factory=dict)
    protocols: dict[str, dict[str, Any]] = resumable(factory=dict)

    def check(self) -> None:
        """Rules between fields that types, choices and ranges do not express."""
        if (self.train.steps is None) == (self.train.epochs is None):
            raise ConfigError("set exactly one of train.steps and train.epochs (the other to null)")
        try:
            lr_schedule(self.train.lr_schedule, self.train.lr_final)
        except ValueError as err:
            raise ConfigError(f"train.{err}") from None


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every settable dotted key of a configuration, e.g. ``train.lr``: of an instance, the
    keys of the components it chose; of a class, those of any component."""
    keys = []
    cls = cfg if isinstance(cfg, type) else type(cfg)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t, spec = hints[f.name], component_of(f)
        value = None if isinstance(cfg, type) else getattr(cfg, f.name)
        if spec is not None and value is None:
            for c in spec.choices().values():
                keys += valid_keys(c, f"{prefix}{f.name}.")
            keys = list(dict.fromkeys(keys))
        elif dataclasses.is_dataclass(t):
            keys += valid_keys(t if value is None else value, f"{prefix}{f.name}.")
        elif not (prefix == "" and f.name == "task"):
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
        if isinstance(value, bool):
            # YAML reads a bare on / off (and true, yes ...) as a boolean: a string field
            # takes it back as "on" / "off" (train.compile=on); a field whose choices lack
            # them refuses it with its choices
            return "on" if value else "off"
    raise ConfigError(f"{key}: expected {_type_name(t)}, got {value!r} ({type(value).__name__})")


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def from_dict(
    raw: Any,
    cls: type,
    prefix: str = "",
    root: type | None = None,
    component: Component | None = None,
) -> Any:
    """Build a configuration dataclass from nested dicts, checking keys, types and presence.

    A component section (``component(...)``) may be a mapping with ``name`` or just the name.
    """
    root = root or cls
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        if k not in fields:
            if component is not None:
                tag = raw[component.table.tag]
                raise ComponentKeyError(prefix + str(k), component, tag, valid_keys(root))
            raise UnknownKeyError(prefix + str(k), valid_keys(root))
        t, spec = hints[k], component_of(fields[k])
        if spec is not None:
            tag = spec.table.tag
            v = {tag: v} if isinstance(v, str) else (v or {})
            if not isinstance(v, dict):
                raise ConfigError(f"{prefix}{k}: expected a mapping with a {tag}, got {v!r}")
            kwargs[k] = spec.make(v.get(tag, spec.default), v, prefix + k, root)
        elif dataclasses.is_dataclass(t):
            kwargs[k] = from_dict(v or {}, t, f"{prefix}{k}.", root)  # type: ignore[arg-type]
        else:
            kwargs[k] = _coerce(v, t, prefix + k)
    for name, f in fields.items():
        if name in kwargs or not _required(f):
            continue
        t = hints[name]
        if dataclasses.is_dataclass(t):  # a required section: report its first missing key
            kwargs[name] = from_dict({}, t, f"{prefix}{name}.", root)  # type: ignore[arg-type]
            continue
        options = options_of(f)
        listed = f": one of {', '.join(options)}" if options else ""
        raise ConfigError(f"{prefix}{name} is required{listed}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dicts (for YAML): the run's own keys first, ``train``, ``smoke`` and
    ``protocols`` last."""
    raw: dict[str, Any] = dataclasses.asdict(cfg)
    first: dict[str, Any] = {k: raw.pop(k) for k in ("name", "description", "task") if k in raw}
    last: dict[str, Any] = {k: raw.pop(k) for k in ("train", "smoke", "protocols") if k in raw}
    return {**first, **raw, **last}


def apply_override(cfg: Any, assignment: str) -> None:
    """Apply one ``key=value`` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(
            f"override {assignment!r} is not of the form key=value (e.g. train.lr=3e-4)"
        )
    key, text = assignment.split("=", 1)
    key = key.strip()
    if key == "task":
        raise ConfigError("task is chosen by the experiment file (its `task:` key), not by --set")
    whole = _section(cfg, key.split("."))[1]
    if whole is not None:
        key += "." + whole.table.tag  # model.posterior=iaf: the component, by name
    *parents, leaf = key.split(".")
    owner, spec = _section(cfg, parents)
    keys = valid_keys(cfg)
    if key not in keys:
        if spec is not None and owner is not None:
            chosen = getattr(getattr(owner, parents[-1]), spec.table.tag)
            raise ComponentKeyError(key, spec, chosen, valid_keys(type(cfg)))
        raise UnknownKeyError(key, keys, valid_keys(type(cfg)))
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{key}: cannot parse {text!r}: {e}") from None
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    if spec is not None and owner is not None and leaf == spec.table.tag:
        # another component: its own options, at their defaults
        setattr(owner, parents[-1], spec.make(_coerce(value, str, key), {}, ".".join(parents)))
        return
    target: Any = cfg
    for p in parents:
        target = getattr(target, p)
    hint = typing.get_type_hints(type(target))[leaf]
    setattr(target, leaf, _coerce(value, hint, key))


def _section(cfg: Any, parents: list[str]) -> tuple[Any, Component | None]:
    """The object holding section ``parents`` and, if that section is a component, its spec."""
    owner: Any = None
    target: Any = cfg
    for p in parents:
        if not dataclasses.is_dataclass(target) or not hasattr(target, p):
            return None, None
        owner, target = target, getattr(target, p)
    if owner is None:
        return None, None
    fields = {f.name: f for f in dataclasses.fields(owner)}
    return owner, component_of(fields[parents[-1]]) if parents[-1] in fields else None


def apply_overrides(cfg: Any, assignments: Sequence[str]) -> None:
    """Apply ``key=value`` overrides in place, a component's name (``objective.name=rws``,
    or ``model.prior=mog``) before any options (a changed name starts that section from the
    new component's defaults)."""

    def names(assignment: str) -> bool:
        path = assignment.partition("=")[0].strip().split(".")
        whole, spec = _section(cfg, path)[1], _section(cfg, path[:-1])[1]
        return whole is not None or (spec is not None and path[-1] == spec.table.tag)

    first = [a for a in assignments if names(a)]
    for assignment in [*first, *(a for a in assignments if a not in first)]:
        apply_override(cfg, assignment)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def apply_smoke(cfg: Any) -> None:
    """Apply the configuration's own ``smoke`` overrides."""
    apply_overrides(cfg, assignments(cfg.smoke))


def apply_protocol(cfg: Any, protocol: str) -> None:
    """Apply the configuration's own overrides of the protocol ``protocol``."""
    if protocol not in cfg.protocols:
        known = ", ".join(sorted(cfg.protocols)) or "none"
        raise ConfigError(
            f"--protocol {protocol}: this experiment's protocols are: {known} (its `protocols:` "
            "section names each with the settings it changes)"
        )
    apply_overrides(cfg, assignments(cfg.protocols[protocol]))


def assignments(settings: dict[str, Any]) -> list[str]:
    """``{key: value}`` as ``key=value`` overrides (values written as YAML)."""
    out = []
    for k, v in settings.items():
        text = yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
        out.append(f"{k}={text}")
    return out


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [v for item in value for v in _numbers(item)]
    return [] if value is None or isinstance(value, bool) else [value]


def _check_range(key: str, value: Any, minimum: float | None, above: float | None) -> None:
    """``minimum`` (inclusive) and ``above`` (exclusive, finite) for a number or nested lists."""
    numbers = _numbers(value)
    if minimum is not None and any(not v >= minimum for v in numbers):
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    if above is not None and any(not (math.isfinite(v) and v > above) for v in numbers):
        raise ConfigError(f"{key} must be a finite number > {above}, got {value}")


def validate(cfg: Any, prefix: str = "") -> None:
    """Check every field's declared choices and range, then the configuration's ``check()``."""
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            validate(value, key + ".")
            continue
        options = options_of(f)
        items = value if isinstance(value, list) else [value]  # a list field: every item
        for item in items if value is not None else []:
            if options is not None and item not in options:
                raise ConfigError(_not_one_of(key, item, options))
        _check_range(key, value, f.metadata.get("min"), f.metadata.get("gt"))
        when = f.metadata.get("when")
        if when is not None and not when[0](cfg) and value != _default(f):
            raise ConfigError(
                f"{key} is read only when {when[1]}; here it would be ignored: leave it out, "
                "or set that too"
            )
    if prefix == "":
        cfg.check()


def reset_unread(cfg: Any) -> None:
    """Put back at their defaults the settings nothing reads in ``cfg`` (a ``read_when``
    condition that fails): a run directory's configuration written before they were
    refused holds such values, which had no effect on that run."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            reset_unread(value)
        when = f.metadata.get("when")
        if when is not None and not when[0](cfg):
            setattr(cfg, f.name, _default(f))


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


__all__ = [
    "Component",
    "ComponentKeyError",
    "ConfigError",
    "RunConfig",
    "RunKindError",
    "TrainConfig",
    "UnknownKeyError",
    "above",
    "apply_override",
    "apply_overrides",
    "apply_protocol",
    "apply_smoke",
    "at_least",
    "choice",
    "component",
    "component_of",
    "config_errors",
    "extended",
    "from_dict",
    "reset_unread",
    "resumable",
    "resumable_keys",
    "to_dict",
    "valid_keys",
    "validate",
]
