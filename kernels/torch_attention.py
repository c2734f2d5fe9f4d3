"""The PyTorch path of chunk attention (the entry point's CPU default).

Takes the chunk's queries and keys already rotated (`kernels.attention.chunk_attention`
does that) and the cache as stored (keys rotated at write), so it applies no RoPE:
two score matmuls (sink queries against the sink, stream-clock queries against the
window and the chunk), one masked softmax, one matmul with the values. On CPU it
computes in fp32 whatever the input dtype (CPU bf16 matmuls are slow and the
reference is fp32 anyway).
"""

from __future__ import annotations

import torch

from kernels.layout import CacheLayout


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
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    B, H, Lq, D = q_sink.shape
    cdt = torch.float32 if q_sink.device.type == "cpu" else q_sink.dtype
    n = layout.sink_tokens
    kc, vc = k_cache.to(cdt), v_cache.to(cdt)
    scores = torch.cat((q_sink.to(cdt) @ kc[:, :, :n].transpose(-1, -2),
                        q_rest.to(cdt) @ torch.cat((kc[:, :, n:], k_chunk.to(cdt)), 2)
                        .transpose(-1, -2)), dim=-1) * D**-0.5               # (B,H,Lq,S+Lq)
    valid = valid_slots(layout, sink_len, ring_start, window_len)
    keep = torch.cat((valid, valid.new_ones(B, Lq)), dim=1)[:, None, None, :]
    probs = scores.float().masked_fill(~keep, float("-inf")).softmax(dim=-1).to(cdt)
    return (probs @ torch.cat((vc, v.to(cdt)), dim=2)).to(q_sink.dtype)
