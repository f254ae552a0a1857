import math
from pathlib import Path

import torch

from dgm.data import DATASETS, DSpritesFactors, FactorData, dsprites, sample_factors
from dgm.data.sprites import FACTOR_SIZES, NUM_IMAGES, factor_indices, factor_values, render


def test_factor_grid_matches_the_published_one() -> None:
    assert NUM_IMAGES == 3 * 6 * 40 * 32 * 32 == 737280
    v = factor_values()
    torch.testing.assert_close(v["scale"], torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]))
    # the published file's convention: linspace(0, 2 pi, 40), both endpoints included
    assert len(v["orientation"]) == 40 and v["orientation"][0] == 0
    torch.testing.assert_close(v["orientation"][-1], torch.tensor(2 * math.pi))
    torch.testing.assert_close(v["orientation"][1], torch.tensor(2 * math.pi / 39))
    assert v["x"][0] == 0 and v["x"][-1] == 1 and len(v["y"]) == 32
    f = factor_indices(torch.tensor([0, NUM_IMAGES - 1, 1, 32, 1024 * 40]))
    assert f[0].tolist() == [0, 0, 0, 0, 0]
    assert f[1].tolist() == [s - 1 for s in FACTOR_SIZES]
    assert (
        f[2].tolist() == [0, 0, 0, 0, 1]
        and f[3].tolist() == [0, 0, 0, 1, 0]
        and f[4].tolist() == [0, 1, 0, 0, 0]
    )


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.nonzero(image, as_tuple=True)
    return xs.float().mean().item(), ys.float().mean().item()


def test_images_follow_their_factors() -> None:
    def image(shape: int, scale: int, orientation: int, x: int, y: int) -> torch.Tensor:
        return render(torch.tensor([[shape, scale, orientation, x, y]]))[0]

    # the centre of mass moves right with x and down with y, in proportion
    x0, y0 = centre_of_mass(image(0, 3, 0, 0, 16))
    x1, y1 = centre_of_mass(image(0, 3, 0, 31, 16))
    assert 36 < x1 - x0 < 40 and abs(y1 - y0) < 1
    xa, ya = centre_of_mass(image(1, 3, 0, 16, 0))
    xb, yb = centre_of_mass(image(1, 3, 0, 16, 31))
    assert 36 < yb - ya < 40 and abs(xb - xa) < 1
    # area grows with the square of the scale; a square's area is (2 * 0.12 * 64 * scale)^2
    small, large = image(0, 0, 0, 16, 16).sum().item(), image(0, 5, 0, 16, 16).sum().item()
    for area, scale in ((small, 0.5), (large, 1.0)):
        side = 2 * 0.12 * 64 * scale
        assert (side - 1) ** 2 <= area <= (side + 1) ** 2  # up to a pixel per side
    assert 3.0 < large / small < 5.0
    # a square rotated by 45 degrees (orientation 5 of 40) keeps its area and changes shape
    turned = image(0, 5, 5, 16, 16)
    assert (
        abs(turned.sum().item() - large) < 0.1 * large and (turned != image(0, 5, 0, 16, 16)).any()
    )
    # the three shapes differ; the image is binary and the shape fits inside the frame
    shapes = [image(s, 5, 0, 16, 16) for s in range(3)]
    assert (shapes[0] != shapes[1]).any() and (shapes[1] != shapes[2]).any()
    for x, y in ((0, 0), (31, 31)):
        for shape in range(3):
            for orientation in range(0, 40, 3):
                im = image(shape, 5, orientation, x, y)
                edges = torch.cat([im[0], im[-1], im[:, 0], im[:, -1]])
                assert im.any() and not edges.any()


def test_generation_is_deterministic_and_cached(tmp_path: Path) -> None:
    a = dsprites(500, seed=3, directory=tmp_path)
    assert (
        a.images.shape == (500, 4096) and a.factors.shape == (500, 5) and a.values.shape == (500, 5)
    )
    assert set(a.images.unique().tolist()) == {0.0, 1.0}
    assert len(list(tmp_path.glob("dsprites-*.npz"))) == 1
    b = dsprites(500, seed=3, directory=tmp_path)  # from the cache
    c = dsprites(500, seed=3, cache=False)
    assert (
        torch.equal(a.images, b.images)
        and torch.equal(a.images, c.images)
        and torch.equal(a.index, c.index)
    )
    d = dsprites(500, seed=4, directory=tmp_path)
    assert not torch.equal(a.index, d.index)
    # every image is the rendering of its own factors
    torch.testing.assert_close(a.images[:7], render(a.factors[:7]).reshape(7, -1).float())
    torch.testing.assert_close(a.values[:, 1], factor_values()["scale"][a.factors[:, 1]])


def test_full_set_has_every_image_once() -> None:
    f = factor_indices(torch.arange(NUM_IMAGES))
    assert f.shape == (NUM_IMAGES, 5)
    flat = (((f[:, 0] * 6 + f[:, 1]) * 40 + f[:, 2]) * 32 + f[:, 3]) * 32 + f[:, 4]
    assert torch.equal(flat, torch.arange(NUM_IMAGES))


def test_orientations_zero_and_last_are_one_image() -> None:
    # the published convention's consequence, for every shape (heart included)
    for shape in range(3):
        first = render(torch.tensor([[shape, 5, 0, 10, 20]]))
        last = render(torch.tensor([[shape, 5, 39, 10, 20]]))
        other = render(torch.tensor([[2, 5, 20, 10, 20]]))
        assert torch.equal(first, last)
    assert not torch.equal(render(torch.tensor([[2, 5, 0, 10, 20]])), other)


def test_factor_data_renders_the_grid_at_either_size(tmp_path: Path) -> None:
    small, full = DSpritesFactors(32), DSpritesFactors()
    assert isinstance(small, FactorData) and small.image_shape == (32, 32)
    f = sample_factors(full, 6, torch.Generator().manual_seed(0))
    assert f.shape == (6, 5) and (f < torch.tensor(FACTOR_SIZES)).all()
    images = full.render(f)
    assert images.shape == (6, 4096)
    torch.testing.assert_close(images, render(f).reshape(6, -1).float())
    coarse = small.render(f).reshape(6, 32, 32)
    # the 32x32 rendering is the 64x64 one seen at half resolution (up to edge pixels)
    pooled = images.reshape(6, 32, 2, 32, 2).mean((2, 4))
    assert ((pooled - coarse).abs() > 0.5).float().mean() < 0.02
    cached = dsprites(40, seed=1, directory=tmp_path, size=32)
    assert cached.images.shape == (40, 1024)
    again = dsprites(40, seed=1, directory=tmp_path, size=32)
    assert torch.equal(again.images, small.render(cached.factors))
    for bad in (torch.tensor([[3, 0, 0, 0, 0]]), torch.zeros(2, 4, dtype=torch.long)):
        try:
            full.render(bad)
        except ValueError as e:
            assert "dSprites factor" in str(e)
        else:
            raise AssertionError("bad factors rendered")


def test_dsprites_splits_carry_their_factor_data() -> None:
    assert DATASETS.names(factors=True) == ["dsprites", "dsprites32"]
    splits = DATASETS.build(
        "dsprites32", seed=0, train_points=30, valid_points=5, test_points=5, data_dir=None
    )
    assert splits.train.shape == (30, 1024) and splits.image_shape == (32, 32)
    data = splits.info["factor_data"]
    indices = splits.side["factor_indices"]["train"]
    assert torch.equal(data.render(indices), splits.train)
    # the splits are random draws from the grid, not its first images (all squares)
    big = DATASETS.build(
        "dsprites32", seed=0, train_points=300, valid_points=100, test_points=100, data_dir=None
    )
    for split in ("train", "valid", "test"):
        shapes = big.side["factor_indices"][split][:, 0]
        assert set(shapes.tolist()) == {0, 1, 2}, split


def test_too_small_a_rendering_says_so() -> None:
    for make in (lambda: DSpritesFactors(4), lambda: dsprites(10, size=4, cache=False)):
        try:
            make()
        except ValueError as e:
            assert "size must be >= 8 pixels, got 4" in str(e)
        else:
            raise AssertionError("a 4-pixel rendering was accepted")
