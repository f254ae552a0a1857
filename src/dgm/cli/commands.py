"""The ``dgm`` command: train, eval, sample, report, list."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import experiments, progress
from ..compiling import CompileError
from ..data import ChecksumError, DataNotFoundError
from ..experiments import rundir
from ..experiments.config import ConfigError, RunKindError
from ..experiments.rundir import RunDirectoryError, RunLock
from ..progress import say
from ..train import NonFiniteLossError
from ..train.checkpoint import CheckpointError
from ..train.distributed import DEVICES

# Errors that are the user's to fix: printed as one clear message, no traceback.
USER_ERRORS = (
    ConfigError,
    DataNotFoundError,
    ChecksumError,
    NonFiniteLossError,
    FileNotFoundError,
    RunKindError,
    RunDirectoryError,
    CheckpointError,
    CompileError,
)


# what a write to a read-only, forbidden or full place fails with
WRITE_ERRORS = (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _no_progress(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (on a terminal) or progress lines (in a log)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dgm", description="Deep generative models and amortized inference."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train an experiment into a run directory",
        description="Train a packaged experiment (see `dgm list`) or a YAML file.",
    )
    t.add_argument("experiment", help="experiment name or path to a .yaml file")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=3e-4 (repeatable)",
    )
    t.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<time>)")
    t.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="if --out holds a run, move it aside (OUT.archived-<time>) and start afresh",
    )
    t.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long run with the experiment's smoke settings",
    )
    t.add_argument(
        "--protocol",
        metavar="NAME",
        help="train by one of the experiment's named protocols (its `protocols:` section, "
        "e.g. `paper`: the published schedule) instead of its packaged recipe",
    )
    t.add_argument(
        "--device",
        choices=DEVICES,
        help="where to train (default: the config's train.device)",
    )
    _no_progress(t)

    e = sub.add_parser(
        "eval",
        help="evaluate a trained run",
        description="Re-run a trained run's evaluation (its task's final metrics and pictures).",
    )
    e.add_argument("run_dir", type=Path)
    e.add_argument(
        "--num-particles",
        type=_positive,
        help="particles of the evaluation, i.e. --set eval.num_particles=N "
        "(default: the config's eval.num_particles)",
    )
    e.add_argument(
        "--estimator",
        choices=("iwae", "ais"),
        help="log p(x) estimator, i.e. --set eval.estimator=NAME: ais adds annealed importance "
        "sampling beside the importance-sampled estimate, and the BDMC gap on simulated data",
    )
    e.add_argument(
        "--ais-steps",
        type=_positive,
        help="AIS transitions from q to p(z | x), i.e. --set eval.ais_steps=N",
    )
    e.add_argument(
        "--chains", type=_positive, help="AIS chains per data point, i.e. --set eval.ais_chains=C"
    )
    e.add_argument(
        "--metrics",
        metavar="NAMES",
        help="comma-separated metrics to compute, i.e. --set eval.metrics=[NAMES], for a task "
        "that has eval.metrics (a bad name fails with the task's choices)",
    )
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an evaluation setting for this evaluation, e.g. --set eval.batch_size=50",
    )
    _no_progress(e)

    s = sub.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Save a grid of samples from a run's model.",
    )
    s.add_argument("run_dir", type=Path)
    s.add_argument("-n", type=_positive, default=64, help="number of samples (default 64)")
    s.add_argument(
        "--out",
        type=Path,
        help="PNG file (default: RUN_DIR/sampled/samples-<time>.png; the report's own "
        "pictures are never replaced)",
    )
    _no_progress(s)

    r = sub.add_parser(
        "report",
        help="(re)write a run's report.html",
        description="Write RUN_DIR/report.html from the run's files.",
    )
    r.add_argument("run_dir", type=Path)

    sub.add_parser(
        "list",
        help="list the packaged experiments",
        description="List the packaged experiments, each with its task.",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # under torchrun every process meets the same error: one of them says it
    speaks = int(os.environ.get("RANK", "0")) == 0
    try:
        return _run(args)
    except BrokenPipeError:  # the reader went away (`dgm list | head`): nothing to say
        sys.stderr.close()
        return 0
    except ConfigError as err:
        if speaks:
            say(f"dgm: config error: {err}")
        return 2
    except USER_ERRORS as err:
        if speaks:
            say(f"dgm: error: {err}")
        return 1
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        if speaks:
            where = f" {err.filename}" if err.filename else ""
            say(
                f"dgm: error: cannot write{where}: {err.strerror or err}; give a writable "
                "directory (copy a read-only run directory somewhere writable first)"
            )
        return 1
    except KeyboardInterrupt:
        say(_interrupted(getattr(args, "out_dir", None)))
        return 130


def _interrupted(out: Path | None) -> str:
    """What an interrupted command says: how to continue a run that has a checkpoint."""
    if out is None:
        return "dgm: interrupted"
    if rundir.holds_run(out) and (out / "checkpoints").is_dir():
        return f"dgm: interrupted; `dgm train ... --out {out} --resume` continues from the last checkpoint"
    return (
        f"dgm: interrupted before the first checkpoint; nothing to resume: the same command "
        f"starts {out} afresh"
    )


def _print_metrics(metrics: dict[str, object]) -> None:
    for key, value in metrics.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"  {key:32s} {shown}")


def _run(args: argparse.Namespace) -> int:
    quiet = getattr(args, "no_progress", False)
    with progress.enabled_as(False) if quiet else contextlib.nullcontext():
        return _command(args)


def _command(args: argparse.Namespace) -> int:
    if args.command == "list":
        catalogue = experiments.catalogue()
        width = max((len(n) for n in catalogue), default=0)
        task_width = max((len(t) for t, _ in catalogue.values()), default=0)
        for name, (task, description) in catalogue.items():
            print(f"{name:{width}s}  {task:{task_width}s}  {description}")
        return 0
    from ..experiments import runner  # imports the report and plotting only when needed
    from ..report import write_report

    if args.command == "train":
        overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
        cfg = experiments.load(args.experiment, overrides, smoke=args.smoke, protocol=args.protocol)
        if args.resume and args.out is None:
            raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
        if args.resume and args.overwrite:
            raise ConfigError(
                "--resume continues the run in --out; --overwrite archives it: give one"
            )
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("runs") / f"{cfg.name}-{stamp}"
        args.out_dir = out
        report = runner.train(
            cfg, out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite
        )
        if int(os.environ.get("RANK", "0")) == 0:
            final = json.loads((out / "final_metrics.json").read_text())
            _print_metrics(final)
            if final.get("stopped_by_time_limit"):
                print(
                    f"note: train.time_limit ({cfg.train.time_limit:g} s) stopped the run after "
                    f"{final['train_steps']} of {final['train_steps_planned']} planned steps",
                    file=sys.stderr,
                )
            print(f"report: {report.resolve()}")
        return 0
    if args.command == "eval":
        overrides = list(args.overrides)
        if args.num_particles is not None:
            overrides.append(f"eval.num_particles={args.num_particles}")
        for flag, key in (
            ("estimator", "estimator"),
            ("ais_steps", "ais_steps"),
            ("chains", "ais_chains"),
        ):
            if getattr(args, flag) is not None:
                overrides.append(f"eval.{key}={getattr(args, flag)}")
        if args.metrics is not None:
            names = [n.strip() for n in args.metrics.split(",") if n.strip()]
            overrides.append(f"eval.metrics=[{', '.join(names)}]")
        runner.load_config(args.run_dir)  # a clear message for a directory that is not a run
        with RunLock(args.run_dir):
            _print_metrics(runner.evaluate(args.run_dir, overrides))
            write_report(args.run_dir)
        return 0
    if args.command == "sample":
        print(f"samples: {runner.sample(args.run_dir, args.n, args.out)}")
        return 0
    if args.command == "report":
        print(f"report: {write_report(args.run_dir).resolve()}")
        return 0
    raise AssertionError(args.command)
