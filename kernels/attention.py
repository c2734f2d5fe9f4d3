"""Chunk attention: the current chunk's queries against the identity sink, the
ring-buffered window of past frames and the chunk itself (bidirectional inside the
chunk). Layout and positions: `kernels.layout`.

`chunk_attention` is the one entry point; `chunk_attention_ref` is the fp32
reference every other path is judged against. The entry point's PyTorch branch
runs `kernels.torch_attention.chunk_attention_torch` (same semantics, ~2x faster
on CPU); its Triton branch `kernels.triton_attention.chunk_attention_triton`.
"""

from __future__ import annotations

import torch

from kernels._dispatch import backend_for, kernel_module
from kernels.layout import CacheLayout
from kernels.rope import apply_rope_ref


def chunk_attention_ref(
    q: torch.Tensor,            # (B, H, Lq, D) chunk queries, un-rotated
    k: torch.Tensor,            # (B, H, Lq, D) chunk keys, un-rotated
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) un-rotated keys, layout.capacity slots
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32 valid sink tokens
    ring_start: torch.Tensor,   # (B,) int32 slot of the oldest valid window frame
    window_len: torch.Tensor,   # (B,) int32 valid window frames
    layout: CacheLayout,
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    D = q.shape[-1]
    cache_pos, window_valid = layout.cache_positions(ring_start, window_len)   # (B,S,3), (B,S)
    slots = torch.arange(layout.capacity, device=q.device)
    valid = window_valid | (slots[None, :] < sink_len[:, None].long())       # (B, S)
    chunk_pos = layout.chunk_positions(q.device)                              # (Lq, 3)

    qr = apply_rope_ref(q.float(), chunk_pos)
    kr = torch.cat((apply_rope_ref(k_cache.float(), cache_pos[:, None]),
                    apply_rope_ref(k.float(), chunk_pos)), dim=2)             # (B,H,S+Lq,D)
    vv = torch.cat((v_cache.float(), v.float()), dim=2)
    keep = torch.cat((valid, valid.new_ones(valid.shape[0], q.shape[2])), dim=1)  # (B, S+Lq)

    scores = (qr @ kr.transpose(-1, -2)) * D**-0.5                            # (B,H,Lq,S+Lq)
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
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
    layout: CacheLayout,
) -> torch.Tensor:
    """Dispatching entry point; same arguments as `chunk_attention_ref`."""
    if backend_for(q) == "triton":
        mod = kernel_module("kernels.triton_attention", q.device)
        return mod.chunk_attention_triton(q, k, v, k_cache, v_cache, sink_len, ring_start,
                                          window_len, layout)
    from kernels.torch_attention import chunk_attention_torch

    return chunk_attention_torch(q, k, v, k_cache, v_cache, sink_len, ring_start, window_len,
                                 layout)
