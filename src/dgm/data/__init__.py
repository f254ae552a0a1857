"""Data sets: loaders with local directories, checksums and downloads."""

from .binarized import binarized_mnist, read_amat
from .dsprites import DSprites, dsprites
from .files import ENV_VAR, ChecksumError, DataNotFoundError, RemoteFile, cache_dir, search_dirs
from .idx import dynamic_binarize, fashion_mnist, mnist, read_idx

__all__ = [
    "ENV_VAR",
    "ChecksumError",
    "DSprites",
    "DataNotFoundError",
    "RemoteFile",
    "binarized_mnist",
    "cache_dir",
    "dsprites",
    "dynamic_binarize",
    "fashion_mnist",
    "mnist",
    "read_amat",
    "read_idx",
    "search_dirs",
]
