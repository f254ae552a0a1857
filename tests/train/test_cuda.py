"""The CUDA path: compiled steps (inductor with Triton, and CUDA graphs), fused Adam and a
whole training run on a GPU. Every test here is marked ``cuda`` and skips, with the reason,
where no GPU is present; ``make test-cuda`` runs exactly these on a machine that has one.
"""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config as inductor_config

import dgm
from dgm.checks import validation
from dgm.compiling import compiler_problem
from dgm.train import SurrogateStep

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


def cuda_vae(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    model = dgm.models.vae.VAEModel(784, (50,), ((200, 200),)).cuda()
    guide = dgm.models.vae.VAEGuide(784, (50,), ((200, 200),)).cuda()
    return model, guide


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(20, 784, generator=g) < 0.3).float().cuda()


def test_the_cuda_backend_is_usable() -> None:
    assert compiler_problem("cuda") is None, compiler_problem("cuda")
    assert dgm.compiling.use_compile("auto", "cuda")  # auto compiles on CUDA


def test_fused_adam_is_used_on_cuda() -> None:
    model, guide = cuda_vae()
    opt = dgm.train.optim.adam([*model.parameters(), *guide.parameters()])
    assert opt.defaults["fused"] is True


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("objective", ["elbo", "iwae-dreg"])
def test_compiled_and_eager_steps_agree_on_cuda(mode: str, objective: str) -> None:
    x = data()
    steps = []
    for compiled in (False, True):
        model, guide = cuda_vae()
        obj = dgm.ELBO(1) if objective == "elbo" else dgm.IWAE(5, dreg=True)
        params = [*model.parameters(), *guide.parameters()]
        step = SurrogateStep(obj, (model, guide), [torch.optim.SGD(params, lr=0.05)])
        if compiled:
            step = step.compiled(required=True, mode=mode)
        steps.append((step, params))
    with validation(False), inductor_config.patch(fallback_random=True):
        for _ in range(3):  # CUDA graphs record on the first compiled calls, then replay
            losses = []
            for step, _ in steps:
                torch.manual_seed(1)
                losses.append(step([x])["loss"])
            torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-4)
    for p_c, p_e in zip(steps[1][1], steps[0][1], strict=True):
        torch.testing.assert_close(p_c, p_e, rtol=1e-3, atol=1e-5)


def test_a_run_on_cuda_compiles_with_auto_and_reports_it() -> None:
    model, guide = cuda_vae()
    result = dgm.train.fit(model, guide, dgm.IWAE(5), data(), steps=5, batch_size=10)
    assert result.compiled and result.compile_seconds is not None
