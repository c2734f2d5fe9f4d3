"""Chunk attention: the Triton kernel (under the interpreter) and the fast PyTorch
path against the fp32 reference, over dtype x head dim x lengths x ring offset x
sessions with different valid lengths."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import DTYPES, assert_within_rule, max_err, sdpa_lowp, sessions

from kernels._dispatch import kernel_module
from kernels.attention import chunk_attention_ref
from kernels.layout import CacheLayout
from kernels.torch_attention import chunk_attention_torch

# (layout, interpreter tile): odd frame sizes so no length is a multiple of a block;
# 16 x 16 tiles split the chunk and every key range into several blocks, frames
# straddling block edges.
LENGTHS = {
    "odd-15tok-16blk": (CacheLayout(sink_frames=1, window=3, chunk=2, grid=(3, 5)), (16, 16)),
    "odd-14tok-32blk": (CacheLayout(sink_frames=2, window=4, chunk=1, grid=(2, 7)), (32, 32)),
}
HEAD_DIMS = (32, 64, 128)
H = 2


def inputs(layout: CacheLayout, D: int, dtype: torch.dtype, gen: torch.Generator
           ) -> tuple[torch.Tensor, ...]:
    B, Lq, S = 3, layout.chunk_tokens, layout.capacity

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype)

    return rnd(B, H, Lq, D), rnd(B, H, Lq, D), rnd(B, H, Lq, D), rnd(B, H, S, D), rnd(B, H, S, D)


def triton_attention():  # the interpreted kernel module (CPU tensors)
    return kernel_module("kernels.triton_attention", torch.device("cpu"))


@pytest.mark.parametrize("wrap", [False, True], ids=["nowrap", "wrap"])
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("D", HEAD_DIMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_triton_matches_reference(dtype: torch.dtype, D: int, lengths: str, wrap: bool,
                                  gen: torch.Generator) -> None:
    layout, block = LENGTHS[lengths]
    q, k, v, kc, vc = inputs(layout, D, dtype, gen)
    state = sessions(layout, wrap)
    ref = chunk_attention_ref(q.float(), k.float(), v.float(), kc.float(), vc.float(), *state,
                              layout)
    baseline = sdpa_lowp(q, k, v, kc, vc, *state, layout)
    out = torch.full_like(q, float("nan"))                     # poisoned
    triton_attention().chunk_attention_triton(q, k, v, kc, vc, *state, layout, out=out,
                                              block=block)
    assert_within_rule(out, ref, baseline, f"triton {dtype} D={D} {lengths} wrap={wrap}")


@pytest.mark.parametrize("wrap", [False, True], ids=["nowrap", "wrap"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_path_matches_reference(dtype: torch.dtype, wrap: bool,
                                      gen: torch.Generator) -> None:
    for layout, _ in LENGTHS.values():
        for D in HEAD_DIMS:
            q, k, v, kc, vc = inputs(layout, D, dtype, gen)
            state = sessions(layout, wrap)
            ref = chunk_attention_ref(q.float(), k.float(), v.float(), kc.float(), vc.float(),
                                      *state, layout)
            out = chunk_attention_torch(q, k, v, kc, vc, *state, layout)
            assert_within_rule(out, ref, sdpa_lowp(q, k, v, kc, vc, *state, layout),
                               f"torch path {dtype} D={D} {layout}")


def test_strided_inputs(gen: torch.Generator) -> None:
    """q/k/v as the model produces them: head-permuted views of one qkv projection."""
    layout, block = LENGTHS["odd-15tok-16blk"]
    B, L, D = 3, layout.chunk_tokens, 32
    qkv = torch.randn(B, L, 3, H, D, generator=gen).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    kc, vc = (torch.randn(B, H, layout.capacity, D, generator=gen) for _ in range(2))
    state = sessions(layout, wrap=True)
    ref = chunk_attention_ref(q, k, v, kc, vc, *state, layout)
    out = triton_attention().chunk_attention_triton(q, k, v, kc, vc, *state, layout,
                                                    block=block)
    assert max_err(out, ref) < 1e-5


@pytest.mark.parametrize("wrap", [False, True], ids=["nowrap", "wrap"])
def test_invalid_slots_are_never_read(wrap: bool, gen: torch.Generator) -> None:
    """NaN in every invalid sink / window slot would poison the output if the kernel
    read it (0 * NaN = NaN even for a masked score): it must not."""
    layout, block = LENGTHS["odd-15tok-16blk"]
    q, k, v, kc, vc = inputs(layout, 32, torch.float32, gen)
    state = sessions(layout, wrap)
    cache_pos, window_valid = layout.cache_positions(state[1], state[2])
    valid = window_valid | (torch.arange(layout.capacity)[None, :] < state[0][:, None].long())
    assert (~valid).any(dim=1)[1:].all()                      # sessions 1, 2 have holes
    ref = chunk_attention_ref(q, k, v, kc, vc, *state, layout)
    hole = ~valid[:, None, :, None]
    kc_nan = kc.masked_fill(hole, float("nan"))
    vc_nan = vc.masked_fill(hole, float("nan"))
    out = triton_attention().chunk_attention_triton(q, k, v, kc_nan, vc_nan, *state, layout,
                                                    block=block)
    assert torch.isfinite(out).all()
    assert max_err(out, ref) < 1e-5


def test_fully_masked_blocks_are_skipped(gen: torch.Generator) -> None:
    """Each program reads exactly the key blocks covering the session's valid tokens
    (sink, window in age order, chunk), not the cache's capacity."""
    layout, (bm, bn) = LENGTHS["odd-15tok-16blk"]
    q, k, v, kc, vc = inputs(layout, 32, torch.float32, gen)
    sink_len, ring_start, window_len = sessions(layout, wrap=True)
    n_q = -(-layout.chunk_tokens // bm)
    visited = torch.full((3 * H * n_q,), -1, dtype=torch.int32)
    triton_attention().chunk_attention_triton(q, k, v, kc, vc, sink_len, ring_start,
                                              window_len, layout, block=(bm, bn),
                                              visited=visited)
    T = layout.tokens_per_frame

    def blocks(n: int) -> int:
        return -(-n // bn)

    for b in range(3):
        want = (blocks(int(sink_len[b])) + blocks(int(window_len[b]) * T)
                + blocks(layout.chunk_tokens))
        got = visited.view(3, H, n_q)[b]
        assert (got == want).all(), f"session {b}: read {got.tolist()} blocks, want {want}"
    every_slot = blocks(layout.sink_tokens) + blocks(layout.window * T) + blocks(
        layout.chunk_tokens)
    assert int(visited.view(3, H, n_q)[2].max()) < every_slot   # the short session reads less


def test_rejects_unsupported_head_dim(gen: torch.Generator) -> None:
    layout, _ = LENGTHS["odd-15tok-16blk"]
    q, k, v, kc, vc = inputs(layout, 48, torch.float32, gen)
    with pytest.raises(ValueError, match="head dim"):
        triton_attention().chunk_attention_triton(q, k, v, kc, vc, *sessions(layout, False),
                                                  layout)
