import pytest
import torch

import dgm
from dgm.train import NonFiniteLossError
from tests.linear_gaussian import DiagonalGuide, LinearGaussianModel


def test_fit_moves_the_guide_to_the_posterior() -> None:
    model = LinearGaussianModel()
    for p in model.parameters():
        p.requires_grad_(False)
    guide = DiagonalGuide()
    x = torch.randn(512, 3) * 1.5
    before = (
        model.log_evidence(x) - dgm.elbo(dgm.log_weights(model, guide, x, num_particles=200))
    ).mean()
    result = dgm.train.fit(
        model, guide, dgm.ELBO(4), x, steps=400, batch_size=64, lr=0.05, log_every=50
    )
    with torch.no_grad():
        gap = (
            model.log_evidence(x) - dgm.elbo(dgm.log_weights(model, guide, x, num_particles=200))
        ).mean()
    assert result.steps == 400 and len(result.history) == 8
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert gap < 0.1 * before and gap < 0.3, (before, gap)  # only the diagonal restriction remains


def test_nan_loss_stops_before_the_update_and_names_the_step() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    x = torch.randn(64, 3)
    calls = {"n": 0}

    def objective(m, g, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        bound = dgm.elbo(dgm.log_weights(m, g, batch))
        return bound * float("nan") if calls["n"] == 3 else bound

    snapshot = {}

    def spy(m, g, batch):  # type: ignore[no-untyped-def]
        if calls["n"] == 2:
            snapshot.update({k: v.clone() for k, v in guide.state_dict().items()})
        return objective(m, g, batch)

    with pytest.raises(
        NonFiniteLossError,
        match=r"the loss is nan at step 3 .*after step 2.*Lower the learning rate",
    ):
        dgm.train.fit(model, guide, spy, x, steps=10, batch_size=16)
    for k, v in guide.state_dict().items():
        torch.testing.assert_close(v, snapshot[k])  # step 3 changed nothing


def test_fit_budget_arguments_are_checked() -> None:
    model, guide = LinearGaussianModel(), DiagonalGuide()
    with pytest.raises(ValueError, match="exactly one of steps= or epochs="):
        dgm.train.fit(model, guide, dgm.ELBO(), torch.randn(8, 3))
    with pytest.raises(ValueError, match="larger than the data set"):
        dgm.train.fit(model, guide, dgm.ELBO(), torch.randn(8, 3), steps=1, batch_size=16)


def test_tuple_and_dict_data_reach_the_objective_indexed_alike() -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    w = torch.nn.Parameter(torch.zeros(()))
    holder = torch.nn.Module()
    holder.w = w

    def positional(
        model: torch.nn.Module, guide: torch.nn.Module, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        seen.append((a, b))
        return -((model.w - a.float()) ** 2)

    def keywords(
        model: torch.nn.Module, guide: torch.nn.Module, *, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        return positional(model, guide, a, b)

    a = torch.arange(10)
    b = 10 * torch.arange(10)
    dgm.train.fit(holder, torch.nn.Module(), positional, (a, b), steps=4, batch_size=5)
    dgm.train.fit(holder, torch.nn.Module(), keywords, {"a": a, "b": b}, steps=4, batch_size=5)
    assert len(seen) == 8
    for x, y in seen:
        assert torch.equal(y, 10 * x) and len(x) == 5  # rows stay paired
    with pytest.raises(ValueError, match="different numbers of points"):
        dgm.train.fit(holder, torch.nn.Module(), positional, (a, b[:5]), steps=1, batch_size=5)
