"""The disentanglement papers' networks: shapes, the published layers, and clear errors."""

from pathlib import Path

import pytest
import torch
from torch import nn

import dgm
from dgm.models.image_vae import ImageVAEGuide, ImageVAEModel
from dgm.nn import ConvDecoder, ConvEncoder


def test_the_64x64_network_is_the_published_one() -> None:
    enc = ConvEncoder((64, 64), 20)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    linears = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 256), (256, 20)]
    dec = ConvDecoder(10, (64, 64))
    ups = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [u.out_channels for u in ups] == [64, 32, 32, 1]
    # the guide's diagonal posterior adds exactly the papers' 256-unit layer and output
    guide = ImageVAEGuide((64, 64), 10)
    head = [m for m in guide.posterior.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(1024, 256), (256, 20)]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_encoder_and_decoder_keep_leading_dimensions(size: int) -> None:
    x = torch.rand(3, 2, size * size)
    assert ConvEncoder((size, size), 7)(x).shape == (3, 2, 7)
    assert ConvDecoder(5, (size, size))(torch.randn(4, 3, 5)).shape == (4, 3, size * size)
    model, guide = ImageVAEModel((size, size), 4), ImageVAEGuide((size, size), 4)
    data = (torch.rand(6, size * size) > 0.5).float()
    lw = dgm.log_weights(model, guide, data, num_particles=3)
    assert lw.log_w.shape == (3, 6) and torch.isfinite(lw.log_w).all()


def test_bad_shapes_say_what_fits() -> None:
    with pytest.raises(ValueError, match=r"side 4 \* 2\^n"):
        ConvEncoder((28, 28), 4)
    with pytest.raises(ValueError, match="H == W"):
        ConvDecoder(4, (32, 16))
    with pytest.raises(ValueError, match=r"flattened \[1, 32, 32\] images \[..., 1024\]"):
        ConvEncoder((32, 32), 4)(torch.zeros(2, 1000))
    with pytest.raises(ValueError, match="architecture must be one of conv, mlp"):
        ImageVAEModel((32, 32), 4, "resnet")
    with pytest.raises(ValueError, match="binary images"):
        dgm.log_weights(ImageVAEModel((16, 16), 2), ImageVAEGuide((16, 16), 2), torch.rand(2, 256))


def test_chen_mig_and_the_heatmap_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    from dgm.data import DSpritesFactors
    from dgm.metrics import MetricSettings, disentanglement_metrics
    from dgm.report.figures import heatmap

    guide = ImageVAEGuide((16, 16), 3, posterior="full")
    data = DSpritesFactors(16)
    settings = MetricSettings(num_train=20, num_test=10, chen_points=20, chen_samples=20)
    with pytest.raises(ValueError, match=r"mig\[chen2018\] needs a diagonal Gaussian q\(z \| x\)"):
        disentanglement_metrics(guide, data, ["mig_chen"], settings)
    with pytest.raises(
        ValueError, match="disentanglement_metrics needs a data set with ground-truth factors"
    ):
        disentanglement_metrics(guide, torch.zeros(3, 4), ["mig"], settings)
    with pytest.raises(ValueError, match="a 2x3 matrix needs 2 row and 3 column labels"):
        heatmap(torch.zeros(2, 3).numpy(), ["a", "b"], ["x"], tmp_path / "h.png")
