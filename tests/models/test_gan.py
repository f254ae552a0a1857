"""The GAN networks: shapes, PacGAN's published layers, the discriminator switches, and
double backward (the gradient penalty) through every discriminator."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dgm.models.gan import (
    GAN_ARCHITECTURES,
    Discriminator,
    Maxout,
    MinibatchStd,
    build_gan,
    pack_samples,
)
from dgm.registry import UnknownChoiceError

CASES = [
    ("pacgan2d", (2,)),
    ("mlp", (1, 28, 28)),
    ("mlp", (3, 28, 28)),
    ("mlp", (28, 28)),
    ("dcgan", (1, 28, 28)),
    ("dcgan", (3, 28, 28)),
    ("dcgan", (28, 28)),
]
SMALL = {"pacgan2d": 20, "mlp": 16, "dcgan": 8}  # narrow networks where width is irrelevant


def _weighted(module: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _first_layer(d: Discriminator) -> nn.Linear | nn.Conv2d:
    return _weighted(d)[0]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_output_shapes_and_ranges(name: str, shape: tuple[int, ...]) -> None:
    g, d = build_gan(name, shape, hidden=SMALL[name])
    assert g.shape == shape and g.latent_size == GAN_ARCHITECTURES[name].latent
    x = g(torch.randn(6, g.latent_size))
    assert x.shape == (6, *shape)
    assert g.sample(5).shape == (5, *shape)
    scores = d(x)
    assert scores.shape == (6,) and d.pack == 1
    if GAN_ARCHITECTURES[name].data == "image":  # sigmoid outputs for data in [0, 1]
        assert x.min() >= 0 and x.max() <= 1
    with pytest.raises(ValueError, match=r"expects z of shape \[B, "):
        g(torch.randn(6, g.latent_size + 1))
    with pytest.raises(ValueError, match="the discriminator expects inputs"):
        d(torch.zeros(6, 5))


def test_pacgan2d_is_the_published_network() -> None:
    g, d = build_gan("pacgan2d", (2,))
    assert g.latent_size == 2
    gl = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in gl] == [(2, 400)] + [(400, 400)] * 3 + [
        (400, 2)
    ]
    assert [m.bias is None for m in gl] == [True] * 4 + [False]  # BatchNorm's shift instead
    kinds = [type(m) for m in g.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4 + [nn.Linear]
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm1d)]
    assert all(torch.equal(b.weight, torch.ones(400)) and b.bias.abs().sum() == 0 for b in bns)
    maxouts = [m for m in d.modules() if isinstance(m, Maxout)]
    assert [(m.in_features, m.out_features, m.pieces) for m in maxouts] == [
        (2, 200, 5),
        (200, 200, 5),
        (200, 200, 5),
    ]
    assert [(m.in_features, m.out_features) for m in _weighted(d)][-1] == (200, 1)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())


def test_dcgan_is_the_28x28_dcgan() -> None:
    g, d = build_gan("dcgan", (3, 28, 28))
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels) for u in ups] == [(128, 64), (64, 3)]
    assert all(u.kernel_size == (4, 4) and u.stride == (2, 2) for u in ups)
    assert isinstance(g.net[-1], nn.Sigmoid)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128)]
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    g2, _ = build_gan("dcgan", (1, 28, 28), latent=16, hidden=32)
    assert g2.latent_size == 16
    assert [m.out_channels for m in g2.modules() if isinstance(m, nn.ConvTranspose2d)] == [32, 1]


def test_mlp_widths_follow_hidden() -> None:
    g, d = build_gan("mlp", (1, 28, 28))
    assert [m.out_features for m in g.modules() if isinstance(m, nn.Linear)] == [
        256,
        512,
        1024,
        784,
    ]
    assert [(m.in_features, m.out_features) for m in _weighted(d)] == [
        (784, 512),
        (512, 256),
        (256, 1),
    ]


@pytest.mark.parametrize("name", ["pacgan2d", "dcgan"])
def test_normal_initialisation(name: str) -> None:
    g, d = build_gan(name, (2,) if name == "pacgan2d" else (1, 28, 28))
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                if m.weight.numel() >= 10_000:
                    assert m.weight.std().item() == pytest.approx(0.02, rel=0.05)
                    assert abs(m.weight.mean().item()) < 0.002
                assert m.bias is None or torch.count_nonzero(m.bias) == 0
    if name == "dcgan":  # BatchNorm scales ~ N(1, 0.02), as DCGAN initialises them
        scales = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
        assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
        assert 0.01 < scales.std().item() < 0.03


def test_pack_samples_groups_consecutive_samples() -> None:
    x = torch.arange(6 * 3, dtype=torch.float).reshape(6, 3)
    p = pack_samples(x, 2)
    assert p.shape == (3, 6)
    for i in range(3):
        assert torch.equal(p[i], torch.cat([x[2 * i], x[2 * i + 1]]))
    img = torch.randn(6, 2, 4, 4)
    q = pack_samples(img, 3)
    assert q.shape == (2, 6, 4, 4)
    for i, j in itertools.product(range(2), range(3)):
        assert torch.equal(q[i, 2 * j : 2 * j + 2], img[3 * i + j])
    assert torch.equal(pack_samples(img, 1), img)
    with pytest.raises(ValueError, match="m = 4 does not divide the batch size 6"):
        pack_samples(x, 4)


@pytest.mark.parametrize(
    ("name", "shape"), [("pacgan2d", (2,)), ("mlp", (28, 28)), ("dcgan", (3, 28, 28))]
)
def test_packed_discriminator_sees_pack_samples(name: str, shape: tuple[int, ...]) -> None:
    _, d1 = build_gan(name, shape, hidden=SMALL[name])
    _, d3 = build_gan(name, shape, hidden=SMALL[name], pack=3)
    first1, first3 = _first_layer(d1), _first_layer(d3)
    if isinstance(first1, nn.Conv2d):
        assert isinstance(first3, nn.Conv2d) and first3.in_channels == 3 * first1.in_channels
    else:
        assert isinstance(first3, nn.Linear) and first3.in_features == 3 * first1.in_features
    assert d3.pack == 3
    x = torch.rand(6, *shape)
    assert d3(x).shape == (2,)
    # pack i is samples 3i, 3i+1, 3i+2: changing sample 4 changes only the second score
    y = x.clone()
    y[4] = torch.rand(shape)
    changed = d3(y) != d3(x)
    assert changed.tolist() == [False, True]
    with pytest.raises(ValueError, match=r"model\.pack = 3\), but got a batch of 7 samples") as e:
        d3(torch.rand(7, *shape))
    assert "make train.batch_size a multiple of model.pack" in str(e.value)


def test_maxout_is_the_max_over_pieces() -> None:
    layer = Maxout(3, 4, 5)
    x = torch.randn(7, 3)
    out = layer(x)
    w, b = layer.linear.weight.detach(), layer.linear.bias.detach()
    expected = torch.empty(7, 4)
    for n, j in itertools.product(range(7), range(4)):
        pieces = [float(w[j * 5 + k] @ x[n] + b[j * 5 + k]) for k in range(5)]
        expected[n, j] = max(pieces)
    assert torch.allclose(out, expected, atol=1e-6)
    assert Maxout(3, 4, 5)(torch.randn(2, 6, 3)).shape == (2, 6, 4)


@pytest.mark.parametrize(
    ("name", "shape"), [("pacgan2d", (2,)), ("mlp", (1, 28, 28)), ("dcgan", (3, 28, 28))]
)
def test_spectral_norm_bounds_every_discriminator_weight(name: str, shape: tuple[int, ...]) -> None:
    _, d = build_gan(name, shape, spectral_norm=True, minibatch_std=True, pack=2)
    _, plain = build_gan(name, shape)
    layers = _weighted(d)
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in _weighted(plain))
    d.train()
    x = torch.rand(8, *shape)
    with torch.no_grad():
        for _ in range(20):  # power iterations, one per training-mode forward
            d(x)
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert 0.999 < sigma < 1.03, (tuple(m.weight.shape), sigma)


def _hand_batch_std(x: Tensor) -> float:
    flat = x.double().reshape(x.shape[0], -1)
    stds = []
    for f in range(flat.shape[1]):
        col = flat[:, f]
        mean = sum(col.tolist()) / len(col)
        stds.append((sum((v - mean) ** 2 for v in col.tolist()) / len(col) + 1e-8) ** 0.5)
    return sum(stds) / len(stds)


def test_minibatch_std_appends_the_batch_std() -> None:
    layer = MinibatchStd()
    v = torch.randn(5, 4) * torch.tensor([1.0, 2.0, 3.0, 0.5])
    out = layer(v)
    assert out.shape == (5, 5) and torch.equal(out[:, :4], v)
    assert torch.allclose(out[:, 4], torch.full((5,), _hand_batch_std(v), dtype=torch.float))
    img = torch.randn(3, 2, 4, 4) * 2
    out = layer(img)
    assert out.shape == (3, 3, 4, 4) and torch.equal(out[:, :2], img)
    expected = torch.full((3, 4, 4), _hand_batch_std(img), dtype=torch.float)
    assert torch.allclose(out[:, 2], expected)
    assert torch.isfinite(layer(torch.randn(1, 4))).all()  # one sample: std sqrt(eps)


@pytest.mark.parametrize(
    ("name", "shape"), [("pacgan2d", (2,)), ("mlp", (1, 28, 28)), ("dcgan", (1, 28, 28))]
)
def test_scores_couple_the_batch_only_with_minibatch_std(name: str, shape: tuple[int, ...]) -> None:
    for minibatch_std in (False, True):
        _, d = build_gan(name, shape, hidden=SMALL[name], minibatch_std=minibatch_std)
        assert any(isinstance(m, MinibatchStd) for m in d.modules()) == minibatch_std
        d.train()
        x = torch.rand(4, *shape)
        y = x.clone()
        y[0] = torch.rand(shape) * 3
        others_changed = not torch.allclose(d(x)[1:], d(y)[1:])
        assert others_changed == minibatch_std
    # the layer after the statistic takes one more feature / channel
    _, plain = build_gan(name, shape, hidden=SMALL[name])
    _, with_std = build_gan(name, shape, hidden=SMALL[name], minibatch_std=True)
    widths = [
        m.in_channels if isinstance(m, nn.Conv2d) else m.in_features for m in _weighted(plain)
    ]
    widths_std = [
        m.in_channels if isinstance(m, nn.Conv2d) else m.in_features for m in _weighted(with_std)
    ]
    assert sum(widths_std) == sum(widths) + 1


@pytest.mark.parametrize(
    ("name", "shape", "spectral_norm", "minibatch_std"),
    [
        (n, s, sn, mb)
        for n, s in [("pacgan2d", (2,)), ("mlp", (3, 28, 28)), ("dcgan", (3, 28, 28))]
        for sn, mb in itertools.product((False, True), repeat=2)
    ],
)
def test_double_backward_for_the_gradient_penalty(
    name: str, shape: tuple[int, ...], spectral_norm: bool, minibatch_std: bool
) -> None:
    _, d = build_gan(
        name,
        shape,
        hidden=SMALL[name],
        pack=2,
        spectral_norm=spectral_norm,
        minibatch_std=minibatch_std,
    )
    x = torch.rand(4, *shape, requires_grad=True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    penalty.backward()
    # every weight matrix gets a finite gradient (the output bias does not enter grad_x D)
    grads = [p.grad for p in d.parameters() if p.dim() >= 2]
    assert grads and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    first = _first_layer(d)
    weight = first.parametrizations.weight.original if spectral_norm else first.weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["pacgan2d", "dcgan"])
def test_sample_is_deterministic_for_a_seeded_generator(name: str) -> None:
    g, _ = build_gan(name, (2,) if name == "pacgan2d" else (1, 28, 28), hidden=SMALL[name])
    g.eval()
    a = g.sample(6, torch.Generator().manual_seed(3))
    b = g.sample(6, torch.Generator().manual_seed(3))
    c = g.sample(6, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    z = torch.randn(6, g.latent_size, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, g(z))  # z ~ N(0, I) from that generator


def test_registry_and_builder_errors() -> None:
    assert GAN_ARCHITECTURES.names() == ["pacgan2d", "mlp", "dcgan"]
    assert GAN_ARCHITECTURES.names(data="image") == ["mlp", "dcgan"]
    assert GAN_ARCHITECTURES["pacgan2d"].shapes == ((2,),)
    with pytest.raises(ValueError, match=r"^shape must be one of \[2\] for the pacgan2d"):
        build_gan("pacgan2d", (3,))
    with pytest.raises(ValueError, match=r"^shape must be one of \[1, 28, 28\].*got \[1, 32, 32\]"):
        build_gan("dcgan", (1, 32, 32))
    with pytest.raises(ValueError, match=r"^pack must be >= 1, got 0"):
        build_gan("mlp", (28, 28), pack=0)
    with pytest.raises(ValueError, match=r"^latent must be >= 1, got 0"):
        build_gan("mlp", (28, 28), latent=0)
    with pytest.raises(UnknownChoiceError, match="Did you mean 'dcgan'"):
        build_gan("dcgn", (1, 28, 28))
