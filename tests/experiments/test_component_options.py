"""Every setting used or refused: a section that is one component (``objective:``) takes that
component's options and no other, and run directories written before keep loading."""

from pathlib import Path

import pytest
import yaml

from dgm.cli import main
from dgm.experiments import ConfigError, load
from dgm.experiments.config import valid_keys
from dgm.experiments.registry import check, parse
from dgm.models.air import AIRGuide
from dgm.objectives import OBJECTIVES
from dgm.objectives.factor_vae import Discriminator
from dgm.objectives.registry import ObjectiveContext
from dgm.options import Options

RESOLVED = Path(__file__).parent / "resolved_before_issue27"


@pytest.mark.parametrize(
    ("experiment", "assignment", "message"),
    [
        # the settings a new user found accepted and without effect (issue 27)
        ("iwae-mnist", "objective.temperature=0.1", "objective 'iwae' does not take 'temperature'"),
        ("iwae-mnist", "objective.phi=sleep", "objective 'iwae' does not take 'phi'"),
        ("iwae-mnist", "objective.baseline_hidden=7", "'iwae' does not take 'baseline_hidden'"),
        ("air-multi-mnist-cpu", "eval.ais_steps=3", "eval.ais_steps is a setting of task 'vae'"),
        ("air-multi-mnist-cpu", "eval.bdmc_points=7", "eval.bdmc_points is a setting of task"),
        ("air-multi-mnist-cpu", "train.grad_stats_draws=12", "train.grad_stats_draws is a"),
        ("sbn-ws-mnist", "objective.num_particles=5", "'wake-sleep' does not take"),
        ("sbn-rws-mnist", "eval.ais_steps=3", "eval.ais_steps is a setting of task 'vae'"),
        ("disentangle-beta-vae-dsprites", "objective.gamma=3", "'beta-vae' does not take 'gamma'"),
        ("disentangle-beta-vae-dsprites", "objective.critic_lr=1e-3", "an option of objective"),
        ("disentangle-beta-vae-dsprites", "model.discriminator_hidden=8", "unknown config key"),
        ("gan-ring", "eval.quality_samples=100", "sets the sample-quality metrics of images"),
        ("gan-ring", "eval.classifier_steps=5", "which data.name=ring8 does not have"),
        ("gan-fashion-dcgan", "eval.threshold=2", "sets PacGAN's mode metric of 2-D mixtures"),
        ("gan-fashion-dcgan", "eval.stacked_samples=100", "the mode count of stacked MNIST"),
        ("flow-moons", "model.bins=4", "flow 'realnvp' does not take 'bins'"),
        ("flow-moons", "preprocess.logit_alpha=0.1", "applies to images"),
        ("vae-mnist", "model.posterior.flow_length=4", "posterior 'diagonal' does not take"),
        ("vae-mnist", "model.prior.components=4", "prior 'normal' does not take 'components'"),
        # settings read only where another one says so
        ("vae-mnist", "eval.ais_steps=3", "eval.ais_steps is read only when eval.estimator=ais"),
        ("vae-mnist", "eval.bdmc_points=7", "read only when eval.estimator=ais"),
        ("vae-mnist", "objective.hmc_leapfrog=3", "read only when objective.hmc_steps > 0"),
        ("vae-mnist", "train.lr_final=0.1", "read only when train.lr_schedule decays"),
        ("disentangle-vae-dsprites", "eval.score_batch=8", None),  # default metrics: read
        ("quickstart", "objective.name=reinforce", None),  # a valid switch, for contrast
    ],
)
def test_a_setting_the_chosen_component_does_not_read_is_refused_in_one_line(
    experiment: str,
    assignment: str,
    message: str | None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    if message is None:
        load(experiment, [assignment])
        return
    code = main(["train", experiment, "--smoke", "--set", assignment, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "config.yaml").exists()
    assert err.startswith("dgm: config error:") and err.count("\n") == 1, err
    assert message in err, err


def test_a_setting_read_only_with_another_is_refused_alone_and_taken_with_it() -> None:
    for alone, switch in (
        (["eval.ais_steps=3"], ["eval.estimator=ais"]),
        (["objective.hmc_leapfrog=3"], ["objective.hmc_steps=1"]),
        (["train.lr_final=0.2"], ["train.lr_schedule=cosine"]),
    ):
        with pytest.raises(ConfigError, match="is read only when"):
            load("vae-mnist", alone)
        load("vae-mnist", [*alone, *switch])  # in either order: checked after all overrides
        load("vae-mnist", [*switch, *alone])
    with pytest.raises(ConfigError, match=r"compile_mode is read only when train.compile is on"):
        load("vae-mnist", ["train.compile=off", "train.compile_mode=max-autotune"])
    load("vae-mnist", ["train.compile=on", "train.compile_mode=max-autotune"])
    air = ["objective.name=vimco", "objective.baseline_hidden=8"]
    with pytest.raises(ConfigError, match="the guide has per-step baselines"):
        load("air-multi-mnist-cpu", air)
    load("air-multi-mnist-cpu", [*air, "objective.baselines=true"])


def test_a_run_directory_keeps_loading_with_values_nothing_read() -> None:
    raw = yaml.safe_load((RESOLVED / "vae-hmc-mnist.yaml").read_text())
    raw["objective"]["hmc_steps"], raw["objective"]["hmc_leapfrog"] = 0, 9  # never read
    cfg = parse(raw, "old", resolved=True)
    check(cfg)
    assert cfg.objective.hmc_leapfrog == 5  # type: ignore[attr-defined]  # its default again
    with pytest.raises(ConfigError, match=r"does not take|is read only when"):
        check(parse(raw, "a file"))


def test_the_refusal_names_the_key_the_component_what_it_takes_and_who_takes_it() -> None:
    with pytest.raises(ConfigError) as info:
        load("sbn-rws-mnist", ["objective.name=concrete", "objective.temprature=0.5"])
    assert str(info.value).endswith(
        "objective.temprature: objective 'concrete' does not take 'temprature' (did you mean "
        "'objective.temperature'?); it takes objective.num_particles, objective.temperature"
    )
    with pytest.raises(ConfigError) as info:
        load("vae-mnist", ["objective.phi=wake"])
    assert str(info.value).endswith("; phi is an option of objective.name=rws")


def test_a_file_section_is_checked_like_an_override(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "task: sbn\ndata: {name: binarized_mnist}\nobjective: {name: nvil, phi: wake}\n"
    )
    with pytest.raises(ConfigError, match=r"run.yaml: objective.phi: objective 'nvil' does not"):
        load(str(path))
    path.write_text("task: sbn\ndata: {name: binarized_mnist}\nobjective: rws\n")  # just a name
    cfg = load(str(path))
    assert cfg.objective.name == "rws" and cfg.objective.phi == "wake"  # type: ignore[attr-defined]
    path.write_text("task: sbn\ndata: {name: binarized_mnist}\nobjective: {phi: wake}\n")
    with pytest.raises(ConfigError, match=r"objective 'iwae' does not take 'phi'"):
        load(str(path))  # no name: the task's default objective, which has no phi


def test_switching_the_component_starts_from_its_own_defaults_whatever_the_order() -> None:
    # iwae-mnist says num_particles: 5; rws's own default is 5 too, concrete's 1
    for order in (
        ["objective.name=rws", "objective.phi=both"],
        ["objective.phi=both", "objective.name=rws"],
    ):
        o = load("iwae-mnist", order).objective
        assert (o.name, o.phi, o.num_particles) == ("rws", "both", 5)  # type: ignore[attr-defined]
    o = load("iwae-mnist", ["objective.num_particles=50", "objective.name=concrete"]).objective
    assert (o.name, o.num_particles) == ("concrete", 50)  # type: ignore[attr-defined]
    o = load("vae-hmc-mnist", ["objective.name=iwae"]).objective
    assert o.hmc_steps == 0  # type: ignore[attr-defined]  # the file's hmc_steps was elbo's


def test_every_objective_has_options_and_builds_from_them_alone() -> None:
    context = ObjectiveContext(discriminator=Discriminator(4, 8, 2), dataset_size=100)
    for name in OBJECTIVES:
        entry = OBJECTIVES[name]
        assert entry.options is not None and issubclass(entry.options, Options), name
        objective = OBJECTIVES.create(OBJECTIVES.options(name), context)
        assert callable(objective), name
    with pytest.raises(ValueError, match=r"objective 'rws' does not take 'dreg'; it takes"):
        OBJECTIVES.build("rws", dreg=True)
    with pytest.raises(ValueError, match=r"needs the training set's size"):
        OBJECTIVES.build("beta-tcvae")


def test_the_keys_of_a_configuration_are_those_of_its_chosen_components() -> None:
    cfg = load("sbn-rws-mnist")
    keys = valid_keys(cfg)
    assert "objective.phi" in keys and "objective.temperature" not in keys
    assert "eval.estimator" not in keys and "objective.dreg" not in keys
    # the class lists the keys of any component (what another task's file may hold)
    assert "objective.temperature" in valid_keys(type(cfg))
    with pytest.raises(ConfigError, match=r"objective.dreg: .* the sbn task's are discrete"):
        load("sbn-vimco-mnist", ["objective.dreg=true"])


@pytest.mark.parametrize("path", sorted(RESOLVED.glob("*.yaml")), ids=lambda p: p.stem)
def test_run_directories_written_before_issue_27_still_load(path: Path) -> None:
    """The resolved config.yaml files of the commit before (every key of the old flat
    sections present) load: keys nothing read are dropped, moved keys are moved."""
    cfg = parse(yaml.safe_load(path.read_text()), str(path), resolved=True)
    assert cfg.name == path.stem
    check(cfg, str(path))
    with pytest.raises(ConfigError):  # the same mapping as a user's file: settings not read
        check(parse(yaml.safe_load(path.read_text()), str(path)), str(path))


def test_moved_settings_keep_their_values() -> None:
    raw = yaml.safe_load((RESOLVED / "disentangle-factor-vae-dsprites.yaml").read_text())
    raw["model"]["discriminator_hidden"], raw["train"]["critic_lr"] = 32, 3e-4
    o = parse(raw, "old", resolved=True).objective
    assert (o.discriminator_hidden, o.critic_lr, o.gamma) == (32, 3e-4, 35.0)  # type: ignore[attr-defined]
    raw = yaml.safe_load((RESOLVED / "disentangle-beta-tcvae-dsprites.yaml").read_text())
    o = parse(raw, "old", resolved=True).objective
    assert (o.beta, o.gamma, o.alpha) == (6.0, 1.0, 1.0)  # type: ignore[attr-defined]  # null: default
    raw = yaml.safe_load((RESOLVED / "air-multi-mnist-cpu.yaml").read_text())
    assert raw["model"]["baseline_hidden"] == 32
    cfg = parse(raw, "old", resolved=True)
    assert cfg.objective.baseline_hidden == 32  # type: ignore[attr-defined]
    from dgm.experiments.tasks.air import AIRTask

    _, guide = AIRTask(cfg).programs(32 * 32)
    assert isinstance(guide, AIRGuide) and guide.baseline_rnn.hidden_size == 32  # type: ignore[union-attr]


def test_what_a_component_needs_beyond_its_options_is_asked_for_by_name() -> None:
    import torch

    from dgm.experiments.registry import TASKS
    from dgm.models.flow_model import FLOWS, build_flow
    from dgm.models.priors import PRIORS

    with pytest.raises(ValueError, match=r"factor-vae needs its discriminator"):
        OBJECTIVES.build("factor-vae")
    with pytest.raises(ValueError, match=r"the VampPrior mixes q\(z \| u\): it needs the guide's"):
        PRIORS.create(PRIORS.options("vamp"), 3, 6, None)
    with pytest.raises(TypeError, match=r"give options either as an options object or as"):
        build_flow(FLOWS.options("realnvp"), (2,), steps=3)
    with pytest.raises(TypeError, match=r"task 'vae' has no options class"):
        TASKS.options("vae")
    assert torch.is_tensor(build_flow("nsf", (2,), bins=4).log_prob(torch.zeros(1, 2)))


def test_factor_vae_refuses_a_guide_learning_rate_it_has_no_optimizer_for() -> None:
    with pytest.raises(ConfigError, match=r"train.guide_lr: objective.name=factor-vae trains"):
        load("disentangle-factor-vae-dsprites", ["train.guide_lr=1e-3"])
