from pathlib import Path

import pytest

from dgm import experiments
from dgm.experiments import ConfigError, apply_override, load, valid_keys
from dgm.experiments.registry import load_config
from dgm.experiments.tasks.data import ImageDataConfig
from dgm.experiments.tasks.vae import VAEConfig


def vae_config() -> VAEConfig:
    return VAEConfig(data=ImageDataConfig(name="binarized_mnist"))


def test_packaged_experiments_load_and_describe_themselves() -> None:
    names = experiments.available()
    assert {"quickstart", "vae-mnist", "iwae-mnist", "iwae-mnist-2layer"} <= set(names)
    assert all(names.values())
    for name in names:
        cfg = load(name)
        assert cfg.name == name
        smoke = load(name, smoke=True)
        assert smoke.train.steps is not None and smoke.train.steps <= 20


def test_unknown_key_lists_valid_keys_and_suggests_a_close_match() -> None:
    cfg = vae_config()
    with pytest.raises(ConfigError) as info:
        apply_override(cfg, "train.lrate=0.1")
    msg = str(info.value)
    assert "unknown config key 'train.lrate'" in msg and "Did you mean 'train.lr'?" in msg
    # the keys of the section named, not every key (issue 12)
    assert "Valid keys of train:" in msg and "train.batch_size" in msg
    assert "objective.num_particles" not in msg
    with pytest.raises(ConfigError, match=r"unknown config key 'zzz'. Valid keys"):
        apply_override(cfg, "zzz=1")


def test_wrong_type_names_the_expected_type() -> None:
    cfg = vae_config()
    with pytest.raises(ConfigError, match=r"train.batch_size: expected int, got 'ten' \(str\)"):
        apply_override(cfg, "train.batch_size=ten")
    with pytest.raises(ConfigError, match=r"train.batch_size: expected int, got 2.5"):
        apply_override(cfg, "train.batch_size=2.5")
    with pytest.raises(ConfigError, match=r"model.latent_sizes: expected int, got 'a'"):
        apply_override(cfg, "model.latent_sizes=[10, a]")
    with pytest.raises(ConfigError, match=r"not of the form key=value"):
        apply_override(cfg, "train.lr")


def test_overrides_parse_yaml_values() -> None:
    cfg = vae_config()
    apply_override(cfg, "train.lr=3e-4")
    apply_override(cfg, "train.batch_size=20")
    apply_override(cfg, "train.grad_clip=null")
    apply_override(cfg, "model.hidden_sizes=[[100], [50, 50]]")
    apply_override(cfg, "objective.dreg=true")
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert cfg.train.batch_size == 20 and cfg.train.grad_clip is None
    assert cfg.model.hidden_sizes == [[100], [50, 50]] and cfg.objective.dreg is True
    assert "train.lr" in valid_keys(VAEConfig) and "smoke" in valid_keys(VAEConfig)


def test_unknown_experiment_name_suggests_one() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown experiment 'quikstart'. Did you mean 'quickstart'\?"
    ):
        load("quikstart")
    with pytest.raises(ConfigError, match=r"no experiment file"):
        load("missing.yaml")


def test_bad_files_and_cross_field_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_config(bad)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'train.learning_rate'. Did you mean 'train.lr'\?"
    ):
        load_config(nested)  # another library's name, not the nearest spelling (lr_final)
    with pytest.raises(ConfigError, match=r"Did you mean 'train.epochs'\?"):
        load("vae-mnist", ["train.max_epochs=3"])
    with pytest.raises(ConfigError, match=r"exactly one of train.steps and train.epochs"):
        load("vae-mnist", ["train.steps=10"])
    with pytest.raises(ConfigError, match=r"objective.name: 'rwz' is not one of elbo, "):
        load("vae-mnist", ["objective.name=rwz"])
    with pytest.raises(ConfigError, match=r"objective.phi: 'dream' is not one of wake, sleep"):
        load("sbn-rws-mnist", ["objective.phi=dream"])
    with pytest.raises(ConfigError, match=r"model.hidden_sizes is a setting of task 'vae', not"):
        load("sbn-rws-mnist", ["model.hidden_sizes=[[10]]"])
    with pytest.raises(ConfigError, match=r"grad_stats_draws must be >= 2"):
        load("sbn-rws-mnist", ["train.grad_stats_draws=1"])
    with pytest.raises(ConfigError, match=r"hidden_sizes needs one list"):
        load("vae-mnist", ["model.latent_sizes=[10, 5]"])


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        (
            "vae-mnist",
            ["model.posterior=gaussian"],
            r"model.posterior.name: 'gaussian' is not one of",
        ),
        ("vae-mnist", ["model.prior=vampprior"], r"model.prior.name: 'vampprior' is not one of"),
        ("vae-iaf-mnist", ["objective.name=iwae", "objective.dreg=true"], r"iaf flow has none"),
        (
            "vae-vampprior-mnist",
            ["model.latent_sizes=[20, 10]", "model.hidden_sizes=[[50], [30]]"],
            r"prior=vamp .* needs one\s+stochastic layer",
        ),
        (
            "vae-hmc-mnist",
            ["objective.name=rws", "objective.hmc_steps=1"],
            r"objective 'rws' does not take 'hmc_steps'.*an option of objective.name=elbo or iwae",
        ),
        (
            "vae-hmc-mnist",
            ["objective.hmc_target_accept=1.5"],
            r"hmc_target_accept must be in \(0, 1\)",
        ),
        (
            "vae-iaf-mnist",
            ["model.posterior.flow_hidden=[20]"],
            r"every MADE width must be >= latent",
        ),
        (
            "vae-planar-mnist",
            ["model.posterior.flow_length=0"],
            r"model.posterior.flow_length must be >= 1",
        ),
        # a setting of the posterior the file does not choose
        (
            "vae-mnist",
            ["model.posterior.flow_length=3"],
            r"model.posterior.flow_length: posterior 'diagonal' does not take 'flow_length'; it "
            r"takes no options; flow_length is an option of model.posterior.name=planar or iaf",
        ),
        (
            "vae-mog-mnist",
            ["model.prior.flow_hidden=[10]"],
            r"prior 'mog' does not take 'flow_hidden'; it takes model.prior.components",
        ),
        # the flat keys before issue 27, in a file: refused with the key they now have
        ("vae-mnist", ["model.flow_length=3"], r"Did you mean 'model.posterior.flow_length'"),
        ("sbn-rws-mnist", ["model.prior=mog"], r"model.prior is a setting of task 'vae'"),
    ],
)
def test_posterior_prior_and_hmc_combinations_are_checked(
    name: str, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(name, overrides)


def test_protocols_apply_their_settings_and_unknown_ones_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dgm.cli import main
    from dgm.experiments import available

    for name in available():  # every packaged protocol names settings that exist
        for protocol in load(name).protocols:
            load(name, protocol=protocol)
    assert main(["train", "quickstart", "--smoke", "--protocol", "paper"]) == 2
    assert "--protocol paper: this experiment's protocols are: none" in capsys.readouterr().err
    assert main(["train", "iwae-table1-1layer", "--smoke", "--protocol", "papr"]) == 2
    assert "protocols are: paper" in capsys.readouterr().err
