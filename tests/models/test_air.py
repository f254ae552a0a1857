"""Attend-Infer-Repeat: the spatial transformer, boxes, masking against a hand sum, and one
guide call for K x B."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

import dgm
from dgm.metrics import box_iou, count_report
from dgm.models.air import AIRGuide, AIRModel, geometric_presence, read_steps
from dgm.nn.spatial import image_to_window, where_inverse, where_to_box, window_to_image
from dgm.ppl import condition, replay, trace


def aligned_where(canvas: int, window: int, row: int, col: int) -> torch.Tensor:
    """The z_where that puts a window of ``window`` pixels exactly on canvas pixels
    [row, row + window) x [col, col + window)."""
    s = canvas / window
    cx = (2 * col + window) / canvas - 1  # the box's centre in [-1, 1]
    cy = (2 * row + window) / canvas - 1
    return torch.tensor([s, -cx * s, -cy * s])


def test_a_window_written_on_pixel_boundaries_lands_on_its_box_and_reads_back_exactly() -> None:
    canvas, window = 32, 8
    content = torch.rand(window, window)
    z_where = aligned_where(canvas, window, row=5, col=17)
    image = window_to_image(content, z_where, canvas)
    assert torch.allclose(image[5:13, 17:25], content, atol=1e-5)
    outside = image.clone()
    outside[5:13, 17:25] = 0
    assert outside.abs().max() < 1e-6
    assert torch.allclose(where_to_box(z_where, canvas), torch.tensor([17.0, 5.0, 25.0, 13.0]))
    assert torch.allclose(image_to_window(image, z_where, window), content, atol=1e-5)


def test_reading_back_a_smooth_window_at_any_position_recovers_it() -> None:
    canvas, window = 40, 16
    u = torch.linspace(-1, 1, window)
    content = torch.exp(-4 * (u[:, None] ** 2 + u[None] ** 2))  # a smooth blob
    z_where = torch.tensor([[2.3, 0.7, -0.4], [3.1, -1.2, 0.9]])  # off the pixel grid
    images = window_to_image(content, z_where, canvas)
    back = image_to_window(images, z_where, window)
    assert (back - content).abs().max() < 0.08  # two bilinear resamplings
    # the inverse of the inverse is the map itself
    assert torch.allclose(where_inverse(where_inverse(z_where)), z_where)


def test_the_box_from_z_where_bounds_the_drawn_pixels() -> None:
    canvas, window = 50, 20
    z_where = torch.tensor([[2.7, 0.5, -1.1], [3.3, -1.6, 1.4], [2.2, 0.0, 0.0]])
    drawn = window_to_image(torch.ones(window, window), z_where, canvas)
    boxes = where_to_box(z_where, canvas)
    for image, box in zip(drawn, boxes, strict=True):
        rows, cols = torch.nonzero(image > 1e-6, as_tuple=True)
        found = torch.tensor(
            [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float
        )
        assert (found - box).abs().max() <= 1.0  # bilinear edges spill into one more pixel
        # the pixels drawn at full intensity have their centres inside the box, and every
        # pixel centre more than one window pixel inside it is drawn at full intensity
        r, c = torch.nonzero(image > 1 - 1e-6, as_tuple=True)
        assert c.min() + 0.5 >= box[0] and c.max() + 0.5 <= box[2]
        assert r.min() + 0.5 >= box[1] and r.max() + 0.5 <= box[3]
        inner = (box[2] - box[0]) / window  # one window pixel, in canvas pixels
        centres = torch.arange(canvas) + 0.5
        rows_in = (centres > box[1] + inner) & (centres < box[3] - inner)
        cols_in = (centres > box[0] + inner) & (centres < box[2] - inner)
        assert (image[rows_in][:, cols_in] > 1 - 1e-5).all()


def test_box_iou_and_count_report() -> None:
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    assert box_iou(a, a).item() == pytest.approx(1.0)
    assert box_iou(a, torch.tensor([1.0, 0.0, 3.0, 2.0])).item() == pytest.approx(1 / 3)
    assert box_iou(a, torch.tensor([5.0, 5.0, 6.0, 6.0])).item() == 0.0
    counts, true = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1])
    boxes = torch.tensor([[[9.0] * 4] * 2, [a.tolist(), [0.0] * 4], [[4.0, 4, 6, 6], a.tolist()]])
    boxes = torch.cat([boxes, boxes[1:2]])
    true_boxes = torch.tensor([[[0.0] * 4] * 2, [a.tolist()] * 2, [a.tolist(), [4.0, 4, 6, 6]]])
    true_boxes = torch.cat([true_boxes, true_boxes[1:2]])
    r = count_report(counts, true, boxes, true_boxes, max_count=3)
    assert r.accuracy == 0.75
    assert r.confusion.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]]
    assert r.box_iou == pytest.approx(1.0)  # the two-object image matched across steps
    assert r.centre_error == pytest.approx(0.0)
    shifted = true_boxes.clone()
    shifted[..., [0, 2]] += 1.0  # every true box 1 pixel to the right
    r = count_report(counts, true, boxes, shifted)
    assert r.centre_error == pytest.approx(1.0) and r.box_iou == pytest.approx(1 / 3)


def test_the_geometric_count_prior_is_proportional_to_k_to_the_n() -> None:
    k, steps = 0.01, 3
    rho = geometric_presence(k, steps)
    probs, alive = [], 1.0
    for t in range(steps):
        probs.append(alive * (1 - rho[t]))
        alive *= rho[t]
    probs.append(alive)
    total = sum(k**n for n in range(steps + 1))
    assert probs == pytest.approx([k**n / total for n in range(steps + 1)], rel=1e-9)


def small(baselines: bool = True) -> tuple[AIRModel, AIRGuide]:
    kw = {"canvas_size": 12, "window_size": 6, "num_steps": 3, "z_what_size": 4}
    return (
        AIRModel(**kw, decoder_hidden=(8,)),
        AIRGuide(
            **kw,
            rnn_hidden=8,
            encoder_hidden=(8,),
            predict_hidden=(8,),
            baselines=baselines,
            baseline_hidden=8,
        ),
    )


def test_steps_after_the_first_absent_object_contribute_no_log_density() -> None:
    torch.manual_seed(1)
    model, guide = small()
    x = torch.rand(2, 144) * 0.5
    pres = {
        "z_pres_0": torch.ones(2, 1),
        "z_pres_1": torch.zeros(2, 1),
        "z_pres_2": torch.ones(2, 1),  # after the stop: drawn, but it must not count
    }
    with trace() as q, condition(pres):
        guide(x)
    dead = ["z_where_1", "z_what_1", "z_pres_2", "z_where_2", "z_what_2"]
    for name in dead:
        assert torch.equal(q[name].log_prob, torch.zeros(2)), name
    with trace() as p, replay(q):
        model(x)
    for name in dead:
        assert torch.equal(p[name].log_prob, torch.zeros(2)), name
    # the model's density by hand: one object, drawn from z_what_0 at z_where_0
    rho = geometric_presence(0.01, 3)
    z_where, z_what = q["z_where_0"].value, q["z_what_0"].value
    canvas = window_to_image(model.decode(z_what), z_where, 12).flatten(-2)
    hand = (
        Bernoulli(probs=torch.tensor(rho[0])).log_prob(torch.tensor(1.0))
        + Bernoulli(probs=torch.tensor(rho[1])).log_prob(torch.tensor(0.0))
        + Normal(torch.tensor([3.0, 0, 0]), torch.tensor([0.2, 1, 1])).log_prob(z_where).sum(-1)
        + Normal(0.0, 1.0).log_prob(z_what).sum(-1)
        + Normal(canvas, 0.3).log_prob(x).sum(-1)
    )
    assert torch.allclose(p.log_prob_sum(), hand, atol=1e-4)
    steps = read_steps(q, 3)
    assert steps.count.tolist() == [1.0, 1.0]
    assert steps.presence.tolist() == [[1.0, 0.0, 0.0]] * 2


def test_one_guide_call_draws_all_particles_and_each_particle_scores_as_if_alone() -> None:
    torch.manual_seed(2)
    model, guide = small()
    calls = []
    guide.register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(5, 144) * 0.8
    lw = dgm.log_weights(model, guide, x, num_particles=4)
    assert calls == [1] and lw.log_w.shape == (4, 5)
    for name in ("z_pres_0", "z_where_1", "z_what_2"):
        assert lw.guide_trace[name].value.shape[:2] == (4, 5)
    for k in range(4):
        values = {s.name: s.value[k] for s in lw.guide_trace.latent}
        with trace() as q, condition(values):
            guide(x)
        with trace() as p, replay(q):
            model(x)
        assert torch.allclose(q.log_prob_sum(), lw.log_q[k], atol=1e-4)
        assert torch.allclose(p.log_prob_sum(), lw.log_p[k], atol=1e-3)


def test_the_guide_gives_every_z_pres_site_its_baseline_and_the_objective_fits_it() -> None:
    torch.manual_seed(3)
    model, guide = small()
    x = torch.rand(6, 144) * 0.5
    lw = dgm.log_weights(model, guide, x)
    for t in range(3):
        b = lw.guide_trace[f"z_pres_{t}"].infer["baseline"]
        assert b.requires_grad and b.shape[-1] == 6
    dgm.elbo(lw).mean().backward()
    grads = [p.grad for n, p in guide.named_parameters() if n.startswith("baseline")]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    _, plain = small(baselines=False)
    assert not any(n.startswith("baseline") for n, _ in plain.named_parameters())


def test_samples_from_the_model_have_counts_and_canvases() -> None:
    model, _ = small()
    with trace() as p:
        means = model(num_samples=7)
    assert means.shape == (7, 144) and p["x"].value.shape == (7, 144)
    steps = read_steps(p, 3)
    assert steps.presence.shape == (7, 3) and set(steps.count.tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_bad_sizes_and_images_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="smaller than the attention window"):
        AIRModel(canvas_size=10, window_size=12)
    with pytest.raises(ValueError, match="at least one step"):
        AIRGuide(num_steps=0)
    model, guide = small()
    with pytest.raises(ValueError, match=r"values in \[2, 2\]$"):
        model(torch.full((2, 144), 2.0))
    guide(torch.full((2, 144), 2.0))  # the guide also reads simulations, which leave [0, 1]
    with pytest.raises(ValueError, match="divide 8-bit images by 255"):
        model(torch.full((2, 144), 255.0))
    with pytest.raises(ValueError, match=r"\[batch, 144\]"):
        guide(torch.rand(2, 12, 12))
    assert math.isfinite(dgm.elbo(dgm.log_weights(model, guide, torch.rand(2, 144))).sum().item())
