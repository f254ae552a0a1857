"""dgm's feature classifier: deterministic training, the cache, its inputs, its stated accuracy."""

import math
import shutil
from pathlib import Path

import pytest
import torch

import dgm.data.files as files
import dgm.metrics.classifier as clf
from dgm.metrics import ChannelFeatures, FeatureClassifier, feature_classifier
from dgm.metrics.classifier import (
    Recipe,
    TrainingData,
    TrainingSource,
    cache_path,
    load_or_train,
    mnist_train_available,
    training_source,
)
from tests.conftest import shared_data_dir

T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
QUICK = Recipe(steps=30, batch_size=32)


def real_mnist_dir() -> Path | None:
    """A directory holding the real MNIST test files (DGM_DATA_DIR's, or ../shared/data)."""
    for d in (shared_data_dir(), Path(__file__).resolve().parents[3] / "shared" / "data"):
        if d is not None and all((d / "mnist" / name).is_file() for name in T10K):
            return d / "mnist"
    return None


def bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, 784] of a bright horizontal bar at row 3 + 2 * label, on faint noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    x = 0.2 * torch.rand(n, 28, 28, generator=g)
    x[torch.arange(n), 3 + 2 * labels] = 1.0
    return x.reshape(n, 784), labels


def bar_source(name: str = "bars-400") -> TrainingSource:
    def load() -> TrainingData:
        x, y = bars(400, 0)
        xt, yt = bars(200, 1)
        return TrainingData(x, y, xt, yt, "bars (400 images)", "bars test (200 images)")

    return TrainingSource("bars", name, load)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "dgm"


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_is_deterministic_and_cached(
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = bar_source()
    rng = torch.get_rng_state()
    first = load_or_train(source, QUICK)
    assert torch.equal(torch.get_rng_state(), rng)  # the global random state is untouched
    said = capsys.readouterr().err.splitlines()
    assert said[0] == (
        f"dgm.metrics: training the bars feature classifier on bars-400 (once; cached in "
        f"{cache_path(source, QUICK)})"
    )
    assert cache_path(source, QUICK).is_file() and cache_path(source, QUICK).parent.parent == cache
    # a second call loads the cache: no training, no message

    def no_training(*_: object) -> None:
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    loaded = load_or_train(source, QUICK)
    assert capsys.readouterr().err == ""
    assert same_weights(first, loaded)
    assert (loaded.source, loaded.test_split) == ("bars (400 images)", "bars test (200 images)")
    assert loaded.test_accuracy == first.test_accuracy and loaded.test_points == 200
    assert loaded.dataset == "bars"
    monkeypatch.undo()
    # trained again from scratch in another cache: the very same weights
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other"))
    again = load_or_train(source, QUICK)
    assert cache_path(source, QUICK).is_relative_to(tmp_path / "other")
    assert same_weights(first, again)


def test_the_cache_key_names_source_and_recipe(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cache_path(bar_source(), QUICK)
    assert cache_path(bar_source(), QUICK) == path
    assert cache_path(bar_source(), Recipe(steps=31, batch_size=32)) != path
    assert cache_path(bar_source(), Recipe(steps=30, batch_size=32, seed=1)) != path
    assert cache_path(bar_source("bars-401"), QUICK) != path
    monkeypatch.setattr(clf, "RECIPE_VERSION", clf.RECIPE_VERSION + 1)
    assert cache_path(bar_source(), QUICK) != path


def test_a_corrupt_cache_file_is_retrained(cache: Path) -> None:
    source = bar_source()
    first = load_or_train(source, QUICK)
    path = cache_path(source, QUICK)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    again = load_or_train(source, QUICK)
    assert same_weights(first, again) and path.stat().st_size > 100


def test_frozen_in_eval_mode_and_its_outputs(cache: Path) -> None:
    model = load_or_train(bar_source(), QUICK)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    torch.nn.Sequential(model).train()  # a parent's train() leaves it in evaluation mode
    assert not model.training and not any(m.training for m in model.modules())
    x, _ = bars(7, 5)
    # BatchNorm's running statistics: a sub-batch scores the same (up to the kernels' rounding)
    assert torch.allclose(model(x)[:3], model(x[:3]), atol=1e-5)
    assert model.num_features == 128 and model.image_shape == (1, 28, 28)
    assert model(x).shape == (7, 128)
    assert torch.equal(model(x), model(x.reshape(7, 1, 28, 28)))
    assert model.logits(x).shape == (7, 10)
    assert torch.equal(model.predict(x, batch_size=3), model.logits(x).argmax(1))


def test_stated_accuracy_is_the_measured_one(cache: Path) -> None:
    model = load_or_train(bar_source(), QUICK)
    xt, yt = bars(200, 1)  # the stated test split
    measured = (model.predict(xt) == yt).double().mean().item()
    assert model.test_accuracy == measured and model.test_points == 200
    assert model.test_accuracy > 0.5  # it learnt the bars (chance: 0.1)


@pytest.mark.parametrize(
    "shape",
    [(2, 1, 8, 8), (2, 64), (2, 1, 32, 32), (2, 1024), (2, 28, 28), (2, 3, 28, 28), (2, 2352)],
)
def test_wrong_image_sizes_are_refused(shape: tuple[int, ...]) -> None:
    model = FeatureClassifier()
    with pytest.raises(ValueError, match=r"28x28 grayscale.*\[N, 1, 28, 28\] or \[N, 784\]"):
        model(torch.zeros(shape))


def test_other_inputs_are_refused_with_what_to_do() -> None:
    model = FeatureClassifier()
    with pytest.raises(ValueError, match="ChannelFeatures"):
        model(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="divide by 255"):
        model(torch.zeros(2, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        model(torch.full((2, 784), -1.0))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model(torch.full((2, 784), math.nan))


def test_channel_features_concatenate_each_channel() -> None:
    model = FeatureClassifier().freeze()
    three = ChannelFeatures(model, 3)
    x = torch.rand(4, 3, 28, 28)
    f = three(x)
    assert three.num_features == 384 and f.shape == (4, 384)
    assert torch.equal(f[:, 128:256], model(x[:, 1:2]))
    assert torch.equal(three(x.reshape(4, -1)), f)
    with pytest.raises(ValueError, match=r"\[N, 3, 28, 28\]"):
        three(torch.rand(4, 1, 28, 28))


def test_mnist_source_without_the_training_files(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    opened: list[str] = []
    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, **_: opened.append(url))
    assert training_source("mnist", data).name == "mnist_t10k:train"
    # only one of the two training files: still not there
    (data / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert not mnist_train_available(data)
    assert training_source("mnist", data).name == "mnist_t10k:train"
    (data / "train-labels-idx1-ubyte.gz").write_bytes(b"")  # directly in the data dir
    assert mnist_train_available(data)
    assert training_source("mnist", data).name == "mnist:train"
    # uncompressed, in torchvision's layout: there too
    raw = tmp_path / "raw"
    (raw / "MNIST" / "raw").mkdir(parents=True)
    (raw / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    assert not mnist_train_available(raw)
    (raw / "mnist").mkdir()
    (raw / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"")
    assert mnist_train_available(raw)
    assert training_source("fashion_mnist", data).name == "fashion_mnist:train"
    assert opened == []  # deciding never downloads (nothing was even read)
    with pytest.raises(ValueError, match="fashion_mnist"):
        training_source("cifar10")


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST test files are not at hand")
def test_a_quick_classifier_on_the_real_test_digits(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source_dir = real_mnist_dir()
    assert source_dir is not None
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for name in T10K:
        shutil.copy(source_dir / name, tmp_path / "data" / "mnist" / name)
    full = training_source("mnist", tmp_path / "data")
    assert full.name == "mnist_t10k:train"
    data = full.load()
    assert (len(data.train_images), len(data.test_images)) == (8000, 1000)
    assert data.source.startswith("mnist_t10k training part (8000")

    def subset() -> TrainingData:
        return TrainingData(
            data.train_images[:2000],
            data.train_labels[:2000],
            data.test_images,
            data.test_labels,
            "2000 of mnist_t10k's training part",
            data.test_split,
        )

    model = load_or_train(TrainingSource("mnist", "mnist_t10k:train[:2000]", subset), Recipe(100))
    measured = (model.predict(data.test_images) == data.test_labels).double().mean().item()
    assert model.test_accuracy == measured and model.test_points == 1000
    assert model.test_accuracy > 0.85


@pytest.mark.slow
def test_the_full_recipe_on_the_data_at_hand(
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``feature_classifier("mnist")`` trained in an empty cache from the MNIST files at hand
    (one to two minutes on one CPU thread): run with ``-m slow``."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("trains the full classifier (one to two minutes): select it with -m slow")
    source_dir = real_mnist_dir()
    if source_dir is None:
        pytest.skip("the real MNIST files are not at hand")
    monkeypatch.setenv("DGM_DATA_DIR", str(source_dir.parent))
    model = feature_classifier("mnist")
    source = training_source("mnist")
    data = source.load()
    measured = (model.predict(data.test_images) == data.test_labels).double().mean().item()
    assert model.test_accuracy == measured and model.test_points == len(data.test_images)
    assert model.source == data.source and model.test_split == data.test_split
    target = 0.99 if source.name == "mnist:train" else 0.975
    assert model.test_accuracy >= target, model
    assert math.isfinite(model.train_seconds)
    with capsys.disabled():
        print(f"\n{model.source}: {model.test_accuracy:.4f} in {model.train_seconds:.0f} s")
