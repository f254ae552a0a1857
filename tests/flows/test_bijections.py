"""Every bijection: round trip, log|det J| against autograd Jacobians, MADE's ordering."""

import pytest
import torch
from torch.autograd.functional import jacobian

from dgm.flows import IAF, MADE, MAF, Bijection, Compose, Permute, Planar

D, C = 4, 3


def cases() -> list[tuple[str, Bijection, bool]]:
    torch.manual_seed(0)
    return [
        ("planar", Planar(D), False),
        ("planar-amortized", Planar(D, context_size=C), True),
        ("iaf", IAF(D, (16, 16)), False),
        ("iaf-conditional", IAF(D, (16, 16), context_size=C), True),
        ("maf", MAF(D, (16, 16)), False),
        ("maf-conditional", MAF(D, (16, 16), context_size=C), True),
        ("permute", Permute(D, [2, 0, 3, 1]), False),
        ("compose", Compose([IAF(D, (16,)), Permute(D), Planar(D)]), False),
    ]


def randomize(f: torch.nn.Module) -> None:
    with torch.no_grad():  # move away from the near-identity initialization
        for p in f.parameters():
            p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize("name,flow,conditional", cases(), ids=[c[0] for c in cases()])
def test_log_det_matches_the_autograd_jacobian(
    name: str, flow: Bijection, conditional: bool
) -> None:
    randomize(flow)
    torch.manual_seed(1)
    x = torch.randn(5, D)
    context = torch.randn(5, C) if conditional else None
    y, ladj = flow.call_and_ladj(x, context)
    assert y.shape == x.shape and ladj.shape == (5,)
    for i in range(5):
        ctx = context[i] if context is not None else None
        jac = jacobian(lambda v, ctx=ctx: flow.call_and_ladj(v, ctx)[0], x[i])
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(jac)[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,flow,conditional", cases(), ids=[c[0] for c in cases()])
def test_round_trip_where_an_inverse_exists(name: str, flow: Bijection, conditional: bool) -> None:
    randomize(flow)
    torch.manual_seed(2)
    x = torch.randn(3, 5, D)  # particles x data points
    context = torch.randn(5, C) if conditional else None  # broadcasts over particles
    y, ladj = flow.call_and_ladj(x, context)
    try:
        back, inv_ladj = flow.inverse_and_ladj(y, context)
    except NotImplementedError as err:
        assert "no cheap inverse" in str(err)
        assert name.startswith(("planar", "compose"))  # the ones without an inverse
        return
    torch.testing.assert_close(back, x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(inv_ladj, -ladj, atol=1e-4, rtol=1e-4)


def test_made_outputs_depend_only_on_earlier_inputs() -> None:
    torch.manual_seed(3)
    made = MADE(5, (32, 32), outputs_per_dim=2, context_size=2)
    randomize(made)
    x, ctx = torch.randn(5), torch.randn(2)
    jac = jacobian(lambda v: made(v, ctx), x)  # [2, 5 outputs, 5 inputs]
    for k in range(2):
        block = jac[k]
        assert torch.equal(block.triu(), torch.zeros_like(block))  # strictly lower triangular
        assert block.tril(-1).abs().sum() > 0  # and it does use the earlier inputs
    out_ctx = jacobian(lambda c: made(x, c), ctx)
    assert out_ctx.abs().sum() > 0  # the context reaches every output


def test_conditional_flows_need_their_context() -> None:
    with pytest.raises(ValueError, match="context"):
        Planar(D, context_size=C).call_and_ladj(torch.randn(2, D))
    with pytest.raises(ValueError, match="context"):
        IAF(D, context_size=C).call_and_ladj(torch.randn(2, D))
