"""Couplings, ActNorm, the LU 1x1 conv and squeeze: round trips, log|det J|, what each promises."""

import re
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian
from torch.distributions import Independent, Normal

from dgm.flows import (
    ActNorm,
    AffineCoupling,
    Bijection,
    Compose,
    InvertibleConv1x1,
    Permute,
    Squeeze,
)

C, H, W, D, K = 2, 4, 6, 6, 3  # image channels and (non-square) size, vector size, context size
IMAGE, VECTOR = (C, H, W), (D,)

# name -> (builder, event shape, conditional)
CASES: dict[str, tuple[Callable[[], Bijection], tuple[int, ...], bool]] = {
    "half": (lambda: AffineCoupling(D, "half", hidden=16), VECTOR, False),
    "half-flip": (lambda: AffineCoupling(D, "half", flip=True, hidden=16), VECTOR, False),
    "half-odd-size": (lambda: AffineCoupling(5, "half", hidden=16), (5,), False),
    "half-conditional": (lambda: AffineCoupling(D, hidden=16, context_size=K), VECTOR, True),
    "checkerboard": (lambda: AffineCoupling(C, "checkerboard", hidden=8), IMAGE, False),
    "checkerboard-flip": (
        lambda: AffineCoupling(C, "checkerboard", flip=True, hidden=8),
        IMAGE,
        False,
    ),
    "checkerboard-conditional": (
        lambda: AffineCoupling(C, "checkerboard", hidden=8, context_size=K),
        IMAGE,
        True,
    ),
    "channel": (lambda: AffineCoupling(C, "channel", hidden=8), IMAGE, False),
    "channel-flip": (lambda: AffineCoupling(C, "channel", flip=True, hidden=8), IMAGE, False),
    "channel-conditional": (
        lambda: AffineCoupling(C, "channel", hidden=8, context_size=K),
        IMAGE,
        True,
    ),
    "actnorm-image": (lambda: ActNorm(C), IMAGE, False),
    "actnorm-vector": (lambda: ActNorm(D, event_dims=1), VECTOR, False),
    "conv1x1": (lambda: InvertibleConv1x1(C), IMAGE, False),
    "squeeze": (Squeeze, IMAGE, False),
    "glow-step": (
        lambda: Compose(
            [
                Squeeze(),
                ActNorm(4 * C),
                InvertibleConv1x1(4 * C),
                AffineCoupling(4 * C, "channel", hidden=8, context_size=K),
            ]
        ),
        IMAGE,
        True,
    ),
    "vector-flow": (
        lambda: Compose(
            [ActNorm(D, event_dims=1), AffineCoupling(D), Permute(D), AffineCoupling(D, flip=True)]
        ),
        VECTOR,
        False,
    ),
}


def randomize(f: torch.nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():  # away from the identity (zero last layers, unit scales)
        for p in f.parameters():
            p.add_(scale * torch.randn_like(p))


def build(name: str) -> tuple[Bijection, tuple[int, ...], bool]:
    """The bijection, initialised on a first batch (ActNorm), randomised, in evaluation mode."""
    make, event, conditional = CASES[name]
    torch.manual_seed(0)
    flow = make()
    x = 2 * torch.randn(8, *event) + 1
    flow.call_and_ladj(x, torch.randn(8, K) if conditional else None)
    randomize(flow, 0.2)  # far enough to test, near enough for float32 round trips at 1e-5
    return flow.eval(), event, conditional


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip(name: str) -> None:
    flow, event, conditional = build(name)
    x = torch.randn(3, 2, *event)  # particles x data points
    context = torch.randn(2, K) if conditional else None  # broadcasts over particles
    z, ladj = flow.call_and_ladj(x, context)
    assert ladj.shape == (3, 2)
    assert z.shape != x.shape or not torch.allclose(z, x, atol=1e-3)  # it does something
    back, inv_ladj = flow.inverse_and_ladj(z, context)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inv_ladj, -ladj, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_log_det_matches_the_autograd_jacobian(name: str) -> None:
    flow, event, conditional = build(name)
    flow.double()
    torch.manual_seed(1)
    x = torch.randn(4, *event, dtype=torch.float64)
    context = torch.randn(4, K, dtype=torch.float64) if conditional else None
    _, ladj = flow.call_and_ladj(x, context)
    assert ladj.shape == (4,)
    for i in range(4):
        ctx = context[i] if context is not None else None

        def f(v: torch.Tensor, ctx: torch.Tensor | None = ctx) -> torch.Tensor:
            return flow.call_and_ladj(v.reshape(event), ctx)[0].flatten()

        jac = jacobian(f, x[i].flatten())  # [prod(event), prod(event)]
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(jac)[1], atol=1e-8, rtol=1e-8)


def test_a_coupling_density_integrates_to_one() -> None:
    torch.manual_seed(2)  # log p(x) = log N(z) + ladj with z, ladj = call_and_ladj(x)
    flow = Compose([AffineCoupling(2, hidden=16), AffineCoupling(2, flip=True, hidden=16)])
    randomize(flow, 0.5)
    grid = torch.linspace(-8, 8, 321)
    points, cell = torch.cartesian_prod(grid, grid), (grid[1] - grid[0]) ** 2
    with torch.no_grad():
        z, ladj = flow.call_and_ladj(points)
        log_p = Independent(Normal(torch.zeros(2), torch.ones(2)), 1).log_prob(z) + ladj
    assert abs((log_p.exp().sum() * cell).item() - 1) < 0.01


@pytest.mark.parametrize(
    "mask,event,kept",
    [
        ("half", VECTOR, torch.tensor([1.0, 1, 1, 0, 0, 0])),
        ("checkerboard", IMAGE, ((torch.arange(H)[:, None] + torch.arange(W)) % 2 == 0).float()),
        ("channel", (4, H, W), torch.tensor([1.0, 1, 0, 0])[:, None, None]),
    ],
    ids=["half", "checkerboard", "channel"],
)
def test_couplings_start_as_the_identity_and_keep_their_half(
    mask: str, event: tuple[int, ...], kept: torch.Tensor
) -> None:
    torch.manual_seed(3)
    f = AffineCoupling(event[0], mask, hidden=8)  # type: ignore[arg-type]
    flipped = AffineCoupling(event[0], mask, flip=True, hidden=8)  # type: ignore[arg-type]
    x = torch.randn(3, *event)
    torch.testing.assert_close(f.keep_mask(x), kept)
    torch.testing.assert_close(flipped.keep_mask(x), 1 - kept)
    z, ladj = f.call_and_ladj(x)
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(3))  # zero-initialised last layer
    randomize(f)
    z, _ = f.call_and_ladj(x)
    keep = kept.bool().expand_as(x)
    assert torch.equal(z[keep], x[keep])
    assert (z[~keep] - x[~keep]).abs().min() > 0


@pytest.mark.parametrize(
    "mask,event",
    [("half", VECTOR), ("checkerboard", IMAGE), ("channel", IMAGE)],
    ids=["half", "checkerboard", "channel"],
)
def test_conditional_couplings_use_their_context(mask: str, event: tuple[int, ...]) -> None:
    torch.manual_seed(4)
    f = AffineCoupling(event[0], mask, hidden=8, context_size=K)  # type: ignore[arg-type]
    randomize(f)
    x, context = torch.randn(4, *event), torch.randn(4, K)
    z, ladj = f.call_and_ladj(x, context)
    other = context.clone()
    other[0] += 1.0  # a new context for data point 0 only
    z2, ladj2 = f.call_and_ladj(x, other)
    assert not torch.allclose(z2[0], z[0], atol=1e-4) and not torch.allclose(ladj2[0], ladj[0])
    torch.testing.assert_close(z2[1:], z[1:])
    with pytest.raises(ValueError, match="conditional: call it with context="):
        f.call_and_ladj(x)


@pytest.mark.parametrize("event_dims", [3, 1])
def test_actnorm_standardises_its_first_training_batch_and_the_flag_is_saved(
    event_dims: int,
) -> None:
    torch.manual_seed(5)
    shift, spread = torch.tensor([1.0, -3.0, 10.0]), torch.tensor([0.5, 2.0, 4.0])
    if event_dims == 3:
        shift, spread = shift[:, None, None], spread[:, None, None]
    x = torch.randn(2, 50, *((3, H, W) if event_dims == 3 else (3,))) * spread + shift
    dims = (0, 1, 3, 4) if event_dims == 3 else (0, 1)
    norm = ActNorm(3, event_dims=event_dims)
    assert not bool(norm.initialized)
    z, _ = norm.call_and_ladj(x)
    torch.testing.assert_close(z.mean(dims), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(dims, correction=0), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(norm.initialized)
    before = [p.detach().clone() for p in norm.parameters()]
    norm.call_and_ladj(3 * x + 1)  # a later batch does not initialise again
    assert all(torch.equal(p, q) for p, q in zip(norm.parameters(), before, strict=True))
    resumed = Compose([ActNorm(3, event_dims=event_dims)])  # restored inside a parent module
    resumed.load_state_dict(Compose([norm]).state_dict())
    assert bool(resumed.parts[0].get_buffer("initialized"))
    torch.testing.assert_close(resumed(3 * x + 1), norm(3 * x + 1))  # training mode, no re-init
    fresh = ActNorm(3, event_dims=event_dims).eval()
    torch.testing.assert_close(fresh(x), x)  # evaluation mode: no initialisation
    assert not bool(fresh.initialized)


def test_the_lu_conv_is_conv2d_with_the_dense_matrix_it_parametrises() -> None:
    torch.manual_seed(6)
    fresh = InvertibleConv1x1(5)
    eye = torch.eye(5)
    torch.testing.assert_close(fresh.weight() @ fresh.weight().T, eye, atol=1e-5, rtol=0)
    conv = InvertibleConv1x1(5)
    randomize(conv)
    assert {n for n, _ in conv.named_parameters()} == {"lower", "upper", "log_s"}
    p = conv.get_buffer("permutation")
    assert torch.equal(p.sum(0), torch.ones(5)) and torch.equal(p.sum(1), torch.ones(5))
    lower = torch.tril(conv.lower, -1) + eye
    upper = torch.triu(conv.upper, 1) + torch.diag(conv.get_buffer("sign") * conv.log_s.exp())
    dense = p @ lower @ upper
    torch.testing.assert_close(conv.weight(), dense)
    x = torch.randn(3, 5, 6, 7)
    z, ladj = conv.call_and_ladj(x)
    torch.testing.assert_close(z, F.conv2d(x, dense[:, :, None, None]), atol=1e-5, rtol=1e-5)
    log_det = torch.linalg.slogdet(dense)[1]
    torch.testing.assert_close(ladj, (6 * 7 * log_det).expand(3), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(conv.inverse_weight() @ dense, eye, atol=1e-5, rtol=0)


def test_squeeze_moves_each_2x2_patch_into_channels_and_refuses_odd_sizes() -> None:
    x = torch.arange(2 * 3 * 2 * 4 * 6.0).reshape(2, 3, 2, 4, 6)
    z, ladj = Squeeze().call_and_ladj(x)
    assert z.shape == (2, 3, 8, 2, 3) and torch.equal(ladj, torch.zeros(2, 3))
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[..., 4 * c + 2 * i + j, :, :], x[..., c, i::2, j::2])
    back, inv_ladj = Squeeze().inverse_and_ladj(z)
    assert torch.equal(back, x) and torch.equal(inv_ladj, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=re.escape("even H and W, got shape [2, 3, 5]")):
        Squeeze().call_and_ladj(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=re.escape("C a multiple of 4, got shape [6, 2, 2]")):
        Squeeze().inverse_and_ladj(torch.randn(6, 2, 2))


def test_compose_takes_its_parts_event_dims_and_refuses_a_mixture() -> None:
    assert Compose([Squeeze(), ActNorm(4 * C)]).event_dims == 3
    assert Compose([AffineCoupling(D), Permute(D)]).event_dims == 1
    assert Compose([]).call_and_ladj(torch.randn(2, *IMAGE))[1].shape == (2, C, H)  # vectors
    with pytest.raises(ValueError, match=r"event_dims\), got ActNorm: 1, Squeeze: 3"):
        Compose([ActNorm(D, event_dims=1), Squeeze()])


def test_bad_arguments_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="mask must be one of"):
        AffineCoupling(4, "diagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features must be >= 2, got 1"):
        AffineCoupling(1, "channel")
    with pytest.raises(ValueError, match="event_dims must be 1"):
        ActNorm(3, event_dims=2)
    with pytest.raises(
        ValueError, match=re.escape("expects events [..., 3, H, W], got shape [2, 4]")
    ):
        AffineCoupling(3, "checkerboard").call_and_ladj(torch.randn(2, 4))
    with pytest.raises(ValueError, match=re.escape("expects images [..., 3, H, W]")):
        InvertibleConv1x1(3).call_and_ladj(torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match=re.escape("expects events [..., 3]")):
        ActNorm(3, event_dims=1).call_and_ladj(torch.randn(2, 4))


def test_compose_refuses_parts_on_events_of_different_ranks() -> None:
    from dgm.flows import ActNorm, Compose, Squeeze

    with pytest.raises(
        ValueError, match=r"same number of dimensions \(event_dims\), got ActNorm: 1, Squeeze: 3"
    ):
        Compose([ActNorm(4, event_dims=1), Squeeze()])
