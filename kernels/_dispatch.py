"""Which implementation an entry point runs, and how a Triton kernel reaches the CPU.

- a CUDA tensor runs the Triton kernel;
- a CPU tensor runs the PyTorch path, unless TRITON_INTERPRET=1 is set, in which
  case the Triton kernel runs under Triton's CPU interpreter (how CI checks kernels);
- `force_backend(...)` overrides both: the test hook that runs any backend;
- inputs that need gradients, and anything under autocast (training), run the
  PyTorch path everywhere: the Triton kernels are forward-only and single-dtype.

Triton decides at *decoration* time whether `@triton.jit` compiles or interprets,
so one imported kernel module cannot serve both a GPU and the interpreter. The
entry points therefore ask `kernel_module(name, device)`: CUDA gets the ordinary
module; CPU gets a second copy of the same source file executed with
TRITON_INTERPRET=1 set just for its import, whose kernels (helpers included) are
interpreted (and `interpreter_env` lets them call triton's compiled-mode library
functions). Forcing 'triton' on a CPU tensor thus works in any process, beside
compiled kernels; nothing needs TRITON_INTERPRET set before import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Literal

import torch

Backend = Literal["triton", "torch"]

_forced: Backend | None = None
_interpreted: dict[str, ModuleType] = {}


def backend_for(t: torch.Tensor, *more: torch.Tensor) -> Backend:
    """The backend an entry point uses for inputs living where `t` lives. The Triton
    kernels are forward-only (their outputs carry no autograd history) and take one
    dtype throughout. So the PyTorch path runs, on any device and whatever is forced,
    when autograd must differentiate through any of `t, *more` (gradients would
    otherwise stop silently at the kernel's output) and under autocast (which hands
    an entry point bf16 activations beside an fp32 cache): training, in both cases."""
    if torch.is_grad_enabled() and any(x.requires_grad for x in (t, *more)):
        return "torch"
    if torch.is_autocast_enabled(t.device.type):
        return "torch"
    if _forced is not None:
        return _forced
    if t.is_cuda:
        return "triton"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "triton"
    return "torch"


@contextmanager
def force_backend(name: Backend | None) -> Iterator[None]:
    """Run every entry point on `name` inside the block ('triton' on a CPU tensor
    runs the kernel under Triton's interpreter; `None` restores the default)."""
    global _forced
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def kernel_module(name: str, device: torch.device) -> ModuleType:
    """The Triton kernel module `name` (e.g. 'kernels.triton_attention') fit to run
    on `device`: compiled for CUDA, interpreted otherwise."""
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return importlib.import_module(name)
    if name not in _interpreted:
        _interpreted[name] = _load_interpreted(name)
    return _interpreted[name]


def _load_interpreted(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no kernel module {name}")
    copy_name = f"{name}__interpreted"
    copy_spec = importlib.util.spec_from_file_location(copy_name, spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    module = importlib.util.module_from_spec(copy_spec)
    with interpreter_env():
        sys.modules[copy_name] = module
        copy_spec.loader.exec_module(module)
    return module


@contextmanager
def interpreter_env() -> Iterator[None]:
    """Interpreter mode for the duration of the block: around the import of an
    interpreted copy, and around its launches.

    Sets TRITON_INTERPRET=1 (triton consults it while interpreting, e.g. when it
    lazily imports its own modules). And if triton itself was first imported in
    compiled mode, its library functions (`tl.sum`, `tl.max`, ...) are compiled
    JITFunctions that refuse to be called from Python; inside the block, calling
    one runs an interpreted twin instead, as a fully interpreted process would.
    Not thread-safe: no compiled kernel may launch while the block is open."""
    import triton.language  # noqa: F401  (triton's own library: compiled mode, always)
    from triton.runtime.jit import JITFunction

    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    compiled_call = JITFunction.__call__
    JITFunction.__call__ = _call_interpreted  # type: ignore[method-assign]
    saved = _language_snapshot()
    try:
        yield
    finally:
        _language_restore(saved)
        JITFunction.__call__ = compiled_call  # type: ignore[method-assign]
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


def _language_objects() -> list[Any]:
    """What Triton's interpreter patches while it runs (triton/runtime/interpreter.py,
    `_patch_lang`): the language modules and a few of their classes."""
    import triton.language as tl

    core = tl.core
    return [tl, core, tl.math, core.tensor, core.condition, core.dtype,
            getattr(core, "tensor_descriptor_base", core.tensor)]


def _language_snapshot() -> list[tuple[Any, dict[str, Any]]]:
    return [(obj, dict(vars(obj))) for obj in _language_objects()]


def _language_restore(saved: list[tuple[Any, dict[str, Any]]]) -> None:
    """Undo what the interpreter left patched. Triton (3.9) restores the patches of a
    kernel launch but not those of a device-function call (`InterpretedFunction.
    __call__` patches and never restores), so after an interpreted kernel that calls
    a helper, compiled code would lower through interpreter stubs (e.g. `dtype.to_ir`)
    and fail. Attributes added since the snapshot are removed, except submodules."""
    for obj, before in saved:
        now = vars(obj)
        for name in [n for n in now if n not in before]:
            if not isinstance(now[name], ModuleType):
                delattr(obj, name)
        for name, value in before.items():
            if now.get(name, _MISSING) is not value:
                setattr(obj, name, value)


_MISSING = object()
_twins: dict[int, Any] = {}


def _call_interpreted(self: Any, *args: Any, **kwargs: Any) -> Any:
    from triton.runtime.interpreter import InterpretedFunction

    twin = _twins.get(id(self))
    if twin is None:
        twin = _twins[id(self)] = (self, InterpretedFunction(self.fn))
    return twin[1](*args, **kwargs)


def autotuning() -> bool:
    """Compiled kernels autotune their tiles per shape unless MARIONETTE_AUTOTUNE=0
    (then one fixed tile: what correctness tests want, one compile per variant)."""
    return os.environ.get("MARIONETTE_AUTOTUNE", "1") != "0"


def interpreting() -> bool:
    """True inside a kernel module loaded for the interpreter (read at import)."""
    return os.environ.get("TRITON_INTERPRET") == "1"
