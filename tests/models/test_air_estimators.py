"""Each estimator of AIR's z_pres gradient against enumeration, on a tiny AIR-shaped program.

Two steps with masks as ``dgm.models.air`` has them (a step after the first absent object is
drawn but contributes nothing), each present object adding a fixed template to three pixels.
The guide's z_pres logits get each estimator's gradient, averaged over many independent
copies of one image (the batch), against the exact gradient of the objective the estimator
claims to follow: the ELBO (REINFORCE with per-step baselines, NVIL), the K-particle bound
(VIMCO), wake-phi's expected update (RWS), and the relaxed ELBO (concrete, by quadrature).
"""

import itertools
import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal, RelaxedBernoulli

import dgm
from dgm.objectives import NVIL, OBJECTIVES
from dgm.ppl import mask

TEMPLATES = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
PRIOR = torch.tensor([0.6, 0.3])
X = torch.tensor([0.9, 0.6, 0.2])
SD = 0.5


def bern(logits: Tensor) -> Independent:
    return Independent(Bernoulli(logits=logits.unsqueeze(-1)), 1)


class TinyModel(nn.Module):
    def forward(self, x: Tensor) -> None:
        presence = torch.ones(x.shape[:-1])
        canvas = torch.zeros_like(x)
        for t in range(2):
            with mask(presence > 0.5):
                z = dgm.sample(f"z_pres_{t}", bern(torch.logit(PRIOR[t]).expand(presence.shape)))
            presence = presence * z[..., 0]
            canvas = canvas + presence[..., None] * TEMPLATES[t]
        dgm.sample("x", Independent(Normal(canvas, SD), 1), obs=x)


class TinyGuide(nn.Module):
    def __init__(self, baselines: bool) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.3, -0.4]))
        self.baselines = baselines
        self.baseline = nn.Linear(4, 1)  # of [x, previous z_pres]: never of z_pres_t itself

    def forward(self, x: Tensor) -> None:
        presence = torch.ones(x.shape[:-1])
        for t in range(2):
            infer = {}
            if self.baselines:
                prev = presence[..., None].expand(*presence.shape, 1)
                inputs = torch.cat([x.expand(*presence.shape, 3), prev], -1)
                infer = {"baseline": self.baseline(inputs.detach())[..., 0]}
            with mask(presence > 0.5):
                z = dgm.sample(
                    f"z_pres_{t}", bern(self.logits[t].expand(presence.shape)), infer=infer
                )
            presence = presence * z[..., 0]


def log_w_of(z: Tensor, logits: Tensor) -> Tensor:
    """log p(x, z) - log q(z) for z ``[..., 2]`` (0/1), masked as the programs mask."""
    total = torch.zeros(z.shape[:-1])
    presence = torch.ones(z.shape[:-1])
    canvas = torch.zeros(*z.shape[:-1], 3)
    for t in range(2):
        keep = presence > 0.5
        lp = Bernoulli(probs=PRIOR[t]).log_prob(z[..., t])
        lq = Bernoulli(logits=logits[t]).log_prob(z[..., t])
        total = total + torch.where(keep, lp - lq, 0.0)
        presence = presence * z[..., t]
        canvas = canvas + presence[..., None] * TEMPLATES[t]
    return total + Normal(canvas, SD).log_prob(X).sum(-1)


def states(k: int) -> Tensor:
    """All joint values of K particles' two z_pres: ``[4^K, K, 2]``."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=2 * k))).reshape(-1, k, 2)


def log_q_of(z: Tensor, logits: Tensor) -> Tensor:
    """The probability the guide draws z with (each step drawn, masked or not)."""
    return Bernoulli(logits=logits).log_prob(z).sum(-1)


def exact(objective: str, k: int = 1) -> Tensor:
    """The exact gradient of the objective's target with respect to the guide's logits."""
    logits = torch.tensor([0.3, -0.4], requires_grad=True)
    z = states(k)  # [S, K, 2]
    weight = log_q_of(z, logits).sum(-1).exp()  # probability of each joint draw
    log_w = log_w_of(z, logits)  # [S, K]
    if objective == "elbo":
        value = (weight * log_w.mean(-1)).sum()
    elif objective == "iwae":
        value = (weight * (torch.logsumexp(log_w, -1) - math.log(k))).sum()
    elif objective == "wake":  # E[sum_k w~_k grad log q(z_k)]: the weights held fixed
        w = torch.softmax(log_w.detach(), -1)
        grads = []
        for i in range(2):
            g = torch.autograd.grad(
                (weight.detach()[:, None] * w * log_q_of(z, logits)).sum(), logits
            )[0]
            grads.append(g[i])
        return torch.stack(grads)
    else:
        raise AssertionError(objective)
    return torch.autograd.grad(value, logits)[0]


def estimated(objective: object, guide: TinyGuide, copies: int = 40000) -> tuple[Tensor, Tensor]:
    """The estimator's mean gradient over ``copies`` independent draws and its standard error
    (from 20 groups)."""
    x = X.expand(copies, 3)
    bound = objective(TinyModel(), guide, x)  # type: ignore[operator]
    groups = bound.reshape(20, -1).mean(1)
    rows = []
    for i in range(20):
        g = torch.autograd.grad(groups[i], guide.logits, retain_graph=i < 19)[0]
        rows.append(g)
    g = torch.stack(rows)
    return g.mean(0), g.std(0) / math.sqrt(20)


def check(mean: Tensor, se: Tensor, target: Tensor) -> None:
    assert ((mean - target).abs() <= 4 * se + 2e-3).all(), (mean, se, target)
    assert (se < 0.05).all()  # the test has the power to see a wrong gradient


def test_reinforce_with_per_step_baselines_follows_the_elbo_gradient() -> None:
    torch.manual_seed(0)
    guide = TinyGuide(baselines=True)
    with torch.no_grad():  # a baseline far from the signal: unbiased whatever it is
        guide.baseline.bias.fill_(-3.0)
    mean, se = estimated(OBJECTIVES.build("reinforce"), guide)
    check(mean, se, exact("elbo"))


def test_nvil_follows_the_elbo_gradient_up_to_its_positive_scale() -> None:
    torch.manual_seed(1)
    objective = NVIL(baseline=None)
    objective.eval()  # fixed running statistics: mean -2, variance 0.25 (scale 1)
    objective.signal_mean.fill_(-2.0)
    objective.signal_var.fill_(0.25)
    objective.initialized.fill_(True)
    mean, se = estimated(objective, TinyGuide(baselines=False))
    check(mean, se, exact("elbo"))


@pytest.mark.parametrize("k", [2, 3])
def test_vimco_follows_the_k_particle_bound_gradient(k: int) -> None:
    torch.manual_seed(2)
    mean, se = estimated(OBJECTIVES.build("vimco", num_particles=k), TinyGuide(False), 30000)
    check(mean, se, exact("iwae", k))


def test_rws_wake_phi_follows_its_expected_update() -> None:
    torch.manual_seed(3)
    mean, se = estimated(OBJECTIVES.build("rws", num_particles=3), TinyGuide(False), 30000)
    check(mean, se, exact("wake", 3))


def test_the_learned_baseline_moves_toward_the_signal() -> None:
    torch.manual_seed(4)
    guide = TinyGuide(baselines=True)
    opt = torch.optim.SGD(guide.baseline.parameters(), lr=0.05)
    x = X.expand(4000, 3)
    lw = dgm.log_weights(TinyModel(), guide, x)
    target = lw.log_w.detach()
    errors = []
    for _ in range(60):
        lw = dgm.log_weights(TinyModel(), guide, x)
        b = lw.guide_trace["z_pres_0"].infer["baseline"]
        errors.append(((target.mean() - b) ** 2).mean().item())
        opt.zero_grad()
        (-dgm.elbo(lw).mean()).backward()
        opt.step()
    assert errors[-1] < 0.1 * errors[0]


def relaxed_elbo(logits: Tensor, temperature: float, n: int = 600) -> Tensor:
    """The relaxed ELBO E_u[log p~(x, y(u)) - log q~(y(u))] by the midpoint rule over the
    two steps' uniforms (y = sigmoid((logit + log u - log(1 - u)) / T)), with the programs'
    masks (presence > 0.5) and the relaxed presence drawing the templates."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    u0, u1 = torch.meshgrid(u, u, indexing="ij")
    noise = [torch.log(v) - torch.log1p(-v) for v in (u0, u1)]
    t = torch.tensor(temperature, dtype=torch.float64)
    logits = logits.double()
    presence = torch.ones_like(u0)
    canvas = torch.zeros(*u0.shape, 3, dtype=torch.float64)
    total = torch.zeros_like(u0)
    for step in range(2):
        y = torch.sigmoid((logits[step] + noise[step]) / t).clamp(1e-12, 1 - 1e-12)
        keep = presence > 0.5
        lq = RelaxedBernoulli(t, logits=logits[step]).log_prob(y)
        lp = RelaxedBernoulli(t, logits=torch.logit(PRIOR[step].double())).log_prob(y)
        total = total + torch.where(keep, lp - lq, 0.0)
        presence = presence * y
        canvas = canvas + presence[..., None] * TEMPLATES[step].double()
    total = total + Normal(canvas, SD).log_prob(X.double()).sum(-1)
    return total.mean()


def test_concrete_follows_the_relaxed_elbo_gradient() -> None:
    torch.manual_seed(5)
    temperature = 0.6667
    logits = torch.tensor([0.3, -0.4], dtype=torch.float64, requires_grad=True)
    target = torch.autograd.grad(relaxed_elbo(logits, temperature), logits)[0].float()
    objective = OBJECTIVES.build("concrete", temperature=temperature)
    mean, se = estimated(objective, TinyGuide(False))
    assert ((mean - target).abs() <= 4 * se + 5e-3).all(), (mean, se, target)
    # and it is not the discrete ELBO's gradient: the relaxation has its own target
    assert (target - exact("elbo")).abs().max() > 0.05
