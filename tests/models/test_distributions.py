"""IndependentBernoulli: the same distribution as Independent(Bernoulli), with a fused log-density."""

import torch
from torch.distributions import Bernoulli, Independent

import dgm
from dgm.distributions import IndependentBernoulli


def test_log_prob_matches_torch_with_broadcasting_and_gradients() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 7, requires_grad=True)
    x = (torch.rand(3, 7) < 0.5).float()  # broadcasts against the particle dimension
    ours = IndependentBernoulli(logits).log_prob(x)
    ref = Independent(Bernoulli(logits=logits), 1).log_prob(x)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref)
    two = IndependentBernoulli(logits, event_dims=2)
    torch.testing.assert_close(two.log_prob(x), ref.sum(-1))
    assert two.batch_shape == (5,) and two.event_shape == (3, 7)


def test_it_is_relaxed_like_any_independent_bernoulli() -> None:
    d = dgm.ppl.relaxed(IndependentBernoulli(torch.zeros(2, 4)), 0.5)
    v = d.rsample()
    assert ((v > 0) & (v < 1)).all() and d.event_shape == (4,)


def test_is_binary_is_exact() -> None:
    from dgm.distributions import is_binary

    assert is_binary(torch.tensor([0.0, 1.0, 1.0])) and is_binary(torch.tensor([[0, 1]]))
    one_below = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    tiny = torch.tensor(torch.finfo(torch.float32).tiny / 4)  # a denormal
    for bad in (0.5, one_below.item(), 1.0001, -1.0, float("nan"), tiny.item(), 2.0):
        assert not is_binary(torch.tensor([0.0, bad, 1.0])), bad
    assert not is_binary(torch.tensor([0, 2]))
