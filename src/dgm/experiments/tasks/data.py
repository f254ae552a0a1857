"""The data section the tasks share: a data set of ``dgm.data.DATASETS`` and its split sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...data import DATASETS, Splits
from ...data.splits import BINARIZE, HOLDOUT
from ...options import read_when
from ..config import at_least, choice


def _grayscale(name: str) -> bool:
    """Whether data set ``name`` is one of the 60000 + 10000 grayscale IDX sets."""
    return name in DATASETS and bool(DATASETS[name].binarize)


@dataclass(kw_only=True)
class DataConfig:
    """Which data set (``dgm.data.DATASETS``), and how much of it."""

    name: str = choice(DATASETS)
    data_dir: str | None = None
    train_points: int | None = at_least(1, None)  # a subset of the training set (None: all)
    # the first points of a published validation / test split; at least its size: all of it
    valid_points: int = at_least(1, 1000)
    test_points: int = at_least(1, 1000)
    # fetch an opt-in data set's archive when it is missing (the tabular sets: about 1 GB from
    # zenodo); the sets whose capability download is "auto" (MNIST) are fetched regardless
    download: bool = False
    # MNIST / Fashion-MNIST: the last training images held out for validation; 0: all train
    # (validation then watches training images: the IWAE paper's 60000, no validation set)
    holdout: int = read_when(
        lambda d: _grayscale(d.name),
        "data.name=mnist or fashion_mnist",
        at_least(0, HOLDOUT),
    )

    def options(self) -> dict[str, Any]:
        """The loader options beyond the split sizes (the holdout of MNIST-like sets)."""
        return {"holdout": self.holdout} if _grayscale(self.name) else {}

    def load(self, seed: int) -> Splits:
        """The splits this section describes (a data set's random choices follow ``seed``)."""
        opt_in = DATASETS[self.name].download == "opt-in"
        return DATASETS.build(
            self.name,
            data_dir=self.data_dir,
            seed=seed,
            train_points=self.train_points,
            valid_points=self.valid_points,
            test_points=self.test_points,
            **({"download": self.download} if opt_in else {}),
            **self.options(),
        )


@dataclass(kw_only=True)
class ImageDataConfig(DataConfig):
    """An image data set, and how to binarize it."""

    name: str = choice(lambda: DATASETS.names(kind="image"))
    binarize: str | None = choice(BINARIZE, None)  # mnist / fashion_mnist only

    def options(self) -> dict[str, Any]:
        return {**super().options(), "binarize": self.binarize}


__all__ = ["DataConfig", "ImageDataConfig"]
