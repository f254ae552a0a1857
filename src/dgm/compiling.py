"""``train.compile``: a step's losses compiled with ``torch.compile``, or why they are not.

``Compiled`` wraps a function (a training step's loss, a log-likelihood chunk of
``dgm.metrics.log_likelihood(compile=True)``); ``compiler_problem`` says why a device's
backend cannot work here, and ``use_compile`` applies the ``auto|off|on`` rule. In training,
what is compiled is each loss a step computes (``SurrogateStep``'s objective over the
programs, each ``Update``'s loss): ``torch.compile`` traces it through ``dgm.sample``, the
handlers, ``log_weights``, the objective and the networks into one graph, and AOTAutograd
compiles its backward pass with it. The optimizer update stays eager, and so does the
NaN check (``check_finite`` reads the loss on the host).

Three rules keep a compiled run a faithful copy of an eager one:

- **The first call is eager.** The loop runs a fresh run's first step with value checks on
  (``dgm.checks``) and every other step, resumed ones included, without. A compiled loss
  runs eagerly while checks are on, so bad data is refused as in eager mode, and it is
  traced on its next call, with the checks (which would split the graph) off. A resumed run
  therefore continues compiled from its first step, as the uninterrupted run did, and ends
  with the same parameters (inductor draws its random numbers from seeds taken from the
  torch generator, which the checkpoint restores).
- **One set of shapes.** The loop's batches all have ``batch_size`` points (an epoch's
  incomplete last batch is dropped, compiled or not), so the graph is compiled for static
  shapes once. A call with other shapes (another batch size, a program called from outside
  the loop) runs eagerly, with a one-line warning the first time, instead of recompiling.
- **No silent fallback when asked.** ``compile="on"`` fails with ``CompileError`` naming
  what is missing (no C++ compiler for the CPU backend, no Triton for CUDA, a Python that
  TorchDynamo does not support) or the error of the first compilation. ``"auto"`` compiles
  where the device's backend works and runs eagerly otherwise, saying why once.

``compile="auto"`` compiles on CUDA and leaves CPU steps eager: on CPU the gain depends on
the network, the batch and K (some steps are slower compiled), and seconds of compilation
per loss need thousands of steps to pay back (``benchmarks/results/task_step_time.md``);
``"on"`` compiles there too. ``train.compile_mode`` is ``torch.compile``'s mode:
``"reduce-overhead"`` captures CUDA graphs that replay the static-shape graph without
launching its kernels one by one (not run here: no GPU was lent).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .checks import validating

COMPILE_MODES = ("auto", "off", "on")
# torch.compile's modes; "reduce-overhead" captures CUDA graphs on CUDA
TORCH_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileError(RuntimeError):
    """``train.compile=on`` where the step cannot be compiled; the message says why."""


def compiler_problem(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot compile for ``device`` here, or ``None`` when it can."""
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (it needs torch >= 2.0)"
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except Exception as err:
        return f"TorchDynamo does not run here ({err})"
    if device.type == "cpu":
        try:
            from torch._inductor import config
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        except Exception as err:
            searched = [c for c in config.cpp.cxx if c] if "config" in locals() else []
            return (
                "the CPU backend (inductor) needs a C++ compiler and found none"
                + (f" (looked for {', '.join(searched)})" if searched else "")
                + f": {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                "install g++ (e.g. apt-get install g++) or point $CXX at one"
            )
    elif device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "the CUDA backend (inductor) needs Triton, which is not installed (pip install triton)"
    elif device.type != "mps":
        return f"dgm does not compile steps on {device.type!r} devices"
    return None


def use_compile(mode: str, device: torch.device | str) -> bool:
    """Whether a run with ``train.compile=mode`` on ``device`` compiles its step.

    Raises:
        ValueError: ``mode`` is not one of ``COMPILE_MODES``.
        CompileError: ``mode == "on"`` where ``compiler_problem`` finds a reason it cannot.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    if mode == "off":
        return False
    device = torch.device(device)
    if mode == "auto" and device.type != "cuda":
        return False
    problem = compiler_problem(device)
    if problem is None:
        return True
    if mode == "on":
        raise CompileError(
            f"train.compile=on, but the step cannot be compiled here: {problem}. "
            "Set train.compile=auto (compiles only where it can) or off"
        )
    print(f"dgm: train.compile=auto runs the step eagerly: {problem}", file=sys.stderr)
    return False


class Compiled:
    """``fn`` compiled with ``torch.compile`` for the shapes of its first compiled call.

    Runs ``fn`` eagerly while value checks are on (``dgm.checks.validating()``), for calls
    whose tensor shapes differ from the compiled ones (warning once), and, after a failed
    compilation, always (``required=False``: warning once; ``required=True``: raising
    ``CompileError``).

    Args:
        fn: the function (a step's loss).
        name: what it is, for messages (``"loss"``, ``"critic loss"``).
        required: fail instead of falling back (``train.compile=on``).
        mode: ``torch.compile``'s mode (``None`` or ``"default"``; ``"reduce-overhead"``:
            CUDA graphs).
        warn_new_shapes: warn the first time a call's shapes differ from the compiled ones
            (``False`` where that is expected, e.g. the last, smaller chunk of an evaluation).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str = "loss",
        required: bool = False,
        mode: str | None = None,
        warn_new_shapes: bool = True,
    ) -> None:
        self.fn, self.name, self.required = fn, name, required
        self.warn_new_shapes = warn_new_shapes
        self.compiled = torch.compile(fn, dynamic=False, mode=None if mode == "default" else mode)
        self.shapes: tuple[Any, ...] | None = None
        self.failed: str | None = None
        self._warned_shapes = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None or validating():
            return self.fn(*args, **kwargs)
        shapes = _signature(args, kwargs)
        if self.shapes is None:
            return self._first(shapes, args, kwargs)
        if shapes != self.shapes:
            if self.warn_new_shapes and not self._warned_shapes:
                self._warned_shapes = True
                warnings.warn(
                    f"dgm: the compiled {self.name} was compiled for inputs shaped "
                    f"{_describe(self.shapes)} and got {_describe(shapes)}; such calls run "
                    "eagerly (recompiling for every new shape would cost more than it saves)",
                    stacklevel=3,
                )
            return self.fn(*args, **kwargs)
        return self.compiled(*args, **kwargs)

    def _first(self, shapes: tuple[Any, ...], args: Any, kwargs: Any) -> Any:
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as err:
            reason = _reason(err)
            if self.required:
                raise CompileError(
                    f"train.compile=on, but compiling the {self.name} failed: {reason}. Set "
                    "train.compile=auto or off to run it eagerly"
                ) from err
            self.failed = reason
            warnings.warn(
                f"dgm: compiling the {self.name} failed, running it eagerly: {reason}",
                stacklevel=3,
            )
            return self.fn(*args, **kwargs)
        self.shapes = shapes
        return out


def _signature(args: Any, kwargs: Any) -> tuple[Any, ...]:
    """The shapes, dtypes and devices of the tensors among the arguments (nested in tuples,
    lists and dicts), the values of Python numbers and the other arguments' types: what a
    static-shape graph depends on."""

    def sig(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return (tuple(x.shape), x.dtype, x.device.type)
        if isinstance(x, tuple | list):
            return tuple(sig(v) for v in x)
        if isinstance(x, dict):
            return tuple((k, sig(v)) for k, v in x.items())
        if isinstance(x, bool | int | float):  # TorchDynamo specializes on their values
            return (type(x).__name__, x)
        return type(x).__name__

    return (sig(args), sig(kwargs))


def _describe(signature: tuple[Any, ...]) -> str:
    shapes: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, tuple) and len(x) == 3 and isinstance(x[1], torch.dtype):
            shapes.append(str(list(x[0])))
        elif isinstance(x, tuple):
            for v in x:
                walk(v)

    walk(signature)
    return ", ".join(shapes) or "no tensors"


def _reason(err: BaseException) -> str:
    """The innermost cause of a compilation error, in one line (dynamo wraps a backend's
    error in ``BackendCompilerFailed``, whose own first line names only the backend)."""
    seen = {id(err)}
    while True:
        inner = getattr(err, "inner_exception", None) or err.__cause__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        err = inner
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}"


__all__ = [
    "COMPILE_MODES",
    "TORCH_COMPILE_MODES",
    "CompileError",
    "Compiled",
    "compiler_problem",
    "use_compile",
]
