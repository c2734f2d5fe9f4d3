"""Shared by the kernel tests: session states, the PyTorch low-precision baseline
the pass rule compares against, and the rule itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.layout import CacheLayout
from kernels.rope import rotate

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
FP32_FLOOR = 1e-5       # absolute error floor for fp32 (both sides are ~1e-7)

# (sink_len, ring_start, window_len, frame_pos), each (B,) int32
SessionState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def sessions(layout: CacheLayout, wrap: bool) -> SessionState:
    """Three sessions with different valid lengths: (sink_len, ring_start, window_len,
    frame_pos). wrap: every session with history has its valid frames wrapping past the
    ring's end. frame_pos: streams of very different ages, one of them years old."""
    W, S = layout.window, layout.sink_tokens
    sink_len = [S, S - 3, S // 2 + 1]                  # full, and partial (odd) sinks
    if wrap:
        ring_start = [W - 1, 1, W - 1]
        window_len = [W, W, 2]                         # W-1+W > W, 1+W > W, W-1+2 > W
    else:
        ring_start = [0, 1, 0]
        window_len = [W, W - 1, 0]                     # a session without history yet
    frame_pos = [2_000_000_011, W + 5, window_len[2]]

    def i32(x: list[int]) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.int32)

    return i32(sink_len), i32(ring_start), i32(window_len), i32(frame_pos)


def sdpa_lowp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
              v_cache: torch.Tensor, sink_len: torch.Tensor, ring_start: torch.Tensor,
              window_len: torch.Tensor, frame_pos: torch.Tensor,
              layout: CacheLayout) -> torch.Tensor:
    """Chunk attention as a PyTorch user writes it at the inputs' precision: rotate
    (fp32 math, rounded back), one masked SDPA call whose head dim holds both query
    clocks ([q_sink, q_rest] against [k_sink, 0] and [0, k_rest]: the same scores)."""
    from kernels.attention import chunk_rope
    from kernels.torch_attention import valid_slots

    D, n = q.shape[-1], layout.sink_tokens
    rope = chunk_rope(layout, frame_pos, D)
    q_sink = rotate(q.float(), rope.sink_cos, rope.sink_sin).to(q.dtype)
    q_rest = rotate(q.float(), rope.cos[:, None], rope.sin[:, None]).to(q.dtype)
    k_chunk = rotate(k.float(), rope.cos[:, None], rope.sin[:, None]).to(k.dtype)
    zero_s = k_cache.new_zeros(*k_cache.shape[:2], n, D)
    zero_r = k_cache.new_zeros(*k_cache.shape[:2], k_cache.shape[2] - n + q.shape[2], D)
    kk = torch.cat((torch.cat((k_cache[:, :, :n], zero_s), -1),
                    torch.cat((zero_r, torch.cat((k_cache[:, :, n:], k_chunk), 2)), -1)), 2)
    valid = valid_slots(layout, sink_len, ring_start, window_len)
    keep = torch.cat((valid, valid.new_ones(valid.shape[0], q.shape[2])), dim=1)
    return F.scaled_dot_product_attention(torch.cat((q_sink, q_rest), -1), kk,
                                          torch.cat((v_cache, v), dim=2),
                                          attn_mask=keep[:, None, None, :], scale=D**-0.5)


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
