"""Flow density models: densities integrate to one, multi-scale log p by the change of
variables, and bits/dim against a closed form."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from dgm.flows import Compose
from dgm.flows.dequantize import LogitTransform, UniformDequantization
from dgm.metrics import bits_per_dim
from dgm.models.flow_model import FLOWS, FlowDensity, GaussianFlow, MultiScale, build_flow


def randomize(module: torch.nn.Module, scale: float = 0.2) -> None:
    with torch.no_grad():  # away from the identity the couplings start at
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("family", FLOWS.names(data="vector"))
def test_every_vector_flow_density_integrates_to_one(family: str) -> None:
    torch.manual_seed(0)
    core = build_flow(family, (2,), steps=2, hidden=(16,), bins=6)
    core.log_prob(torch.randn(64, 2))  # ActNorm initialises on its first batch
    randomize(core, 0.1)
    g = torch.linspace(-8, 8, 401)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        p = core.log_prob(grid).exp().reshape(401, 401)
    mass = torch.trapezoid(torch.trapezoid(p, g, dim=1), g).item()
    assert mass == pytest.approx(1.0, abs=0.01), family


@pytest.mark.parametrize("family", FLOWS.names(data="vector"))
def test_vector_flows_sample_what_they_score(family: str) -> None:
    torch.manual_seed(1)
    core = build_flow(family, (2,), steps=2, hidden=(16,), bins=6)
    core.log_prob(torch.randn(64, 2))
    randomize(core, 0.1)
    with torch.no_grad():
        x = core.sample(4000)
        # E_p[1 / p(x)] over a box that holds the samples is its area only if samples follow p;
        # instead check the identity E_p[log p] = -H against a grid estimate of the entropy
        lp = core.log_prob(x)
        g = torch.linspace(-10, 10, 401)
        grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        lpg = core.log_prob(grid).reshape(401, 401)
        entropy = -torch.trapezoid(torch.trapezoid(lpg.exp() * lpg, g, dim=1), g)
    assert lp.mean().item() == pytest.approx(
        -entropy.item(), abs=4 * lp.std().item() / math.sqrt(4000) + 0.01
    )


@pytest.mark.parametrize("family", FLOWS.names(data="image"))
def test_multi_scale_log_prob_is_the_change_of_variables(family: str) -> None:
    torch.manual_seed(2)
    core = build_flow(family, (1, 4, 4), steps=1, hidden=(8,), levels=2)
    assert isinstance(core, MultiScale)
    core.log_prob(torch.randn(8, 1, 4, 4))  # ActNorm's data-dependent initialisation
    randomize(core, 0.1)

    def noise(x_flat: torch.Tensor) -> torch.Tensor:
        """x -> every standardized latent: the factored-out halves' and the top level's."""
        h = x_flat.reshape(1, 1, 4, 4)
        parts = []
        for i, level in enumerate(core.levels):
            h, _ = level.call_and_ladj(h)
            if i < len(core.priors):
                z, h = h.chunk(2, dim=-3)
                loc, log_scale = core.priors[i](h).chunk(2, dim=-3)
                parts.append(((z - loc) * torch.exp(-log_scale)).flatten())
        return torch.cat([*parts, h.flatten()])

    x = torch.randn(16)
    eps = noise(x)
    jac = jacobian(noise, x)
    expected = (-0.5 * (eps**2 + math.log(2 * math.pi))).sum() + torch.linalg.slogdet(jac)[1]
    assert core.log_prob(x.reshape(1, 1, 4, 4)).item() == pytest.approx(expected.item(), abs=1e-3)
    with torch.no_grad():
        y = core.sample(3, temperature=0.7)
    assert y.shape == (3, 1, 4, 4) and torch.isfinite(core.log_prob(y)).all()


def test_bits_per_dim_of_a_known_gaussian_on_dequantized_data() -> None:
    levels, alpha = 17, 0.05
    identity = Compose([])
    identity.event_dims = 3  # the flow is the identity on [1, 2, 2] images: z = logit(y)
    model = FlowDensity(
        GaussianFlow(identity, (1, 2, 2)),
        [UniformDequantization(levels, event_dims=3), LogitTransform(alpha, event_dims=3)],
    )
    x = torch.randint(0, levels, (5, 1, 2, 2)).float()
    torch.manual_seed(3)
    lp = model.log_prob(x)
    torch.manual_seed(3)
    u = torch.rand_like(x)  # the same draw
    y = (x + u) / levels
    s = alpha + (1 - 2 * alpha) * y
    z = torch.log(s) - torch.log1p(-s)
    by_hand = (
        (-0.5 * (z**2 + math.log(2 * math.pi))).flatten(1).sum(1)
        + torch.log((1 - 2 * alpha) / (s * (1 - s))).flatten(1).sum(1)
        - 4 * math.log(levels)
    )
    torch.testing.assert_close(lp, by_hand, rtol=1e-5, atol=1e-5)
    torch.manual_seed(3)
    bits = bits_per_dim(model.log_prob, x, draws=1)
    torch.testing.assert_close(bits, -by_hand / (4 * math.log(2)), rtol=1e-5, atol=1e-5)


def test_the_importance_weighted_dequantization_bound_is_never_looser() -> None:
    draws = iter(torch.tensor([[-3.0, -1.0], [-2.0, -4.0], [-2.5, -2.5]]))  # 3 draws, 2 points
    k_draws = bits_per_dim(lambda x: next(draws), torch.zeros(2, 1), draws=3)
    lp = torch.tensor([[-3.0, -1.0], [-2.0, -4.0], [-2.5, -2.5]])
    by_hand = -(torch.logsumexp(lp, 0) - math.log(3)) / math.log(2)
    torch.testing.assert_close(k_draws, by_hand)
    assert (k_draws <= -lp.mean(0) / math.log(2)).all()  # Jensen, draw by draw
    with pytest.raises(ValueError, match="draws must be >= 1"):
        bits_per_dim(lambda x: x, torch.zeros(1, 1), draws=0)


def test_image_flows_refuse_what_they_cannot_squeeze_or_score() -> None:
    with pytest.raises(ValueError, match=r"level 2 of 2 squeezes a \[2, 3, 3\] image"):
        build_flow("glow", (1, 6, 6), levels=2)
    with pytest.raises(ValueError, match=r"glow is an image flow: it needs \[C, H, W\] data"):
        build_flow("glow", (2,))


@pytest.mark.parametrize("family", FLOWS.names(data="vector"))
def test_a_conditional_flow_is_a_density_for_every_context(family: str) -> None:
    torch.manual_seed(4)
    core = build_flow(family, (2,), steps=2, hidden=(16,), bins=6, context_size=3)
    core.log_prob(torch.randn(64, 2), torch.randn(64, 3))
    randomize(core, 0.1)
    g = torch.linspace(-16, 16, 641)  # a context can stretch a MAF's tails far
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    densities = []
    for c in (torch.zeros(3), torch.tensor([1.0, -0.5, 0.25])):
        with torch.no_grad():
            p = core.log_prob(grid, c.expand(len(grid), 3)).exp().reshape(641, 641)
        mass = torch.trapezoid(torch.trapezoid(p, g, dim=1), g).item()
        assert mass == pytest.approx(1.0, abs=0.01), family
        densities.append(p)
    assert (densities[0] - densities[1]).abs().max() > 1e-3  # the context matters
    with torch.no_grad():
        x = core.sample(5, context=torch.randn(5, 3))
    assert x.shape == (5, 2)
    with pytest.raises(ValueError, match="multi-scale image flows take no context"):
        build_flow("glow", (1, 4, 4), context_size=3)


def test_multi_scale_refuses_shapes_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="a level's output of 3 channels cannot be split in half"):
        MultiScale([Compose([]), Compose([])], [(3, 2, 2), (3, 2, 2)])
    with pytest.raises(ValueError, match="one output shape per level"):
        MultiScale([Compose([])], [])
