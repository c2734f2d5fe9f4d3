"""Helpers shared by the Triton kernels."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_to(x, dtype: tl.constexpr, INTERP: tl.constexpr):
    """fp32 -> dtype, rounding to nearest even as compiled code does. Triton's
    interpreter truncates fp32 -> bf16, so there the rounding is done on the bits
    first (add half an ulp of bf16, ties to even, clear the low 16 bits)."""
    if INTERP and dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        x = bits.to(tl.float32, bitcast=True)
    return x.to(dtype)
