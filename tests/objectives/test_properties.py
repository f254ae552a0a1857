"""Property tests: the vectorized estimators against plain loops, for any shapes."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal

import dgm
from dgm.objectives import vimco_signal

shapes = st.tuples(st.integers(2, 6), st.integers(1, 5))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), shift=st.floats(-50, 50))
def test_vimco_signal_matches_a_loop_and_ignores_a_common_shift(
    shape: tuple[int, int], seed: int, shift: float
) -> None:
    k, b = shape
    log_w = (
        torch.randn(k, b, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    )
    expected = torch.empty(k, b, dtype=torch.float64)
    for j in range(b):
        for i in range(k):
            others = torch.cat([log_w[:i, j], log_w[i + 1 :, j]])
            replaced = torch.cat([others, others.mean().reshape(1)])
            expected[i, j] = torch.logsumexp(log_w[:, j], 0) - torch.logsumexp(replaced, 0)
    torch.testing.assert_close(vimco_signal(log_w), expected)
    torch.testing.assert_close(vimco_signal(log_w + shift), expected)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 5), b=st.integers(1, 5), d=st.integers(1, 3))
def test_log_weights_equal_per_particle_per_point_loops(k: int, b: int, d: int) -> None:
    """log w[k, b] is the log density ratio of particle k of data point b, whatever K and B."""
    w = torch.randn(d, d)

    def model(x: torch.Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(b, d), 1.0), 1))
        dgm.sample("x", Independent(Normal(z @ w, 0.5), 1), obs=x)

    def guide(x: torch.Tensor) -> None:
        dgm.sample("z", Independent(Normal(0.3 * x, 0.8), 1))

    x = torch.randn(b, d)
    lw = dgm.log_weights(model, guide, x, num_particles=k)
    z = lw.guide_trace["z"].value
    assert z.shape == (k, b, d)
    for i in range(k):
        for j in range(b):
            log_p = (
                Normal(0.0, 1.0).log_prob(z[i, j]).sum()
                + Normal(z[i, j] @ w, 0.5).log_prob(x[j]).sum()
            )
            log_q = Normal(0.3 * x[j], 0.8).log_prob(z[i, j]).sum()
            assert math.isclose(lw.log_p[i, j].item(), log_p.item(), rel_tol=1e-5, abs_tol=1e-4)
            assert math.isclose(lw.log_q[i, j].item(), log_q.item(), rel_tol=1e-5, abs_tol=1e-4)


def test_vimco_signal_is_linear_in_the_number_of_particles() -> None:
    """K = 200000 would need 320 GB with a K x K table of leave-one-out estimates."""
    log_w = torch.randn(200_000, 2, dtype=torch.float64)
    signal = vimco_signal(log_w)
    assert signal.shape == log_w.shape and torch.isfinite(signal).all()
    # replacing one weight of many by the mean of the others barely changes the estimate
    assert signal.abs().max() < 1e-3
