"""The tabular density-estimation sets of MAF: POWER, GAS, HEPMASS, MINIBOONE and BSDS300.

Papamakarios, Pavlakou & Murray (2017), *Masked Autoregressive Flow for Density Estimation*:
four UCI data sets and patches of BSDS300 images, preprocessed by the code of
github.com/gpapamak/maf (``datasets/*.py``). All five come in one archive, *Preprocessed
datasets for MAF experiments* (Papamakarios 2018, doi 10.5281/zenodo.1161203, about 1 GB),
whose ``data/`` folder holds the raw members this module reads (``TABULAR_SETS``).

The download is opt-in (``tabular(name, download=True)``, or ``data.download=true`` in a
configuration). Where the files are looked for, in every search directory (``data_dir``,
``$DGM_DATA_DIR``, the cache; see ``files.py``):

* the extracted members of a set, all in one of ``<dir>/maf/<folder>/``, ``<dir>/<folder>/``
  or ``<dir>/data/<folder>/`` (``<folder>`` as in the archive: ``power``, ``gas``,
  ``hepmass``, ``miniboone``, ``BSDS300``), e.g. ``~/.cache/dgm/maf/power/data.npy``;
* else the archive ``data.tar.gz``, directly in ``<dir>/`` or in ``<dir>/maf/``: it is checked
  against its md5, and the set's members alone are extracted (one streaming pass) into the
  cache's ``maf/`` folder;
* else, with ``download=True``, the archive is downloaded (md5-verified) into ``maf/`` of the
  first writable search directory, then extracted. The archive is kept for the other sets.

The preprocessing is MAF's, step for step and with its quirks (see each ``preprocess_*``),
from raw arrays or frames to float32 ``(train, valid, test)``. Its results are checked
against the published sizes (``TABULAR_SETS``: a ``CorruptDataError`` naming the file if they
differ) and cached as ``<cache>/maf/<set>-preprocessed-v<CACHE_VERSION>.npz`` (validated by
its shapes on every load), so the slow reads (HEPMASS's CSV, GAS's pickle) happen once; delete
that file to recompute. BSDS300 is not cached: its hdf5 file already holds the final arrays.

pandas (GAS's pickle, HEPMASS's CSV) and h5py (BSDS300) are imported only when needed:
``pip install 'dgm[tabular]'``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from . import files
from .files import CorruptDataError, RemoteFile, cache_dir, search_dirs

ARCHIVE = RemoteFile(
    "data.tar.gz",
    (
        "https://zenodo.org/record/1161203/files/data.tar.gz",
        "https://zenodo.org/api/records/1161203/files/data.tar.gz/content",
    ),
    # The md5 other projects cite for this archive (e.g. as MD5_CHECKSUM beside the same
    # URL); it could not be checked against the file here (no network), so it is the cited
    # value, not one computed by dgm.
    md5="9b9c9b0375315ad270eba4ce80c093ab",
)
ARCHIVE_DOI = "10.5281/zenodo.1161203"
SUBDIR = "maf"  # where the archive is downloaded to and its members extracted to
CACHE_VERSION = 1  # bump when the preprocessing changes: older caches are then ignored
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class TabularSet:
    """One of MAF's tabular sets: where its raw files are, and what preprocessing gives.

    Attributes:
        members: the raw files, relative to the archive's ``data/`` folder (one folder).
        dim: the dimension of a point after preprocessing.
        sizes: the points of the train, validation and test splits after preprocessing.
        summary: one line: what it is, and where it comes from.
        maf5_test_loglik: MAF (5)'s average test log-likelihood in nats per point (higher is
            better), MAF paper Table 1, to set results beside.
        cached: whether the preprocessed splits are cached as an .npz.
    """

    members: tuple[str, ...]
    dim: int
    sizes: tuple[int, int, int]
    summary: str
    maf5_test_loglik: float
    cached: bool = True

    @property
    def folder(self) -> str:
        """The members' folder (as in the archive's ``data/``)."""
        return self.members[0].split("/")[0]


TABULAR_SETS: dict[str, TabularSet] = {
    "power": TabularSet(
        ("power/data.npy",),
        6,
        (1659917, 184435, 204928),
        "POWER: a household's electric power consumption, minute by minute (UCI)",
        0.14,
    ),
    "gas": TabularSet(
        ("gas/ethylene_CO.pickle",),
        8,
        (852174, 94685, 105206),
        "GAS: chemical sensors in a gas mixture of ethylene and CO (UCI)",
        9.07,
    ),
    "hepmass": TabularSet(
        ("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
        21,
        (315123, 35013, 174987),
        "HEPMASS: simulated particle collisions, signal of mass 1000 (UCI)",
        -17.70,
    ),
    "miniboone": TabularSet(
        ("miniboone/data.npy",),
        43,
        (29556, 3284, 3648),
        "MINIBOONE: particle identification, MiniBooNE neutrino experiment (UCI)",
        -11.75,
    ),
    "bsds300": TabularSet(
        ("BSDS300/BSDS300.hdf5",),
        63,
        (1000000, 50000, 250000),
        "BSDS300: 8x8 patches of natural images, last pixel dropped (BSDS, Berkeley)",
        155.69,
        cached=False,
    ),
}


# ---------------------------------------------------------------------------------------------
# The preprocessing: MAF's datasets/*.py, one function per set (raw in, float32 splits out)
# ---------------------------------------------------------------------------------------------


def _cut(n: int, what: str) -> int:
    """MAF's ``int(0.1 * n)``; zero would make its ``x[-0:]`` cut take everything."""
    k = int(0.1 * n)
    if k == 0:
        raise ValueError(f"{what}: {n} rows are too few to cut a tenth off (MAF's split)")
    return k


def _split_test_then_valid(data: np.ndarray, what: str) -> Arrays:
    """The last tenth is the test split, then the last tenth of the rest the validation split
    (the validation size counts the rows left after the test cut)."""
    n_test = _cut(data.shape[0], what)
    test, data = data[-n_test:], data[:-n_test]
    n_valid = _cut(data.shape[0], what)
    return data[:-n_valid], data[-n_valid:], test


def _normalise_on_train_and_valid(train: np.ndarray, valid: np.ndarray, test: np.ndarray) -> Arrays:
    # mean and numpy's std (ddof=0) of train and validation together, applied to all three
    data = np.vstack((train, valid))
    mu, s = data.mean(axis=0), data.std(axis=0)
    return (train - mu) / s, (valid - mu) / s, (test - mu) / s


def _float32(splits: Arrays) -> Arrays:
    a, b, c = (np.ascontiguousarray(x, dtype=np.float32) for x in splits)
    return a, b, c


def preprocess_power(raw: np.ndarray) -> Arrays:
    """POWER (``datasets/power.py``) from ``power/data.npy``: ``[N, 8]`` -> 6 dimensions.

    The steps, as MAF takes them: shuffle the rows with ``RandomState(42)``; delete column 3
    (global intensity), then column 1 (global reactive power); add uniform noise drawn from
    the *same* generator after the shuffle, in the order voltage (0.01 U), then global active
    power (0.001 U), then the three sub-meterings (U) -- but stacked as [active power, voltage,
    sub-meterings, time], so the first draw lands on the second column; the time column gets
    none; cut the last tenth as test, then the last tenth of the rest as validation; normalise
    by the mean and std (ddof=0) of train and validation together. ``raw`` is not modified.
    """
    data = np.array(raw, copy=True)  # MAF shuffles the loaded array in place
    if data.ndim != 2 or data.shape[1] != 8:
        raise ValueError(f"POWER's raw data is [N, 8], got {list(data.shape)}")
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)  # drawn first ...
    gap_noise = 0.001 * rng.rand(n, 1)  # ... but stacked first
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    return _float32(_normalise_on_train_and_valid(*_split_test_then_valid(data, "POWER")))


def _correlated_counts(frame: Any) -> np.ndarray:
    # per column: how many columns (itself included) it correlates with above 0.98 (pandas'
    # Pearson correlation; a NaN correlation, e.g. of a constant column, counts as not)
    return np.asarray((frame.corr() > 0.98).to_numpy().sum(axis=1))


def preprocess_gas(raw: Any) -> Arrays:
    """GAS (``datasets/gas.py``) from the pandas DataFrame in ``gas/ethylene_CO.pickle``.

    Drop the columns ``Meth``, ``Eth`` and ``Time``; then, while some column correlates above
    0.98 with another, drop the *first* such column and recompute the correlations; normalise
    every column by pandas' mean and std (ddof=1, unlike POWER's and MINIBOONE's ddof=0) of
    *all* rows, test rows included (a quirk: the statistics see the test split); cut the last
    tenth as test, then the last tenth of the rest as validation (no shuffle: in file order).
    """
    data = raw.drop(columns=["Meth", "Eth", "Time"])
    counts = _correlated_counts(data)
    while np.any(counts > 1):
        data = data.drop(columns=data.columns[np.where(counts > 1)[0][0]])
        counts = _correlated_counts(data)
    data = (data - data.mean()) / data.std()
    return _float32(_split_test_then_valid(data.to_numpy(dtype=np.float64), "GAS"))


def _smallest_value_count(column: np.ndarray) -> int:
    """MAF's ``np.array([v for k, v in sorted(Counter(feature).items())])[0]``.

    Meant as "too many re-occurring values", it is the count of the column's *smallest*
    value (the first key after sorting), not the largest count: kept as it is. Computed with
    numpy when the column has no NaN (the same number); with a NaN, MAF's own expression.
    """
    if np.isnan(column).any():
        return int(sorted(Counter(column).items())[0][1])
    return int(np.count_nonzero(column == column.min()))


def preprocess_hepmass(train: Any, test: Any) -> Arrays:
    """HEPMASS (``datasets/hepmass.py``) from the frames of ``hepmass/1000_train.csv`` and
    ``hepmass/1000_test.csv`` (``pandas.read_csv(..., index_col=False)``).

    Keep the positive class only (first column == 1) and drop that label column; drop the
    test frame's last column too (MAF: "Because the data set is messed up!"); normalise both
    by the training frame's pandas mean and std (ddof=1; pandas aligns the columns by name);
    then remove every feature whose *smallest* value occurs more than 5 times in the
    training split (``_smallest_value_count``: MAF's quirk); the validation split is the
    last tenth of the training rows (no shuffle); the test split is the test file's.
    """
    train = train[train[train.columns[0]] == 1]
    train = train.drop(train.columns[0], axis=1)
    test = test[test[test.columns[0]] == 1]
    test = test.drop(test.columns[0], axis=1)
    test = test.drop(test.columns[-1], axis=1)
    mu, s = train.mean(), train.std()
    train_x = ((train - mu) / s).to_numpy(dtype=np.float64)
    test_x = ((test - mu) / s).to_numpy(dtype=np.float64)
    if len(train_x) == 0:
        raise ValueError("HEPMASS: the training file has no positive-class rows")
    keep = [i for i, feature in enumerate(train_x.T) if not _smallest_value_count(feature) > 5]
    train_x, test_x = train_x[:, keep], test_x[:, keep]
    n_valid = _cut(train_x.shape[0], "HEPMASS")
    return _float32((train_x[:-n_valid], train_x[-n_valid:], test_x))


def preprocess_miniboone(raw: np.ndarray) -> Arrays:
    """MINIBOONE (``datasets/miniboone.py``) from ``miniboone/data.npy``: ``[N, 43]``.

    The file is already cleaned (outliers and features with a repeated smallest value
    removed, by MAF's commented-out code). Cut the last tenth as test, then the last tenth of
    the rest as validation (its size counts the rows left after the test cut; no shuffle);
    normalise by the mean and std (ddof=0) of train and validation together.
    """
    data = np.asarray(raw)
    if data.ndim != 2:
        raise ValueError(f"MINIBOONE's raw data is [N, D], got {list(data.shape)}")
    return _float32(_normalise_on_train_and_valid(*_split_test_then_valid(data, "MINIBOONE")))


def preprocess_bsds300(raw: Mapping[str, Any]) -> Arrays:
    """BSDS300 (``datasets/bsds300.py``): the arrays ``train``, ``validation`` and ``test`` of
    ``BSDS300/BSDS300.hdf5`` (an open ``h5py.File`` or a dict), as they are (no further
    preprocessing; MAF reads them as stored, here as float32)."""
    return _float32((raw["train"][...], raw["validation"][...], raw["test"][...]))


# ---------------------------------------------------------------------------------------------
# Reading the raw files
# ---------------------------------------------------------------------------------------------


def _need(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(
            f"reading {what} needs {module}: pip install 'dgm[tabular]' (pandas, h5py)"
        ) from None


def _read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _read_raw(name: str, paths: list[Path]) -> Arrays:
    """The set's raw files, read and preprocessed (errors of either kind: CorruptDataError)."""
    try:
        if name == "power":
            return preprocess_power(_read_npy(paths[0]))
        if name == "miniboone":
            return preprocess_miniboone(_read_npy(paths[0]))
        if name == "gas":
            pd = _need("pandas", "GAS's ethylene_CO.pickle")
            # a pickle runs code when read: only read the archive's (md5-verified) file or
            # one you trust
            return preprocess_gas(pd.read_pickle(paths[0]))
        if name == "hepmass":
            pd = _need("pandas", "HEPMASS's CSV files")
            train, test = (pd.read_csv(p, index_col=False) for p in paths)
            return preprocess_hepmass(train, test)
        h5py = _need("h5py", "BSDS300's hdf5 file")
        with h5py.File(paths[0], "r") as f:
            return preprocess_bsds300(f)
    except (ImportError, MemoryError):
        raise
    except Exception as e:  # every reader has its own errors: truncated, wrong format, ...
        problem = f"cannot be read as MAF's raw data ({type(e).__name__}: {e})"
        raise _raw_error(name, paths, problem) from None


def _raw_error(name: str, paths: list[Path], problem: str) -> CorruptDataError:
    members = ", ".join(f"data/{m}" for m in TABULAR_SETS[name].members)
    return CorruptDataError(
        f"{' and '.join(str(p) for p in paths)} {problem}, so it is not the raw {name} data of "
        f"MAF's archive. Delete it (dgm then extracts it again from {ARCHIVE.name}, or "
        f"downloads that with download=True) or replace it with {members} from "
        f"{ARCHIVE.urls[0]} (doi {ARCHIVE_DOI})"
    )


def _check(name: str, splits: Arrays, paths: list[Path]) -> Arrays:
    """The published sizes and dimension, and finite values, or a CorruptDataError."""
    spec = TABULAR_SETS[name]
    expected = [(n, spec.dim) for n in spec.sizes]
    shapes = [tuple(x.shape) for x in splits]
    if shapes != expected:
        got = " / ".join(str(list(s)) for s in shapes)
        want = " / ".join(str(list(s)) for s in expected)
        raise _raw_error(
            name,
            paths,
            f"gives train / valid / test splits of {got} after MAF's preprocessing, not the "
            f"published {want}",
        )
    for part, x in zip(("train", "valid", "test"), splits, strict=True):
        if not np.isfinite(x).all():
            raise _raw_error(
                name, paths, f"gives non-finite values in the {part} split after preprocessing"
            )
    return splits


# ---------------------------------------------------------------------------------------------
# Finding, extracting and downloading
# ---------------------------------------------------------------------------------------------


def _member_dirs(d: Path, folder: str) -> list[Path]:
    return [d / SUBDIR / folder, d / folder, d / "data" / folder]


def _find_members(spec: TabularSet, dirs: list[Path]) -> list[Path] | None:
    names = [m.split("/", 1)[1] for m in spec.members]
    for d in dirs:
        for base in _member_dirs(d, spec.folder):
            if all((base / n).is_file() for n in names):
                return [base / n for n in names]
    return None


def _safe_member_name(info: tarfile.TarInfo, archive: Path) -> str:
    """The member's name without a leading ``./``; refuses absolute names and ``..`` parts."""
    name = info.name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise CorruptDataError(
            f"{archive} holds a member named {info.name!r}, which points outside the folder it "
            f"would be extracted to: refusing to extract from it. It is not MAF's archive: "
            f"delete it and download it again from {ARCHIVE.urls[0]}"
        )
    return "/".join(p for p in parts if p != ".")


def _extract(archive: Path, spec: TabularSet, target: Path) -> list[Path]:
    """Extract the set's members (``data/<member>``) from ``archive`` into ``target``, streaming.

    Only the wanted members are written, each to ``target/<member>`` (a path dgm makes, never
    one a member names), atomically; every member seen on the way is checked for a safe name.
    """
    wanted = {f"data/{m}": target / m for m in spec.members}
    done: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                name = _safe_member_name(info, archive)
                if name not in wanted or name in done:
                    continue
                if not info.isfile():
                    raise CorruptDataError(
                        f"{archive}: its member {info.name!r} is not a regular file: it is not "
                        f"MAF's archive. Delete it and download it again from {ARCHIVE.urls[0]}"
                    )
                source = tar.extractfile(info)
                assert source is not None  # a regular file
                dest = wanted[name]
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
                try:
                    with os.fdopen(fd, "wb") as out, source:
                        shutil.copyfileobj(source, out, 1 << 20)
                    os.replace(tmp_name, dest)
                finally:
                    Path(tmp_name).unlink(missing_ok=True)
                done[name] = dest
                if len(done) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptDataError(
            f"{archive} is truncated or corrupt ({type(e).__name__}: {e}). Delete it and "
            f"download it again from {ARCHIVE.urls[0]}"
        ) from None
    missing = [n for n in wanted if n not in done]
    if missing:
        raise CorruptDataError(
            f"{archive} has no member {', '.join(missing)}: it is not MAF's archive. Delete it "
            f"and download it again from {ARCHIVE.urls[0]}"
        )
    return [wanted[f"data/{m}"] for m in spec.members]


_OPT_IN = (
    "The download is opt-in (about 1 GB from zenodo): set data.download=true in the "
    "configuration (--set data.download=true), or call tabular(..., download=True)."
)


def _raw_paths(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> list[Path]:
    """The set's raw members: found extracted, or extracted from the archive, which is found
    or (with ``download``) downloaded by ``files.find_or_download`` into ``maf/``."""
    spec = TABULAR_SETS[name]
    found = _find_members(spec, search_dirs(data_dir))
    if found is not None:
        return found
    alternative = (
        f"Or, instead of the archive, its members {', '.join(spec.members)} (from its data/ "
        f"folder), in <dir>/{SUBDIR}/{spec.folder}/, <dir>/{spec.folder}/ or "
        f"<dir>/data/{spec.folder}/ of one of those directories."
    )
    try:
        archive = files.find_or_download(
            ARCHIVE,
            data_dir,
            f"{name} (MAF's tabular sets, {ARCHIVE.name}: about 1 GB, doi {ARCHIVE_DOI})",
            download,
            SUBDIR,
            alternative=alternative if download else f"{_OPT_IN}\n{alternative}",
        )
    except CorruptDataError as e:
        raise CorruptDataError(
            f"{e}. (The md5 is the value other projects cite for the archive. If yours is the "
            f"genuine file, extract its data/<set>/ folders into a search directory yourself: "
            "the members are checked by the sizes their preprocessing gives.)"
        ) from None
    return _extract(archive, spec, cache_dir() / SUBDIR)


# ---------------------------------------------------------------------------------------------
# The cache and the loader
# ---------------------------------------------------------------------------------------------


def cache_path(name: str) -> Path:
    """Where the preprocessed splits of ``name`` are cached."""
    return cache_dir() / SUBDIR / f"{name}-preprocessed-v{CACHE_VERSION}.npz"


def _read_cache(name: str) -> Arrays | None:
    """The cached splits if the cache is there and has the published shapes, else None."""
    spec, path = TABULAR_SETS[name], cache_path(name)
    if not spec.cached or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            splits = tuple(npz[k] for k in ("train", "valid", "test"))
    except Exception:  # unreadable (truncated, not an npz, a key missing): recomputed
        return None
    if any(
        x.dtype != np.float32 or x.shape != (n, spec.dim)
        for x, n in zip(splits, spec.sizes, strict=True)
    ):
        return None
    a, b, c = splits
    return a, b, c


def _write_cache(name: str, splits: Arrays) -> None:
    path = cache_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    except OSError:  # no writable cache: every load preprocesses again
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, train=splits[0], valid=splits[1], test=splits[2])
        os.replace(tmp_name, path)
    except OSError:
        pass
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def tabular(
    name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> Arrays:
    """One of MAF's tabular sets, preprocessed as MAF does: float32 ``(train, valid, test)``.

    Args:
        name: ``power``, ``gas``, ``hepmass``, ``miniboone`` or ``bsds300``.
        data_dir: a directory to look in first (then ``$DGM_DATA_DIR``, then the cache).
        download: fetch the archive (about 1 GB from zenodo, md5-verified) when neither the
            set's files nor the archive are found.

    Raises:
        DataNotFoundError: no files and no download; says what to set or put where.
        CorruptDataError: the archive or a raw file is not the published one (md5, a broken
            or unsafe archive, a raw file its preprocessing does not turn into the published
            sizes); names the file.
        ImportError: pandas or h5py are needed and missing (``pip install 'dgm[tabular]'``).
    """
    if name not in TABULAR_SETS:
        raise ValueError(f"unknown tabular set {name!r}; choose one of {', '.join(TABULAR_SETS)}")
    cached = _read_cache(name)
    if cached is not None:
        return cached
    paths = _raw_paths(name, data_dir, download)
    splits = _check(name, _read_raw(name, paths), paths)
    if TABULAR_SETS[name].cached:
        _write_cache(name, splits)
    return splits


__all__ = [
    "ARCHIVE",
    "CACHE_VERSION",
    "TABULAR_SETS",
    "TabularSet",
    "cache_path",
    "preprocess_bsds300",
    "preprocess_gas",
    "preprocess_hepmass",
    "preprocess_miniboone",
    "preprocess_power",
    "tabular",
]
