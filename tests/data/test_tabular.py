"""MAF's tabular sets: the preprocessing against hand computations, and the loader end to end.

Everything runs on small generated raw files (no network). The published-size check is
strict, so the tests that load generated files first set the sizes MAF's arithmetic gives
for them (``expect``, which monkeypatches ``TABULAR_SETS``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

import dgm.data.maf_tables as tabular_module
from dgm.data import DATASETS, CorruptDataError, DataNotFoundError, tabular
from dgm.data.maf_tables import (
    TABULAR_SETS,
    cache_path,
    preprocess_bsds300,
    preprocess_gas,
    preprocess_hepmass,
    preprocess_miniboone,
    preprocess_power,
)
from dgm.experiments.tasks.data import DataConfig
from dgm.registry import Entry


def maf_sizes(n: int) -> tuple[int, int, int]:
    """MAF's split arithmetic: the last tenth is the test split, then the last tenth of the
    rest the validation split."""
    n_test = int(0.1 * n)
    n_valid = int(0.1 * (n - n_test))
    return n - n_test - n_valid, n_valid, n_test


def expect(
    monkeypatch: pytest.MonkeyPatch, name: str, sizes: tuple[int, int, int], dim: int | None = None
) -> None:
    """Let the loader accept generated files: the sizes (and dimension) they give."""
    spec = TABULAR_SETS[name]
    replaced = dataclasses.replace(spec, sizes=sizes, dim=spec.dim if dim is None else dim)
    monkeypatch.setitem(TABULAR_SETS, name, replaced)


def power_raw(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.1, 3.0, 4.0, 1.0, 1.0, 5.0, 400.0])
    offset = np.array([1.0, 0.1, 240.0, 4.0, 1.0, 1.0, 6.0, 700.0])
    return rng.normal(size=(n, 8)) * scale + offset


def fake_power(directory: Path, monkeypatch: pytest.MonkeyPatch, n: int = 1000) -> np.ndarray:
    """A generated raw ``power/data.npy`` in ``directory``, accepted by the loader."""
    raw = power_raw(n)
    (directory / "power").mkdir(parents=True, exist_ok=True)
    np.save(directory / "power" / "data.npy", raw)
    expect(monkeypatch, "power", maf_sizes(n))
    return raw


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    data, cache = tmp_path / "data", tmp_path / "xdg"
    data.mkdir()
    monkeypatch.setenv("DGM_DATA_DIR", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return {"data": data, "cache": cache / "dgm"}


# ---------------------------------------------------------------------------------------------
# The preprocessing, step by step, against computations written out here
# ---------------------------------------------------------------------------------------------


def test_power_follows_mafs_steps() -> None:
    raw = power_raw(200)
    before = raw.copy()
    train, valid, test = preprocess_power(raw)
    assert np.array_equal(raw, before)  # the caller's array is not shuffled

    rng = np.random.RandomState(42)
    order = rng.permutation(200)  # the same draws as shuffling the rows in place
    shuffled = raw[order]
    kept = shuffled[:, [0, 2, 4, 5, 6, 7]]  # columns 3 and 1 deleted
    voltage = 0.01 * rng.rand(200)  # drawn first, for the second column
    active = 0.001 * rng.rand(200)  # drawn second, for the first
    sub = rng.rand(200, 3)
    noisy = kept.copy()
    noisy[:, 0] += active
    noisy[:, 1] += voltage
    noisy[:, 2:5] += sub
    test_x, rest = noisy[180:], noisy[:180]  # 20 test rows
    train_x, valid_x = rest[:162], rest[162:]  # a tenth of the 180 left: 18
    mean, std = rest.mean(0), np.sqrt(((rest - rest.mean(0)) ** 2).mean(0))
    for got, x in ((train, train_x), (valid, valid_x), (test, test_x)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, (x - mean) / std, rtol=1e-5, atol=1e-5)
    assert [len(x) for x in (train, valid, test)] == [162, 18, 20] == list(maf_sizes(200))


def test_power_refuses_raw_data_of_another_width() -> None:
    with pytest.raises(ValueError, match=r"\[N, 8\], got \[10, 7\]"):
        preprocess_power(np.zeros((10, 7)))


def gas_frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(3, n))
    return pd.DataFrame(
        {
            "Time": np.arange(n, dtype=float),
            "Meth": rng.normal(size=n),
            "s1": a,
            "s2": 2 * a + 0.01 * rng.normal(size=n),  # correlated > 0.98 with s1
            "Eth": rng.normal(size=n),
            "s3": b,
            "s4": b - 0.05 * rng.normal(size=n),  # with s3
            "s5": c,
        }
    )


def test_gas_drops_the_first_of_each_correlated_pair_and_uses_ddof_1() -> None:
    frame = gas_frame()
    assert frame[["s1", "s2"]].corr().iloc[0, 1] > 0.98 < frame[["s3", "s4"]].corr().iloc[0, 1]
    train, valid, test = preprocess_gas(frame)
    # s1, s2, s3, s4 each correlate with one other: s1 goes; then s3 (s2 is alone now)
    x = frame[["s2", "s4", "s5"]].to_numpy()
    z = (x - x.mean(0)) / x.std(0, ddof=1)  # every row's statistics, the test rows' too
    np.testing.assert_allclose(np.vstack([train, valid, test]), z, rtol=1e-5, atol=1e-6)
    assert (len(train), len(valid), len(test)) == (81, 9, 10) == maf_sizes(100)
    np.testing.assert_allclose(test, z[90:], rtol=1e-5, atol=1e-6)  # no shuffle


def hepmass_frames(n: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(2)

    def frame(rows: int, extra: bool) -> pd.DataFrame:
        label = np.tile([1, 0], rows // 2)
        columns: dict[str, Any] = {"# label": label}
        columns["f0"] = rng.normal(size=rows)
        f1 = rng.normal(size=rows)
        f1[np.flatnonzero(label == 1)[:6]] = -5.0  # its smallest value, 6 times: removed
        columns["f1"] = f1
        f2 = rng.normal(size=rows)
        f2[np.flatnonzero(label == 1)[:10]] = 0.25  # repeated 10 times, not its smallest: kept
        columns["f2"] = f2
        columns["f3"] = rng.normal(size=rows) * 3 + 1
        if extra:
            columns["junk"] = rng.normal(size=rows)
        return pd.DataFrame(columns)

    return frame(n, False), frame(n // 2, True)


def test_hepmass_keeps_the_signal_and_removes_features_with_a_repeated_smallest_value() -> None:
    train_frame, test_frame = hepmass_frames()
    train, valid, test = preprocess_hepmass(train_frame, test_frame)
    pos = train_frame[train_frame["# label"] == 1][["f0", "f1", "f2", "f3"]].to_numpy()
    mean, std = pos.mean(0), pos.std(0, ddof=1)
    z = ((pos - mean) / std)[:, [0, 2, 3]]  # f1 removed, f2 kept: the smallest value's count
    tpos = test_frame[test_frame["# label"] == 1][["f0", "f1", "f2", "f3"]].to_numpy()
    zt = ((tpos - mean) / std)[:, [0, 2, 3]]  # the training statistics; "junk" dropped
    n_valid = int(0.1 * len(pos))
    np.testing.assert_allclose(train, z[:-n_valid], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(valid, z[-n_valid:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(test, zt, rtol=1e-5, atol=1e-6)
    assert (len(train), len(valid), len(test)) == (54, 6, 30)


def test_hepmass_keeps_a_smallest_value_repeated_five_times() -> None:
    train_frame, test_frame = hepmass_frames()
    f1 = train_frame["f1"].to_numpy().copy()
    f1[np.flatnonzero((train_frame["# label"] == 1).to_numpy())[5]] = 0.0  # now 5 times
    train_frame["f1"] = f1
    assert preprocess_hepmass(train_frame, test_frame)[0].shape[1] == 4


def test_miniboone_cuts_the_validation_tenth_of_what_the_test_cut_leaves() -> None:
    raw = np.random.default_rng(3).normal(size=(100, 43)) * 7 + 2
    train, valid, test = preprocess_miniboone(raw)
    # 10 test rows, then a tenth of the 90 left (9, not a tenth of 100)
    assert (len(train), len(valid), len(test)) == (81, 9, 10)
    rest = raw[:90]
    mean, std = rest.mean(0), rest.std(0)  # ddof=0, over train and validation
    np.testing.assert_allclose(train, (raw[:81] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(valid, (raw[81:90] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(test, (raw[90:] - mean) / std, rtol=1e-5, atol=1e-5)


def bsds_file(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    arrays = {k: rng.normal(size=(n, 63)) for k, n in (("train", 50), ("validation", 10))}
    arrays["test"] = rng.normal(size=(20, 63))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v.astype(np.float32))
    return arrays


def test_bsds300_reads_the_three_arrays_as_they_are(tmp_path: Path) -> None:
    arrays = bsds_file(tmp_path / "b.hdf5")
    with h5py.File(tmp_path / "b.hdf5", "r") as f:
        splits = preprocess_bsds300(f)
    for got, key in zip(splits, ("train", "validation", "test"), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, arrays[key].astype(np.float32))


def test_the_published_sizes_follow_mafs_arithmetic() -> None:
    # POWER's 2049280 raw rows, GAS's 1052065, MINIBOONE's 36488 (no other N gives these)
    assert TABULAR_SETS["power"].sizes == maf_sizes(2049280)
    assert TABULAR_SETS["gas"].sizes == maf_sizes(1052065)
    assert TABULAR_SETS["miniboone"].sizes == maf_sizes(36488)
    train, valid, _ = TABULAR_SETS["hepmass"].sizes
    assert valid == int(0.1 * (train + valid))
    assert [TABULAR_SETS[n].dim for n in TABULAR_SETS] == [6, 8, 21, 43, 63]
    assert TABULAR_SETS["bsds300"].maf5_test_loglik == 155.69


# ---------------------------------------------------------------------------------------------
# The loader: raw members, the archive, the cache, and what it says when data are missing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["maf/power", "power", "data/power"])
def test_the_loader_reads_the_raw_member_and_caches_the_splits(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    raw = fake_power(dirs["data"] / layout.rpartition("/")[0], monkeypatch)
    first = tabular("power")
    for got, want in zip(first, preprocess_power(raw), strict=True):
        np.testing.assert_array_equal(got, want)
    assert cache_path("power").is_file()
    assert cache_path("power").parent == dirs["cache"] / "maf"
    (dirs["data"] / layout / "data.npy").unlink()
    again = tabular("power")  # from the cache alone
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_broken_or_stale_cache_is_recomputed(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_power(dirs["data"], monkeypatch)
    want = tabular("power")
    cache_path("power").write_bytes(b"not an npz")
    np.testing.assert_array_equal(tabular("power")[2], want[2])
    np.savez(cache_path("power"), train=want[0][:5], valid=want[1], test=want[2])  # wrong size
    np.testing.assert_array_equal(tabular("power")[0], want[0])
    with np.load(cache_path("power")) as npz:  # and rewritten
        assert npz["train"].shape == want[0].shape


def test_files_that_do_not_give_the_published_sizes_are_refused(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_power(dirs["data"], monkeypatch)
    monkeypatch.undo()  # the published sizes again
    monkeypatch.setenv("DGM_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(dirs["cache"].parent))
    with pytest.raises(CorruptDataError, match=r"power/data.npy gives train / valid / test") as e:
        tabular("power")
    assert "[1659917, 6] / [184435, 6] / [204928, 6]" in str(e.value)
    assert not cache_path("power").exists()
    np.save(dirs["data"] / "power" / "data.npy", np.zeros((30, 7)))
    with pytest.raises(CorruptDataError, match=r"cannot be read as MAF's raw data.*\[N, 8\]"):
        tabular("power")
    (dirs["data"] / "power" / "data.npy").write_bytes(b"truncated")
    with pytest.raises(CorruptDataError, match=r"data.npy cannot be read"):
        tabular("power")


def test_every_set_loads_from_its_raw_files(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dirs["data"]
    gas_dir, hep_dir, mini_dir = root / "gas", root / "maf" / "hepmass", root / "miniboone"
    for d in (gas_dir, hep_dir, mini_dir):
        d.mkdir(parents=True)
    gas_frame().to_pickle(gas_dir / "ethylene_CO.pickle")
    expect(monkeypatch, "gas", (81, 9, 10), dim=3)
    train_frame, test_frame = hepmass_frames()
    train_frame.to_csv(hep_dir / "1000_train.csv", index=False)
    test_frame.to_csv(hep_dir / "1000_test.csv", index=False)
    expect(monkeypatch, "hepmass", (54, 6, 30), dim=3)
    mini = np.random.default_rng(3).normal(size=(100, 43))
    np.save(mini_dir / "data.npy", mini)
    expect(monkeypatch, "miniboone", (81, 9, 10))
    bsds = bsds_file(root / "data" / "BSDS300" / "BSDS300.hdf5")
    expect(monkeypatch, "bsds300", (50, 10, 20))

    np.testing.assert_allclose(
        tabular("gas")[0], preprocess_gas(gas_frame())[0], rtol=1e-6, atol=1e-6
    )
    hep = tabular("hepmass")
    np.testing.assert_allclose(hep[2], preprocess_hepmass(*hepmass_frames())[2], atol=1e-6)
    np.testing.assert_array_equal(tabular("miniboone")[1], preprocess_miniboone(mini)[1])
    np.testing.assert_array_equal(tabular("bsds300")[2], bsds["test"].astype(np.float32))
    assert not cache_path("bsds300").exists() and cache_path("hepmass").is_file()
    (hep_dir / "1000_train.csv").unlink()
    assert tabular("hepmass")[0].shape == (54, 3)  # the slow CSV read happens once


def test_missing_pandas_says_how_to_install_it(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (dirs["data"] / "gas").mkdir()
    (dirs["data"] / "gas" / "ethylene_CO.pickle").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"needs pandas: pip install 'dgm\[tabular\]'"):
        tabular("gas")


def make_archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def trust(monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    """Make ``archive`` the published one (its md5)."""
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    published = dataclasses.replace(tabular_module.ARCHIVE, md5=md5)
    monkeypatch.setattr(tabular_module, "ARCHIVE", published)


def test_the_archive_is_verified_and_only_the_members_needed_are_extracted(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = power_raw(1000)
    expect(monkeypatch, "power", maf_sizes(1000))
    archive = make_archive(
        dirs["data"] / "data.tar.gz",
        {
            "data/mnist/mnist.pkl.gz": b"not needed",
            "data/power/data.npy": npy_bytes(raw),
            "data/gas/ethylene_CO.pickle": b"not needed either",
        },
    )
    with pytest.raises(CorruptDataError, match=r"data.tar.gz has md5 .* the published"):
        tabular("power")  # the real md5 is not this file's
    trust(monkeypatch, archive)
    train, _, _ = tabular("power")
    np.testing.assert_array_equal(train, preprocess_power(raw)[0])
    extracted = dirs["cache"] / "maf" / "power" / "data.npy"
    np.testing.assert_array_equal(np.load(extracted), raw)
    assert not (dirs["cache"] / "maf" / "gas").exists()
    assert not (dirs["cache"] / "maf" / "mnist").exists()


@pytest.mark.parametrize("name", ["../power/data.npy", "/tmp/evil.npy", "data/../../x.npy"])
def test_an_archive_with_a_member_pointing_outside_is_refused(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    (dirs["data"] / "maf").mkdir()
    archive = make_archive(
        dirs["data"] / "maf" / "data.tar.gz",
        {name: b"evil", "data/power/data.npy": npy_bytes(power_raw(100))},
    )
    trust(monkeypatch, archive)
    with pytest.raises(CorruptDataError, match=r"points outside .* refusing to extract"):
        tabular("power")
    assert not (dirs["cache"] / "power").exists() and not (dirs["cache"] / "x.npy").exists()
    assert not (dirs["cache"] / "maf" / "power").exists()


def test_a_truncated_archive_or_one_without_the_member_is_refused(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dirs["data"] / "data.tar.gz"
    make_archive(path, {"data/power/data.npy": npy_bytes(power_raw(2000))})
    path.write_bytes(path.read_bytes()[:3000])
    trust(monkeypatch, path)
    with pytest.raises(CorruptDataError, match=r"data.tar.gz is truncated or corrupt"):
        tabular("power")
    make_archive(path, {"data/gas/ethylene_CO.pickle": b"x"})
    trust(monkeypatch, path)
    with pytest.raises(CorruptDataError, match=r"has no member data/power/data.npy"):
        tabular("power")


def test_missing_data_without_download_says_what_to_set_or_put_where(
    dirs: dict[str, Path],
) -> None:
    with pytest.raises(DataNotFoundError) as e:
        tabular("hepmass")
    message = str(e.value)
    for needed in (
        "data.download=true",
        "download=True",
        "data.tar.gz",
        "https://zenodo.org/record/1161203/files/data.tar.gz",
        "hepmass/1000_train.csv, hepmass/1000_test.csv",
        "<dir>/maf/hepmass/",
        str(dirs["data"]),
        str(dirs["cache"]),
    ):
        assert needed in message, needed


def test_download_fetches_the_archive_into_the_first_writable_dir(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    raw = power_raw(1000)
    expect(monkeypatch, "power", maf_sizes(1000))
    published = make_archive(tmp_path / "published.tar.gz", {"data/power/data.npy": npy_bytes(raw)})
    trust(monkeypatch, published)

    class Response(io.BytesIO):
        def __enter__(self) -> Response:
            return self

    urls: list[str] = []

    def urlopen(url: str, timeout: float) -> Response:
        urls.append(url)
        return Response(published.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(DataNotFoundError):
        tabular("power")  # not without download=True
    assert urls == []
    np.testing.assert_array_equal(tabular("power", download=True)[0], preprocess_power(raw)[0])
    assert urls == ["https://zenodo.org/record/1161203/files/data.tar.gz"]
    assert (dirs["data"] / "maf" / "data.tar.gz").is_file()


def test_download_offline_or_corrupt(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, timeout: float) -> Any:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError) as e:
        tabular("miniboone", download=True)
    assert "could not download data.tar.gz" in str(e.value) and "no network" in str(e.value)
    assert "miniboone/data.npy" in str(e.value) and "Looked in" in str(e.value)

    class Response(io.BytesIO):
        def __enter__(self) -> Response:
            return self

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(b"html page"))
    with pytest.raises(CorruptDataError, match=r"has md5 .*, but the published data.tar.gz"):
        tabular("miniboone", download=True)
    assert not list((dirs["data"] / "maf").iterdir())  # nothing kept


# ---------------------------------------------------------------------------------------------
# The registry and the configuration
# ---------------------------------------------------------------------------------------------


def test_every_data_set_says_how_it_is_downloaded() -> None:
    assert {DATASETS[n].download for n in DATASETS} == {"auto", "opt-in", "none"}
    assert DATASETS.names(download="opt-in") == list(TABULAR_SETS)
    assert DATASETS.names(download="auto") == [
        "binarized_mnist",
        "mnist",
        "mnist_t10k",
        "fashion_mnist",
        "stacked_mnist",
        "multi_mnist",
        "multi_mnist_32",
    ]
    for name, spec in TABULAR_SETS.items():
        entry = DATASETS[name]
        assert (entry.kind, entry.shape, entry.levels, entry.binarize, entry.factors) == (
            "points",
            (spec.dim,),
            None,
            False,
            False,
        )
        assert entry.train_size == spec.sizes[0]


def test_data_download_reaches_the_opt_in_loaders_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, dict[str, Any]] = {}
    for name in ("power", "mnist"):
        entry = DATASETS[name]

        def spy(name: str = name, **kwargs: Any) -> None:
            calls[name] = kwargs

        monkeypatch.setitem(DATASETS._entries, name, Entry(spy, entry.summary, entry.capabilities))
    DataConfig(name="power", download=True).load(0)
    DataConfig(name="mnist", download=True).load(0)
    assert calls["power"]["download"] is True
    assert "download" not in calls["mnist"]


def test_split_sizes_take_the_first_points_and_a_large_number_takes_all(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_power(dirs["data"], monkeypatch)
    train, valid, test = tabular("power")
    big = 10**9
    splits = DataConfig(name="power", train_points=7, valid_points=big, test_points=big).load(0)
    assert splits.image_shape == (6,) and splits.data_size == 6
    assert np.array_equal(splits.train.numpy(), train[:7])
    assert np.array_equal(splits.valid.numpy(), valid) and np.array_equal(splits.test.numpy(), test)
    small = DataConfig(name="power", valid_points=3, test_points=5).load(0)
    assert len(small.train) == len(train) and small.test.shape == (5, 6)


def test_the_packaged_maf_experiment_trains_on_a_fake_power_from_the_cli(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dgm.cli import main

    fake_power(dirs["data"], monkeypatch)
    out = tmp_path / "run"
    args = ["train", "flow-power-maf", "--smoke", "--no-progress", "--out", str(out)]
    assert main([*args, "--set", "train.steps=3", "--set", "data.test_points=100000"]) == 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["train_steps"] == 3 and final["test_points"] == maf_sizes(1000)[2]
    assert math.isfinite(final["test_nll"]) and (out / "density.png").is_file()
