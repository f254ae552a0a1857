"""Where data files live, how they are verified and how they are downloaded.

A data set is looked for, in order, in: the ``data_dir`` argument, the ``DGM_DATA_DIR``
environment variable, and the cache directory (``$XDG_CACHE_HOME/dgm`` or ``~/.cache/dgm``).
Missing files are downloaded into the first of these with checksum verification; offline,
the error says which files to put where.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "DGM_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """A data set's files are neither on disk nor downloadable."""


class ChecksumError(OSError):
    """A data file's checksum differs from the published one."""


class CorruptDataError(ChecksumError, ValueError):
    """A data file is there but is not the canonical data: what is wrong, and what to do.

    Raised for every broken file: a checksum or content digest that differs from the
    published one, a truncated or corrupt archive, a file in another format under the
    expected name, and arrays of the wrong shape, dtype or values. The message names the
    file and says what to do (delete it, or replace it with the canonical file). A
    ``ChecksumError`` (printed by the CLI as one line, like every data error) and, for
    callers that checked a loader's ``ValueError``, a ``ValueError`` too.
    """


@dataclass(frozen=True)
class RemoteFile:
    """A canonical data file: name, URLs to try in order, and its checksum (sha256 or md5).

    ``local`` lists other forms of the same data that users keep and that are read as well
    when found (never downloaded): e.g. the uncompressed ``train-images-idx3-ubyte`` of a
    published ``train-images-idx3-ubyte.gz``, each with its own checksum.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    # further digests (same algorithm) of the same data as another known packaging ships it
    also: tuple[str, ...] = ()
    local: tuple[RemoteFile, ...] = ()


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched for data files, in order."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dgm`` or ``~/.cache/dgm``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dgm"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise ``CorruptDataError`` if ``path`` does not have ``remote``'s checksum."""
    algorithm, expected = ("sha256", remote.sha256) if remote.sha256 else ("md5", remote.md5)
    if expected is None:
        return
    actual = file_digest(path, algorithm)
    if actual != expected and actual not in remote.also:
        source = (
            f"the file from {remote.urls[0]}" if remote.urls else "the canonical file of that name"
        )
        raise CorruptDataError(
            f"{path} has {algorithm} {actual}, but the published {remote.name} has {expected}. "
            f"The file is corrupt, truncated or a different version: delete it and let dgm "
            f"download it again, or replace it with {source}"
        )


def download(remote: RemoteFile, directory: Path, timeout: float = 30.0) -> Path:
    """Download ``remote`` into ``directory`` (atomically, verified); return its path.

    Raises:
        OSError: every URL failed (offline, or the server is gone).
        ChecksumError: the downloaded bytes have the wrong checksum (nothing is kept).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.name
    errors = []
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{remote.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=timeout) as response,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
            verify(tmp, remote)
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, ChecksumError):
                raise
            errors.append(f"{url}: {e}")
    raise OSError("could not download " + remote.name + ":\n  " + "\n  ".join(errors))


def find_or_download(
    remote: RemoteFile,
    data_dir: str | os.PathLike[str] | None,
    dataset: str,
    download_ok: bool,
    subdir: str = "",
    needed: Sequence[RemoteFile] = (),
    alternative: str = "",
    fallback_dirs: Sequence[Path] = (),
    also_in: Sequence[str] = (),
) -> Path:
    """Path of a verified copy of ``remote`` (or of one of its ``local`` forms): found in the
    search dirs, or downloaded.

    Each search directory is looked at directly, in its ``subdir`` (e.g. ``mnist/``) and in
    the folders ``also_in`` (e.g. torchvision's ``MNIST/raw``), then each of
    ``fallback_dirs`` (where a system package installs the files; never written to);
    downloads go to ``subdir`` of the first writable search directory. When there is no copy
    and none can be downloaded, the ``DataNotFoundError`` lists ``needed`` (every file the
    data set needs; default: just ``remote``) and ``alternative`` (another way to provide the
    data).
    """
    dirs = search_dirs(data_dir)
    dirs_with_fallback = [*dirs, *map(Path, fallback_dirs)]
    found = locate(remote, dirs_with_fallback, subdir, also_in)
    if found is not None:
        path, form = found
        verify(path, form)
        return path
    failure = "downloading is switched off (download=False)"
    if download_ok:
        try:
            return download(remote, _first_writable(dirs) / subdir)
        except ChecksumError:
            raise
        except OSError as e:
            failure = str(e)
    files = list(needed) or [remote]
    raise DataNotFoundError(
        missing_message(dataset, files, dirs_with_fallback, failure, subdir, alternative, also_in)
    )


def locate(
    remote: RemoteFile, dirs: Sequence[Path], subdir: str = "", also_in: Sequence[str] = ()
) -> tuple[Path, RemoteFile] | None:
    """The first file of ``remote`` or of one of its ``local`` forms in ``dirs`` (each looked
    at directly, in ``subdir`` and in ``also_in``), with the form it is; ``None`` if none is
    there. Nothing is read: the caller verifies it."""
    for d in dirs:
        for form in (remote, *remote.local):
            for folder in dict.fromkeys(["", subdir, *also_in]):
                candidate = Path(d) / folder / form.name
                if candidate.is_file():
                    return candidate, form
    return None


def _first_writable(dirs: list[Path]) -> Path:
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    raise OSError(f"none of {[str(d) for d in dirs]} is writable")


def missing_message(
    dataset: str,
    files: Sequence[RemoteFile],
    dirs: list[Path],
    failure: str,
    subdir: str = "",
    alternative: str = "",
    also_in: Sequence[str] = (),
) -> str:
    """The message that tells a user exactly which files to put where."""
    listing = "\n".join(
        f"  {f.name}  (from {f.urls[0]})"
        + "".join(f", or {other.name} (the same data, uncompressed)" for other in f.local)
        for f in files
    )
    looked = "\n".join(f"  {d}" for d in dirs)
    folders = [f"{f}/" for f in (subdir, *also_in) if f]
    where = f" (or its {' or '.join(folders)} subfolder)" if folders else ""
    return (
        f"{dataset} not found, and it could not be downloaded: {failure}\n"
        f"Looked in:\n{looked}\n"
        f"Put these files into one of those directories{where} (or point {ENV_VAR} at a "
        f"directory that has them):\n{listing}" + (f"\n{alternative}" if alternative else "")
    )
