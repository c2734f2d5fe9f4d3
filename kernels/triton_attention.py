"""Triton forward chunk attention over the sink + ring-buffer KV cache.

One program owns BLOCK_M query rows of one (session, head). It walks three key
ranges with an online softmax (FlashAttention, Dao et al. 2022: running max and
normaliser per row, scores never written to memory):

1. the identity sink, slots [0, sink_len[b]), against the queries rotated at the
   sink clock;
2. the window in age order, logical token j in [0, window_len[b] * T): frame rank
   r = j // T lives in slot sink_tokens + ((ring_start[b] + r) % window) * T + j % T,
   so the ring is read in place, wrap-around included, with no gather copy;
3. the chunk's own keys (bidirectional);

the last two against the queries rotated at the stream clock (`kernels.layout`).
Loop bounds are the session's valid lengths, so blocks of invalid sink or window
slots are never loaded at all (not merely masked). No RoPE happens here: cached keys
were stored rotated and `kernels.attention.chunk_attention` rotates the chunk's
queries and keys once per call (`kernels.triton_rope`), so the inner loop is a plain
flash-attention step. Matmuls take the input dtype (bf16/fp16 tensor cores, fp32 as
IEEE fp32) and accumulate in fp32.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from kernels._dispatch import autotuning, interpreter_env, interpreting
from kernels.layout import CacheLayout
from kernels.triton_common import round_to

LOG2E = 1.4426950408889634
INTERPRETED = interpreting()    # this copy's kernels run under Triton's interpreter


@triton.jit
def _attend(q, k, v, valid, m_i, l_i, acc, qk_scale, IEEE: tl.constexpr,
            INTERP: tl.constexpr, MASKED: tl.constexpr = True):
    """One online-softmax step of a (BLOCK_M, D) query tile against a key block.
    INTERP (Triton's interpreter, whose tl.dot multiplies bf16's raw uint16 storage)
    feeds fp32 dots instead: the same exact products and fp32 sums that bf16 tensor
    cores compute."""
    if INTERP:
        s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee")
    elif IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    if MASKED:
        s = tl.where(valid[None, :], s * qk_scale, float("-inf"))   # log2 units
    else:
        s = s * qk_scale
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    pl = round_to(p, v.dtype, INTERP)
    if INTERP:
        pv = tl.dot(pl.to(tl.float32), v.to(tl.float32), input_precision="ieee")
    elif IEEE:
        pv = tl.dot(pl, v, input_precision="ieee")
    else:
        pv = tl.dot(pl, v)
    acc = acc * alpha[:, None] + pv
    return m_new, l_i, acc


@triton.jit
def _attend_rows(q, k_base, v_base, rows, valid, sk, sv, offs_d, m_i, l_i, acc, qk_scale,
                 IEEE: tl.constexpr, INTERP: tl.constexpr, MASKED: tl.constexpr):
    """Load the key and value rows `rows` (int32 offsets from the (session, head)
    bases; masked by `valid` when MASKED) and take one online-softmax step."""
    k_ptr = k_base + rows[:, None] * sk + offs_d[None, :]
    v_ptr = v_base + rows[:, None] * sv + offs_d[None, :]
    if MASKED:
        k = tl.load(k_ptr, mask=valid[:, None], other=0.0)
        v = tl.load(v_ptr, mask=valid[:, None], other=0.0)
    else:
        k = tl.load(k_ptr)
        v = tl.load(v_ptr)
    return _attend(q, k, v, valid, m_i, l_i, acc, qk_scale, IEEE, INTERP, MASKED)


@triton.jit
def _chunk_attn_fwd(
    QS, QR, KN, V, KC, VC, O, SINK_LEN, RING_START, WINDOW_LEN, VISITED,
    sqb, sqh, sql, svb, svh, svl, scb, sch, scl, sdb, sdh, sdl,
    H, Lq, sink_tokens, T, W, qk_scale,
    D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IEEE: tl.constexpr, INTERP: tl.constexpr, COUNT: tl.constexpr, ALIGNED: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b64 = (pid_bh // H).to(tl.int64)
    h64 = (pid_bh % H).to(tl.int64)
    sink_len = tl.load(SINK_LEN + b64)
    ring_start = tl.load(RING_START + b64)
    window_len = tl.load(WINDOW_LEN + b64)

    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < Lq
    q_off = b64 * sqb + h64 * sqh + offs_m[:, None].to(tl.int64) * sql + offs_d[None, :]

    n_visited = pid_m * 0                                # key blocks read (COUNT)
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    kc_base = KC + b64 * scb + h64 * sch
    vc_base = VC + b64 * sdb + h64 * sdh

    # 1. identity sink, queries at the sink clock; only the session's valid slots.
    # Row offsets are int32 (a head's cache is far below 2^31 elements); the
    # (session, head) base is int64.
    q = tl.load(QS + q_off, mask=m_mask[:, None], other=0.0)
    for start in range(0, sink_len, BLOCK_N):
        rows = start + offs_n
        m_i, l_i, acc = _attend_rows(q, kc_base, vc_base, rows, rows < sink_len, scl, sdl,
                                     offs_d, m_i, l_i, acc, qk_scale, IEEE, INTERP, True)
        n_visited += 1

    # 2. window, oldest frame first, read in place from the ring; stream-clock queries
    q = tl.load(QR + q_off, mask=m_mask[:, None], other=0.0)
    if ALIGNED:
        # BLOCK_N divides T: a block lies inside one frame, so its rows are one
        # contiguous run from a scalar base (vectorised, pipelined loads), all valid
        per_frame = T // BLOCK_N
        for i in range(0, window_len * per_frame):
            r = i // per_frame
            rows = (sink_tokens + ((ring_start + r) % W) * T + (i - r * per_frame) * BLOCK_N
                    + offs_n)
            m_i, l_i, acc = _attend_rows(q, kc_base, vc_base, rows, offs_n, scl, sdl, offs_d,
                                         m_i, l_i, acc, qk_scale, IEEE, INTERP, False)
            n_visited += 1
    else:
        n_win = window_len * T
        for start in range(0, n_win, BLOCK_N):
            j = start + offs_n
            valid = j < n_win
            rows = tl.where(valid, sink_tokens + ((ring_start + j // T) % W) * T + j % T, 0)
            m_i, l_i, acc = _attend_rows(q, kc_base, vc_base, rows, valid, scl, sdl, offs_d,
                                         m_i, l_i, acc, qk_scale, IEEE, INTERP, True)
            n_visited += 1

    # 3. the chunk itself, bidirectional (Lq = K * T: whole blocks when ALIGNED)
    k_base = KN + b64 * sqb + h64 * sqh
    v_base = V + b64 * svb + h64 * svh
    for start in range(0, Lq, BLOCK_N):
        rows = start + offs_n
        m_i, l_i, acc = _attend_rows(q, k_base, v_base, rows, rows < Lq, sql, svl, offs_d,
                                     m_i, l_i, acc, qk_scale, IEEE, INTERP, not ALIGNED)
        n_visited += 1

    out = acc / l_i[:, None]
    o_ptr = O + (pid_bh.to(tl.int64) * Lq + offs_m[:, None].to(tl.int64)) * D + offs_d[None, :]
    tl.store(o_ptr, round_to(out, O.dtype.element_ty, INTERP), mask=m_mask[:, None])
    if COUNT:
        tl.store(VISITED + pid_bh * tl.num_programs(0) + pid_m, n_visited)


# BLOCK_M, BLOCK_N, warps, stages. sm_90 cubins of these (D = 64, bf16) use 128-204
# registers per thread with no spills; (128, 64, 4 warps) spilled and is left out.
CONFIGS = ((64, 64, 4, 3), (64, 64, 4, 4), (128, 64, 8, 3), (128, 64, 8, 4), (64, 32, 4, 3),
           (128, 32, 8, 3), (64, 128, 4, 3), (128, 128, 8, 3))

if INTERPRETED:
    _launch = _chunk_attn_fwd
else:  # compiled: pick tile sizes per shape on first use
    _launch = triton.autotune(
        configs=[triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                 for bm, bn, w, s in CONFIGS],
        key=["Lq", "sink_tokens", "T", "W", "D", "IEEE"],
    )(triton.heuristics({"ALIGNED": lambda a: a["T"] % a["BLOCK_N"] == 0})(_chunk_attn_fwd))


def _rows_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def kernel_args(q_sink: torch.Tensor, q_rest: torch.Tensor, k_chunk: torch.Tensor,
                v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                sink_len: torch.Tensor, ring_start: torch.Tensor, window_len: torch.Tensor,
                layout: CacheLayout, out: torch.Tensor | None = None,
                visited: torch.Tensor | None = None) -> tuple:
    """The kernel's positional arguments (q_sink, q_rest and k_chunk made contiguous,
    the rest row-contiguous, `out` allocated), shared by `chunk_attention_triton` and
    bench/kernels_profile.py."""
    B, H, Lq, D = q_sink.shape
    if D not in (32, 64, 128):
        raise ValueError(f"head dim must be 32, 64 or 128, got {D}")
    if Lq != layout.chunk_tokens or k_cache.shape[2] != layout.capacity:
        raise ValueError(f"shapes {tuple(q_sink.shape)} / {tuple(k_cache.shape)} do not "
                         f"match {layout}")
    q_sink, q_rest, k_chunk = (t.contiguous() for t in (q_sink, q_rest, k_chunk))
    v, k_cache, v_cache = (_rows_contiguous(t) for t in (v, k_cache, v_cache))
    if out is None:
        out = torch.empty_like(q_sink)
    assert out.is_contiguous() and out.shape == q_sink.shape and out.dtype == q_sink.dtype
    i32 = torch.int32
    return (q_sink, q_rest, k_chunk, v, k_cache, v_cache, out, sink_len.to(i32),
            ring_start.to(i32), window_len.to(i32), out if visited is None else visited,
            q_sink.stride(0), q_sink.stride(1), q_sink.stride(2),
            v.stride(0), v.stride(1), v.stride(2),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
            H, Lq, layout.sink_tokens, layout.tokens_per_frame, layout.window,
            D**-0.5 * LOG2E)


def chunk_attention_triton(
    q_sink: torch.Tensor,       # (B, H, Lq, D) queries rotated at the sink clock
    q_rest: torch.Tensor,       # (B, H, Lq, D) queries rotated at the stream clock
    k_chunk: torch.Tensor,      # (B, H, Lq, D) chunk keys rotated at the stream clock
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) keys as stored (rotated)
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32
    ring_start: torch.Tensor,   # (B,) int32
    window_len: torch.Tensor,   # (B,) int32
    layout: CacheLayout,
    out: torch.Tensor | None = None,            # (B, H, Lq, D) contiguous, q's dtype
    block: tuple[int, int] | None = None,       # (BLOCK_M, BLOCK_N), else tuned/default
    visited: torch.Tensor | None = None,        # (B*H*n_qblocks,) int32, test hook
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    """Same semantics as `kernels.torch_attention.chunk_attention_torch`. `out`
    (optional) receives the result; `block` fixes the tile sizes (the interpreter's
    default is 32 x 32; compiled code autotunes, or takes 64 x 64 with
    MARIONETTE_AUTOTUNE=0); `visited`, with `block`, receives the
    number of key blocks each program read (program (b*H + h) * n_qblocks + m)."""
    B, H, Lq, D = q_sink.shape
    args = kernel_args(q_sink, q_rest, k_chunk, v, k_cache, v_cache, sink_len, ring_start,
                       window_len, layout, out, visited)
    out = args[6]
    ieee = q_sink.dtype == torch.float32
    if INTERPRETED or block is not None or not autotuning():
        bm, bn = block or ((32, 32) if INTERPRETED else (64, 64))
        grid = (triton.cdiv(Lq, bm), B * H)
        if visited is not None:
            assert visited.dtype == torch.int32 and visited.numel() == grid[0] * grid[1]
        with interpreter_env() if INTERPRETED else contextlib.nullcontext():
            _chunk_attn_fwd[grid](*args, D=D, BLOCK_M=bm, BLOCK_N=bn, IEEE=ieee,
                                  INTERP=INTERPRETED, COUNT=visited is not None,
                                  ALIGNED=layout.tokens_per_frame % bn == 0)
    else:
        def tuned_grid(meta: dict) -> tuple[int, int]:
            return (triton.cdiv(Lq, meta["BLOCK_M"]), B * H)

        if visited is not None:
            raise ValueError("visited needs a fixed block")
        _launch[tuned_grid](*args, D=D, IEEE=ieee, INTERP=False, COUNT=False)
    return out
