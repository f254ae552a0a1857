"""IWAE Table 1's rows: each is its packaged experiment with the row's objective and budget,
on dynamically binarized MNIST's 60000 training digits, under the CPU recipe or the paper's."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from dgm.experiments import load
from iwae_table1 import ROWS, overrides


@pytest.mark.parametrize("row", list(ROWS))
def test_every_row_is_its_paper_configuration(row: str) -> None:
    experiment, layers, k, objective, _, passes = ROWS[row]
    cpu = load(experiment, overrides(row, "cpu"))
    paper = load(experiment, overrides(row, "paper"), protocol="paper")
    for cfg in (cpu, paper):
        assert len(cfg.model.latent_sizes) == layers
        assert cfg.objective.name == ("elbo" if objective == "vae" else "iwae")
        assert cfg.objective.num_particles == k
        assert (cfg.data.name, cfg.data.binarize, cfg.data.holdout) == ("mnist", "dynamic", 0)
        assert cfg.data.test_points == 10000 and cfg.eval.num_particles == 5000
        assert cfg.train.adam_eps == 1e-4
    assert (cpu.train.epochs, cpu.train.batch_size) == (passes, 100)
    assert (paper.train.epochs, paper.train.batch_size, paper.train.lr_schedule) == (
        3280,
        20,
        "iwae",
    )
    assert cpu.model.hidden_sizes[0] == [200, 200]
    if layers == 2:
        assert cpu.model.latent_sizes == [100, 50] and cpu.model.hidden_sizes[1] == [100, 100]
