"""The handlers for the next families: scale, mask, block, and the per-site ``infer`` dict."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, Uniform

import dgm
from dgm.ppl import Handler, Site, block, condition, mask, particles, replay, runtime, scale, trace

LOG_2PI = math.log(2 * math.pi)


def normal_lp(v: torch.Tensor, loc: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(v; loc, 1), written out."""
    return -0.5 * (v - loc) ** 2 - 0.5 * LOG_2PI


def program(x: torch.Tensor) -> torch.Tensor:
    """z ~ N(0, 1), x | z ~ N(z, 1) per data point."""
    z = dgm.sample("z", Normal(torch.zeros_like(x), 1.0))
    return dgm.sample("x", Normal(z, 1.0), obs=x)


X = torch.tensor([0.5, -1.0, 2.0])


# scale


def test_scale_multiplies_the_chosen_sites_log_density() -> None:
    with trace() as tr, scale(0.25, sites={"z"}):
        program(X)
    z = tr["z"].value
    torch.testing.assert_close(tr["z"].log_prob, 0.25 * normal_lp(z))
    torch.testing.assert_close(tr["z"].unscaled_log_prob, normal_lp(z))
    torch.testing.assert_close(tr["x"].log_prob, normal_lp(X, z))  # not chosen: unscaled
    torch.testing.assert_close(tr.log_prob_sum(), 0.25 * normal_lp(z) + normal_lp(X, z))
    with trace() as tr:
        program(X)
    assert tr["z"].scale is None  # outside the handler nothing is scaled


def test_scale_by_a_per_particle_tensor_broadcasts_to_the_log_prob_shape() -> None:
    factor = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # [K=2, B=3]
    with trace() as tr, particles(2), scale(factor):
        z = dgm.sample("z", Independent(Normal(torch.zeros(3, 2), 1.0), 1))
    assert z.shape == (2, 3, 2) and tr["z"].log_prob.shape == (2, 3)
    torch.testing.assert_close(tr["z"].log_prob, factor * normal_lp(z).sum(-1))


def test_nested_scales_multiply() -> None:
    per_point = torch.tensor([1.0, 0.5, 2.0])  # [B]
    with trace() as tr, scale(2.0), scale(3.0, sites=["z"]), scale(per_point, sites=["x"]):
        program(X)
    z = tr["z"].value
    torch.testing.assert_close(tr["z"].log_prob, 6.0 * normal_lp(z))
    torch.testing.assert_close(tr["x"].log_prob, 2.0 * per_point * normal_lp(X, z))


def test_scale_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="factor must be a number or a tensor"):
        scale("2")  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"sites is a collection of site names; write sites=\['z'\]"
    ):
        scale(2.0, sites="z")


# mask


def test_mask_zeroes_the_chosen_sites_log_density_where_false() -> None:
    m = torch.tensor([True, False, True])
    with trace() as tr, mask(m, sites=["z"]):
        program(X)
    z = tr["z"].value
    lp = tr["z"].log_prob
    assert lp[1].item() == 0.0
    torch.testing.assert_close(lp, torch.where(m, normal_lp(z), 0.0))
    torch.testing.assert_close(tr["x"].log_prob, normal_lp(X, z))  # not chosen: kept
    assert tr["z"].value.shape == (3,)  # the site is still drawn everywhere


def test_masked_minus_infinity_and_nan_leak_into_neither_values_nor_gradients() -> None:
    high = torch.full((3,), 2.0, requires_grad=True)
    factor = torch.ones(3, requires_grad=True)
    outside = torch.tensor([0.5, 3.0, 1.5])  # 3.0 is outside [0, 2]: log-density -inf
    not_a_number = torch.tensor([0.5, math.nan, 1.5])  # log N(nan; 0, 1) is NaN
    m = torch.tensor([True, False, True])
    uniform = Uniform(torch.zeros(3), high, validate_args=False)
    assert uniform.log_prob(outside)[1] == -math.inf
    with trace() as tr, scale(factor), mask(m):
        dgm.sample("u", uniform, obs=outside)
        dgm.sample("n", Normal(torch.zeros(3), 1.0, validate_args=False), obs=not_a_number)
    torch.testing.assert_close(tr["u"].log_prob, torch.tensor([-math.log(2), 0.0, -math.log(2)]))
    n_lp = tr["n"].log_prob
    assert n_lp[1].item() == 0.0  # exactly 0, where 0 * NaN would be NaN
    torch.testing.assert_close(n_lp[[0, 2]], normal_lp(not_a_number[[0, 2]]))
    tr.log_prob_sum().sum().backward()
    assert high.grad is not None and factor.grad is not None
    torch.testing.assert_close(high.grad, torch.tensor([-0.5, 0.0, -0.5]))  # d(-log high)
    # mask before scale: d/dfactor is the masked log-density, 0 (not 0 * -inf) at [1]
    want = torch.tensor([-math.log(2), 0.0, -math.log(2)]) + torch.where(
        m, normal_lp(not_a_number), 0.0
    )
    torch.testing.assert_close(factor.grad, want)


def test_nested_masks_combine_with_logical_and() -> None:
    with (
        trace() as tr,
        mask(torch.tensor([True, True, False])),
        mask(torch.tensor([True, False, True])),
    ):
        program(X)
    torch.testing.assert_close(
        tr["z"].log_prob,
        torch.where(torch.tensor([True, False, False]), normal_lp(tr["z"].value), 0.0),
    )
    with trace() as tr, mask(False, sites=["x"]), mask(True):
        program(X)
    assert torch.equal(tr["x"].log_prob, torch.zeros(3))
    torch.testing.assert_close(tr["z"].log_prob, normal_lp(tr["z"].value))


def test_mask_per_particle_under_particles() -> None:
    m = torch.tensor([[True, False, True], [False, True, True]])  # [K=2, B=3]
    with trace() as tr, particles(2), mask(m, sites=["z"]):
        program(X)
    z = tr["z"].value
    assert z.shape == (2, 3)
    torch.testing.assert_close(tr["z"].log_prob, torch.where(m, normal_lp(z), 0.0))


def test_mask_rejects_non_boolean_masks() -> None:
    with pytest.raises(TypeError, match=r"boolean tensor \(e\.g\. z_pres > 0\.5"):
        mask(torch.ones(3))
    with pytest.raises(TypeError, match="bool or a boolean tensor"):
        mask(1)  # type: ignore[arg-type]


# block


class Record(Handler):
    """Logs every process / postprocess call it receives."""

    def __init__(self, tag: str, log: list[tuple[str, str, str]]) -> None:
        self.tag, self.log = tag, log

    def process(self, site: Site) -> None:
        self.log.append((self.tag, "process", site.name))

    def postprocess(self, site: Site) -> None:
        self.log.append((self.tag, "post", site.name))


def test_block_stops_a_hidden_site_at_the_block() -> None:
    log: list[tuple[str, str, str]] = []
    with Record("outer", log), block(hide=["u"]), Record("inner", log), Record("innermost", log):
        dgm.sample("u", Normal(0.0, 1.0))
        dgm.sample("z", Normal(0.0, 1.0))
    assert log == [
        ("innermost", "process", "u"),
        ("inner", "process", "u"),
        ("inner", "post", "u"),
        ("innermost", "post", "u"),
        ("innermost", "process", "z"),
        ("inner", "process", "z"),
        ("outer", "process", "z"),
        ("outer", "post", "z"),
        ("inner", "post", "z"),
        ("innermost", "post", "z"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "visible"),
    [({"hide": ["z"]}, ["x"]), ({"expose": ["z"]}, ["z"]), ({}, []), ({"hide": []}, ["z", "x"])],
)
def test_block_hide_expose_and_everything(kwargs: dict[str, list[str]], visible: list[str]) -> None:
    with trace() as outer, block(**kwargs), trace() as inner:
        out = program(X)
    assert [s.name for s in outer] == visible
    assert [s.name for s in inner] == ["z", "x"] and out is X


def test_outer_handlers_neither_particle_condition_nor_replay_a_hidden_site() -> None:
    zero = torch.zeros(3)
    with trace() as guide_tr:
        dgm.sample("r", Normal(torch.zeros(3), 1.0))
    with (
        trace() as outer,
        particles(4),
        condition({"c": zero}),
        replay(guide_tr, strict=False),
        block(hide=["u", "c", "r"]),
        trace() as inner,
    ):
        u = dgm.sample("u", Normal(torch.zeros(3), 1.0))
        c = dgm.sample("c", Normal(torch.zeros(3), 1.0))
        r = dgm.sample("r", Normal(torch.zeros(3), 1.0))
        z = dgm.sample("z", Normal(torch.zeros(3), 1.0))
    assert u.shape == (3,) and z.shape == (4, 3)  # only z gets the outer particles
    assert not inner["c"].is_observed and not torch.equal(c, zero)  # drawn, not conditioned
    assert r is not guide_tr["r"].value  # drawn, not replayed
    assert [s.name for s in outer] == ["z"] and [s.name for s in inner] == ["u", "c", "r", "z"]
    with replay(guide_tr), block(hide=["u"]):
        dgm.sample("u", Normal(0.0, 1.0))  # a strict replay never hears of u: no MissingSiteError
    with block(hide=["c", "r"]), trace() as inner, replay(guide_tr), condition({"c": zero}):
        c = dgm.sample("c", Normal(torch.zeros(3), 1.0))
        r = dgm.sample("r", Normal(torch.zeros(3), 1.0))
    assert c is zero and inner["c"].is_observed  # handlers inside the block do their work
    assert r is guide_tr["r"].value


def test_nested_blocks_and_leaving_a_block_restore_the_plain_stack() -> None:
    with trace() as outer, block(hide=["z"]), trace() as middle, block(hide=["u"]):
        dgm.sample("u", Normal(0.0, 1.0))
        dgm.sample("z", Normal(0.0, 1.0))
        dgm.sample("w", Normal(0.0, 1.0))
    assert [s.name for s in outer] == ["w"] and [s.name for s in middle] == ["z", "w"]
    with pytest.raises(KeyError), trace() as outer, block():
        raise KeyError("an error inside the block")
    assert not runtime._STACK and not runtime._HIDING
    with trace() as tr:
        dgm.sample("z", Normal(0.0, 1.0))
    assert "z" in tr


def test_block_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hide or expose, not both"):
        block(hide=["z"], expose=["x"])
    with pytest.raises(TypeError, match=r"write hide=\['z'\]"):
        block(hide="z")


# infer


def test_infer_is_a_per_site_dict_recorded_in_traces() -> None:
    d = Normal(torch.zeros(3), 1.0)
    meta = {"baseline": torch.ones(3)}
    with trace() as tr:
        dgm.sample("a", d, infer=meta)
        dgm.sample("b", d, infer=meta)
        dgm.sample("c", d)
        dgm.sample("e", d)
    assert tr["a"].infer == {"baseline": meta["baseline"]}
    assert tr["a"].infer is not meta and tr["a"].infer is not tr["b"].infer
    meta["other"] = 1
    assert "other" not in tr["a"].infer  # copied at the sample call
    assert tr["c"].infer == {} and tr["c"].infer is not tr["e"].infer
    assert dgm.sample("z", d, infer={"baseline": 0.0}).shape == (3,)  # also without handlers
    with pytest.raises(TypeError, match="infer must be a dict"):
        dgm.sample("z", d, infer=[("baseline", 0.0)])  # type: ignore[arg-type]
