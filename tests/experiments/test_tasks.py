"""Tasks behind a registry: bad input, the format before tasks, and the layers naming no family."""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dgm import experiments
from dgm.cli import main
from dgm.experiments import ConfigError, load
from dgm.experiments.config import RunConfig, valid_keys
from dgm.experiments.registry import TASKS, load_config, parse, task_class
from dgm.experiments.runner import load_run
from dgm.experiments.task import Task
from dgm.train import checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "dgm"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pre_task_runs"
TOY = "tests.experiments.toy_gan:ToyGANTask"


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_registered_task_names_its_configuration() -> None:
    assert set(TASKS) == {
        "vae",
        "sbn",
        "inference-compilation",
        "flow",
        "disentangle",
        "gan",
        "air",
    }
    for name in TASKS:
        cls = task_class(name)
        assert issubclass(cls, Task) and cls.name == name
        assert issubclass(cls.Config, RunConfig)
        assert cls.Config.__dataclass_fields__["task"].default == name
    for name, (task, _) in experiments.catalogue().items():
        assert load(name).task == task, name


def test_tasks_are_imported_only_when_used() -> None:
    code = (
        "import contextlib, io, sys; from dgm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['list'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('dgm.experiments.tasks.', "
        "'dgm.experiments.runner', 'dgm.report', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_unknown_task_names_the_file_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "task: sbm\ndata: {name: dsprites}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "task: unknown task 'sbm'" in msg
    assert "Did you mean 'sbn'?" in msg and "vae, sbn, inference-compilation, flow" in msg
    number = write(tmp_path / "number.yaml", "task: 3\n")
    with pytest.raises(ConfigError, match=r"number.yaml: task: expected a task name, got 3"):
        load_config(number)
    dotted = write(tmp_path / "dotted.yaml", "task: no_such_module:Task\n")
    with pytest.raises(
        ConfigError, match=r"dotted.yaml: task: cannot import 'no_such_module:Task'"
    ):
        load_config(dotted)


def test_a_key_of_another_task_names_the_file_the_key_and_the_owner(tmp_path: Path) -> None:
    path = write(
        tmp_path / "sbn.yaml",
        "task: sbn\ndata: {name: dsprites}\nmodel: {latent_sizes: [10], prior: mog}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "model.prior is a setting of task 'vae', not of task 'sbn'" in msg
    assert "Valid keys of 'sbn':" in msg and "model.latent_sizes" in msg
    ic = write(tmp_path / "ic.yaml", "task: inference-compilation\nobjective: {name: iwae}\n")
    with pytest.raises(
        ConfigError,
        match=r"ic.yaml: objective is a setting of task 'vae', 'sbn', 'disentangle' and 'air', not",
    ):
        load_config(ic)
    with pytest.raises(ConfigError, match=r"polyreg-ic.yaml: model.posterior is a setting of"):
        load("polyreg-ic", ["model.posterior=iaf"])


def test_a_missing_required_key_names_the_file_the_key_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path / "vae.yaml", "task: vae\nmodel: {latent_sizes: [4]}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (
        f"{path}: data.name is required: one of binarized_mnist, mnist, mnist_t10k, fashion_mnist, dsprites"
        in str(info.value)
    )


def test_constructor_rules_fail_before_training_under_their_key() -> None:
    cases = {
        "model.posterior.flow_length must be >= 1, got 0": [
            "model.posterior=iaf",
            "model.posterior.flow_length=0",
        ],
        "model.prior.components must be >= 1, got 0": [
            "model.prior=mog",
            "model.prior.components=0",
        ],
        "model.prior.flow_length must be >= 1": ["model.prior=maf", "model.prior.flow_length=0"],
        "objective.num_particles must be >= 1, got 0": ["objective.num_particles=0"],
        "objective.temperature must be a finite number > 0": [
            "objective.name=concrete",
            "objective.temperature=0",
        ],
        "objective.hmc_leapfrog must be >= 1": [
            "objective.hmc_steps=1",
            "objective.hmc_leapfrog=0",
        ],
        "objective.hmc_step_size must be a finite number > 0": [
            "objective.hmc_steps=1",
            "objective.hmc_step_size=0",
        ],
    }
    for message, overrides in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            load("quickstart", overrides)


def test_capabilities_decide_what_combines() -> None:
    with pytest.raises(
        ConfigError,
        match=r"objective.dreg: objective 'elbo' does not take 'dreg'; it takes "
        r"objective.num_particles, objective.hmc_steps, .*; dreg is an option of "
        r"objective.name=iwae or vimco",
    ):
        load("vae-mnist", ["objective.dreg=true"])
    with pytest.raises(ConfigError, match=r"planar flow has none"):
        load("vae-planar-mnist", ["objective.name=iwae", "objective.dreg=true"])
    with pytest.raises(
        ConfigError, match=r"data.binarize applies to data.name=mnist, mnist_t10k, fashion_mnist"
    ):
        load("vae-mnist", ["data.binarize=dynamic"])
    with pytest.raises(ConfigError, match=r"objective.name: 'sleep' is not one of"):
        load("vae-mnist", ["objective.name=sleep"])  # it trains no model
    cfg = load("vae-mnist", ["model.posterior=full", "objective.name=iwae", "objective.dreg=true"])
    assert cfg.objective.dreg  # type: ignore[attr-defined]


def test_files_without_task_are_read_in_the_format_before_tasks(tmp_path: Path) -> None:
    old_sbn = write(
        tmp_path / "old-sbn.yaml",
        "data: {name: dsprites}\nmodel: {name: sbn, latent_sizes: [7], hidden_sizes: [], "
        "likelihood: bernoulli}\nobjective: {name: rws}\n",
    )
    cfg = load_config(old_sbn)
    assert cfg.task == "sbn" and cfg.model.latent_sizes == [7]  # type: ignore[attr-defined]
    old_vae = write(tmp_path / "old-vae.yaml", "model: {latent_sizes: [3], hidden_sizes: [[8]]}\n")
    cfg = load_config(old_vae)
    assert cfg.task == "vae" and cfg.data.name == "binarized_mnist"  # type: ignore[attr-defined]
    bad = write(tmp_path / "old-bad.yaml", "model: {name: gmm}\n")
    with pytest.raises(
        ConfigError, match=r"old-bad.yaml: model.name: 'gmm' is not one of vae, sbn"
    ):
        load_config(bad)


@pytest.mark.parametrize("kind", ["vae", "sbn", "polyreg"])
def test_pre_task_run_directories_still_eval_sample_and_report(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / kind
    shutil.copytree(FIXTURES / kind, run)
    assert "task" not in yaml.safe_load((run / "config.yaml").read_text())
    saved = checkpoint.load(run / "checkpoints" / "last.pt")
    _, _, parts, _ = load_run(run, which="last")
    for key, value in parts["guide"].state_dict().items():
        assert torch.equal(value, saved["guide"][key]), key  # the old checkpoint loads as it was
    kept = json.loads((run / "final_metrics.json").read_text())["train_steps"]
    assert main(["eval", str(run)]) == 0
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["train_steps"] == kept == 4  # the training summary survives re-evaluation
    pictures = json.loads((run / "pictures.json").read_text())
    assert pictures and all((run / p["file"]).is_file() for p in pictures)
    capsys.readouterr()
    if kind == "polyreg":
        assert main(["sample", str(run)]) == 1
        assert "no images to sample" in capsys.readouterr().err
    else:
        assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
        assert (tmp_path / "s.png").stat().st_size > 500
    (run / "report.html").unlink(missing_ok=True)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert all(p["caption"] in page for p in pictures)


def test_eval_settings_are_checked_against_the_run(tmp_path: Path) -> None:
    run = tmp_path / "polyreg"
    shutil.copytree(FIXTURES / "polyreg", run)
    with pytest.raises(ConfigError, match=r"has no setting 'eval.batch_size'"):
        load_run(run, overrides=["eval.batch_size=3"])


def toy_file(tmp_path: Path, **model: object) -> Path:
    raw = {
        "name": "toy",
        "description": "a one-dimensional GAN",
        "task": TOY,
        "model": {"critic_steps": 2, **model},
        "train": {"steps": 12, "epochs": None, "batch_size": 32, "log_every": 3},
        "smoke": {"train.steps": 8, "train.validate_every": 4, "train.checkpoint_every": 4},
    }
    return write(tmp_path / "toy.yaml", yaml.safe_dump(raw))


def test_a_task_outside_dgm_trains_with_the_alternating_step_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        main(["train", str(toy_file(tmp_path)), "--smoke", "--no-progress", "--out", str(out)]) == 0
    )
    assert f"report: {(out / 'report.html').resolve()}" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss/critic" in r]
    assert [r["step"] for r in losses] == [3, 6, 8] and all("loss/generator" in r for r in losses)
    assert any("valid/neg_moment_error" in r for r in records)
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["train_steps"] == 8 and final["train_epochs"] == pytest.approx(8 * 2 * 32 / 512)
    assert "Generated samples against the data" in (out / "report.html").read_text()
    state = checkpoint.load(out / "checkpoints" / "last.pt")
    assert {"generator", "critic"} <= set(state) and len(state["optimizers"]) == 2
    # two critic updates per step, one generator update: Adam's step counters say so
    critic_steps = [s["step"] for s in state["optimizers"][0]["state"].values()]
    generator_steps = [s["step"] for s in state["optimizers"][1]["state"].values()]
    assert all(int(s) == 16 for s in critic_steps) and all(int(s) == 8 for s in generator_steps)


def test_alternating_run_resumed_from_the_cli_matches_a_straight_run(tmp_path: Path) -> None:
    # as for the VAE: validation draws random numbers, so the shorter run ends on a step that
    # the straight run validates too
    sets = ["train.checkpoint_every=4", "train.validate_every=4"]
    args = [
        "train",
        str(toy_file(tmp_path)),
        "--no-progress",
        *(a for s in sets for a in ("--set", s)),
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--set", "train.steps=8"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12
    for part in ("generator", "critic"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_a_nan_in_the_alternating_step_stops_the_run_and_says_what_was_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", str(toy_file(tmp_path, poison_update=6)), "--no-progress", "--out", str(out)]
    assert main([*args, "--set", "train.checkpoint_every=4"]) == 1
    err = capsys.readouterr().err
    assert "the generator loss is nan at step 6" in err
    assert "all 2 critic updates of this step were applied" in err
    assert f"{out / 'checkpoints' / 'last.pt'} (step 4), is kept" in err
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == 4


def _imports(path: Path) -> set[str]:
    """The dgm modules a source file imports (anywhere in it), as dotted names."""
    module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("dgm")}


def test_no_import_circle_between_modules() -> None:
    files = {
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts): p
        for p in SRC.rglob("*.py")
        if p.name != "__init__.py"  # packages re-export; modules are where circles hurt
    }
    graph = {m: {d for d in _imports(p) if d in files and d != m} for m, p in files.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError(" -> ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_generic_layers_name_no_family() -> None:
    family = re.compile(r'"(vae|sbn|gan|flow|air|polyreg)"')
    files = [SRC / "experiments" / "runner.py", SRC / "experiments" / "config.py"]
    files += [*(SRC / "report").rglob("*.py"), *(SRC / "cli").rglob("*.py")]
    named = [
        f"{f}:{i}"
        for f in files
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if family.search(line)
    ]
    assert not named


def test_valid_keys_are_per_task() -> None:
    vae, ic = (
        valid_keys(task_class("vae").Config),
        valid_keys(task_class("inference-compilation").Config),
    )
    assert "model.posterior.name" in vae and "model.posterior.name" not in ic
    assert "model.posterior.flow_length" in vae  # a setting of one of its posteriors
    assert "eval.reference_samples" in ic and "eval.reference_samples" not in vae
    assert "train.valid_particles" in vae and "train.valid_particles" not in ic
    assert parse({"task": "sbn", "data": {"name": "dsprites"}}, "x").task == "sbn"


def test_a_checkpoint_without_a_part_the_task_needs_says_which() -> None:
    from dgm.experiments.task import load_parts

    parts = {"model": torch.nn.Linear(2, 2), "guide": torch.nn.Linear(2, 2)}
    with pytest.raises(ValueError, match="the checkpoint has no entry for part 'guide'"):
        load_parts(parts, {"model": parts["model"].state_dict()})
    load_parts({"objective": torch.nn.Module()}, {})  # a part with no state needs no entry
