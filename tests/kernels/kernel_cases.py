"""Shared by the kernel tests: session states, the PyTorch low-precision baseline
the pass rule compares against, and the rule itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.layout import CacheLayout
from kernels.rope import apply_rope_ref

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
FP32_FLOOR = 1e-5       # absolute error floor for fp32 (both sides are ~1e-7)


def sessions(layout: CacheLayout, wrap: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three sessions with different valid lengths: (sink_len, ring_start, window_len).
    wrap: every session with history has its valid frames wrapping past the ring's end."""
    W, S = layout.window, layout.sink_tokens
    sink_len = [S, S - 3, S // 2 + 1]                  # full, and partial (odd) sinks
    if wrap:
        ring_start = [W - 1, 1, W - 1]
        window_len = [W, W, 2]                         # W-1+W > W, 1+W > W, W-1+2 > W
    else:
        ring_start = [0, 1, 0]
        window_len = [W, W - 1, 0]                     # a session without history yet
    i32 = torch.int32
    return (torch.tensor(sink_len, dtype=i32), torch.tensor(ring_start, dtype=i32),
            torch.tensor(window_len, dtype=i32))


def sdpa_lowp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
              v_cache: torch.Tensor, sink_len: torch.Tensor, ring_start: torch.Tensor,
              window_len: torch.Tensor, layout: CacheLayout) -> torch.Tensor:
    """Chunk attention as a PyTorch user writes it at the inputs' precision: rotate
    (fp32 math, rounded back), concatenate the cache, one masked SDPA call."""
    cache_pos, window_valid = layout.cache_positions(ring_start, window_len)
    slots = torch.arange(layout.capacity, device=q.device)
    valid = window_valid | (slots[None, :] < sink_len[:, None].long())
    chunk_pos = layout.chunk_positions(q.device)
    kr = torch.cat((apply_rope_ref(k_cache, cache_pos[:, None]), apply_rope_ref(k, chunk_pos)),
                   dim=2)
    vv = torch.cat((v_cache, v), dim=2)
    keep = torch.cat((valid, valid.new_ones(valid.shape[0], q.shape[2])), dim=1)
    return F.scaled_dot_product_attention(apply_rope_ref(q, chunk_pos), kr, vv,
                                          attn_mask=keep[:, None, None, :])


def max_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out.float() - ref.float()).abs().max().item()


def assert_within_rule(out: torch.Tensor, ref: torch.Tensor, baseline: torch.Tensor,
                       what: str) -> None:
    """The pass rule: every element written (finite), and the error against the fp32
    reference at most twice PyTorch's own at the same precision (+ a floor for fp32)."""
    assert torch.isfinite(out).all(), f"{what}: non-finite (unwritten or poisoned) output"
    floor = FP32_FLOOR if out.dtype == torch.float32 else 1e-6
    err, base = max_err(out, ref), max_err(baseline, ref)
    assert err <= 2 * base + floor, f"{what}: error {err:.3g} > 2 x PyTorch's {base:.3g}"
