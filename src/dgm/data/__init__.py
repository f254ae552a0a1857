"""Data sets: loaders with local directories, checksums and downloads."""

from .binarized import binarized_mnist, read_amat
from .factors import FactorData, require_factors, sample_factors
from .files import (
    ENV_VAR,
    ChecksumError,
    CorruptDataError,
    DataNotFoundError,
    RemoteFile,
    cache_dir,
    search_dirs,
)
from .idx import dynamic_binarize, fashion_mnist, mnist, read_idx
from .maf_tables import TABULAR_SETS, tabular
from .mixtures import MIXTURES, Mixture, mixture
from .multi_digit import MultiMNIST, multi_mnist, multi_mnist_set
from .splits import DATASETS, Splits
from .sprites import DSprites, DSpritesFactors, dsprites
from .stacked import stack_digits, stacked_mnist

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "MIXTURES",
    "TABULAR_SETS",
    "ChecksumError",
    "CorruptDataError",
    "DSprites",
    "DSpritesFactors",
    "DataNotFoundError",
    "FactorData",
    "Mixture",
    "MultiMNIST",
    "RemoteFile",
    "Splits",
    "binarized_mnist",
    "cache_dir",
    "dsprites",
    "dynamic_binarize",
    "fashion_mnist",
    "mixture",
    "mnist",
    "multi_mnist",
    "multi_mnist_set",
    "read_amat",
    "read_idx",
    "require_factors",
    "sample_factors",
    "search_dirs",
    "stack_digits",
    "stacked_mnist",
    "tabular",
]
