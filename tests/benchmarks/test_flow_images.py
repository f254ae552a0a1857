"""The image-flow benchmark's runs: the packaged flow experiment with the data set, the
dequantization and the holdout asked for, each in its own directory."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from dgm.experiments import load
from flow_images import overrides, parser, run_dir


def test_mnist_runs_take_the_dequantization_and_the_holdout() -> None:
    args = parser().parse_args(
        ["--data", "mnist", "--holdout", "0", "--dequantization", "variational"]
    )
    cfg = load("flow-digits-glow", overrides(args, "glow"))
    assert (cfg.data.name, cfg.data.holdout) == ("mnist", 0)
    assert cfg.preprocess.dequantization == "variational" and cfg.model.family == "glow"
    default = parser().parse_args(["--data", "mnist"])
    assert load("flow-digits-glow", overrides(default, "glow")).data.holdout == 10000
    assert run_dir(args, "glow") != run_dir(default, "glow")
    assert run_dir(default, "glow") == Path("runs/bench-flow-images/mnist/glow")
