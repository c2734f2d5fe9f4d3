"""The PyTorch path of chunk attention (the entry point's CPU default).

Takes the chunk's queries and keys already rotated at the stream's clock
(`kernels.attention.chunk_attention` does that) and the cache as stored (keys
rotated at write), so the window is used as it lies. Only the sink's keys (stored at
t = 0) are turned onto the stream's clock, by a time rotation of frame_pos - W - 1:
then one query set serves every key and the masked softmax runs in one fused
`scaled_dot_product_attention` call. On CPU it computes in fp32 whatever the input
dtype (CPU bf16 matmuls are slow and the reference is fp32 anyway).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.layout import CacheLayout
from kernels.rope import rotate


def valid_slots(layout: CacheLayout, sink_len: torch.Tensor, ring_start: torch.Tensor,
                window_len: torch.Tensor) -> torch.Tensor:
    """(B, S) bool: the cache slots a session may attend to."""
    T, W = layout.tokens_per_frame, layout.window
    slots = torch.arange(layout.capacity, device=sink_len.device)
    in_window = slots >= layout.sink_tokens
    rank = (((slots - layout.sink_tokens).clamp(min=0) // T)[None, :]
            - ring_start[:, None].long()) % W                                    # (B, S)
    return torch.where(in_window[None, :], rank < window_len[:, None].long(),
                       slots[None, :] < sink_len[:, None].long())


def chunk_attention_torch(
    q_rest: torch.Tensor,       # (B, H, Lq, D) queries rotated at the stream clock
    k_chunk: torch.Tensor,      # (B, H, Lq, D) chunk keys rotated at the stream clock
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) keys as stored (rotated)
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32
    ring_start: torch.Tensor,   # (B,) int32
    window_len: torch.Tensor,   # (B,) int32
    layout: CacheLayout,
    shift_cos: torch.Tensor,    # (B, 1, D/2) fp32: sink time shift (`ChunkRope.shift_*`)
    shift_sin: torch.Tensor,
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    B, H, Lq, D = q_rest.shape
    cdt = torch.float32 if q_rest.device.type == "cpu" else q_rest.dtype
    n = layout.sink_tokens
    kc = k_cache.to(cdt)
    sink = rotate(kc[:, :, :n], shift_cos[:, None].to(cdt), shift_sin[:, None].to(cdt))
    keys = torch.cat((sink, kc[:, :, n:], k_chunk.to(cdt)), dim=2)
    values = torch.cat((v_cache.to(cdt), v.to(cdt)), dim=2)
    valid = valid_slots(layout, sink_len, ring_start, window_len)
    keep = torch.cat((valid, valid.new_ones(B, Lq)), dim=1)[:, None, None, :]
    return F.scaled_dot_product_attention(q_rest.to(cdt), keys, values,
                                          attn_mask=keep).to(q_rest.dtype)
