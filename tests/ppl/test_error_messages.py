"""Error messages under ``log_weights``: a forgotten ``obs=``, and tables that say which program."""

import re
import traceback

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal

import dgm
from dgm.ppl import DuplicateSiteError, MissingSiteError, ProgramError, ShapeError, Site, site_table


class ForgetfulModel(nn.Module):
    """z ~ N(0, I_4), x ~ Bernoulli(logits = W z), but x is sampled without obs=x."""

    def __init__(self) -> None:
        super().__init__()
        self.decode = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        dgm.sample("x", Independent(Bernoulli(logits=self.decode(z)), 1))  # obs=x forgotten


def guide(x: Tensor) -> None:
    dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))


def _row(program: str, site: str, kind: str, value: str) -> str:
    """A table row, columns separated by ' | ' and padded."""
    cells = [program, site, kind, value]
    return r"\n\s+" + r"\s+\| ".join(re.escape(c) for c in cells) + r"\s+\|"


@pytest.mark.parametrize("num_particles", [1, 3])
def test_a_forgotten_obs_is_named_as_data_the_model_does_not_observe(num_particles: int) -> None:
    x = torch.bernoulli(torch.full((5, 3), 0.5))
    with pytest.raises(MissingSiteError) as info:
        dgm.log_weights(ForgetfulModel(), guide, x, num_particles=num_particles)
    message = str(info.value)
    assert message.startswith(
        "latent site 'x' has no value in the replayed guide trace, and it looks like data the "
        f"model does not observe: its shape [{num_particles}, 5, 3] is the shape [5, 3] of the "
        "programs' argument 0, after the particle dimension. If 'x' is your data, pass it with "
        "dgm.sample('x', ..., obs=x); if it is a latent variable, the guide must sample it "
        "under the same name\nSites so far:\n"
    )
    assert info.value.site is not None and info.value.site.name == "x"
    # the traceback still reaches the model's line that sampled x
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.name == "forward" and "obs=x forgotten" in (f.line or "") for f in frames)


def test_a_forgotten_obs_passed_by_keyword_is_named_by_keyword() -> None:
    def model(*, image: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(image.new_zeros(len(image), 4), 1.0), 1))
        dgm.sample("image", Independent(Normal(z[..., :3], 1.0), 1))

    def kw_guide(*, image: Tensor) -> None:
        guide(image)

    with pytest.raises(
        MissingSiteError,
        match=r"its shape \[2, 5, 3\] is the shape \[5, 3\] of the programs' keyword argument "
        r"'image'.*obs=image\)",
    ):
        dgm.log_weights(model, kw_guide, image=torch.randn(5, 3), num_particles=2)


def test_a_missing_latent_of_another_shape_keeps_the_guide_advice_and_a_hint() -> None:
    def model(x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        dgm.sample("w", Normal(z.sum(-1), 1.0))  # a latent [K, 5]: not the data's shape

    with pytest.raises(MissingSiteError) as info:
        dgm.log_weights(model, guide, torch.randn(5, 3), num_particles=2)
    assert str(info.value).startswith(
        "latent site 'w' has no value in the replayed guide trace; the guide must sample every "
        "latent site of the model, under the same name. If 'w' is your data, pass it with "
        "dgm.sample('w', ..., obs=w).\nSites so far:\n"
    )


def test_a_strict_replay_outside_log_weights_gives_the_hint_and_reads_its_table() -> None:
    x = torch.randn(5, 3)
    with dgm.trace() as guide_trace:
        guide(x)
    with pytest.raises(MissingSiteError) as info, dgm.trace(), dgm.replay(guide_trace):
        ForgetfulModel()(x)
    message = str(info.value)
    assert "If 'x' is your data, pass it with dgm.sample('x', ..., obs=x)." in message
    assert "The table lists the replayed trace's sites, then this program's." in message
    assert "program" not in message.split("Sites so far:")[1]  # no labels: no program column


def test_the_missing_site_table_marks_the_guide_and_the_model_sites() -> None:
    with pytest.raises(MissingSiteError) as info:
        dgm.log_weights(ForgetfulModel(), guide, torch.randn(5, 3), num_particles=2)
    table = str(info.value).split("Sites so far:")[1]
    assert re.match(r"\n\s+program \| site \| kind", table)
    assert re.search(_row("guide", "z", "latent", "[2, 5, 4]"), table)
    assert re.search(_row("model", "z", "latent", "[2, 5, 4]"), table)
    assert re.search(_row("model", "x", "latent (score)", "-"), table)  # the site that failed
    assert table.index("guide") < table.index("model")


def test_an_error_inside_the_model_lists_the_guide_sites_and_the_model_sites_so_far() -> None:
    def model(x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        nn.Linear(3, 2)(z)  # 4 features, not 3

    with pytest.raises(ProgramError, match="RuntimeError inside the program") as info:
        dgm.log_weights(model, guide, torch.randn(5, 3), num_particles=2)
    assert isinstance(info.value, RuntimeError)
    table = str(info.value).split("Sites so far:")[1]
    assert re.search(_row("guide", "z", "latent", "[2, 5, 4]"), table)
    assert re.search(_row("model", "z", "latent", "[2, 5, 4]"), table)


def test_an_error_inside_the_guide_lists_the_guide_sites() -> None:
    def bad_guide(x: Tensor) -> None:
        guide(x)
        dgm.sample("w", Normal(x.new_zeros(5, 2), 1.0))  # batch [5, 2]: no Independent

    with pytest.raises(ShapeError, match="site 'w' has batch shape") as info:
        dgm.log_weights(ForgetfulModel(), bad_guide, torch.randn(5, 3), num_particles=2)
    table = str(info.value).split("Sites so far:")[1]
    assert re.search(_row("guide", "z", "latent", "[2, 5, 4]"), table)
    assert re.search(_row("guide", "w", "latent", "-"), table)
    assert "model" not in table


def test_a_duplicate_site_in_the_model_is_marked() -> None:
    def model(x: Tensor) -> None:
        dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))

    with pytest.raises(DuplicateSiteError) as info:
        dgm.log_weights(model, guide, torch.randn(5, 3))
    table = str(info.value).split("Sites so far:")[1]
    assert len(re.findall(_row("model", "z", "latent", "[1, 5, 4]"), table)) == 2
    assert re.search(_row("guide", "z", "latent", "[1, 5, 4]"), table)


def test_a_guide_site_the_model_lacks_lists_both_programs() -> None:
    def extra_guide(x: Tensor) -> None:
        guide(x)
        dgm.sample("extra", Normal(x.new_zeros(5), 1.0))

    def model(x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        dgm.sample("x", Independent(Normal(z[..., :3], 1.0), 1), obs=x)

    with pytest.raises(ProgramError, match=r"guide site\(s\) \['extra'\]") as info:
        dgm.log_weights(model, extra_guide, torch.randn(5, 3))
    table = str(info.value).split("Sites so far:")[1]
    assert re.search(_row("guide", "extra", "latent", "[1, 5]"), table)
    assert re.search(_row("model", "x", "observed", "[5, 3]"), table)


def test_site_table_shows_a_program_column_only_when_a_site_knows_its_program() -> None:
    d = Normal(torch.zeros(2), 1.0)
    plain = Site("a", d, torch.zeros(2))
    header = site_table([plain]).splitlines()[0]
    assert header.split()[:3] == ["site", "|", "kind"]  # as before labels existed
    marked = Site("b", d, torch.zeros(2), program="guide")
    rows = site_table([plain, marked]).splitlines()
    assert rows[0].split()[:3] == ["program", "|", "site"]
    assert rows[2].split()[:3] == ["-", "|", "a"] and rows[3].split()[:3] == ["guide", "|", "b"]


def test_traces_label_their_sites_and_the_innermost_label_wins() -> None:
    with dgm.trace("outer") as outer, dgm.trace("inner") as inner:
        dgm.sample("z", Normal(0.0, 1.0))
    assert outer["z"] is inner["z"] and inner["z"].program == "inner"
    with dgm.trace() as plain:
        dgm.sample("z", Normal(0.0, 1.0))
    assert plain["z"].program is None

    def model(x: Tensor) -> None:
        z = dgm.sample("z", Independent(Normal(x.new_zeros(len(x), 4), 1.0), 1))
        dgm.sample("x", Independent(Normal(z[..., :3], 1.0), 1), obs=x)

    lw = dgm.log_weights(model, guide, torch.randn(5, 3), num_particles=2)
    assert lw.guide_trace.program == "guide" and lw.model_trace.program == "model"
    assert [s.program for s in lw.guide_trace] == ["guide"]
    assert [s.program for s in lw.model_trace] == ["model", "model"]
