"""Triton forward chunk attention over the sink + ring-buffer KV cache.

One program owns BLOCK_M query rows of one (session, head). It walks three key
ranges with an online softmax (FlashAttention, Dao et al. 2022: running max and
normaliser per row, scores never written to memory):

1. the identity sink, slots [0, sink_len[b]);
2. the window in age order, logical token j in [0, window_len[b] * T): frame rank
   r = j // T lives in slot sink_tokens + ((ring_start[b] + r) % window) * T + j % T,
   so the ring is read in place, wrap-around included, with no gather copy;
3. the chunk's own keys (bidirectional).

Loop bounds are the session's valid lengths, so blocks of invalid sink or window
slots are never loaded at all (not merely masked). RoPE (kernels/rope.py) is
applied as q and k tiles are loaded, from per-position cos/sin tables computed
with exactly rope.py's fp32 angles; positions follow kernels/layout.py.
Matmuls take the input dtype (bf16/fp16 tensor cores, fp32 as IEEE fp32) and
accumulate in fp32.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl

from kernels._dispatch import interpreter_env, interpreting
from kernels.layout import CacheLayout
from kernels.rope import rope_tables

LOG2E = 1.4426950408889634
INTERPRETED = interpreting()    # this copy's kernels run under Triton's interpreter


@triton.jit
def _rotate(x1, x2, t, y, x, COS, SIN, axis, offs_h, P, HALF: tl.constexpr):
    """Rotate-half RoPE of a (N, HALF) pair of halves at positions t, y, x (N,)."""
    pos = tl.where(axis[None, :] == 0, t[:, None],
                   tl.where(axis[None, :] == 1, y[:, None], x[:, None]))
    pos = tl.minimum(tl.maximum(pos, 0), P - 1)          # padded rows: stay in the table
    idx = pos * HALF + offs_h[None, :]
    c = tl.load(COS + idx)
    s = tl.load(SIN + idx)
    return x1 * c - x2 * s, x2 * c + x1 * s


@triton.jit
def _round(x, dtype: tl.constexpr, INTERP: tl.constexpr):
    """fp32 -> dtype, rounding to nearest even as compiled code does. Triton's
    interpreter truncates fp32 -> bf16, so there the rounding is done on the bits
    first (add half an ulp of bf16, ties to even, clear the low 16 bits)."""
    if INTERP and dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        x = bits.to(tl.float32, bitcast=True)
    return x.to(dtype)


@triton.jit
def _attend(q1, q2, k1, k2, v, valid, m_i, l_i, acc, qk_scale, IEEE: tl.constexpr,
            INTERP: tl.constexpr):
    """One online-softmax step of (BLOCK_M, HALF) query halves against a key block.
    Operands arrive rounded to the input dtype. INTERP (Triton's interpreter, whose
    tl.dot multiplies bf16's raw uint16 storage) feeds them to fp32 dots instead:
    the same exact products and fp32 sums that bf16 tensor cores compute."""
    if INTERP:
        s = tl.dot(q1.to(tl.float32), tl.trans(k1.to(tl.float32)), input_precision="ieee")
        s += tl.dot(q2.to(tl.float32), tl.trans(k2.to(tl.float32)), input_precision="ieee")
    elif IEEE:
        s = tl.dot(q1, tl.trans(k1), input_precision="ieee")
        s += tl.dot(q2, tl.trans(k2), input_precision="ieee")
    else:
        s = tl.dot(q1, tl.trans(k1))
        s += tl.dot(q2, tl.trans(k2))
    s = tl.where(valid[None, :], s * qk_scale, float("-inf"))   # log2 units
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    pl = _round(p, v.dtype, INTERP)
    if INTERP:
        pv = tl.dot(pl.to(tl.float32), v.to(tl.float32), input_precision="ieee")
    elif IEEE:
        pv = tl.dot(pl, v, input_precision="ieee")
    else:
        pv = tl.dot(pl, v)
    acc = acc * alpha[:, None] + pv
    return m_new, l_i, acc


@triton.jit
def _chunk_attn_fwd(
    Q, K, V, KC, VC, O, COS, SIN, AXIS, SINK_LEN, RING_START, WINDOW_LEN, VISITED,
    sqb, sqh, sql, skb, skh, skl, svb, svh, svl,
    scb, sch, scl, sdb, sdh, sdl,
    H, Lq, sink_tokens, T, grid_w, W, P, qk_scale,
    HALF: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IEEE: tl.constexpr, INTERP: tl.constexpr, COUNT: tl.constexpr,
    ROPE_K: tl.constexpr = True,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    b64 = b.to(tl.int64)
    h64 = h.to(tl.int64)
    sink_len = tl.load(SINK_LEN + b)
    ring_start = tl.load(RING_START + b)
    window_len = tl.load(WINDOW_LEN + b)

    offs_h = tl.arange(0, HALF)
    axis = tl.load(AXIS + offs_h)
    offs_n = tl.arange(0, BLOCK_N)

    # queries: load both halves, rotate in fp32, round back to the input dtype
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < Lq
    q_ptr = Q + b64 * sqb + h64 * sqh + offs_m[:, None].to(tl.int64) * sql + offs_h[None, :]
    q1 = tl.load(q_ptr, mask=m_mask[:, None], other=0.0)
    q2 = tl.load(q_ptr + HALF, mask=m_mask[:, None], other=0.0)
    dtype = q1.dtype
    pq = offs_m % T
    q1, q2 = _rotate(q1.to(tl.float32), q2.to(tl.float32), W + 1 + offs_m // T,
                     pq // grid_w, pq % grid_w, COS, SIN, axis, offs_h, P, HALF)
    q1 = _round(q1, dtype, INTERP)
    q2 = _round(q2, dtype, INTERP)

    n_visited = pid_m * 0                                # key blocks read (COUNT)
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, 2 * HALF], dtype=tl.float32)
    offs_d = tl.arange(0, 2 * HALF)
    kc_base = KC + b64 * scb + h64 * sch
    vc_base = VC + b64 * sdb + h64 * sdh

    # 1. identity sink: t = 0, only the session's valid slots
    for start in range(0, sink_len, BLOCK_N):
        s_idx = start + offs_n
        valid = s_idx < sink_len
        rows = s_idx.to(tl.int64)
        k_ptr = kc_base + rows[:, None] * scl + offs_h[None, :]
        k1 = tl.load(k_ptr, mask=valid[:, None], other=0.0)
        k2 = tl.load(k_ptr + HALF, mask=valid[:, None], other=0.0)
        if ROPE_K:
            p = s_idx % T
            k1, k2 = _rotate(k1.to(tl.float32), k2.to(tl.float32), s_idx * 0, p // grid_w,
                             p % grid_w, COS, SIN, axis, offs_h, P, HALF)
            k1 = _round(k1, dtype, INTERP)
            k2 = _round(k2, dtype, INTERP)
        v = tl.load(vc_base + rows[:, None] * sdl + offs_d[None, :], mask=valid[:, None],
                    other=0.0)
        m_i, l_i, acc = _attend(q1, q2, k1, k2, v, valid, m_i, l_i, acc, qk_scale, IEEE,
                                INTERP)
        n_visited += 1

    # 2. window, oldest frame first, read in place from the ring
    n_win = window_len * T
    for start in range(0, n_win, BLOCK_N):
        j = start + offs_n
        valid = j < n_win
        rank = j // T
        p = j % T
        slot = sink_tokens + ((ring_start + rank) % W) * T + p
        rows = tl.where(valid, slot, 0).to(tl.int64)
        k_ptr = kc_base + rows[:, None] * scl + offs_h[None, :]
        k1 = tl.load(k_ptr, mask=valid[:, None], other=0.0)
        k2 = tl.load(k_ptr + HALF, mask=valid[:, None], other=0.0)
        if ROPE_K:
            k1, k2 = _rotate(k1.to(tl.float32), k2.to(tl.float32), W - window_len + 1 + rank,
                             p // grid_w, p % grid_w, COS, SIN, axis, offs_h, P, HALF)
            k1 = _round(k1, dtype, INTERP)
            k2 = _round(k2, dtype, INTERP)
        v = tl.load(vc_base + rows[:, None] * sdl + offs_d[None, :], mask=valid[:, None],
                    other=0.0)
        m_i, l_i, acc = _attend(q1, q2, k1, k2, v, valid, m_i, l_i, acc, qk_scale, IEEE,
                                INTERP)
        n_visited += 1

    # 3. the chunk itself, bidirectional
    k_base = K + b64 * skb + h64 * skh
    v_base = V + b64 * svb + h64 * svh
    for start in range(0, Lq, BLOCK_N):
        c_idx = start + offs_n
        valid = c_idx < Lq
        rows = c_idx.to(tl.int64)
        k_ptr = k_base + rows[:, None] * skl + offs_h[None, :]
        k1 = tl.load(k_ptr, mask=valid[:, None], other=0.0)
        k2 = tl.load(k_ptr + HALF, mask=valid[:, None], other=0.0)
        if ROPE_K:
            p = c_idx % T
            k1, k2 = _rotate(k1.to(tl.float32), k2.to(tl.float32), W + 1 + c_idx // T,
                             p // grid_w, p % grid_w, COS, SIN, axis, offs_h, P, HALF)
            k1 = _round(k1, dtype, INTERP)
            k2 = _round(k2, dtype, INTERP)
        v = tl.load(v_base + rows[:, None] * svl + offs_d[None, :], mask=valid[:, None],
                    other=0.0)
        m_i, l_i, acc = _attend(q1, q2, k1, k2, v, valid, m_i, l_i, acc, qk_scale, IEEE,
                                INTERP)
        n_visited += 1

    out = acc / l_i[:, None]
    o_ptr = (O + (pid_bh.to(tl.int64) * Lq + offs_m[:, None].to(tl.int64)) * (2 * HALF)
             + offs_d[None, :])
    tl.store(o_ptr, _round(out, O.dtype.element_ty, INTERP), mask=m_mask[:, None])
    if COUNT:
        tl.store(VISITED + pid_bh * tl.num_programs(0) + pid_m, n_visited)


if INTERPRETED:
    _launch = _chunk_attn_fwd
else:  # compiled: pick tile sizes per shape on first use
    _launch = triton.autotune(
        configs=[
            triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bm, bn, w, s in ((64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 8, 2),
                                 (128, 64, 8, 3), (64, 32, 4, 3), (128, 32, 4, 3),
                                 (64, 128, 4, 2), (128, 128, 8, 2))
        ],
        key=["Lq", "sink_tokens", "T", "W", "HALF", "IEEE"],
    )(_chunk_attn_fwd)


@functools.lru_cache(maxsize=64)
def _tables(head_dim: int, n_pos: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return rope_tables(head_dim, n_pos, device)


def _rows_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def kernel_args(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                v_cache: torch.Tensor, sink_len: torch.Tensor, ring_start: torch.Tensor,
                window_len: torch.Tensor, layout: CacheLayout, out: torch.Tensor | None = None,
                visited: torch.Tensor | None = None) -> tuple:
    """The kernel's positional arguments (tensors made row-contiguous, `out`
    allocated), shared by `chunk_attention_triton` and bench/kernels_profile.py."""
    B, H, Lq, D = q.shape
    if D not in (32, 64, 128):
        raise ValueError(f"head dim must be 32, 64 or 128, got {D}")
    if Lq != layout.chunk_tokens or k_cache.shape[2] != layout.capacity:
        raise ValueError(f"shapes {tuple(q.shape)} / {tuple(k_cache.shape)} do not match "
                         f"{layout}")
    q, k, v = (_rows_contiguous(t) for t in (q, k, v))
    k_cache, v_cache = _rows_contiguous(k_cache), _rows_contiguous(v_cache)
    if out is None:
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
    assert out.is_contiguous() and out.shape == q.shape and out.dtype == q.dtype
    n_pos = max(layout.window + layout.chunk + 1, *layout.grid)
    cos, sin, axis = _tables(D, n_pos, q.device)
    i32 = torch.int32
    return (q, k, v, k_cache, v_cache, out, cos, sin, axis, sink_len.to(i32),
            ring_start.to(i32), window_len.to(i32), out if visited is None else visited,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
            H, Lq, layout.sink_tokens, layout.tokens_per_frame, layout.grid[1],
            layout.window, n_pos, D**-0.5 * LOG2E)


def chunk_attention_triton(
    q: torch.Tensor,            # (B, H, Lq, D) chunk queries, un-rotated
    k: torch.Tensor,            # (B, H, Lq, D)
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) un-rotated keys
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32
    ring_start: torch.Tensor,   # (B,) int32
    window_len: torch.Tensor,   # (B,) int32
    layout: CacheLayout,
    out: torch.Tensor | None = None,            # (B, H, Lq, D) contiguous, q's dtype
    block: tuple[int, int] | None = None,       # (BLOCK_M, BLOCK_N), else tuned/default
    visited: torch.Tensor | None = None,        # (B*H*n_qblocks,) int32, test hook
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    """Same semantics as `kernels.attention.chunk_attention_ref`. `out` (optional)
    receives the result; `block` fixes the tile sizes (the interpreter's default is
    32 x 32, compiled code autotunes); `visited`, with `block`, receives the number
    of key blocks each program read (program (b*H + h) * n_qblocks + m)."""
    B, H, Lq, D = q.shape
    args = kernel_args(q, k, v, k_cache, v_cache, sink_len, ring_start, window_len, layout,
                       out, visited)
    q, out = args[0], args[5]
    i32 = torch.int32
    ieee = q.dtype == torch.float32
    if INTERPRETED or block is not None:
        bm, bn = block or (32, 32)
        grid = (triton.cdiv(Lq, bm), B * H)
        if visited is not None:
            assert visited.dtype == i32 and visited.numel() == grid[0] * grid[1]
        with interpreter_env() if INTERPRETED else contextlib.nullcontext():
            _chunk_attn_fwd[grid](*args, HALF=D // 2, BLOCK_M=bm, BLOCK_N=bn, IEEE=ieee,
                                  INTERP=INTERPRETED, COUNT=visited is not None)
    else:
        def tuned_grid(meta: dict) -> tuple[int, int]:
            return (triton.cdiv(Lq, meta["BLOCK_M"]), B * H)

        if visited is not None:
            raise ValueError("visited needs a fixed block")
        _launch[tuned_grid](*args, HALF=D // 2, IEEE=ieee, INTERP=False, COUNT=False)
    return out
