"""``train.compile``: compiled steps agree with eager ones, graph breaks are pinned, resume is
exact, and a step that cannot be compiled falls back or fails as asked.

Agreement is checked with inductor's ``fallback_random``: the compiled graph then draws its
random numbers with the eager generator, in the same order, so the two steps see the same
noise. Tolerances (float32): losses to 1e-5 relative, gradients to 1e-4 relative plus 1e-6
absolute (fusion reorders sums), parameters after each SGD step to 1e-6 absolute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._inductor.config as inductor_config
from torch import nn

import dgm
from dgm.checks import validating, validation
from dgm.compiling import compiler_problem, use_compile
from dgm.models import AutoGuide
from dgm.models.posteriors import POSTERIORS
from dgm.models.regression import PolynomialRegression, simulate
from dgm.train import Compiled, CompileError, SurrogateStep, checkpoint

pytestmark = pytest.mark.skipif(
    compiler_problem("cpu") is not None, reason=f"no CPU compiler: {compiler_problem('cpu')}"
)

BINARY = (torch.rand(16, 12, generator=torch.Generator().manual_seed(0)) < 0.4).float()


def vae(posterior: str = "diagonal") -> tuple[nn.Module, nn.Module]:
    model = dgm.models.vae.VAEModel(12, (3,), ((16,),))
    family = POSTERIORS.options(posterior, **({"flow_hidden": [8]} if posterior == "iaf" else {}))
    guide = dgm.models.vae.VAEGuide(12, (3,), ((16,),), posterior=family)
    return model, guide


def sbn() -> tuple[nn.Module, nn.Module]:
    return dgm.models.sbn.sbn((6,), data_size=12)


def regression() -> tuple[nn.Module, nn.Module]:
    model = PolynomialRegression()
    t, y, _, _ = simulate(model, 2, 10)
    return model, AutoGuide(model, t=t, y=y)


def poly_inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    t, _, _, _ = simulate(PolynomialRegression(), 8, 10)
    return {"t": t}


# name: (programs, objective, batch); objectives that are modules (NVIL) are deep-copied
CASES: dict[str, tuple[Callable[[], tuple[nn.Module, nn.Module]], Callable[[], Any], Any]] = {
    "vae-elbo": (vae, lambda: dgm.ELBO(1), BINARY),
    "iwae-dreg": (vae, lambda: dgm.IWAE(4, dreg=True), BINARY),
    "rws": (sbn, lambda: dgm.objectives.RWS(4), BINARY),
    "nvil": (sbn, lambda: dgm.objectives.NVIL(nn.Linear(12, 1)), BINARY),
    "inference-compilation": (
        regression,
        lambda: dgm.objectives.Sleep(observed=["y"]),
        poly_inputs(),
    ),
    "iaf-posterior-iwae": (lambda: vae("iaf"), lambda: dgm.IWAE(3), BINARY),
}


def build(case: str) -> tuple[SurrogateStep, list[nn.Parameter]]:
    make, objective, _ = CASES[case]
    torch.manual_seed(0)
    model, guide = make()
    obj = objective()
    params = [*model.parameters(), *guide.parameters()]
    if isinstance(obj, nn.Module):
        params += list(obj.parameters())
    # SGD: Adam's first step divides by |g|, which turns the rounding noise on a gradient
    # that is 0 up to rounding (NVIL's baseline bias) into a full step of either sign
    opt = torch.optim.SGD(params, lr=0.05)
    return SurrogateStep(obj, (model, guide), [opt]), params


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_and_eager_steps_agree(case: str) -> None:
    batch = CASES[case][2]
    eager, eager_params = build(case)
    plain, compiled_params = build(case)
    compiled = plain.compiled(required=True)
    assert plain.loss is not compiled.loss  # compiling maps the update, it does not mutate it
    with validation(False), inductor_config.patch(fallback_random=True):
        for _ in range(2):  # the second step also checks state carried between steps
            torch.manual_seed(1)
            loss_e = eager([batch])["loss"]
            grads_e = [p.grad.clone() for p in eager_params if p.grad is not None]
            torch.manual_seed(1)
            loss_c = compiled([batch])["loss"]
            grads_c = [p.grad.clone() for p in compiled_params if p.grad is not None]
            torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-5)
            assert len(grads_c) == len(grads_e) > 0
            for g_c, g_e in zip(grads_c, grads_e, strict=True):
                torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-6)
            for p_c, p_e in zip(compiled_params, eager_params, strict=True):
                torch.testing.assert_close(p_c, p_e, rtol=0, atol=1e-6)
    assert compiled.loss.shapes is not None  # type: ignore[union-attr]  # it ran compiled


# Graph breaks of the main steps' losses, pinned: a new one (a .item(), a data-dependent
# branch, an unsupported call in dgm's handlers, objectives or distributions) fails here.
GRAPH_BREAKS = {"vae-elbo": 0, "iwae-dreg": 0, "rws": 0, "nvil": 0, "inference-compilation": 0}


@pytest.mark.parametrize("case", list(GRAPH_BREAKS))
def test_graph_breaks_of_the_main_steps_are_pinned(case: str) -> None:
    step, _ = build(case)
    batch = CASES[case][2]
    torch._dynamo.reset()
    with validation(False):
        explained = torch._dynamo.explain(step._loss)(batch)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    assert explained.graph_break_count == GRAPH_BREAKS[case], reasons
    assert explained.graph_count == GRAPH_BREAKS[case] + 1


def test_value_checks_are_skipped_inside_traced_code() -> None:
    """The data check of a Bernoulli VAE reads the batch (``.item()``), which would split the
    graph: code that torch.compile traces skips it even where checks are on."""
    step, _ = build("vae-elbo")
    torch._dynamo.reset()
    assert validating()
    explained = torch._dynamo.explain(step._loss)(BINARY)
    assert explained.graph_break_count == 0


def test_first_step_is_eager_with_checks_and_refuses_bad_data() -> None:
    step, _ = build("vae-elbo")
    step = step.compiled(required=True)
    with pytest.raises(ValueError, match="binary data"):
        step([BINARY * 0.5])  # checks on (a run's first step): eager, refused
    assert step.loss.shapes is None  # type: ignore[union-attr]  # nothing compiled yet


def small_run(tmp: Path, steps: int, compile: str, resume: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    model, guide = vae()
    result = dgm.train.fit(
        model,
        guide,
        dgm.IWAE(3),
        BINARY,
        steps=steps,
        batch_size=8,
        checkpoint_dir=tmp,
        checkpoint_every=3,
        resume=resume,
        compile=compile,
    )
    assert result.compiled == (compile == "on")
    return torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])


def test_a_resumed_compiled_run_ends_with_the_parameters_of_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    straight = small_run(tmp_path / "straight", 7, "on")
    small_run(tmp_path / "resumed", 3, "on")
    assert checkpoint.load(tmp_path / "resumed" / "last.pt")["step"] == 3
    torch.manual_seed(999)  # another process: other RNG state, nothing compiled yet
    torch._dynamo.reset()
    resumed = small_run(tmp_path / "resumed", 7, "on", resume=True)
    assert torch.equal(straight, resumed)


def test_compile_time_is_reported_in_the_result_and_the_log(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, guide = vae()
    log = dgm.train.metrics_log.MetricsLog(tmp_path, tensorboard=False)
    result = dgm.train.fit(
        model, guide, dgm.ELBO(), BINARY, steps=3, batch_size=8, compile="on", log=log
    )
    log.close()
    assert result.compiled and result.compile_seconds is not None and result.compile_seconds > 0
    events = [r for r in dgm.train.metrics_log.read_metrics(tmp_path / "metrics.jsonl")]
    assert [r["compile_seconds"] for r in events if "compile_seconds" in r] == [
        round(result.compile_seconds, 2)
    ]
    assert [r["step"] for r in events if "compile_seconds" in r] == [2]


def test_auto_leaves_cpu_steps_eager_and_off_is_off() -> None:
    assert not use_compile("auto", "cpu")
    assert not use_compile("off", "cpu")
    assert use_compile("on", "cpu")
    with pytest.raises(ValueError, match="compile must be one of"):
        use_compile("yes", "cpu")


def test_on_without_a_cpu_compiler_fails_naming_what_is_missing() -> None:
    # inductor's own config patch (a monkeypatch would delete the setting when undone)
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        problem = compiler_problem("cpu")
        assert problem is not None and "C++ compiler" in problem and "g++" in problem
        with pytest.raises(CompileError, match=r"compile=on.*C\+\+ compiler.*install g\+\+"):
            use_compile("on", "cpu")
        model, guide = vae()
        with pytest.raises(CompileError, match="C\\+\\+ compiler"):
            dgm.train.fit(model, guide, dgm.ELBO(), BINARY, steps=2, batch_size=8, compile="on")
    assert compiler_problem("cpu") is None


def test_auto_without_a_cuda_backend_says_why_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch.utils._triton as triton_utils

    monkeypatch.setattr(triton_utils, "has_triton", lambda: False)
    assert compiler_problem("cuda") is not None and "Triton" in str(compiler_problem("cuda"))
    assert not use_compile("auto", "cuda")
    assert "runs the step eagerly" in capsys.readouterr().err
    with pytest.raises(CompileError, match="Triton"):
        use_compile("on", "cuda")


def failing_backend(gm: Any, example_inputs: Any) -> Any:
    raise RuntimeError("this backend cannot compile anything")


def test_a_failed_compilation_falls_back_with_a_warning_or_fails_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: real_compile(fn, backend=failing_backend)
    )
    calls = []

    def loss(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (x * 2).sum()

    x = torch.ones(3)
    lenient = Compiled(loss, "loss", required=False)
    with validation(False):
        with pytest.warns(UserWarning, match="compiling the loss failed, running it eagerly"):
            assert lenient(x).item() == 6
        assert lenient(x).item() == 6  # eager from now on, without another warning
        assert lenient.failed is not None and "cannot compile" in lenient.failed
        strict = Compiled(loss, "loss", required=True)
        with pytest.raises(CompileError, match=r"compiling the loss failed.*cannot compile"):
            strict(x)


def test_a_batch_of_another_shape_runs_eagerly_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graphs = []

    def counting_backend(gm: Any, example_inputs: Any) -> Any:
        graphs.append([tuple(t.shape) for t in example_inputs])
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: real_compile(fn, backend=counting_backend, dynamic=False)
    )
    compiled = Compiled(lambda x: (x * x).sum(), "loss")
    with validation(False):
        assert compiled(torch.ones(4, 2)).item() == 8
        assert compiled(torch.ones(4, 2)).item() == 8
        assert graphs == [[(4, 2)]]  # compiled once, then reused
        with pytest.warns(
            UserWarning, match=r"compiled for inputs shaped \[4, 2\] and got \[3, 2\]"
        ):
            assert compiled(torch.ones(3, 2)).item() == 6
        assert compiled(torch.ones(3, 2)).item() == 6  # eager again, no second warning
    assert graphs == [[(4, 2)]]  # never recompiled


def test_the_loop_drops_the_incomplete_last_batch_so_shapes_never_change() -> None:
    batches = dgm.train.Batches(torch.arange(25.0)[:, None], 10, seed=0)
    assert batches.per_epoch == 2
    assert {len(batches(i)) for i in range(7)} == {10}  # 3.5 epochs: every batch has 10


def alternating(seed: int) -> tuple[dgm.train.AlternatingStep, list[nn.Parameter]]:
    torch.manual_seed(seed)
    critic, generator = nn.Linear(2, 1), nn.Linear(2, 2)
    step = dgm.train.AlternatingStep(
        dgm.train.Update(
            "critic",
            lambda x: critic(x).mean() - critic(generator(x).detach()).mean(),
            torch.optim.Adam(critic.parameters(), lr=1e-2),
        ),
        dgm.train.Update(
            "generator",
            lambda x: critic(generator(x)).mean(),
            torch.optim.Adam(generator.parameters(), lr=1e-2),
        ),
        critic_steps=2,
    )
    return step, [*critic.parameters(), *generator.parameters()]


def test_an_alternating_step_compiles_both_players_and_agrees_with_eager() -> None:
    eager, eager_params = alternating(0)
    plain, compiled_params = alternating(0)
    compiled, wrappers = dgm.train.step.compile_step(plain, required=True)
    assert [w.name for w in wrappers] == ["critic loss", "generator loss"]
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    with validation(False):
        for _ in range(2):
            losses_e, losses_c = eager([x, x]), compiled([x, x])
            for key in losses_e:
                torch.testing.assert_close(losses_c[key], losses_e[key], rtol=1e-5, atol=1e-6)
    for p_c, p_e in zip(compiled_params, eager_params, strict=True):
        torch.testing.assert_close(p_c, p_e, rtol=0, atol=1e-6)
    assert all(w.shapes is not None for w in wrappers)


def test_compiled_log_likelihood_agrees_with_eager_including_the_smaller_last_chunks() -> None:
    torch.manual_seed(0)
    model, guide = vae()
    # chunks of 8 particles for 5 points of 12 pixels: 6 full chunks and one of 2 (eager),
    # batches of 5 points and a last one of 1 (eager)
    options = {"num_particles": 50, "batch_size": 5, "max_elements": 5 * 12 * 8}
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(3)
        eager = dgm.metrics.log_likelihood(model, guide, BINARY, **options)
        torch.manual_seed(3)
        compiled = dgm.metrics.log_likelihood(model, guide, BINARY, compile=True, **options)
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="binary"):  # the first chunk still checks the data
        dgm.metrics.log_likelihood(model, guide, BINARY * 0.5, compile=True, **options)


def task_step(
    name: str, compiled: bool
) -> tuple[Callable[[int], dict[str, torch.Tensor]], list[Any]]:
    """A packaged experiment's step at smoke size, as ``dgm train`` builds it."""
    from dgm.experiments import load, runner

    cfg = load(name, smoke=True)
    task = runner.create(cfg)
    torch.manual_seed(0)
    data = task.data()
    parts = task.build(data)
    step = task.step(parts, task.optimizers(parts), lambda m: m)
    if compiled:
        step, _ = dgm.train.step.compile_step(step, required=True)
    batches = dgm.train.Batches(data.train, cfg.train.batch_size, 0)

    def run(i: int) -> dict[str, torch.Tensor]:
        xs = [batches(i * step.num_batches + j) for j in range(step.num_batches)]
        return step([data.transform(x) for x in xs] if data.transform else xs)

    return run, [p for m in parts.values() for p in m.parameters()]


@pytest.mark.parametrize("name", ["flow-digits-glow", "gan-ring"])
def test_a_family_step_compiles_and_agrees_with_eager(name: str) -> None:
    """Glow (ActNorm's data initialisation on the eager first step, 1x1 convolutions, coupling
    masks) and a GAN's alternating players, through the task contract."""
    eager, eager_params = task_step(name, False)
    compiled, compiled_params = task_step(name, True)
    with inductor_config.patch(fallback_random=True):
        for i in range(3):  # the first with checks on (eager in both), then compiled
            with contextlib.nullcontext() if i == 0 else validation(False):
                torch.manual_seed(i)
                losses_e = eager(i)
                torch.manual_seed(i)
                losses_c = compiled(i)
            for key in losses_e:
                torch.testing.assert_close(losses_c[key], losses_e[key], rtol=1e-4, atol=1e-5)
    for p_c, p_e in zip(compiled_params, eager_params, strict=True):
        torch.testing.assert_close(p_c, p_e, rtol=1e-3, atol=1e-4)


def test_dgm_train_with_compile_on_records_it_in_the_final_metrics(tmp_path: Path) -> None:
    import json

    from dgm.experiments import load, runner

    cfg = load("quickstart", ["train.compile=on"], smoke=True)
    runner.train(cfg, tmp_path / "run", progress=False)
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["train_compiled"] is True and final["train_compile_seconds"] > 0
    assert final["eval_compiled"] is True  # the K-particle log-likelihood, compiled too
    events = dgm.train.metrics_log.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert any("compile_seconds" in r for r in events)


@pytest.mark.parametrize("text", ["on", "off", "auto"])
def test_train_compile_reads_bare_yaml_on_and_off(text: str) -> None:
    from dgm.experiments import load

    assert load("quickstart", [f"train.compile={text}"]).train.compile == text
    with pytest.raises(dgm.experiments.ConfigError, match=r"train\.compile"):
        load("quickstart", ["train.compile=yes-please"])


def test_on_for_a_step_without_losses_to_compile_names_the_step() -> None:
    class Opaque:
        num_batches = 1

        def __call__(self, batches: Any) -> dict[str, torch.Tensor]:
            return {}

    opaque = Opaque()
    assert dgm.train.step.compile_step(opaque, required=False) == (opaque, [])
    with pytest.raises(CompileError, match=r"this task's step \(Opaque\) has no compiled"):
        dgm.train.step.compile_step(Opaque(), required=True)


def test_compiled_log_likelihood_without_a_compiler_says_what_is_missing() -> None:
    model, guide = vae()
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        with pytest.raises(CompileError, match=r"log_likelihood\(compile=True\).*C\+\+ compiler"):
            dgm.metrics.log_likelihood(model, guide, BINARY, num_particles=4, compile=True)


def test_the_cli_reports_a_missing_compiler_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dgm.cli.commands import main

    args = ["train", "quickstart", "--smoke", "--no-progress", "--out", str(tmp_path / "run")]
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        assert main([*args, "--set", "train.compile=on"]) == 1
    err = capsys.readouterr().err
    assert "dgm: error: train.compile=on, but the step cannot be compiled here" in err
    assert "install g++" in err and "Traceback" not in err
