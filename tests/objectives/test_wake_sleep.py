"""Wake-sleep, RWS, NVIL and the concrete relaxation against enumeration on a 4-state model."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Normal

import dgm
from dgm.objectives import NVIL, RWS, Concrete, WakeSleep, sleep_phi, wake_phi, wake_theta

MEANS = torch.tensor([-3.0, -1.0, 1.0, 3.0])


class FourStateModel(nn.Module):
    """c ~ Categorical(softmax(theta)) over 4 states, x | c ~ N(MEANS[c], 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.3, -0.2, 0.5, -0.6]))

    def forward(self, x: torch.Tensor) -> None:
        c = dgm.sample("c", Categorical(logits=self.theta.expand(*x.shape, 4)))
        dgm.sample("x", Normal(MEANS[c], 1.0), obs=x)

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, c) for every state: ``[B, 4]``."""
        return torch.log_softmax(self.theta, -1) + Normal(MEANS, 1.0).log_prob(x.unsqueeze(-1))


class GlobalGuide(nn.Module):
    """q(c) = Categorical(softmax(phi)), the same for every data point."""

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Parameter(torch.tensor([0.4, 0.1, -0.3, -0.1]))

    def forward(self, x: torch.Tensor) -> None:
        dgm.sample("c", Categorical(logits=self.phi.expand(*x.shape, 4)))


def grads(*params: nn.Parameter) -> list[torch.Tensor]:
    out = []
    for p in params:
        assert p.grad is not None
        out.append(p.grad.clone())
    return out


def exact_log_marginal_grad(model: FourStateModel, x: torch.Tensor) -> torch.Tensor:
    """d/dtheta sum_b log p(x_b), by enumerating the four states."""
    theta = model.theta.detach().clone().requires_grad_(True)
    log_joint = torch.log_softmax(theta, -1) + Normal(MEANS, 1.0).log_prob(x.unsqueeze(-1))
    (g,) = torch.autograd.grad(torch.logsumexp(log_joint, -1).sum(), theta)
    return g


def test_wake_theta_is_the_per_point_iwae_bound() -> None:
    torch.manual_seed(0)
    model, guide = FourStateModel(), GlobalGuide()
    x = torch.tensor([-3.0, 0.0, 2.5])
    lw = dgm.log_weights(model, guide, x, num_particles=20000, reparam=False)
    bound = wake_theta(lw)
    assert bound.shape == (3,)
    torch.testing.assert_close(bound, dgm.iwae(lw).detach())
    exact = torch.logsumexp(model.log_joint(x), -1)  # log p(x_b)
    torch.testing.assert_close(bound.detach(), exact, atol=0.05, rtol=0)
    bound.sum().backward()
    assert guide.phi.grad is None  # wake-theta trains the model only
    (got,) = grads(model.theta)
    torch.testing.assert_close(got, exact_log_marginal_grad(model, x), atol=0.05, rtol=0)


def test_per_point_weights_give_the_right_gradient_where_minibatch_weights_do_not() -> None:
    """A minibatch of 8 distinct points, 400 repeats, K = 200 particles per point.

    Per-point weights (dgm) match the enumerated gradient of sum_b log p(x_b); one weight per
    particle for the whole minibatch (the product of the points' weights, as Pyro's
    ReweightedWakeSleep computes it) is far off at the same K.
    """
    torch.manual_seed(0)
    model, guide = FourStateModel(), GlobalGuide()
    points = torch.tensor([-3.0, -1.5, 0.0, 0.5, 1.0, 2.0, 2.5, 3.5])
    repeats, k = 400, 200
    lw = dgm.log_weights(model, guide, points.repeat(repeats), num_particles=k, reparam=False)
    (per_point,) = torch.autograd.grad(
        wake_theta(lw).sum() / repeats, model.theta, retain_graph=True
    )
    pooled_log_w = (lw.log_p - lw.log_q.detach()).reshape(k, repeats, len(points)).sum(-1)
    (pooled,) = torch.autograd.grad(torch.logsumexp(pooled_log_w, 0).sum() / repeats, model.theta)
    want = exact_log_marginal_grad(model, points)
    assert (per_point - want).norm() < 0.1
    assert (pooled - want).norm() > 0.5


def test_wake_theta_refuses_reparameterized_samples() -> None:
    class G(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            dgm.sample("z", Normal(torch.zeros_like(x), 1.0))

    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            z = dgm.sample("z", Normal(torch.zeros_like(x), 1.0))
            dgm.sample("x", Normal(z, 1.0), obs=x)

    lw = dgm.log_weights(M(), G(), torch.zeros(3), num_particles=2)
    with pytest.raises(ValueError, match="reparam=False"):
        wake_theta(lw)
    ok = dgm.log_weights(M(), G(), torch.zeros(3), num_particles=2, reparam=False)
    assert not ok.guide_trace["z"].value.requires_grad
    assert wake_theta(ok).shape == (3,)


def mean_wake_phi_grad(k: int, x0: float, draws: int) -> torch.Tensor:
    torch.manual_seed(k)
    model, guide = FourStateModel(), GlobalGuide()
    x = torch.full((draws,), x0)  # `draws` independent estimates, averaged by the mean
    lw = dgm.log_weights(model, guide, x, num_particles=k, reparam=False)
    wake_phi(lw).mean().backward()
    assert model.theta.grad is None  # wake-phi trains the guide only
    (g,) = grads(guide.phi)
    return g


def test_wake_phi_tends_to_the_enumerated_gradient_of_kl_p_q_as_k_grows() -> None:
    x0 = 1.7
    model, guide = FourStateModel(), GlobalGuide()
    with torch.no_grad():
        p = torch.softmax(model.log_joint(torch.tensor([x0]))[0], -1)
        q = torch.softmax(guide.phi, -1)
    want = p - q  # -d KL(p || q) / d phi for q = softmax(phi)
    errors = {k: (mean_wake_phi_grad(k, x0, 20000) - want).norm().item() for k in (1, 3, 30)}
    assert errors[1] > 0.3  # K = 1: the self-normalized weight is 1, no signal (E = q - q)
    assert errors[1] > errors[3] > errors[30]
    assert errors[30] < 0.05


def test_sleep_phi_fits_the_guide_to_the_models_dreams() -> None:
    torch.manual_seed(1)
    model, guide = FourStateModel(), GlobalGuide()
    x = torch.zeros(20000)
    out = sleep_phi(model, guide, x)
    assert out.shape == (20000,)
    out.mean().backward()
    assert model.theta.grad is None  # nothing flows into the model
    (g,) = grads(guide.phi)
    with torch.no_grad():
        prior, q = torch.softmax(model.theta, -1), torch.softmax(guide.phi, -1)
    # E_{(x,c)~p}[d log q(c) / d phi] = prior - q for a guide that ignores x
    torch.testing.assert_close(g, prior - q, atol=0.015, rtol=0)


def test_sleep_phi_gives_the_guide_the_dreamed_data() -> None:
    torch.manual_seed(2)
    seen: list[torch.Tensor] = []

    class Recording(GlobalGuide):
        def forward(self, x: torch.Tensor) -> None:
            seen.append(x)
            super().forward(x)

    model = FourStateModel()
    x = torch.full((5000,), 100.0)
    sleep_phi(model, Recording(), x)
    dreamed = seen[0]
    assert dreamed.shape == x.shape and (dreamed != 100.0).all()
    prior = torch.softmax(model.theta.detach(), -1)
    assert abs(dreamed.mean().item() - (prior * MEANS).sum().item()) < 0.1


def test_sleep_phi_says_how_to_map_a_reshaped_observation() -> None:
    class Reshaping(FourStateModel):
        def forward(self, x: torch.Tensor) -> None:
            super().forward(x.reshape(-1))

    x = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="guide_args"):
        sleep_phi(Reshaping(), GlobalGuide(), x)
    out = sleep_phi(Reshaping(), GlobalGuide(), x, guide_args=lambda d: ((d["x"].reshape(-1),), {}))
    assert out.shape == (4,)


def test_rws_and_wake_sleep_route_each_signal_to_its_own_parameters() -> None:
    x = torch.tensor([-2.0, 0.5, 3.0])
    for objective in (RWS(5, "wake"), RWS(5, "sleep"), RWS(5, "both"), WakeSleep()):
        torch.manual_seed(3)
        model, guide = FourStateModel(), GlobalGuide()
        value = objective(model, guide, x)
        torch.manual_seed(3)
        lw = dgm.log_weights(model, guide, x, num_particles=objective.num_particles)
        torch.testing.assert_close(value.detach(), dgm.iwae(lw).detach())  # value: IWAE bound
        value.mean().backward()
        g_theta, g_phi = grads(model.theta, guide.phi)
        torch.manual_seed(3)
        m2, g2 = FourStateModel(), GlobalGuide()
        lw2 = dgm.log_weights(m2, g2, x, num_particles=objective.num_particles, reparam=False)
        wake_theta(lw2).mean().backward()
        (want_theta,) = grads(m2.theta)
        torch.testing.assert_close(g_theta, want_theta)
        assert g_phi.abs().sum() > 0
    with pytest.raises(ValueError, match="phi must be one of"):
        RWS(5, "dream")


def test_wake_sleep_is_rws_with_one_particle_and_sleep() -> None:
    ws = WakeSleep()
    assert (ws.num_particles, ws.phi) == (1, "sleep")


def enumerated_elbo_grad_phi(x0: float) -> torch.Tensor:
    model, guide = FourStateModel(), GlobalGuide()
    phi = guide.phi.detach().clone().requires_grad_(True)
    log_q = torch.log_softmax(phi, -1)
    with torch.no_grad():
        log_joint = model.log_joint(torch.tensor([x0]))[0]
    elbo = (log_q.exp() * (log_joint - log_q)).sum()
    (g,) = torch.autograd.grad(elbo, phi)
    return g


def test_nvil_gradient_is_unbiased() -> None:
    torch.manual_seed(4)
    x0 = 0.8
    model, guide = FourStateModel(), GlobalGuide()

    class Baseline(nn.Module):  # input-dependent, from earlier batches only
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.unsqueeze(-1))

    nvil = NVIL(baseline=Baseline())
    with torch.no_grad():
        nvil.signal_mean.fill_(-2.0)
        nvil.signal_var.fill_(0.5)  # std < 1: no rescaling
        nvil.initialized.fill_(True)
    nvil.eval()  # keep the statistics fixed, so they are independent of the draws
    x = torch.full((40000,), x0)
    nvil(model, guide, x).mean().backward()
    (got,) = grads(guide.phi)
    torch.testing.assert_close(got, enumerated_elbo_grad_phi(x0), atol=0.02, rtol=0)


def test_nvil_baseline_learns_the_input_dependent_signal_and_normalizes_variance() -> None:
    torch.manual_seed(5)
    model, guide = FourStateModel(), GlobalGuide()
    model.requires_grad_(False)
    guide.requires_grad_(False)

    class Baseline(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = dgm.nn.MLP((1, 16, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.unsqueeze(-1))

    nvil = NVIL(baseline=Baseline())
    opt = torch.optim.Adam(nvil.parameters(), lr=0.02)
    x = torch.tensor([-3.0, 3.0]).repeat(256)
    for _ in range(400):
        opt.zero_grad()
        (-nvil(model, guide, x).mean()).backward()
        opt.step()
    with torch.no_grad():
        lw = dgm.log_weights(model, guide, torch.tensor([-3.0, 3.0]), num_particles=20000)
        expected = lw.log_w.mean(0)  # E_q[l | x] for the two inputs
        predicted = nvil.baseline(torch.tensor([-3.0, 3.0])).squeeze(-1) + nvil.signal_mean
    assert (expected[0] - expected[1]).abs() > 2  # the signal depends on x ...
    torch.testing.assert_close(predicted, expected, atol=0.5, rtol=0)  # ... and so does C(x)
    # the same draw with a larger running variance: the score term shrinks by 1 / std
    guide.requires_grad_(True)
    nvil.eval()
    steps = []
    for var in (0.5, 100.0):
        nvil.signal_var.fill_(var)
        guide.phi.grad = None
        torch.manual_seed(6)
        nvil(model, guide, x).mean().backward()
        steps.append(grads(guide.phi)[0])
    guide.phi.grad = None
    torch.manual_seed(6)
    dgm.log_weights(model, guide, x).log_w.mean(0).mean().backward()  # the same draw's path term
    (path,) = grads(guide.phi)
    assert (steps[0] - path).norm() > 1e-3
    torch.testing.assert_close(steps[1] - path, (steps[0] - path) / 10, atol=1e-6, rtol=1e-4)


def test_concrete_objective_uses_pathwise_gradients_of_the_relaxed_bound() -> None:
    class Bits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(3))

        def forward(self, x: torch.Tensor) -> None:
            h = dgm.sample(
                "h",
                torch.distributions.Independent(
                    torch.distributions.Bernoulli(logits=self.logits.expand(len(x), 3)), 1
                ),
            )
            dgm.sample("x", Normal(h.sum(-1), 1.0), obs=x)

    class BitsGuide(Bits):
        def forward(self, x: torch.Tensor) -> None:
            logits = self.logits + x.unsqueeze(-1)
            dgm.sample(
                "h",
                torch.distributions.Independent(torch.distributions.Bernoulli(logits=logits), 1),
            )

    model, guide = Bits(), BitsGuide()
    with dgm.ppl.relax(0.5):
        lw = dgm.log_weights(model, guide, torch.zeros(4), num_particles=3)
    assert lw.score_log_q() is None  # every site reparameterized
    h = lw.guide_trace["h"].value
    assert ((h > 0) & (h < 1)).all() and h.requires_grad
    value = Concrete(3, 0.5)(model, guide, torch.zeros(4))
    value.mean().backward()
    assert guide.logits.grad is not None and model.logits.grad is not None
    assert math.isfinite(value.sum().item())
