"""Adversarial objectives: losses of a discriminator's scores, penalties, unrolled critics.

A GAN's two players minimize two losses. Every loss here is a pure function of the
discriminator's raw scores (logits for the minimax family, real-valued critics otherwise)
with one signature, ``loss(real, fake) -> scalar``: ``real`` the scores of data, ``fake``
those of generated samples; generator losses ignore ``real`` (it may be ``None``). The
critic losses (``CRITIC_LOSSES``) and generator losses (``GENERATOR_LOSSES``) are separate
tables, and each generator loss says which critic losses it is derived with (capability
``critics``): pairing, say, a least-squares critic with the non-saturating generator loss
optimizes no single game, and the configuration refuses it.

Penalties act on the critic as a function of its input: ``gradient_penalty`` (WGAN-GP) on
interpolates between real and generated points, ``r1_penalty`` on real points. Both
differentiate the critic's input gradient again (double backward): critics must not use
in-place operations on tensors autograd keeps, nor BatchNorm (its per-sample gradients
depend on the batch).

``unrolled_generator_loss`` is the generator's loss against a critic advanced ``k`` gradient
steps on the current batch, differentiated through those steps (Metz et al. 2017).

References:
    Goodfellow et al., "Generative Adversarial Nets", 2014 (minimax and non-saturating).
    Mao et al., "Least Squares Generative Adversarial Networks", 2017 (a=0, b=c=1).
    Lim & Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for Generative
    Adversarial Networks", 2018 (hinge).
    Arjovsky et al., "Wasserstein GAN", 2017; Gulrajani et al., "Improved Training of
    Wasserstein GANs", 2017 (gradient penalty, lambda = 10).
    Mescheder et al., "Which Training Methods for GANs do actually Converge?", 2018 (R1).
    Metz et al., "Unrolled Generative Adversarial Networks", 2017.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..registry import Registry

AdversarialLoss = Callable[[Tensor | None, Tensor], Tensor]


def minimax_critic(real: Tensor | None, fake: Tensor) -> Tensor:
    """``-E log D(x) - E log(1 - D(G(z)))`` with ``D = sigmoid(score)``: binary cross-entropy."""
    assert real is not None, "a critic loss needs the scores of real data"
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_generator(real: Tensor | None, fake: Tensor) -> Tensor:
    """``E log(1 - D(G(z)))``: the original (saturating) generator loss."""
    return -F.softplus(fake).mean()


def non_saturating_generator(real: Tensor | None, fake: Tensor) -> Tensor:
    """``-E log D(G(z))``: the same fixed point, strong gradients while D wins."""
    return F.softplus(-fake).mean()


def least_squares_critic(real: Tensor | None, fake: Tensor) -> Tensor:
    """``E (D(x) - 1)^2 / 2 + E D(G(z))^2 / 2`` (LSGAN with a = 0, b = 1)."""
    assert real is not None, "a critic loss needs the scores of real data"
    return 0.5 * (real - 1).pow(2).mean() + 0.5 * fake.pow(2).mean()


def least_squares_generator(real: Tensor | None, fake: Tensor) -> Tensor:
    """``E (D(G(z)) - 1)^2 / 2`` (LSGAN with c = 1)."""
    return 0.5 * (fake - 1).pow(2).mean()


def hinge_critic(real: Tensor | None, fake: Tensor) -> Tensor:
    """``E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))``."""
    assert real is not None, "a critic loss needs the scores of real data"
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def wasserstein_critic(real: Tensor | None, fake: Tensor) -> Tensor:
    """``E D(G(z)) - E D(x)``: the Kantorovich-Rubinstein dual, for a Lipschitz critic."""
    assert real is not None, "a critic loss needs the scores of real data"
    return fake.mean() - real.mean()


def wasserstein_generator(real: Tensor | None, fake: Tensor) -> Tensor:
    """``-E D(G(z))`` (also the generator loss of the hinge game)."""
    return -fake.mean()


CRITIC_LOSSES: Registry[AdversarialLoss] = Registry("critic loss")
CRITIC_LOSSES.add(
    "minimax",
    lambda: minimax_critic,
    "binary cross-entropy (Goodfellow et al. 2014)",
    lipschitz=False,
)
CRITIC_LOSSES.add(
    "least_squares", lambda: least_squares_critic, "LSGAN (Mao et al. 2017)", lipschitz=False
)
CRITIC_LOSSES.add(
    "hinge", lambda: hinge_critic, "hinge (Lim & Ye 2017; Miyato et al. 2018)", lipschitz=False
)
CRITIC_LOSSES.add(
    "wasserstein",
    lambda: wasserstein_critic,
    "Wasserstein dual (Arjovsky et al. 2017): needs a gradient penalty or spectral norm",
    lipschitz=True,
)

GENERATOR_LOSSES: Registry[AdversarialLoss] = Registry("generator loss")
GENERATOR_LOSSES.add(
    "minimax",
    lambda: minimax_generator,
    "E log(1 - D(G(z))), the original saturating loss",
    critics=("minimax",),
)
GENERATOR_LOSSES.add(
    "non_saturating",
    lambda: non_saturating_generator,
    "-E log D(G(z)) (Goodfellow et al. 2014, section 3)",
    critics=("minimax",),
)
GENERATOR_LOSSES.add(
    "least_squares", lambda: least_squares_generator, "LSGAN", critics=("least_squares",)
)
GENERATOR_LOSSES.add(
    "wasserstein",
    lambda: wasserstein_generator,
    "-E D(G(z)), for the Wasserstein and hinge critics",
    critics=("wasserstein", "hinge"),
)


def check_pair(critic_loss: str, generator_loss: str) -> None:
    """Raise ``ValueError`` unless the generator loss belongs to the critic loss's game."""
    partners = GENERATOR_LOSSES[generator_loss].critics
    CRITIC_LOSSES[critic_loss]  # an unknown name raises here, with the valid ones
    if critic_loss not in partners:
        fitting = [g for g in GENERATOR_LOSSES if critic_loss in GENERATOR_LOSSES[g].critics]
        raise ValueError(
            f"generator_loss {generator_loss!r} is derived for the critic losses "
            f"{', '.join(partners)}, not {critic_loss!r}: with critic_loss {critic_loss!r} use "
            f"generator_loss {' or '.join(repr(g) for g in fitting)}"
        )


def _groups(x: Tensor, pack: int) -> int:
    if x.shape[0] % pack:
        raise ValueError(
            f"a batch of {x.shape[0]} points cannot be packed in groups of {pack}: make the "
            "batch size a multiple of the pack"
        )
    return x.shape[0] // pack


def _input_gradient(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``d sum(critic(x)) / dx``, kept in the graph (for a penalty's backward)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    pack: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP's penalty ``E (||grad_x D(x_hat)||_2 - 1)^2`` at ``x_hat = e x + (1 - e) x~``.

    One ``e ~ U[0, 1]`` per critic input: with packing (``pack`` > 1) the critic scores
    groups of ``pack`` consecutive points, so a group is interpolated with one ``e`` and its
    gradient norm is taken over the whole packed input, the quantity the critic must keep
    Lipschitz. The weight (lambda, 10 in the paper) is applied by the caller.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {list(real.shape)} and fake {list(fake.shape)} differ in shape")
    groups = _groups(real, pack)
    e = torch.rand(groups, generator=generator, device=real.device, dtype=real.dtype)
    e = e.repeat_interleave(pack).reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = e * real.detach() + (1 - e) * fake.detach()
    grad = _input_gradient(critic, x_hat).reshape(groups, -1)
    return (grad.norm(dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, pack: int = 1) -> Tensor:
    """``E ||grad_x D(x)||^2`` on real data (R1); the caller weights it by ``gamma / 2``.

    With packing, the squared norm is over each packed input.
    """
    groups = _groups(real, pack)
    return _input_gradient(critic, real).reshape(groups, -1).pow(2).sum(1).mean()


def unrolled_generator_loss(
    critic: nn.Module,
    critic_loss: AdversarialLoss,
    generator_loss: AdversarialLoss,
    real: Tensor,
    fake: Tensor,
    steps: int,
    lr: float,
    optimizer: torch.optim.Optimizer | None = None,
) -> Tensor:
    """The generator's loss against the critic after ``steps`` updates on this batch.

    The critic's parameters ``theta_0`` (the module's own, not changed here) are advanced
    ``steps`` times on ``real`` and ``fake`` (one forward of both, as the critic's own
    update does) in a functional copy, with the graph kept; the loss
    ``generator_loss(D_{theta_K}(fake))`` is then differentiated through the unrolled
    updates, so the generator sees how the critic would answer its move. ``steps=0`` is the
    plain generator loss.

    The updates are those of ``optimizer`` when it is the critic's ``torch.optim.Adam``, as
    in Metz et al.: Adam steps from its current moments and step count, with its betas,
    epsilon and learning rate (``lr`` is then unused); otherwise plain SGD steps
    ``theta - lr * grad``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    params: dict[str, Tensor] = dict(critic.named_parameters())
    buffers = dict(critic.named_buffers())
    names = [k for k, p in params.items() if p.requires_grad]
    adam = (
        _AdamState(optimizer, [params[k] for k in names])
        if isinstance(optimizer, torch.optim.Adam)
        else None
    )
    n = len(real)
    for _ in range(steps):
        scores = functional_call(critic, {**params, **buffers}, (torch.cat([real, fake]),))
        loss = critic_loss(*split_scores(scores, n, len(fake)))
        grads = torch.autograd.grad(loss, [params[k] for k in names], create_graph=True)
        moves = adam.moves(list(grads)) if adam is not None else [lr * g for g in grads]
        params = {**params, **{k: params[k] - d for k, d in zip(names, moves, strict=True)}}
    fake_scores = functional_call(critic, {**params, **buffers}, (fake,))
    return generator_loss(None, fake_scores)


class _AdamState:
    """Differentiable Adam updates that start from an optimizer's moments (not changed)."""

    def __init__(self, optimizer: torch.optim.Adam, params: list[Tensor]) -> None:
        group = optimizer.param_groups[0]
        if len(optimizer.param_groups) > 1 or group.get("amsgrad") or group.get("weight_decay"):
            raise ValueError(
                "unrolling supports one Adam parameter group, no amsgrad or weight decay"
            )
        self.lr, (self.b1, self.b2), self.eps = group["lr"], group["betas"], group["eps"]
        self.m, self.v, self.t = [], [], []
        for p in params:
            state = optimizer.state.get(p, {})
            self.m.append(state["exp_avg"].detach() if state else torch.zeros_like(p))
            self.v.append(state["exp_avg_sq"].detach() if state else torch.zeros_like(p))
            self.t.append(float(state["step"]) if state else 0.0)

    def moves(self, grads: list[Tensor]) -> list[Tensor]:
        out = []
        for i, g in enumerate(grads):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            self.t[i] += 1
            m_hat = self.m[i] / (1 - self.b1 ** self.t[i])
            v_hat = self.v[i] / (1 - self.b2 ** self.t[i])
            # + 1e-30: sqrt's derivative at an exactly zero moment is infinite (0 * inf = nan)
            out.append(self.lr * m_hat / ((v_hat + 1e-30).sqrt() + self.eps))
        return out


def split_scores(scores: Tensor, real: int, fake: int) -> tuple[Tensor, Tensor]:
    """Split the scores of ``critic(cat([real, fake]))`` (``real`` and ``fake`` points) into
    those of data and of generated points; with packing one score covers ``pack``
    consecutive points of one kind, so the split is at ``real / pack``."""
    per = (real + fake) // scores.shape[0]  # points per score: the pack
    return scores[: real // per], scores[real // per :]


__all__ = [
    "CRITIC_LOSSES",
    "GENERATOR_LOSSES",
    "AdversarialLoss",
    "check_pair",
    "gradient_penalty",
    "hinge_critic",
    "least_squares_critic",
    "least_squares_generator",
    "minimax_critic",
    "minimax_generator",
    "non_saturating_generator",
    "r1_penalty",
    "split_scores",
    "unrolled_generator_loss",
    "wasserstein_critic",
    "wasserstein_generator",
]
