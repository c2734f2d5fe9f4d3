"""The compiled (non-interpreted) kernels lower all the way to Hopper machine code
on this GPU-less machine: Triton -> TTGIR -> PTX -> cubin for sm_90 with the ptxas
bundled in the triton wheel. Catches what the interpreter cannot (types of
loop-carried values, dot shapes, shared-memory overflow) before a GPU ever sees it;
speed and numerics on the GPU are bench/kernels.py's job."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import kernels.triton_attention as ta
import kernels.triton_norm as tn

pytestmark = pytest.mark.slow

H100 = GPUTarget("cuda", 90, 32)
H100_SMEM = 227 * 1024


@pytest.fixture(autouse=True, scope="module")
def _need_ptxas() -> None:
    if ta.INTERPRETED:
        pytest.skip("TRITON_INTERPRET=1 at import: no compiled kernels in this process")
    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists():
        pytest.skip("this triton wheel ships no ptxas")


def compile_(fn, pointers: dict[str, str], scalars: dict[str, str], const: dict,
             num_warps: int, num_stages: int, divisible: tuple[str, ...] = ()):
    """AOT-compile for sm_90. `divisible`: integer arguments known to be multiples of
    16, as Triton's launcher specialises them at run time (pointers always are: torch
    allocations are 16-byte aligned); without it the compiler cannot vectorise loads."""
    sig = {n: "i32" for n in fn.arg_names}
    sig.update(pointers)
    sig.update(scalars)
    sig.update({k: "constexpr" for k in const})
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names)
             if n in pointers or n in divisible}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return triton.compile(ASTSource(fn, sig, const, attrs), target=H100,
                              options=dict(num_warps=num_warps, num_stages=num_stages))


@pytest.mark.parametrize("dtype,D,ieee,aligned", [("bf16", 64, False, True),
                                                  ("bf16", 128, False, False),
                                                  ("fp32", 32, True, True)])
def test_attention_compiles_for_h100(dtype: str, D: int, ieee: bool, aligned: bool) -> None:
    ptrs = {n: "*" + dtype for n in ("QS", "QR", "KN", "V", "KC", "VC", "O")}
    ptrs.update({n: "*i32" for n in ("SINK_LEN", "RING_START", "WINDOW_LEN", "VISITED")})
    k = compile_(ta._chunk_attn_fwd, ptrs, {"qk_scale": "fp32"},
                 dict(D=D, BLOCK_M=128, BLOCK_N=64, IEEE=ieee, INTERP=False, COUNT=True,
                      ALIGNED=aligned),
                 num_warps=8, num_stages=3,
                 divisible=("sqb", "sqh", "sql", "svb", "svh", "svl", "scb", "sch", "scl",
                            "sdb", "sdh", "sdl", "Lq", "sink_tokens", "T"))
    assert k.metadata.shared <= H100_SMEM
    ptx = k.asm["ptx"]
    if not ieee:   # bf16 matmuls on Hopper tensor cores
        assert "wgmma" in ptx or "mma.sync" in ptx
    if aligned:    # key/value tiles stream through shared memory, pipelined
        assert "cp.async" in ptx and "ld.global.b16" not in ptx


def test_rope_compiles_for_h100() -> None:
    import kernels.triton_rope as tr

    compile_(tr._rope_qk_fwd, {n: "*bf16" for n in ("Q", "K", "QS", "QR", "KR")}
             | {n: "*fp32" for n in ("SCOS", "SSIN", "COS", "SIN")}, {},
             dict(HALF=32, BLOCK_L=64, INTERP=False), num_warps=4, num_stages=1)

    compile_(tr._rope_rows_fwd, {"X": "*bf16", "COS": "*fp32", "SIN": "*fp32", "O": "*bf16",
                                 "SLOTS": "*i32"}, {},
             dict(HALF=32, BLOCK_L=64, SLOTTED=True, INTERP=False), num_warps=4, num_stages=1)


@pytest.mark.parametrize("uniform", [True, False])
def test_norm_compiles_for_h100(uniform: bool) -> None:
    block_r, block_c, warps = tn._tiles(768)
    compile_(tn._adaln_norm_fwd, {n: "*bf16" for n in ("X", "SHIFT", "SCALE", "O")},
             {"eps": "fp32"}, dict(RMS=False, INTERP=False, UNIFORM=uniform, BLOCK_R=block_r,
                                   BLOCK_C=block_c),
             num_warps=warps, num_stages=1)


def test_compiling_still_works_after_interpreting(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton's interpreter leaves language patches behind after a kernel that calls
    a helper function; `interpreter_env` must undo them, or compiling any kernel later
    in the same process (a GPU server that also ran a CPU session) fails."""
    import torch

    from kernels._dispatch import kernel_module
    from kernels.layout import CacheLayout

    lay = CacheLayout(sink_frames=1, window=2, chunk=1, grid=(2, 3))
    B, H, D = 1, 1, 32

    def rnd(n: int) -> torch.Tensor:
        return torch.randn(B, H, n, D)

    i32 = torch.int32
    state = (torch.tensor([6], dtype=i32), torch.tensor([1], dtype=i32),
             torch.tensor([2], dtype=i32))
    interp = kernel_module("kernels.triton_attention", torch.device("cpu"))
    interp.chunk_attention_triton(rnd(6), rnd(6), rnd(6), rnd(6), rnd(18), rnd(18), *state,
                                  lay)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))     # compile for real, no cache hit
    test_attention_compiles_for_h100("bf16", 64, False, True)
    assert any(tmp_path.rglob("*.cubin"))
