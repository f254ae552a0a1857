"""Neural spline flows and the dequantization layers: exact inverses, exact log-determinants,
densities that integrate to one, and bounds whose every term is accounted for."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import (
    AffineTransform,
    Independent,
    Normal,
    SigmoidTransform,
    TransformedDistribution,
    Uniform,
)

from dgm.flows import (
    AutoregressiveSpline,
    Bijection,
    Compose,
    LogitTransform,
    Permute,
    SplineCoupling,
    UniformDequantization,
    VariationalDequantization,
    rational_quadratic_spline,
)

B = 3.0  # tail bound
D, C = 5, 3  # an odd D: the coupling's halves differ in size


def randomize(m: torch.nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():  # move away from the identity initialization
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))


def spline_parameters(n: int, bins: int, scale: float = 2.0) -> tuple[torch.Tensor, ...]:
    return tuple(scale * torch.randn(n, k, dtype=torch.float64) for k in (bins, bins, bins - 1))


# --- the spline function ---------------------------------------------------------------


@pytest.mark.parametrize("bins", [1, 2, 8])
def test_spline_round_trip_and_log_derivative_match_autograd(bins: int) -> None:
    torch.manual_seed(0)
    x = torch.cat([torch.linspace(-4, 4, 397, dtype=torch.float64), torch.tensor([-B, B]).double()])
    w, h, d = spline_parameters(len(x), bins)
    x.requires_grad_(True)
    y, ladj = rational_quadratic_spline(x, w, h, d, tail_bound=B)
    assert y.shape == ladj.shape == x.shape
    (slope,) = torch.autograd.grad(y.sum(), x)  # elementwise map: the gradient is dy_i/dx_i
    assert (slope > 0).all()  # monotonic
    torch.testing.assert_close(ladj, slope.log(), atol=1e-9, rtol=1e-9)
    back, inv_ladj = rational_quadratic_spline(y.detach(), w, h, d, inverse=True, tail_bound=B)
    torch.testing.assert_close(back, x.detach(), atol=1e-9, rtol=0)
    torch.testing.assert_close(inv_ladj, -ladj.detach(), atol=1e-8, rtol=0)
    yd = y.detach().requires_grad_(True)
    back, inv_ladj = rational_quadratic_spline(yd, w, h, d, inverse=True, tail_bound=B)
    (inv_slope,) = torch.autograd.grad(back.sum(), yd)
    torch.testing.assert_close(inv_ladj, inv_slope.log(), atol=1e-8, rtol=1e-8)


def test_spline_inverse_is_backward_stable_in_float32_with_parameter_gradients() -> None:
    """Where the spline is nearly flat (slopes down to 1e-5 here) x = f^-1(y) is ill-conditioned:
    a rounding of y moves x by ulp(y) / slope. So the checks are in y's units: the inverse
    reproduces y to ~50 float32 ulps of B, and |x - back| * slope is as small."""
    torch.manual_seed(1)
    x = 4 * torch.rand(2000) * torch.sign(torch.randn(2000))
    w, h, d = (p.float().requires_grad_(True) for p in spline_parameters(2000, 8, scale=1.5))
    xr = x.clone().requires_grad_(True)
    y, ladj = rational_quadratic_spline(xr, w, h, d)
    (slope,) = torch.autograd.grad(y.sum(), xr, retain_graph=True)
    back, inv_ladj = rational_quadratic_spline(y, w, h, d, inverse=True)
    again, ladj_back = rational_quadratic_spline(back, w, h, d)
    assert ((back - x).abs() * slope).max() < 2e-5
    assert (again - y).abs().max() < 2e-5
    assert (inv_ladj + ladj_back).abs().max() < 1e-4  # the same point, both directions
    (back.sum() + ladj.sum() + inv_ladj.sum()).backward()
    for p in (w, h, d):
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_spline_tails_are_the_identity_and_join_smoothly() -> None:
    torch.manual_seed(2)
    x = torch.tensor([-50.0, -4.0, -3.0001, 3.0001, 4.0, 50.0], dtype=torch.float64)
    w, h, d = spline_parameters(len(x), 8)
    for inverse in (False, True):
        y, ladj = rational_quadratic_spline(x, w, h, d, inverse=inverse, tail_bound=B)
        assert torch.equal(y, x) and torch.equal(ladj, torch.zeros_like(ladj))
    # at the bounds the spline meets its tails: value +-B and slope 1 (d_0 = d_K = 1)
    edge = torch.tensor([-B, -B + 1e-7, B - 1e-7, B], dtype=torch.float64)
    w, h, d = spline_parameters(len(edge), 8)
    y, ladj = rational_quadratic_spline(edge, w, h, d, tail_bound=B)
    torch.testing.assert_close(y[[0, 3]], edge[[0, 3]], atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(ladj), atol=1e-4, rtol=0)
    inside = torch.linspace(-B, B, 101, dtype=torch.float64)
    w, h, d = spline_parameters(1, 8)
    y, _ = rational_quadratic_spline(inside, w, h, d, tail_bound=B)
    assert y.min() >= -B and y.max() <= B  # [-B, B] onto itself
    assert (y.diff() > 0).all()


def test_zero_spline_parameters_give_the_identity() -> None:
    x = torch.linspace(-5, 5, 101)
    zeros = torch.zeros(1, 8)
    y, ladj = rational_quadratic_spline(x, zeros, zeros, zeros[:, :-1])
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_spline_refuses_parameters_of_the_wrong_sizes() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="K - 1 interior derivatives"):
        rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="min_bin_width"):
        z = torch.zeros(3, 4)
        rational_quadratic_spline(x, z, z, z[:, :3], min_bin_width=0.3)


# --- spline flows ------------------------------------------------------------------------


def spline_flows() -> list[tuple[str, Bijection, bool]]:
    torch.manual_seed(3)
    return [
        ("coupling", SplineCoupling(D, (16, 16)), False),
        ("coupling-flip", SplineCoupling(D, (16, 16), bins=5, flip=True), False),
        ("coupling-conditional", SplineCoupling(D, (16,), context_size=C), True),
        ("autoregressive", AutoregressiveSpline(D, (16, 16)), False),
        (
            "autoregressive-conditional",
            AutoregressiveSpline(D, (16,), bins=4, context_size=C),
            True,
        ),
        (
            "compose",
            Compose([SplineCoupling(D, (16,)), Permute(D), AutoregressiveSpline(D, (16,))]),
            False,
        ),
    ]


@pytest.mark.parametrize(
    "name,flow,conditional", spline_flows(), ids=[c[0] for c in spline_flows()]
)
def test_spline_flow_log_det_matches_the_autograd_jacobian(
    name: str, flow: Bijection, conditional: bool
) -> None:
    flow.double()
    randomize(flow)
    torch.manual_seed(4)
    x = 2 * torch.randn(6, D, dtype=torch.float64)  # some coordinates in the tails
    context = torch.randn(6, C, dtype=torch.float64) if conditional else None
    z, ladj = flow.call_and_ladj(x, context)
    assert z.shape == x.shape and ladj.shape == (6,)
    assert (z - x).abs().max() > 0.1  # not the identity
    for i in range(6):
        ctx = context[i] if context is not None else None
        jac = jacobian(lambda v, ctx=ctx: flow.call_and_ladj(v, ctx)[0], x[i])
        sign, logdet = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(ladj[i], logdet, atol=1e-8, rtol=1e-8)
        back = flow.inverse_and_ladj(z[i], ctx)
        inv_jac = jacobian(lambda v, ctx=ctx: flow.inverse_and_ladj(v, ctx)[0], z[i])
        torch.testing.assert_close(back[1], torch.linalg.slogdet(inv_jac)[1], atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize(
    "name,flow,conditional", spline_flows(), ids=[c[0] for c in spline_flows()]
)
def test_spline_flow_round_trip_broadcasting_over_particles(
    name: str, flow: Bijection, conditional: bool
) -> None:
    flow.double()  # float64: a flat stretch of a random spline makes the inverse ill-conditioned
    randomize(flow)
    torch.manual_seed(5)
    x = 2 * torch.randn(3, 4, D, dtype=torch.float64)  # particles x data points
    context = torch.randn(4, C, dtype=torch.float64) if conditional else None  # over particles
    z, ladj = flow.call_and_ladj(x, context)
    back, inv_ladj = flow.inverse_and_ladj(z, context)
    assert back.shape == x.shape and inv_ladj.shape == (3, 4)
    torch.testing.assert_close(back, x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(inv_ladj, -ladj, atol=1e-8, rtol=1e-8)
    assert flow.event_dims == 1


def test_new_spline_flows_start_as_the_identity_and_need_their_context() -> None:
    x = torch.randn(4, D)
    for flow in (SplineCoupling(D, (8,)), AutoregressiveSpline(D, (8,))):
        z, ladj = flow.call_and_ladj(x)
        torch.testing.assert_close(z, x, atol=1e-5, rtol=0)
        torch.testing.assert_close(ladj, torch.zeros(4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="context"):
        SplineCoupling(D, (8,), context_size=C).call_and_ladj(x)
    with pytest.raises(ValueError, match="context"):
        AutoregressiveSpline(D, (8,), context_size=C).call_and_ladj(x)


def test_autoregressive_spline_scores_in_one_pass_and_samples_in_d() -> None:
    flow = AutoregressiveSpline(D, (16,))
    randomize(flow)
    calls: list[int] = []
    flow.made.register_forward_hook(lambda *_: calls.append(1))
    z, _ = flow.call_and_ladj(torch.randn(7, D))
    assert len(calls) == 1
    flow.inverse_and_ladj(z)
    assert len(calls) == 1 + D
    # and the ordering is autoregressive: dz_i/dx_j = 0 for j > i
    jac = jacobian(lambda v: flow.call_and_ladj(v)[0], torch.randn(D))
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))
    assert jac.tril(-1).abs().sum() > 0


def test_a_spline_flow_density_integrates_to_one_and_matches_its_samples() -> None:
    """Trapezoid rule on [-6, 6]^2 with h = 0.025, tolerance 2e-3.

    Truncation: the spline maps [-B, B] onto itself and is the identity outside, coordinate by
    coordinate, so P(|x_i| > 6) = P(|z_i| > 6) = 2e-9: the mass off the grid is < 1e-8. The
    density is continuous with kinks at the knots, so the rule's error is O(h^2): for these
    flows it was below 2e-4 at h = 0.05 and 5e-5 at h = 0.025 (and falls with h). A wrong
    log-determinant (a sign, a missing term) moves the integral by O(1).
    """
    torch.manual_seed(6)
    flow = Compose(
        [
            SplineCoupling(2, (16, 16)),
            SplineCoupling(2, (16, 16), flip=True),
            AutoregressiveSpline(2, (16, 16)),
        ]
    ).double()
    randomize(flow, 0.2)  # clearly non-Gaussian, yet smooth on the grid's scale
    grid = torch.linspace(-6, 6, 481, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    base = Independent(Normal(torch.zeros(2).double(), torch.ones(2).double()), 1)
    with torch.no_grad():
        z, ladj = flow.call_and_ladj(points)
        density = (base.log_prob(z) + ladj).exp()
        gaussian = base.log_prob(points).exp()
        assert (density - gaussian).abs().max() > 0.1  # the flow does something
        table = density.reshape(len(grid), len(grid))
        total = torch.trapezoid(torch.trapezoid(table, grid, dim=-1), grid)
        assert abs(total.item() - 1) < 2e-3
        samples, _ = flow.inverse_and_ladj(base.sample((20000,)))  # the sampling direction
        cell = (grid[1] - grid[0]) ** 2
        grid_mean = (density.unsqueeze(-1) * points).sum(0) * cell
    # 20000 samples: standard error of the mean about 0.01 per coordinate
    torch.testing.assert_close(samples.mean(0), grid_mean, atol=0.05, rtol=0)


# --- uniform dequantization ----------------------------------------------------------------


def images(n: int = 6, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 2, 3, 3), generator=g, dtype=torch.uint8)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255  # both ends
    return x


def test_uniform_dequantization_log_det_range_and_fresh_noise() -> None:
    layer = UniformDequantization()
    x = images()
    y, log_term = layer(x)
    assert y.shape == x.shape and y.dtype == torch.get_default_dtype()
    assert log_term.shape == (6,)
    torch.testing.assert_close(log_term, torch.full((6,), -18 * math.log(256)))  # D = 2*3*3
    assert y.min() >= 0 and y.max() < 1
    assert torch.equal(torch.floor(y * 256).long(), x.long())  # y in [x/256, (x+1)/256)
    assert torch.equal(layer.quantize(y), x.long())
    y2, _ = layer(x)
    assert not torch.equal(y, y2)  # fresh noise at every call
    same, _ = layer(x.float())  # float dtype, integer values: accepted
    assert torch.equal(layer.quantize(same), x.long())
    # the noise is U(0, 1): mean 1/2, variance 1/12
    u = layer(torch.zeros(200000, 1, 1, 1))[0] * 256
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.002
    flat, log_flat = UniformDequantization(event_dims=1)(x.reshape(6, -1))
    assert flat.shape == (6, 18)
    torch.testing.assert_close(log_flat, log_term)


def test_uniform_dequantization_refuses_what_is_not_8_bit() -> None:
    layer = UniformDequantization()
    sixteen = torch.randint(0, 1024, (2, 1, 4, 4), dtype=torch.int16)
    sixteen[0, 0, 0, 0], sixteen[1, 0, 0, 0] = 0, 1023
    with pytest.raises(ValueError, match=r"8-bit.*\{0, \.\.\., 255\}.*found values in \[0, 1023\]"):
        layer(sixteen)
    with pytest.raises(ValueError, match=r"found values in \[-1, 1\]"):
        layer(torch.tensor([-1.0, 1.0]).reshape(1, 1, 1, 2))
    with pytest.raises(ValueError, match="non-integer values"):
        layer(images().float() / 255)  # already scaled to [0, 1]
    with pytest.raises(ValueError, match="last 3 dimensions"):
        layer(torch.zeros(4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"4-bit.*found values in \[0, 16\]"):
        UniformDequantization(levels=16)(torch.tensor([0, 16]).reshape(1, 1, 1, 2))


# --- the logit transform -------------------------------------------------------------------


def test_logit_transform_log_det_matches_autograd_and_inverts() -> None:
    torch.manual_seed(8)
    f = LogitTransform(alpha=0.05)
    assert f.event_dims == 3
    x = torch.rand(4, 2, 3, 3, dtype=torch.float64)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # the ends are finite
    x.requires_grad_(True)
    y, ladj = f.call_and_ladj(x)
    assert ladj.shape == (4,) and torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.logit(0.05 + 0.9 * x))
    (slope,) = torch.autograd.grad(y.sum(), x)  # elementwise
    torch.testing.assert_close(ladj, slope.log().sum((1, 2, 3)))
    back, inv_ladj = f.inverse_and_ladj(y.detach())
    torch.testing.assert_close(back, x.detach())
    torch.testing.assert_close(inv_ladj, -ladj.detach())
    vector = LogitTransform(0.1, event_dims=1)  # and a full Jacobian for a vector
    v = torch.rand(5, dtype=torch.float64)
    jac = jacobian(lambda t: vector.call_and_ladj(t)[0], v)
    torch.testing.assert_close(vector.call_and_ladj(v)[1], torch.linalg.slogdet(jac)[1])
    Compose([vector, SplineCoupling(5, (8,))])  # composes with vector flows


def test_logit_transform_refuses_data_outside_the_unit_interval() -> None:
    f = LogitTransform()
    with pytest.raises(ValueError, match=r"\[0, 1\].*found values in \[0, 1.5\]"):
        f.call_and_ladj(torch.tensor([0.0, 1.5]).reshape(1, 1, 1, 2))
    with pytest.raises(ValueError, match=r"found values in \[-0.25, 0.5\]"):
        f.call_and_ladj(torch.tensor([-0.25, 0.5]).reshape(1, 1, 1, 2))
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(alpha=0.0)


def test_uniform_model_scores_exactly_8_bits_per_dim() -> None:
    """If y ~ U(0, 1)^D then x is uniform on 256^D values: 8 bits/dim, every term counted.

    Under the logit transform U(0, 1) becomes the logistic density over (1 - 2 alpha) on
    its range, so that base makes log p_flow(z) + ladj = 0 and the bound is -D log 256.
    """
    layer, f = UniformDequantization(), LogitTransform(alpha=0.05)
    x = images()
    y, log_term = layer(x)
    z, ladj = f.call_and_ladj(y)
    logistic = torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z)
    log_base = (logistic - math.log(0.9)).sum((1, 2, 3))
    bits_per_dim = -(log_base + ladj + log_term) / (18 * math.log(2))
    torch.testing.assert_close(bits_per_dim, torch.full((6,), 8.0))


# --- variational dequantization ------------------------------------------------------------


def test_a_new_variational_dequantization_is_uniform() -> None:
    layer = VariationalDequantization((2, 3, 3), hidden=(16,))
    x = images()
    y, log_term = layer(x)
    assert y.shape == x.shape and log_term.shape == (6,)
    torch.testing.assert_close(log_term, torch.full((6,), -18 * math.log(256)), atol=1e-4, rtol=0)
    assert torch.equal(layer.quantize(y), x.long())
    assert layer.event_dims == 3


def test_variational_dequantization_term_is_minus_log_q_minus_d_log_256() -> None:
    torch.manual_seed(9)
    layer = VariationalDequantization((2, 3, 3), hidden=(16,)).double()
    randomize(layer, 0.5)
    x = images().double()
    y, log_term = layer(x)
    assert torch.equal(layer.quantize(y), x.long())  # u in [0, 1): x's own cell
    u = y.detach() * 256 - x
    # q(u | x) by torch.distributions: sigmoid(mu + sigma * Logistic(0, 1)), (mu, s) from the net
    out = layer.net(x.reshape(6, -1) / 255 - 0.5)
    mu, s = (t.reshape(x.shape) for t in out.chunk(2, -1))
    logistic = TransformedDistribution(
        Uniform(torch.zeros_like(mu), torch.ones_like(mu)), [SigmoidTransform().inv]
    )
    q = TransformedDistribution(logistic, [AffineTransform(mu, s.exp()), SigmoidTransform()])
    expected = -q.log_prob(u).sum((1, 2, 3)) - 18 * math.log(256)
    assert (s.abs() > 0.05).any()  # q is not uniform
    torch.testing.assert_close(log_term, expected, atol=1e-6, rtol=1e-6)
    log_term.sum().backward()  # reparameterized: the bound's gradient reaches q
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.net.parameters())


def test_variational_dequantization_expected_inverse_density_is_the_cube_volume() -> None:
    """E_q[exp(log_term)] = 256^-D E_q[1/q(u|x)] = 256^-D, for any q on the unit cube.

    With log-scales s = (0.3, -0.1) (sigma > 1/2) 1/q has finite variance under q (its second
    moment is the integral of 1/q over the cube); its standard deviation is about 0.66, so
    with 200000 draws the standard error of the mean is 0.0015 and the tolerance, 0.01, is
    about 7 of them. A missing or doubled term of log q (e.g. the Jacobian -sum s = -0.2)
    shifts the mean by a factor exp(+-0.2), 20 times the tolerance.
    """
    torch.manual_seed(10)
    layer = VariationalDequantization((2,), hidden=(8,)).double()
    last = layer.net[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([0.8, -0.6, 0.3, -0.1]))  # mu = (0.8, -0.6), s = (0.3, -0.1)
        last.weight.normal_(0, 0.01)
    x = torch.tensor([17.0, 200.0], dtype=torch.float64).expand(200000, 2)
    _, log_term = layer(x)
    ratio = (log_term + 2 * math.log(256)).exp()
    assert abs(ratio.mean().item() - 1) < 0.01
    assert ratio.std() > 0.1  # not trivially uniform


def test_variational_dequantization_refuses_bad_input() -> None:
    layer = VariationalDequantization((1, 2, 2), hidden=(8,))
    with pytest.raises(ValueError, match=r"found values in \[0, 4095\]"):
        layer(torch.tensor([0, 4095, 3, 3]).reshape(1, 1, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        layer(torch.zeros(1, 1, 3, 3))
