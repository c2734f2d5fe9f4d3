"""Chunk attention: the current chunk's queries against the identity sink, the
ring-buffered window of past frames and the chunk itself (bidirectional inside the
chunk). Layout, positions and what is stored rotated: `kernels.layout`.

`chunk_attention` is the one entry point; `chunk_attention_ref` is the fp32
reference every other path is judged against. The entry point rotates the chunk's
queries (twice: for the sink and for the rest) and keys once (on CUDA in one Triton
launch, `kernels.triton_rope.rope_qk_triton`; else `kernels.rope.rope_rows`), then runs
`kernels.triton_attention.chunk_attention_triton` (Triton) or
`kernels.torch_attention.chunk_attention_torch` (PyTorch), neither of which applies
any RoPE: cached keys were rotated when they were written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels._dispatch import backend_for, kernel_module
from kernels.layout import CacheLayout
from kernels.rope import rope_cos_sin, rope_rows, rotate


@dataclass(frozen=True)
class ChunkRope:
    """cos/sin (fp32) that rotate one chunk's tokens, shared by every layer and
    denoising step of the chunk: `sink_*` (Lq, D/2) at the sink clock (t = W + 1 + j),
    `cos`/`sin` (B, Lq, D/2) at the stream's clock (t = frame_pos + j), and `shift_*`
    (B, 1, D/2): the time rotation by frame_pos - W - 1 that moves the sink's stored
    keys onto the stream's clock (the PyTorch path's alternative to a second query
    rotation: one query set, one fused SDPA)."""
    sink_cos: torch.Tensor
    sink_sin: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    shift_cos: torch.Tensor
    shift_sin: torch.Tensor


def chunk_rope(layout: CacheLayout, frame_pos: torch.Tensor, head_dim: int) -> ChunkRope:
    sink_cos, sink_sin = rope_cos_sin(layout.chunk_positions(frame_pos.device), head_dim)
    cos, sin = rope_cos_sin(layout.chunk_abs_positions(frame_pos), head_dim)
    shift = torch.zeros(frame_pos.shape[0], 1, 3, dtype=torch.long, device=frame_pos.device)
    shift[..., 0] = frame_pos[:, None].long() - layout.window - 1
    return ChunkRope(sink_cos, sink_sin, cos, sin, *rope_cos_sin(shift, head_dim))


def chunk_attention_ref(
    q: torch.Tensor,            # (B, H, Lq, D) chunk queries, un-rotated
    k: torch.Tensor,            # (B, H, Lq, D) chunk keys, un-rotated
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) keys rotated at their stored positions
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32 valid sink tokens
    ring_start: torch.Tensor,   # (B,) int32 slot of the oldest valid window frame
    window_len: torch.Tensor,   # (B,) int32 valid window frames
    frame_pos: torch.Tensor,    # (B,) integer stream index of the chunk's first frame
    layout: CacheLayout,
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    D, S = q.shape[-1], layout.capacity
    _, window_valid = layout.cache_positions(ring_start, window_len)           # (B, S)
    slots = torch.arange(S, device=q.device)
    valid = window_valid | (slots[None, :] < sink_len[:, None].long())       # (B, S)
    rope = chunk_rope(layout, frame_pos, D)

    q_sink = rotate(q.float(), rope.sink_cos, rope.sink_sin)
    q_rest = rotate(q.float(), rope.cos[:, None], rope.sin[:, None])
    k_chunk = rotate(k.float(), rope.cos[:, None], rope.sin[:, None])
    kc_t = k_cache.float().transpose(-1, -2)
    in_sink = slots < layout.sink_tokens                                         # (S,)
    scores = torch.cat((torch.where(in_sink, q_sink @ kc_t, q_rest @ kc_t),
                        q_rest @ k_chunk.transpose(-1, -2)), dim=-1) * D**-0.5
    keep = torch.cat((valid, valid.new_ones(valid.shape[0], q.shape[2])), dim=1)  # (B, S+Lq)
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    vv = torch.cat((v_cache.float(), v.float()), dim=2)
    return (scores.softmax(dim=-1) @ vv).to(q.dtype)


def chunk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    sink_len: torch.Tensor,
    ring_start: torch.Tensor,
    window_len: torch.Tensor,
    frame_pos: torch.Tensor,
    layout: CacheLayout,
    rope: ChunkRope | None = None,
) -> torch.Tensor:
    """Dispatching entry point; same arguments as `chunk_attention_ref`. `rope`: the
    chunk's tables when the caller already has them (the model computes them once per
    chunk), else computed here."""
    if rope is None:
        rope = chunk_rope(layout, frame_pos, q.shape[-1])
    if backend_for(q, k, v, k_cache, v_cache) == "triton":
        q_sink, q_rest, k_chunk = kernel_module("kernels.triton_rope", q.device).rope_qk_triton(
            q, k, rope.sink_cos, rope.sink_sin, rope.cos, rope.sin)       # one launch
        mod = kernel_module("kernels.triton_attention", q.device)
        return mod.chunk_attention_triton(q_sink, q_rest, k_chunk, v, k_cache, v_cache,
                                          sink_len, ring_start, window_len, layout)
    from kernels.torch_attention import chunk_attention_torch

    return chunk_attention_torch(rope_rows(q, rope.cos, rope.sin),
                                 rope_rows(k, rope.cos, rope.sin), v, k_cache, v_cache,
                                 sink_len, ring_start, window_len, layout, rope.shift_cos,
                                 rope.shift_sin)
