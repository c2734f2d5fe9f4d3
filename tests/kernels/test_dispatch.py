"""Which path an entry point runs: PyTorch for CPU tensors by default, Triton when
forced or when TRITON_INTERPRET=1, and the test hook overriding both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from kernels import _dispatch
from kernels._dispatch import backend_for, force_backend, kernel_module
from kernels.attention import chunk_attention, chunk_attention_ref
from kernels.layout import CacheLayout
from kernels.norm import adaln_norm, adaln_norm_ref


def test_cpu_defaults_to_torch_and_hook_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    t = torch.zeros(1)
    assert backend_for(t) == "torch"
    with force_backend("triton"):
        assert backend_for(t) == "triton"
        with force_backend("torch"):
            assert backend_for(t) == "torch"
        assert backend_for(t) == "triton"
    assert backend_for(t) == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend_for(t) == "triton"


def test_interpreted_copy_is_separate_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a = kernel_module("kernels.triton_norm", torch.device("cpu"))
    assert a.INTERPRETED and a is kernel_module("kernels.triton_norm", torch.device("cpu"))
    assert "kernels.triton_norm__interpreted" in _dispatch.sys.modules


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_entry_points_agree_with_reference(backend: str, gen: torch.Generator,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    calls: list[str] = []

    def recorded(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **kw: Any) -> Any:
            calls.append(name)
            return real(*a, **kw)
        return call

    for name, fn in (("kernels.triton_attention", "chunk_attention_triton"),
                     ("kernels.triton_norm", "adaln_norm_triton")):
        mod = kernel_module(name, torch.device("cpu"))
        monkeypatch.setattr(mod, fn, recorded(fn, getattr(mod, fn)))
    layout = CacheLayout(sink_frames=1, window=2, chunk=1, grid=(3, 3))
    B, H, D = 2, 2, 32
    q, k, v = (torch.randn(B, H, layout.chunk_tokens, D, generator=gen) for _ in range(3))
    kc, vc = (torch.randn(B, H, layout.capacity, D, generator=gen) for _ in range(2))
    state = (torch.tensor([9, 4], dtype=torch.int32), torch.tensor([1, 0], dtype=torch.int32),
             torch.tensor([2, 1], dtype=torch.int32), torch.tensor([40, 1], dtype=torch.int32))
    x = torch.randn(B, 9, 48, generator=gen)
    sh, sc = torch.randn(B, 1, 48, generator=gen), torch.randn(B, 1, 48, generator=gen)
    with force_backend(backend):  # type: ignore[arg-type]
        o = chunk_attention(q, k, v, kc, vc, *state, layout)
        n = adaln_norm(x, sh, sc, "rms")
    assert calls == ([] if backend == "torch" else ["chunk_attention_triton",
                                                    "adaln_norm_triton"])
    assert (o - chunk_attention_ref(q, k, v, kc, vc, *state, layout)).abs().max() < 1e-5
    assert (n - adaln_norm_ref(x, sh, sc, "rms")).abs().max() < 1e-5


def test_interpreted_and_compiled_kernels_coexist() -> None:
    """Interpreting first must not turn the compiled kernels (or triton's own
    library) into interpreted ones, and the reverse order must still interpret."""
    import subprocess
    import sys

    code = """
import torch
from kernels._dispatch import kernel_module
from triton.runtime.jit import JITFunction
x, s = torch.randn(1, 4, 32), torch.randn(1, 1, 32)
tn = kernel_module('kernels.triton_norm', torch.device('cpu'))
tn.adaln_norm_triton(x, s, s)
import kernels.triton_norm as compiled
import triton.language as tl
assert isinstance(compiled._adaln_norm_fwd, JITFunction), type(compiled._adaln_norm_fwd)
assert isinstance(tl.sum, JITFunction), type(tl.sum)
ta = kernel_module('kernels.triton_attention', torch.device('cpu'))
assert not isinstance(ta._chunk_attn_fwd, JITFunction)
print('ok')
"""
    env = {k: v for k, v in _dispatch.os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=str(Path(__file__).resolve().parents[2]), timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
