"""Flow density models: densities integrate to one, multi-scale log p by the change of
variables, and bits/dim against a closed form."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from dgm.flows import Compose
from dgm.flows.dequantize import LogitTransform, UniformDequantization
from dgm.metrics import bits_per_dim
from dgm.models.flow_model import (
    FLOWS,
    FlowDensity,
    GaussianFlow,
    MultiScale,
    SplineFlowOptions,
    build_flow,
)


def vector_options(family: str) -> dict[str, object]:
    """Small settings of a vector family: two steps of width 16, six bins for the splines."""
    spline = FLOWS[family].options is SplineFlowOptions
    return {"steps": 2, "hidden": [16], **({"bins": 6} if spline else {})}


def randomize(module: torch.nn.Module, scale: float = 0.2) -> None:
    with torch.no_grad():  # away from the identity the couplings start at
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("family", FLOWS.names(data="vector"))
def test_every_vector_flow_density_integrates_to_one(family: str) -> None:
    torch.manual_seed(0)
    core = build_flow(family, (2,), **vector_options(family))
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
    core = build_flow(family, (2,), **vector_options(family))
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
    core = build_flow(family, (2,), 3, **vector_options(family))
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


def test_multi_scale_refuses_shapes_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="a level's output of 3 channels cannot be split in half"):
        MultiScale([Compose([]), Compose([])], [(3, 2, 2), (3, 2, 2)])
    with pytest.raises(ValueError, match="one output shape per level"):
        MultiScale([Compose([])], [])


IMAGE = (1, 4, 8)  # two levels: the top one is [8, 1, 2], its conditional Gaussian spans W


def conditional_image_flow(family: str, seed: int) -> MultiScale:
    """A small conditional image flow, ActNorm initialised and every parameter (the
    zero-initialised conditioner outputs and context maps too) moved off its start."""
    torch.manual_seed(seed)
    core = build_flow(family, IMAGE, steps=2, hidden=(8,), levels=2, context_size=3)
    assert isinstance(core, MultiScale)
    core.log_prob(torch.randn(16, *IMAGE), torch.randn(16, 3))
    with torch.no_grad():
        for p in core.parameters():
            torch.nn.init.normal_(p, std=0.1)
    return core.double()


def standardized_latents(core: MultiScale, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """x -> every standardized latent given the context c (one image): the factored-out halves'
    and the top level's, each (z - loc) / scale under its conditional Gaussian."""
    h, parts = x.reshape(1, *IMAGE), []
    for i, level in enumerate(core.levels):
        h, _ = level.call_and_ladj(h, c)
        if i < len(core.priors):
            z, h = h.chunk(2, dim=-3)
            out = core.priors[i](h) + core.context_priors[i](c)[..., None, None]
            loc, log_scale = out.chunk(2, dim=-3)
            parts.append(((z - loc) * torch.exp(-log_scale)).flatten())
    loc, log_scale = core.top_prior(c)[..., None, None].chunk(2, dim=-3)
    return torch.cat([*parts, ((h - loc) * torch.exp(-log_scale)).flatten()])


@pytest.mark.parametrize("family", FLOWS.names(data="image"))
def test_a_conditional_image_flow_is_the_change_of_variables_for_every_context(
    family: str,
) -> None:
    core = conditional_image_flow(family, 5)
    x = torch.randn(math.prod(IMAGE), dtype=torch.float64)
    contexts = torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.5, 0.25]], dtype=torch.float64)
    scores = []
    for c in contexts:
        c = c[None]
        eps = standardized_latents(core, x, c)
        jac = jacobian(lambda v, c=c: standardized_latents(core, v, c), x)
        expected = (-0.5 * (eps**2 + math.log(2 * math.pi))).sum() + torch.linalg.slogdet(jac)[1]
        lp = core.log_prob(x.reshape(1, *IMAGE), c)
        assert lp.item() == pytest.approx(expected.item(), abs=1e-8)
        scores.append(lp.item())
    assert abs(scores[0] - scores[1]) > 1e-2  # the context matters
    with torch.no_grad():  # a batch of contexts scores each image under its own
        batch = core.log_prob(x.reshape(1, *IMAGE).expand(2, *IMAGE), contexts)
    torch.testing.assert_close(batch, torch.tensor(scores, dtype=torch.float64))


@pytest.mark.parametrize("family", FLOWS.names(data="image"))
def test_a_conditional_image_flow_samples_by_inverting_its_scoring_map(family: str) -> None:
    core = conditional_image_flow(family, 6)
    n, temperature = 3, 0.7
    c = torch.randn(n, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.manual_seed(7)
        y = core.sample(n, temperature=temperature, context=c)
        torch.manual_seed(7)  # the same noise, in the order sample draws it: top level first
        top = torch.randn(n, *core.top_shape, dtype=torch.float64)
        halves = [
            torch.randn(n, s[0] // 2, *s[1:], dtype=torch.float64)
            for s in reversed(core.shapes[:-1])
        ]
        drawn = torch.cat([*(h.flatten(1) for h in reversed(halves)), top.flatten(1)], 1)
        latents = torch.stack([standardized_latents(core, y[i], c[i : i + 1]) for i in range(n)])
    assert y.shape == (n, *IMAGE)
    # temperature scales every standard deviation, the top level's conditional one included
    torch.testing.assert_close(latents, temperature * drawn)
    assert torch.isfinite(core.log_prob(y, c)).all()
    x = torch.randn(n, *IMAGE, dtype=torch.float64)
    for level in core.levels:  # each level inverts itself given the same context
        z, ladj = level.call_and_ladj(x, c)
        back, inv_ladj = level.inverse_and_ladj(z, c)
        torch.testing.assert_close(back, x)
        torch.testing.assert_close(inv_ladj, -ladj)
        other, _ = level.call_and_ladj(x, c + 1.0)
        assert (other - z).abs().max() > 1e-3  # and the context reaches its couplings
        x = z[:, z.shape[1] // 2 :] if level is not core.levels[-1] else z


@pytest.mark.parametrize("family", FLOWS.names(data="image"))
def test_an_untrained_conditional_image_flow_is_the_unconditional_one(family: str) -> None:
    torch.manual_seed(8)
    plain = build_flow(family, (1, 4, 4), steps=2, hidden=(8,), levels=2)
    x = torch.randn(6, 1, 4, 4)
    plain.log_prob(x)  # ActNorm's data-dependent initialisation
    conditional = build_flow(family, (1, 4, 4), steps=2, hidden=(8,), levels=2, context_size=3)
    keys = conditional.load_state_dict(plain.state_dict(), strict=False)
    assert not keys.unexpected_keys  # the same names and shapes, plus the context's layers
    assert keys.missing_keys and all(
        k.startswith(("context_priors.", "top_prior."))
        or k.endswith(("net.context.weight", "net.context.bias"))
        for k in keys.missing_keys
    )
    assert not any("context" in k or "top_prior" in k for k in plain.state_dict())
    contexts = (torch.zeros(6, 3), 3 * torch.randn(6, 3))
    with torch.no_grad():
        expected = plain.log_prob(x)
        for c in contexts:
            torch.testing.assert_close(conditional.log_prob(x, c), expected, rtol=0, atol=0)
        # away from the start too: with the couplings' context maps off, the priors' context
        # maps (zero-initialised) leave every density of a moved unconditional flow as it was
        for p in plain.parameters():
            p.add_(0.1 * torch.randn_like(p))
        conditional.load_state_dict(plain.state_dict(), strict=False)
        for name, p in conditional.named_parameters():
            if name.endswith(("net.context.weight", "net.context.bias")):
                p.zero_()
        expected = plain.log_prob(x)
        for c in contexts:
            torch.testing.assert_close(conditional.log_prob(x, c), expected, rtol=0, atol=0)


@pytest.mark.parametrize("family", FLOWS.names(data="image"))
def test_image_flows_name_a_missing_unwanted_or_misshapen_context(family: str) -> None:
    conditional = build_flow(family, (1, 4, 4), steps=1, hidden=(8,), levels=2, context_size=3)
    plain = build_flow(family, (1, 4, 4), steps=1, hidden=(8,), levels=2)
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"conditional \(context_size=3\): call it with context="):
        conditional.log_prob(x)
    with pytest.raises(ValueError, match="conditional"):
        conditional.sample(2)
    with pytest.raises(ValueError, match="unconditional: call it without a context"):
        plain.log_prob(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, context=torch.zeros(2, 3))
    with pytest.raises(
        ValueError,
        match=r"context has shape \[3, 3\] but data of shape \[2, 1, 4, 4\] needs \[2, 3\]",
    ):
        conditional.log_prob(x, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"context has shape \[2, 4\] .* needs \[2, 3\]"):
        conditional.log_prob(x, torch.zeros(2, 4))
    with pytest.raises(
        ValueError, match=r"context has shape \[3\] but sample\(n=2\) needs \[2, 3\]"
    ):
        conditional.sample(2, context=torch.zeros(3))
    with pytest.raises(ValueError, match="context_size must be >= 1, got 0"):
        build_flow(family, (1, 4, 4), context_size=0)
