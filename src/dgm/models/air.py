"""Attend-Infer-Repeat: a variable number of objects on a canvas, counted and located by a
recurrent inference network (Eslami et al. 2016).

Model, for steps t = 0 .. T-1 with presence p_{-1} = 1:

    z_pres_t ~ Bernoulli(rho_t)                  (kept where p_{t-1} = 1)
    p_t = p_{t-1} z_pres_t                       (once 0, always 0: the model stops)
    z_where_t ~ Normal(mu_where, sigma_where)    (scale s, shift x, y; kept where p_t = 1)
    z_what_t ~ Normal(0, I)                      (kept where p_t = 1)
    canvas += p_t * STN(sigmoid(decoder(z_what_t) + bias), z_where_t)
    x ~ Normal(canvas, 0.3)   (or Bernoulli(canvas clamped to (0, 1)))

"kept" is ``dgm.ppl.mask``: a site of a step after the model stopped is still drawn (so that
particles and batches vectorize, with no control flow on sampled values) but contributes
exactly 0 to every log-density. The guide mirrors it: an LSTM reads the image and the
previous step's latents, proposes z_pres_t and z_where_t, and z_what_t is encoded from the
window that z_where_t cuts out of the image (the inverse spatial transformer). With
``baselines=True`` the guide also runs a second LSTM on the same inputs, detached, whose
output at step t is z_pres_t's own control variate (``infer={"baseline": b_t}``, NVIL-style
per-step data-dependent baselines, fitted by the objectives to the learning signal).

The prior on the count: ``z_pres_prior=k`` gives the truncated geometric prior of Pyro's AIR
example, p(n objects) proportional to k^n for n = 0..T (k = 0.01 strongly prefers fewer
objects, which is what keeps the model from explaining every image with T of them);
``z_pres_prior_raw=True`` uses k as every step's probability instead.

The window geometry follows Pyro's example: ``z_where = (s, x, y)`` maps canvas coordinates u
in [-1, 1]^2 to window coordinates s u + (x, y), so the window covers the square of centre
-(x, y) / s and half-width 1 / s (``where_to_box``).

References:
    Eslami, Heess, Weber, Tassa, Szepesvari, Kavukcuoglu & Hinton, "Attend, Infer, Repeat:
    Fast Scene Understanding with Generative Models", NeurIPS 2016.
    Jaderberg, Simonyan, Zisserman & Kavukcuoglu, "Spatial Transformer Networks", 2015.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from ..checks import validating
from ..nn import MLP
from ..nn.spatial import WHERE, image_to_window, window_to_image
from ..ppl import Trace, mask, sample

LIKELIHOODS = ("normal", "bernoulli")


def geometric_presence(k: float, num_steps: int) -> list[float]:
    """Each step's z_pres probability under p(n) proportional to k^n, n = 0..num_steps:
    rho_t = P(n > t | n >= t) (Pyro's AIR ``make_prior``, for any number of steps)."""
    if not 0 < k <= 1:
        raise ValueError(f"z_pres_prior must be in (0, 1], got {k}")
    tail = [sum(k**m for m in range(t, num_steps + 1)) for t in range(num_steps + 1)]
    return [tail[t + 1] / tail[t] for t in range(num_steps)]


def _normal(loc: Tensor, scale: Tensor) -> Distribution:
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


def _bernoulli(logits: Tensor) -> Distribution:
    return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)


def _check_sizes(canvas_size: int, window_size: int, num_steps: int) -> None:
    if num_steps < 1:
        raise ValueError(f"AIR needs at least one step, got num_steps={num_steps}")
    if window_size < 2:
        raise ValueError(f"window_size must be at least 2 pixels, got {window_size}")
    if canvas_size < window_size:
        raise ValueError(
            f"the canvas ({canvas_size}x{canvas_size}) is smaller than the attention window "
            f"({window_size}x{window_size}); use a window at most the canvas size (e.g. "
            f"{max(2, canvas_size * 28 // 50)} for this canvas)"
        )


def _where_prior(module: nn.Module, scale: tuple[float, float], shift: tuple[float, float]) -> None:
    """The z_where prior's mean and standard deviation as buffers ``where_loc`` and
    ``where_scale`` (the model's prior; the guide's offsets and factors are relative to it)."""
    module.register_buffer("where_loc", torch.tensor([scale[0], shift[0], shift[0]]))
    module.register_buffer("where_scale", torch.tensor([scale[1], shift[1], shift[1]]))


def check_images(program: nn.Module, x: Tensor, canvas_size: int, values: bool = True) -> None:
    """Data must be flattened ``[batch, canvas_size ** 2]`` images, with ``values`` in [0, 1]
    (the guide also reads the model's simulations, whose Normal noise leaves [0, 1])."""
    size = canvas_size**2
    if x.dim() != 2 or x.shape[-1] != size:
        raise ValueError(
            f"{type(program).__name__} expects images shaped [batch, {size}] (a "
            f"{canvas_size}x{canvas_size} canvas, flattened), got {list(x.shape)}"
        )
    if not values or not validating():
        return
    lo, hi = x.aminmax()
    if lo < 0 or hi > 1:
        hint = "; divide 8-bit images by 255" if lo >= 0 and 128 < hi <= 255 else ""
        raise ValueError(
            f"{type(program).__name__} models images in [0, 1], but the batch has values in "
            f"[{lo.item():.3g}, {hi.item():.3g}]{hint}"
        )


class AIRModel(nn.Module):
    """p(x, z) of Attend-Infer-Repeat: up to ``num_steps`` objects drawn onto a canvas.

    Sites, per step t: ``z_pres_{t}`` ``[..., 1]``, ``z_where_{t}`` ``[..., 3]``,
    ``z_what_{t}`` ``[..., z_what_size]``; then ``x`` ``[..., canvas_size ** 2]``.

    Args:
        canvas_size: the square canvas's side in pixels.
        window_size: the side of the decoder's output window.
        num_steps: T, the most objects an image can hold.
        z_what_size: the dimension of each object's appearance code.
        decoder_hidden: hidden widths of the decoder z_what -> window.
        z_pres_prior: k of the count prior (see the module's docstring).
        z_pres_prior_raw: use k as every step's z_pres probability.
        scale_prior: mean and standard deviation of the window scale s.
        shift_prior: mean and standard deviation of the window shifts x, y.
        likelihood: ``"normal"`` (standard deviation ``likelihood_std``) or ``"bernoulli"``.
        decoder_bias: added to the decoder's output before the sigmoid (-2 starts windows
            nearly empty, as the anchors found necessary).
        activation: of the decoder's hidden layers.
    """

    def __init__(
        self,
        canvas_size: int = 50,
        window_size: int = 28,
        num_steps: int = 3,
        z_what_size: int = 50,
        decoder_hidden: Sequence[int] = (200,),
        z_pres_prior: float = 0.01,
        z_pres_prior_raw: bool = False,
        scale_prior: tuple[float, float] = (3.0, 0.2),
        shift_prior: tuple[float, float] = (0.0, 1.0),
        likelihood: str = "normal",
        likelihood_std: float = 0.3,
        decoder_bias: float = -2.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _check_sizes(canvas_size, window_size, num_steps)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not likelihood_std > 0:
            raise ValueError(f"likelihood_std must be > 0, got {likelihood_std}")
        if not (scale_prior[1] > 0 and shift_prior[1] > 0):
            raise ValueError("the standard deviations of scale_prior and shift_prior must be > 0")
        self.canvas_size, self.window_size, self.num_steps = canvas_size, window_size, num_steps
        self.z_what_size = z_what_size
        self.likelihood, self.likelihood_std = likelihood, likelihood_std
        self.decoder_bias = decoder_bias
        if z_pres_prior_raw:
            if not 0 < z_pres_prior < 1:
                raise ValueError(f"z_pres_prior must be in (0, 1), got {z_pres_prior}")
            rho = [z_pres_prior] * num_steps
        else:
            rho = geometric_presence(z_pres_prior, num_steps)
        self.register_buffer("pres_logits", torch.logit(torch.tensor(rho).clamp(1e-12, 1 - 1e-7)))
        _where_prior(self, scale_prior, shift_prior)
        self.decoder = MLP((z_what_size, *decoder_hidden, window_size**2), activation)

    pres_logits: Tensor
    where_loc: Tensor
    where_scale: Tensor

    def decode(self, z_what: Tensor) -> Tensor:
        """The window ``[..., w, w]`` in [0, 1] that ``z_what`` draws."""
        out = torch.sigmoid(self.decoder(z_what) + self.decoder_bias)
        return out.reshape(*z_what.shape[:-1], self.window_size, self.window_size)

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> Tensor:
        """Score images ``x`` (``[B, canvas_size ** 2]``) or, with ``x=None``, generate
        ``num_samples``; returns the canvas (pixel means), ``[..., canvas_size ** 2]``."""
        if x is not None:
            check_images(self, x, self.canvas_size)
            batch = x.shape[:-1]
        else:
            batch = torch.Size((num_samples,))
        ref = self.where_loc
        presence = ref.new_ones(batch)
        canvas = ref.new_zeros(*batch, self.canvas_size, self.canvas_size)
        for t in range(self.num_steps):
            lead = presence.shape
            with mask(presence > 0.5):
                z_pres = sample(f"z_pres_{t}", _bernoulli(self.pres_logits[t].expand(*lead, 1)))
            presence = presence * z_pres[..., 0]
            lead = presence.shape
            with mask(presence > 0.5):
                loc, scale = (
                    self.where_loc.expand(*lead, WHERE),
                    self.where_scale.expand(*lead, WHERE),
                )
                z_where = sample(f"z_where_{t}", _normal(loc, scale))
                zeros = ref.new_zeros(*lead, self.z_what_size)
                z_what = sample(f"z_what_{t}", _normal(zeros, torch.ones_like(zeros)))
            drawn = window_to_image(self.decode(z_what), z_where, self.canvas_size)
            canvas = canvas + presence[..., None, None] * drawn
        means = canvas.flatten(-2)
        if self.likelihood == "normal":
            fn = _normal(means, torch.full_like(means, self.likelihood_std))
        else:
            p = means.clamp(1e-4, 1 - 1e-4)
            fn = _bernoulli(torch.log(p) - torch.log1p(-p))
        sample("x", fn, obs=x)
        return means


class AIRGuide(nn.Module):
    """q(z | x) of Attend-Infer-Repeat: an LSTM over the image and the previous latents.

    At step t the LSTM reads [embed(x), z_where_{t-1}, z_what_{t-1}, z_pres_{t-1}] and a
    network of its state proposes z_pres_t's probability and z_where_t (as offsets and
    factors of the prior's mean and standard deviation, Pyro's parameterization); z_what_t is
    encoded from the window at z_where_t. Every site of a step after the guide stopped is
    masked, as in the model. Sites are drawn with any leading particle dimension: one call
    runs K x B.

    Args:
        canvas_size, window_size, num_steps, z_what_size, scale_prior, shift_prior: as the
            model's.
        rnn_hidden: the LSTM's state size.
        encoder_hidden: hidden widths of the window encoder.
        predict_hidden: hidden widths of the network from the LSTM state to z_pres, z_where.
        embed_hidden: an MLP embedding of the image before the LSTM (empty: the raw pixels).
        baselines: compute each z_pres site's control variate with a second, detached LSTM
            (its modules are named ``baseline_*``, for their own learning rate).
        baseline_hidden: that LSTM's state size.
        activation: of the hidden layers.
    """

    def __init__(
        self,
        canvas_size: int = 50,
        window_size: int = 28,
        num_steps: int = 3,
        z_what_size: int = 50,
        rnn_hidden: int = 256,
        encoder_hidden: Sequence[int] = (200,),
        predict_hidden: Sequence[int] = (200,),
        embed_hidden: Sequence[int] = (),
        scale_prior: tuple[float, float] = (3.0, 0.2),
        shift_prior: tuple[float, float] = (0.0, 1.0),
        baselines: bool = True,
        baseline_hidden: int = 256,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _check_sizes(canvas_size, window_size, num_steps)
        self.canvas_size, self.window_size, self.num_steps = canvas_size, window_size, num_steps
        self.z_what_size = z_what_size
        pixels = canvas_size**2
        embedded = embed_hidden[-1] if embed_hidden else pixels
        self.embed: nn.Module = (
            MLP((pixels, *embed_hidden), activation) if embed_hidden else nn.Identity()
        )
        latents = WHERE + z_what_size + 1
        self.rnn = ImageLSTM(embedded, latents, rnn_hidden)
        self.predict = MLP((rnn_hidden, *predict_hidden, 1 + 2 * WHERE), activation)
        self.encoder = MLP((window_size**2, *encoder_hidden, 2 * z_what_size), activation)
        _where_prior(self, scale_prior, shift_prior)
        self.baselines = baselines
        if baselines:
            self.baseline_embed: nn.Module = (
                MLP((pixels, *embed_hidden), activation) if embed_hidden else nn.Identity()
            )
            self.baseline_rnn = ImageLSTM(embedded, latents, baseline_hidden)
            self.baseline_head = MLP((baseline_hidden, *predict_hidden, 1), activation)

    where_loc: Tensor
    where_scale: Tensor

    def forward(self, x: Tensor | None = None, num_samples: int = 1) -> None:
        if x is None:
            raise ValueError("the guide q(z | x) needs images x")
        check_images(self, x, self.canvas_size, values=False)
        images = x.reshape(*x.shape[:-1], self.canvas_size, self.canvas_size)
        image = self.rnn.project(self.embed(x))  # once per image, not per step and particle
        ref = self.where_loc
        batch = x.shape[:-1]
        h = c = ref.new_zeros(*batch, self.rnn.hidden_size)
        z_where = ref.new_zeros(*batch, WHERE)
        z_what = ref.new_zeros(*batch, self.z_what_size)
        presence = ref.new_ones(batch)
        if self.baselines:
            bl_image = self.baseline_rnn.project(self.baseline_embed(x))
            bh = bc = ref.new_zeros(*batch, self.baseline_rnn.hidden_size)
        for t in range(self.num_steps):
            inputs = torch.cat([z_where, z_what, presence[..., None]], -1)
            h, c = self.rnn(image, inputs, h, c)
            out = self.predict(h)
            pres_logit = out[..., 0:1]
            where_loc = out[..., 1 : 1 + WHERE] + self.where_loc
            where_scale = F.softplus(out[..., 1 + WHERE :]) * self.where_scale
            infer = {}
            if self.baselines:
                bh, bc = self.baseline_rnn(bl_image, inputs.detach(), bh, bc)
                infer = {"baseline": self.baseline_head(bh)[..., 0]}
            with mask(presence > 0.5):
                z_pres = sample(f"z_pres_{t}", _bernoulli(pres_logit), infer=infer)
            presence = presence * z_pres[..., 0]
            with mask(presence > 0.5):
                z_where = sample(f"z_where_{t}", _normal(where_loc, where_scale))
                window = image_to_window(images, z_where, self.window_size)
                code = self.encoder(window.flatten(-2))
                what_loc, what_scale = code.chunk(2, -1)
                z_what = sample(f"z_what_{t}", _normal(what_loc, F.softplus(what_scale) + 1e-4))


class ImageLSTM(nn.Module):
    """An LSTM cell whose input is [image, latents], with the image's share of the gates
    computed once per image (``project``) instead of at every step and for every particle.

    The same function as ``nn.LSTMCell(image_size + latent_size, hidden_size)`` on the
    concatenated input (tested); the image rows broadcast against the latents' leading
    (particle) dimensions.
    """

    def __init__(self, image_size: int, latent_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.image = nn.Linear(image_size, 4 * hidden_size)
        self.cell = nn.LSTMCell(latent_size, hidden_size)

    def project(self, image: Tensor) -> Tensor:
        """The image's share of the gates, ``[..., 4 * hidden_size]``."""
        return self.image(image)

    def forward(
        self, image: Tensor, latents: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One step from the projected image, this step's latents and the state (h, c)."""
        cell = self.cell
        gates = (
            image
            + F.linear(latents, cell.weight_ih, cell.bias_ih)
            + F.linear(h, cell.weight_hh, cell.bias_hh)
        )
        i, f, g, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


@dataclass
class Steps:
    """What a trace of the guide (or the model) says about each step.

    Attributes:
        presence: ``[..., T]`` 1 where step t placed an object (before the first 0).
        z_where: ``[..., T, 3]`` every step's window (meaningful where present).
        count: ``[...]`` the number of objects (the sum of ``presence``).
    """

    presence: Tensor
    z_where: Tensor

    @property
    def count(self) -> Tensor:
        return self.presence.sum(-1)


def read_steps(trace: Trace, num_steps: int) -> Steps:
    """The presence and windows of every step from a trace of an AIR program."""
    pres = torch.cat([trace[f"z_pres_{t}"].value for t in range(num_steps)], -1)  # type: ignore[misc]
    presence = torch.cumprod((pres > 0.5).to(pres.dtype), -1)
    wheres = [trace[f"z_where_{t}"].value for t in range(num_steps)]
    lead = torch.broadcast_shapes(presence.shape[:-1], *(w.shape[:-1] for w in wheres))  # type: ignore[union-attr]
    z_where = torch.stack([w.expand(*lead, WHERE) for w in wheres], -2)  # type: ignore[union-attr]
    return Steps(presence.expand(*lead, num_steps), z_where)


def air(
    canvas_size: int = 50, window_size: int = 28, num_steps: int = 3, z_what_size: int = 50
) -> tuple[AIRModel, AIRGuide]:
    """An AIR model and its guide with Pyro's example's sizes by default."""
    return (
        AIRModel(canvas_size, window_size, num_steps, z_what_size),
        AIRGuide(canvas_size, window_size, num_steps, z_what_size),
    )


__all__ = [
    "LIKELIHOODS",
    "AIRGuide",
    "AIRModel",
    "Steps",
    "air",
    "geometric_presence",
    "read_steps",
]
