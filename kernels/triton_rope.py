"""Triton RoPE over rows: rotate (B, H, L, D) rows by per-row cos/sin in one pass,
optionally writing each row straight into its KV-cache slot (the cache write of a
chunk's keys: rotate + scatter fused). Semantics: `kernels.rope.rope_rows`."""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from kernels._dispatch import interpreter_env, interpreting
from kernels.triton_common import round_to

INTERPRETED = interpreting()


@triton.jit
def _rope_rows_fwd(
    X, COS, SIN, O, SLOTS,
    sxb, sxh, sxl, scb, sob, soh, sol,
    H, L,
    HALF: tl.constexpr, BLOCK_L: tl.constexpr, SLOTTED: tl.constexpr, INTERP: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask = offs_l < L
    offs_h = tl.arange(0, HALF)
    x_ptr = X + b * sxb + h * sxh + offs_l[:, None].to(tl.int64) * sxl + offs_h[None, :]
    x1 = tl.load(x_ptr, mask=mask[:, None], other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + HALF, mask=mask[:, None], other=0.0).to(tl.float32)
    t_off = b * scb + offs_l[:, None] * HALF + offs_h[None, :]
    c = tl.load(COS + t_off, mask=mask[:, None], other=0.0)
    s = tl.load(SIN + t_off, mask=mask[:, None], other=0.0)
    if SLOTTED:
        rows = tl.load(SLOTS + b * L + offs_l, mask=mask, other=0).to(tl.int64)
    else:
        rows = offs_l.to(tl.int64)
    o_ptr = O + b * sob + h * soh + rows[:, None] * sol + offs_h[None, :]
    dtype = O.dtype.element_ty
    tl.store(o_ptr, round_to(x1 * c - x2 * s, dtype, INTERP), mask=mask[:, None])
    tl.store(o_ptr + HALF, round_to(x2 * c + x1 * s, dtype, INTERP), mask=mask[:, None])


def rope_rows_triton(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     out: torch.Tensor | None = None,
                     slots: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, H, L, D); cos/sin (B or 1, L, D/2) fp32; optional out (B, H, S, D) with
    slots (B, L): see `kernels.rope.rope_rows`."""
    B, H, L, D = x.shape
    if x.stride(-1) != 1:
        x = x.contiguous()
    cos, sin = cos.float().contiguous(), sin.float().contiguous()
    assert cos.shape[-2:] == (L, D // 2) and cos.shape[0] in (1, B)
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        slotted = False
        slots = out                                  # unused pointer
    else:
        assert out.stride(-1) == 1 and slots is not None and slots.shape == (B, L)
        slots = slots.to(torch.int32).contiguous()
        slotted = True
    block_l = 32 if INTERPRETED else max(16, min(128, 8192 // D))
    grid = (triton.cdiv(L, block_l), B * H)
    with interpreter_env() if INTERPRETED else contextlib.nullcontext():
        _rope_rows_fwd[grid](
            x, cos, sin, out, slots,
            x.stride(0), x.stride(1), x.stride(2),
            0 if cos.shape[0] == 1 else L * (D // 2),
            out.stride(0), out.stride(1), out.stride(2), H, L,
            HALF=D // 2, BLOCK_L=block_l, SLOTTED=slotted, INTERP=INTERPRETED)
    return out


@triton.jit
def _rope_qk_fwd(
    Q, K, SCOS, SSIN, COS, SIN, QS, QR, KR,
    sqb, sqh, sql, skb, skh, skl,
    H, L,
    HALF: tl.constexpr, BLOCK_L: tl.constexpr, INTERP: tl.constexpr,
):
    """One pass over a chunk's q and k rows: q rotated at the sink clock (SCOS/SSIN,
    (L, HALF)) and at the stream clock (COS/SIN, (B, L, HALF)), k at the stream clock.
    Outputs are contiguous (B, H, L, D)."""
    pid_l = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask = (offs_l < L)[:, None]
    offs_h = tl.arange(0, HALF)
    row = offs_l[:, None] * HALF + offs_h[None, :]          # (l, i) in a (L, HALF) table
    dtype = QS.dtype.element_ty

    q_ptr = Q + b * sqb + h * sqh + offs_l[:, None].to(tl.int64) * sql + offs_h[None, :]
    q1 = tl.load(q_ptr, mask=mask, other=0.0).to(tl.float32)
    q2 = tl.load(q_ptr + HALF, mask=mask, other=0.0).to(tl.float32)
    k_ptr = K + b * skb + h * skh + offs_l[:, None].to(tl.int64) * skl + offs_h[None, :]
    k1 = tl.load(k_ptr, mask=mask, other=0.0).to(tl.float32)
    k2 = tl.load(k_ptr + HALF, mask=mask, other=0.0).to(tl.float32)
    o_off = (pid_bh.to(tl.int64) * L + offs_l[:, None]) * (2 * HALF) + offs_h[None, :]

    c = tl.load(SCOS + row, mask=mask, other=0.0)
    s = tl.load(SSIN + row, mask=mask, other=0.0)
    tl.store(QS + o_off, round_to(q1 * c - q2 * s, dtype, INTERP), mask=mask)
    tl.store(QS + o_off + HALF, round_to(q2 * c + q1 * s, dtype, INTERP), mask=mask)
    c = tl.load(COS + b * L * HALF + row, mask=mask, other=0.0)
    s = tl.load(SIN + b * L * HALF + row, mask=mask, other=0.0)
    tl.store(QR + o_off, round_to(q1 * c - q2 * s, dtype, INTERP), mask=mask)
    tl.store(QR + o_off + HALF, round_to(q2 * c + q1 * s, dtype, INTERP), mask=mask)
    tl.store(KR + o_off, round_to(k1 * c - k2 * s, dtype, INTERP), mask=mask)
    tl.store(KR + o_off + HALF, round_to(k2 * c + k1 * s, dtype, INTERP), mask=mask)


def rope_qk_triton(q: torch.Tensor, k: torch.Tensor, sink_cos: torch.Tensor,
                   sink_sin: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q at the sink clock, q at the stream clock, k at the stream clock) in one
    launch: q, k (B, H, L, D); sink_cos/sin (L, D/2); cos/sin (B, L, D/2), fp32."""
    B, H, L, D = q.shape
    if q.stride(-1) != 1:
        q = q.contiguous()
    if k.stride(-1) != 1:
        k = k.contiguous()
    assert sink_cos.shape == (L, D // 2) and cos.shape == (B, L, D // 2)
    assert all(t.dtype == torch.float32 and t.is_contiguous()
               for t in (sink_cos, sink_sin, cos, sin))
    q_sink, q_rest, k_rot = (torch.empty((B, H, L, D), dtype=q.dtype, device=q.device)
                             for _ in range(3))
    block_l = 32 if INTERPRETED else max(16, min(128, 8192 // D))
    grid = (triton.cdiv(L, block_l), B * H)
    with interpreter_env() if INTERPRETED else contextlib.nullcontext():
        _rope_qk_fwd[grid](
            q, k, sink_cos, sink_sin, cos, sin, q_sink, q_rest, k_rot,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            H, L, HALF=D // 2, BLOCK_L=block_l, INTERP=INTERPRETED)
    return q_sink, q_rest, k_rot
