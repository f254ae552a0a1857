"""What `fit` accepts as data: numpy arrays and integer images are converted, the rest refused."""

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import dgm
from dgm.inputs import as_data, float_dtype
from tests.linear_gaussian import DiagonalGuide, LinearGaussianModel


def _holder(dtype: torch.dtype = torch.float32) -> nn.Module:
    holder = nn.Module()
    holder.w = nn.Parameter(torch.zeros((), dtype=dtype))
    return holder


def _spy(seen: list[Any]) -> Any:
    """An objective that records its batch and returns a differentiable [B] value."""

    def objective(model: nn.Module, guide: nn.Module, *args: Tensor, **kwargs: Tensor) -> Tensor:
        seen.append(args if args else kwargs)
        first = (args or tuple(kwargs.values()))[0]
        return -((model.w - first.reshape(len(first), -1)[:, 0].to(model.w.dtype)) ** 2)

    return objective


def test_numpy_float_data_trains_like_the_same_tensor() -> None:
    x = np.random.default_rng(0).normal(size=(64, 3))  # float64, numpy's default
    results = []
    for data in (x, torch.as_tensor(x, dtype=torch.float32)):
        torch.manual_seed(0)
        model, guide = LinearGaussianModel(), DiagonalGuide()
        dgm.train.fit(model, guide, dgm.ELBO(2), data, steps=3, batch_size=16)
        results.append(guide.C.detach().clone())
    torch.testing.assert_close(results[0], results[1])


def test_uint8_and_bool_images_reach_the_programs_as_floats() -> None:
    images = torch.randint(0, 2, (20, 4), dtype=torch.uint8)
    for data in (images, images.bool(), images.numpy(), images.numpy().astype(bool)):
        seen: list[Any] = []
        dgm.train.fit(_holder(), nn.Module(), _spy(seen), data, steps=2, batch_size=5)
        (batch,) = seen[0]
        assert batch.dtype == torch.float32 and set(batch.unique().tolist()) <= {0.0, 1.0}
    # values are kept: 0..255 stays 0..255 (dividing by 255 is the model's business)
    seen = []
    gray = torch.full((10, 2), 255, dtype=torch.uint8)
    dgm.train.fit(_holder(), nn.Module(), _spy(seen), gray, steps=1, batch_size=5)
    assert torch.equal(seen[0][0], torch.full((5, 2), 255.0))


def test_floats_follow_the_parameters_dtype() -> None:
    seen: list[Any] = []
    data = np.ones((10, 2), dtype=np.uint8)
    dgm.train.fit(_holder(torch.float64), nn.Module(), _spy(seen), data, steps=1, batch_size=5)
    assert seen[0][0].dtype == torch.float64
    assert float_dtype(nn.Linear(2, 2).double()) == torch.float64
    assert float_dtype(nn.Module(), lambda x: x) == torch.get_default_dtype()


def test_tuple_and_dict_entries_convert_by_dtype_and_labels_stay_integers() -> None:
    images = torch.randint(0, 2, (10, 4), dtype=torch.uint8)
    labels = torch.arange(10)
    mask = torch.arange(10) % 2 == 0
    for data in (
        {"x": images, "y": labels, "m": mask},
        {"x": images.numpy(), "y": labels.numpy(), "m": mask.numpy()},
    ):
        seen: list[Any] = []
        dgm.train.fit(_holder(), nn.Module(), _spy(seen), data, steps=2, batch_size=5)
        batch = seen[0]
        assert batch["x"].dtype == torch.float32  # uint8 images -> float
        assert batch["y"].dtype == torch.int64  # signed integers (labels, indices) are kept
        assert batch["m"].dtype == torch.bool  # a bool entry of a tuple or dict is a mask: kept
        assert torch.equal(batch["x"], images[batch["y"]].float())  # rows stay paired
    seen = []
    data32 = (np.ones((10, 2)), np.arange(10, dtype=np.int32))
    dgm.train.fit(_holder(), nn.Module(), _spy(seen), data32, steps=1, batch_size=5)
    assert seen[0][0].dtype == torch.float32 and seen[0][1].dtype == torch.int32


def test_tensors_fit_accepted_before_are_passed_unchanged() -> None:
    x64 = torch.randn(10, 2, dtype=torch.float64)  # a float64 tensor is the caller's choice
    ints = torch.arange(10)
    data, cast = as_data((x64, ints), torch.float32, "fit")
    assert cast is None and data[0] is x64 and data[1] is ints
    lone, cast = as_data(x64, torch.float32, "fit")
    assert cast is None and lone is x64


def test_transform_sees_the_converted_batch() -> None:
    dtypes: list[torch.dtype] = []

    def transform(x: Tensor) -> Tensor:
        dtypes.append(x.dtype)
        return torch.bernoulli(x)

    seen: list[Any] = []
    data = torch.randint(0, 2, (10, 3), dtype=torch.uint8)
    dgm.train.fit(
        _holder(), nn.Module(), _spy(seen), data, steps=2, batch_size=5, transform=transform
    )
    assert dtypes == [torch.float32, torch.float32]


def test_read_only_and_reversed_arrays_are_accepted_without_warnings() -> None:
    frozen = np.ones((10, 2), dtype=np.uint8)
    frozen.setflags(write=False)  # e.g. np.frombuffer, or dgm.data.read_idx
    reversed_rows = np.arange(20.0).reshape(10, 2)[::-1]  # negative strides
    for data in (frozen, reversed_rows):
        seen: list[Any] = []
        dgm.train.fit(_holder(), nn.Module(), _spy(seen), data, steps=1, batch_size=5)
        assert seen[0][0].dtype == torch.float32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            [[0.0, 1.0], [1.0, 0.0]],
            r"fit: data is a list; pass a tensor \[N, \.\.\.\] \(torch\.tensor\(rows\)",
        ),
        (
            np.array([[1, 2], [3]], dtype=object),
            r"fit: data is a numpy array of Python objects \(dtype=object\).*pad them",
        ),
        (np.array(["cat", "dog"]), r"fit: data is a numpy array of strings.*integer ids"),
        (
            {"x": torch.zeros(4, 2), "y": np.array(["a", "b", "a", "b"])},
            r"fit: data\['y'\] is a numpy array of strings",
        ),
        ((torch.zeros(4, 2), 3), r"fit: data\[1\] is a int; each entry .* tensor or a numpy array"),
        ({1: torch.zeros(4, 2)}, r"fit: the keys of a data dict are passed as keyword arguments"),
        (torch.tensor(1.0), r"fit: data is 0-dimensional; its first dimension must index"),
        (np.zeros(3, dtype="datetime64[s]"), r"fit: data has numpy dtype datetime64\[s\]"),
        ("images.npy", r"fit: data must be a tensor, a numpy array, or a tuple or dict"),
    ],
)
def test_data_that_cannot_be_converted_is_refused_with_what_to_pass(
    data: Any, message: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        dgm.train.fit(_holder(), nn.Module(), _spy([]), data, steps=1, batch_size=2)


def test_array_likes_are_refused_with_np_asarray_as_the_way() -> None:
    class Frame:  # a data frame: numpy converts it, fit does not guess
        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            return np.zeros((4, 2))

    with pytest.raises(TypeError, match=r"got Frame; np\.asarray\(data\) converts array-likes"):
        dgm.train.fit(_holder(), nn.Module(), _spy([]), Frame(), steps=1, batch_size=2)
