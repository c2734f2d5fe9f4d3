"""The fast PyTorch path of chunk attention (the entry point's CPU default).

Same semantics as `chunk_attention_ref`, cheaper: RoPE cos/sin come from per-layout
tables (only the time columns depend on the session, through its ring state), and
the masked softmax runs in one fused `scaled_dot_product_attention` call instead of
materialised scores + softmax + matmul. On CPU it computes in fp32 whatever the
input dtype (CPU bf16 matmuls are slow and the reference is fp32 anyway).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from kernels.layout import CacheLayout
from kernels.rope import rope_tables


@functools.lru_cache(maxsize=32)
def _static_tables(layout: CacheLayout, head_dim: int, device: torch.device
                   ) -> tuple[Any, ...]:
    """Per-layout cos/sin: chunk (Lq, D/2); cache (S, D/2) with the time columns
    left for the session; the time table (P, n_t); and the number n_t of time pairs."""
    n_pos = max(layout.window + layout.chunk + 1, *layout.grid)
    cos, sin, axis = rope_tables(head_dim, n_pos, device)
    ax = axis.long()
    n_t = int((ax == 0).sum())
    cols = torch.arange(head_dim // 2, device=device)

    def gather(tab: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:   # pos (N, 3)
        return tab[pos.long().clamp(max=n_pos - 1)[:, ax], cols]

    chunk_pos = layout.chunk_positions(device)
    zero = torch.zeros(1, dtype=torch.int32, device=device)
    cache_pos, _ = layout.cache_positions(zero, zero)                  # t ignored below
    return (gather(cos, chunk_pos), gather(sin, chunk_pos), gather(cos, cache_pos[0]),
            gather(sin, cache_pos[0]), cos[:, :n_t], sin[:, :n_t], n_t)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def chunk_attention_torch(
    q: torch.Tensor,            # (B, H, Lq, D) chunk queries, un-rotated
    k: torch.Tensor,            # (B, H, Lq, D)
    v: torch.Tensor,            # (B, H, Lq, D)
    k_cache: torch.Tensor,      # (B, H, S, D) un-rotated keys
    v_cache: torch.Tensor,      # (B, H, S, D)
    sink_len: torch.Tensor,     # (B,) int32
    ring_start: torch.Tensor,   # (B,) int32
    window_len: torch.Tensor,   # (B,) int32
    layout: CacheLayout,
) -> torch.Tensor:              # (B, H, Lq, D), q's dtype
    """Same semantics as `kernels.attention.chunk_attention_ref`."""
    B, H, Lq, D = q.shape
    dev = q.device
    cdt = torch.float32 if dev.type == "cpu" else q.dtype
    c_cos, c_sin, s_cos, s_sin, t_cos, t_sin, n_t = _static_tables(layout, D, dev)

    # session-dependent time angles of every cache slot
    T, W = layout.tokens_per_frame, layout.window
    slots = torch.arange(layout.capacity, device=dev)
    in_window = slots >= layout.sink_tokens
    frame = ((slots - layout.sink_tokens).clamp(min=0) // T)[None, :]
    rank = (frame - ring_start[:, None].long()) % W                          # (B, S)
    t = torch.where(in_window[None, :], W - window_len[:, None].long() + 1 + rank, 0)
    t = t.clamp(max=t_cos.shape[0] - 1)             # only invalid slots are clamped
    valid = torch.where(in_window[None, :], rank < window_len[:, None].long(),
                        slots[None, :] < sink_len[:, None].long())            # (B, S)
    cos = torch.cat((t_cos[t], s_cos[None, :, n_t:].expand(B, -1, -1)), dim=-1)
    sin = torch.cat((t_sin[t], s_sin[None, :, n_t:].expand(B, -1, -1)), dim=-1)

    qr = _rotate(q.to(cdt), c_cos.to(cdt), c_sin.to(cdt))
    kr = torch.cat((_rotate(k_cache.to(cdt), cos[:, None].to(cdt), sin[:, None].to(cdt)),
                    _rotate(k.to(cdt), c_cos.to(cdt), c_sin.to(cdt))), dim=2)
    vv = torch.cat((v_cache.to(cdt), v.to(cdt)), dim=2)
    keep = torch.cat((valid, valid.new_ones(B, Lq)), dim=1)[:, None, None, :]
    return F.scaled_dot_product_attention(qr, kr, vv, attn_mask=keep).to(q.dtype)
