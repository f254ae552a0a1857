"""``log_likelihood`` on numpy and integer data: converted like ``fit``'s, or refused."""

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Independent

import dgm


class BernoulliModel(nn.Module):
    """z ~ Bernoulli(0.5) per point, x | z ~ Bernoulli(sigmoid(W z + b)) over 4 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.decode = nn.Linear(1, 4)
        self.dtypes: set[torch.dtype] = set()

    def forward(self, x: Tensor) -> None:
        self.dtypes.add(x.dtype)
        z = dgm.sample("z", Independent(Bernoulli(probs=x.new_full((len(x), 1), 0.5)), 1))
        dgm.sample("x", Independent(Bernoulli(logits=self.decode(z)), 1), obs=x)


class BernoulliGuide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> None:
        dgm.sample("z", Independent(Bernoulli(logits=self.encode(x)), 1))


def _estimate(data: object, model: nn.Module, guide: nn.Module) -> Tensor:
    torch.manual_seed(1)
    return dgm.metrics.log_likelihood(model, guide, data, num_particles=50)  # type: ignore[arg-type]


def test_uint8_bool_and_numpy_images_give_the_float_estimate() -> None:
    model, guide = BernoulliModel(), BernoulliGuide()
    images = torch.randint(0, 2, (6, 4), dtype=torch.uint8)
    expected = _estimate(images.float(), model, guide)
    for data in (images, images.bool(), images.numpy(), images.numpy().astype(np.float64)):
        torch.testing.assert_close(_estimate(data, model, guide), expected)
    assert model.dtypes == {torch.float32}
    model.dtypes.clear()
    _estimate(images.numpy(), model.double(), guide.double())
    assert model.dtypes == {torch.float64}  # the programs' floating dtype


def test_signed_integer_data_is_scored_as_integers() -> None:
    class CategoricalModel(nn.Module):  # a token id per point: Categorical scores int64
        def forward(self, y: Tensor) -> None:
            assert y.dtype == torch.int64
            dgm.sample("y", Categorical(logits=torch.zeros(len(y), 3)), obs=y)

    est = dgm.metrics.log_likelihood(
        CategoricalModel(), lambda y: None, np.array([0, 1, 2]), num_particles=1
    )
    torch.testing.assert_close(est, torch.full((3,), -np.log(3.0), dtype=torch.float64))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[0, 1, 1, 0]], r"log_likelihood: data is a list; pass a tensor \[N, \.\.\.\]"),
        (
            (torch.zeros(2, 4),),
            r"log_likelihood: data must be one tensor or numpy array of data points \[N, \.\.\.\]",
        ),
        (
            np.array([np.zeros(4), np.zeros(3)], dtype=object),
            r"log_likelihood: data is a numpy array of Python objects \(dtype=object\)",
        ),
    ],
)
def test_data_that_cannot_be_converted_is_refused(data: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        dgm.metrics.log_likelihood(BernoulliModel(), BernoulliGuide(), data)  # type: ignore[arg-type]
