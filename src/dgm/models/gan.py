"""GAN networks: a generator ``z [B, latent] -> x [B, *shape]`` and a discriminator
``x [B, *shape] -> scores [B // pack]`` (one real score per input, or per pack of inputs).

The losses are pure functions of the scores and live elsewhere; this module holds the
networks, the discriminator switches and the table ``GAN_ARCHITECTURES`` they are chosen from.

Architectures:

- ``pacgan2d``: PacGAN's networks for the 2-D grid and ring (Lin et al. 2018, Sec. 5.1 and
  its code, fjxmlzn/PacGAN ``synthetic_data_experiments/2DGrid_GAN&PacGAN/pacgan_task.py``
  and ``config.py``): z ~ N(0, I_2); the generator has 4 hidden layers of 400 units, each
  Linear (no bias, the BatchNorm's shift replaces it) -> BatchNorm -> ReLU, and a linear
  output of 2 (with a bias); the discriminator has 3 maxout layers of 200 units with 5
  pieces and a linear output of 1. Every weight ~ N(0, 0.02), every bias 0, BatchNorm scale 1
  and shift 0 (blocks' defaults, with its epsilon 1e-4; the code averages the population
  statistics with weight 0.05, torch's ``momentum=0.05``).
- ``mlp``: a fully connected GAN for 28x28 images (Goodfellow et al. 2014's kind): generator
  latent -> 256 -> 512 -> 1024 (ReLU) -> C*28*28 (sigmoid), discriminator
  C*28*28 -> 512 -> 256 (LeakyReLU 0.2) -> 1, torch's default initialisation.
- ``dcgan``: DCGAN (Radford et al. 2016) in the form MNIST DCGANs use for 28x28: generator
  latent -> Linear -> 128 x 7 x 7 -> ConvTranspose 4x4/2 -> 64 x 14 x 14 -> ConvTranspose
  4x4/2 -> C x 28 x 28 (sigmoid), BatchNorm + ReLU after every layer but the last;
  discriminator Conv 4x4/2 -> 64 x 14 x 14 -> Conv 4x4/2 -> 128 x 7 x 7 (LeakyReLU 0.2 after
  each) -> Linear -> 1. Weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02), biases 0, as
  DCGAN does. DCGAN's discriminator has a BatchNorm after its second convolution; here it
  has none: BatchNorm couples the scores of a batch, so the gradient penalty's per-sample
  input gradients would depend on the rest of the batch (Gulrajani et al. 2017, Sec. 4,
  drop it for the same reason), and spectral normalization's discriminators use none
  (Miyato et al. 2018). No normalization keeps every discriminator switch valid together.

Discriminator switches (``build_gan(..., pack=, spectral_norm=, minibatch_std=)``):

- ``pack = m`` (PacGAN): the discriminator scores m consecutive samples together
  (``pack_samples``): its input layer takes m * D features (vectors) or m * C channels
  (images), and it maps ``[B, *shape] -> [B // m]``; B must be a multiple of m.
- ``spectral_norm``: every Linear and Conv2d of the discriminator is wrapped in
  ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per training-mode
  forward; the weight is divided by its estimated largest singular value, of the weight
  reshaped to ``[out, in * k * k]`` for a convolution).
- ``minibatch_std`` (Karras et al. 2018, Sec. 3): ``MinibatchStd`` before the last hidden
  layer appends one feature (vectors) or channel (images): the standard deviation over the
  whole batch (of packs, if packed), averaged over features and positions.

All discriminators are free of in-place operations and BatchNorm, so they work under double
backward (``torch.autograd.grad(d(x).sum(), x, create_graph=True)``, then a loss of that
gradient) and, without ``minibatch_std``, score each input independently of the batch.

References:
    Goodfellow et al., "Generative Adversarial Nets", 2014.
    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
    Generative Adversarial Networks", 2016.
    Lin, Khetan, Fanti & Oh, "PacGAN: The power of two samples in generative adversarial
    networks", 2018 (code: github.com/fjxmlzn/PacGAN).
    Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved Quality,
    Stability, and Variation", 2018.
    Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial
    Networks", 2018.
    Gulrajani et al., "Improved Training of Wasserstein GANs", 2017.
    Goodfellow et al., "Maxout Networks", 2013.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from ..registry import Registry, at_least

IMAGE_SHAPES = ((1, 28, 28), (3, 28, 28), (28, 28))
MAXOUT_PIECES = 5  # PacGAN's discriminator
INIT_STD = 0.02  # PacGAN's and DCGAN's weight initialisation


def pack_samples(x: Tensor, m: int) -> Tensor:
    """Group m consecutive samples into one: ``[B, *shape] -> [B // m, m * shape[0], *shape[1:]]``.

    Pack i holds samples ``m*i, ..., m*i + m - 1``, concatenated along the first event
    dimension (features of vectors, channels of images), as PacGAN's discriminator sees them.
    """
    at_least("m", m, 1)
    if x.dim() < 2:
        raise ValueError(f"pack_samples needs a batch [B, *shape], got shape {list(x.shape)}")
    b = x.shape[0]
    if b % m:
        raise ValueError(f"pack_samples: m = {m} does not divide the batch size {b}")
    return x.reshape(b // m, m * x.shape[1], *x.shape[2:])


class Maxout(nn.Module):
    """A maxout layer: a Linear to ``out_features * pieces``, then the max over each unit's
    pieces (Goodfellow et al. 2013). Unit j's pieces are outputs ``j * pieces, ...,
    j * pieces + pieces - 1`` of the linear layer, as blocks' ``LinearMaxout`` orders them.

    Shapes: ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        at_least("pieces", pieces, 1)
        self.in_features, self.out_features, self.pieces = in_features, out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.out_features, self.pieces)).amax(-1)


class MinibatchStd(nn.Module):
    """Append the batch's standard deviation as one more feature / channel (ProGAN, Sec. 3).

    For each feature (and position) the standard deviation over the whole batch,
    ``sqrt(mean_b (x_b - mean_b x)^2 + eps)``; their average over features and positions is
    one number, appended to every sample: ``[B, F] -> [B, F + 1]``,
    ``[B, C, H, W] -> [B, C + 1, H, W]``. The group is the whole batch (the official code
    splits it in groups of 4; the paper describes the minibatch).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(0, keepdim=True)
        std = (centred.pow(2).mean(0) + self.eps).sqrt().mean()
        extra = std.expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)


class Generator(nn.Module):
    """``z [B, latent_size] -> x [B, *shape]`` through ``net``; ``sample(n)`` draws z ~ N(0, I).

    Attributes:
        latent_size: the size of z.
        shape: the shape of one sample.
    """

    def __init__(self, net: nn.Module, latent_size: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.net, self.latent_size, self.shape = net, latent_size, tuple(shape)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_size:
            raise ValueError(
                f"the generator expects z of shape [B, {self.latent_size}], got {list(z.shape)}"
            )
        return self.net(z).reshape(z.shape[0], *self.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``[n, *shape]`` from z ~ N(0, I) (drawn on ``generator``'s device,
        then moved to the module's, so a seeded CPU generator gives the same z anywhere).

        Neither the mode nor gradients are changed: in training mode the BatchNorm layers
        normalize with this batch's statistics (and PacGAN's BatchNorm1d needs n > 1), in
        eval mode with the running ones; wrap in ``torch.no_grad()`` to only look.
        """
        ref = next(self.parameters())
        device = ref.device if generator is None else generator.device
        z = torch.randn(n, self.latent_size, generator=generator, device=device, dtype=ref.dtype)
        return self(z.to(ref.device))


class Discriminator(nn.Module):
    """``x [B, *shape] -> scores [B // pack]``: packs ``pack`` consecutive samples
    (``pack_samples``) and scores each pack with ``net`` (which outputs ``[B // pack, 1]``).

    Attributes:
        shape: the shape of one sample.
        pack: how many samples one score judges.
    """

    def __init__(self, net: nn.Module, shape: Sequence[int], pack: int = 1) -> None:
        super().__init__()
        at_least("pack", pack, 1)
        self.net, self.shape, self.pack = net, tuple(shape), pack
        self._net_shape = _channels_first(self.shape)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"the discriminator expects inputs [B, {', '.join(map(str, self.shape))}], "
                f"got {list(x.shape)}"
            )
        b = x.shape[0]
        if b % self.pack:
            raise ValueError(
                f"the discriminator scores packs of {self.pack} samples (model.pack = "
                f"{self.pack}), but got a batch of {b} samples, which {self.pack} does not "
                f"divide: make train.batch_size a multiple of model.pack"
            )
        packed = pack_samples(x.reshape(b, *self._net_shape), self.pack)
        return self.net(packed).squeeze(-1)


def _channels_first(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(H, W) images as (1, H, W); everything else unchanged."""
    return (1, *shape) if len(shape) == 2 else shape


def _init_normal(module: nn.Module, batchnorm_std: float) -> None:
    """Weights of Linear / Conv ~ N(0, 0.02), biases 0; BatchNorm scale ~ N(1, batchnorm_std)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, batchnorm_std)
            nn.init.zeros_(m.bias)


def _with_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap every Linear and Conv2d of ``module`` in torch's spectral-norm parametrization."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            parametrizations.spectral_norm(m)
    return module


def _discriminator(
    body: nn.Module, shape: tuple[int, ...], pack: int, spectral_norm: bool
) -> Discriminator:
    return Discriminator(_with_spectral_norm(body) if spectral_norm else body, shape, pack)


def _pacgan2d(
    shape: tuple[int, ...],
    latent: int,
    hidden: int,
    pack: int,
    spectral_norm: bool,
    minibatch_std: bool,
) -> tuple[Generator, Discriminator]:
    """PacGAN's 2-D networks; ``hidden`` is the discriminator's width, the generator's twice."""
    (d,) = shape
    width = 2 * hidden
    layers: list[nn.Module] = []
    for n_in in (latent, width, width, width):
        layers += [
            nn.Linear(n_in, width, bias=False),
            nn.BatchNorm1d(width, eps=1e-4, momentum=0.05),
            nn.ReLU(),
        ]
    gen = nn.Sequential(*layers, nn.Linear(width, d))
    body: list[nn.Module] = [
        Maxout(pack * d, hidden, MAXOUT_PIECES),
        Maxout(hidden, hidden, MAXOUT_PIECES),
    ]
    if minibatch_std:
        body.append(MinibatchStd())
    body += [Maxout(hidden + int(minibatch_std), hidden, MAXOUT_PIECES), nn.Linear(hidden, 1)]
    disc = nn.Sequential(*body)
    _init_normal(gen, batchnorm_std=0.0)
    _init_normal(disc, batchnorm_std=0.0)
    return Generator(gen, latent, shape), _discriminator(disc, shape, pack, spectral_norm)


def _mlp(
    shape: tuple[int, ...],
    latent: int,
    hidden: int,
    pack: int,
    spectral_norm: bool,
    minibatch_std: bool,
) -> tuple[Generator, Discriminator]:
    """The fully connected GAN; ``hidden`` is the generator's first width (256)."""
    size = math.prod(shape)
    gen = nn.Sequential(
        nn.Linear(latent, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2 * hidden),
        nn.ReLU(),
        nn.Linear(2 * hidden, 4 * hidden),
        nn.ReLU(),
        nn.Linear(4 * hidden, size),
        nn.Sigmoid(),
    )
    body: list[nn.Module] = [nn.Flatten(), nn.Linear(pack * size, 2 * hidden), nn.LeakyReLU(0.2)]
    if minibatch_std:
        body.append(MinibatchStd())
    body += [
        nn.Linear(2 * hidden + int(minibatch_std), hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, 1),
    ]
    disc = nn.Sequential(*body)
    return Generator(gen, latent, shape), _discriminator(disc, shape, pack, spectral_norm)


def _dcgan(
    shape: tuple[int, ...],
    latent: int,
    hidden: int,
    pack: int,
    spectral_norm: bool,
    minibatch_std: bool,
) -> tuple[Generator, Discriminator]:
    """DCGAN for 28x28; ``hidden`` is the base number of channels (64: 128 at 7x7)."""
    c = _channels_first(shape)[0]
    wide = 2 * hidden
    gen = nn.Sequential(
        nn.Linear(latent, wide * 7 * 7, bias=False),
        nn.Unflatten(1, (wide, 7, 7)),
        nn.BatchNorm2d(wide),
        nn.ReLU(),
        nn.ConvTranspose2d(wide, hidden, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(),
        nn.ConvTranspose2d(hidden, c, 4, stride=2, padding=1),
        nn.Sigmoid(),
    )
    body: list[nn.Module] = [
        nn.Conv2d(pack * c, hidden, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
    ]
    if minibatch_std:
        body.append(MinibatchStd())
    body += [
        nn.Conv2d(hidden + int(minibatch_std), wide, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(wide * 7 * 7, 1),
    ]
    disc = nn.Sequential(*body)
    _init_normal(gen, batchnorm_std=INIT_STD)
    _init_normal(disc, batchnorm_std=INIT_STD)
    return Generator(gen, latent, shape), _discriminator(disc, shape, pack, spectral_norm)


GAN_ARCHITECTURES: Registry[tuple[Generator, Discriminator]] = Registry("GAN architecture")
GAN_ARCHITECTURES.add(
    "pacgan2d",
    _pacgan2d,
    "PacGAN's 2-D networks: BatchNorm-ReLU MLP generator (4 x 400), maxout discriminator (3 x 200)",
    data="points",
    shapes=((2,),),
    latent=2,
    hidden=200,
)
GAN_ARCHITECTURES.add(
    "mlp",
    _mlp,
    "fully connected GAN for 28x28 images (generator 256-512-1024, discriminator 512-256)",
    data="image",
    shapes=IMAGE_SHAPES,
    latent=100,
    hidden=256,
)
GAN_ARCHITECTURES.add(
    "dcgan",
    _dcgan,
    "DCGAN for 28x28 images (7x7 -> 14x14 -> 28x28), no BatchNorm in the discriminator",
    data="image",
    shapes=IMAGE_SHAPES,
    latent=100,
    hidden=64,
)


def build_gan(
    name: str,
    shape: Sequence[int],
    *,
    latent: int | None = None,
    hidden: int | None = None,
    pack: int = 1,
    spectral_norm: bool = False,
    minibatch_std: bool = False,
) -> tuple[Generator, Discriminator]:
    """The generator and discriminator of ``GAN_ARCHITECTURES[name]`` for samples of ``shape``.

    Args:
        name: ``pacgan2d``, ``mlp`` or ``dcgan``.
        shape: one sample's shape; it must be in the entry's ``shapes`` ((2,) for pacgan2d;
            (1, 28, 28), (3, 28, 28) or (28, 28) for the image networks).
        latent: the size of z (default: the entry's ``latent``, 2 or 100).
        hidden: the entry's base width (default: its ``hidden``): pacgan2d the
            discriminator's 200 (the generator's is twice), mlp the generator's first 256,
            dcgan the first convolution's 64 channels.
        pack, spectral_norm, minibatch_std: the discriminator switches (module docstring).
    """
    entry = GAN_ARCHITECTURES[name]
    shape = tuple(int(s) for s in shape)
    if shape not in entry.shapes:
        raise ValueError(
            f"shape must be one of {', '.join(str(list(s)) for s in entry.shapes)} for the "
            f"{name} GAN networks, got {list(shape)}"
        )
    latent = entry.latent if latent is None else latent
    hidden = entry.hidden if hidden is None else hidden
    at_least("latent", latent, 1)
    at_least("hidden", hidden, 1)
    at_least("pack", pack, 1)
    return entry.build(shape, latent, hidden, pack, spectral_norm, minibatch_std)


__all__ = [
    "GAN_ARCHITECTURES",
    "Discriminator",
    "Generator",
    "Maxout",
    "MinibatchStd",
    "build_gan",
    "pack_samples",
]
