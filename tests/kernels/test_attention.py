"""Chunk attention: the Triton kernels (under the interpreter: the RoPE pass and the
attention) and the PyTorch path against the fp32 reference, over dtype x head dim x
lengths x ring offset x sessions with different valid lengths and stream ages; and
the stored-rotated cache against the window-relative positions it replaces."""

from __future__ import annotations

import pytest
import torch

from kernels._dispatch import force_backend, kernel_module
from kernels.attention import chunk_attention, chunk_attention_ref, chunk_rope
from kernels.layout import CacheLayout
from kernels.rope import apply_rope_ref
from tests.kernels.kernel_cases import (
    DTYPES,
    SessionState,
    assert_within_rule,
    max_err,
    sdpa_lowp,
    sessions,
)

# (layout, interpreter tile): odd frame sizes so no length is a multiple of a block;
# 16 x 16 tiles split the chunk and every key range into several blocks, frames
# straddling block edges; and frames of whole blocks.
LENGTHS = {
    "odd-15tok-16blk": (CacheLayout(sink_frames=1, window=3, chunk=2, grid=(3, 5)), (16, 16)),
    "odd-14tok-32blk": (CacheLayout(sink_frames=2, window=4, chunk=1, grid=(2, 7)), (32, 32)),
    # frames a whole number of key blocks: the kernel's contiguous, unmasked window path
    "aligned-32tok-16blk": (CacheLayout(sink_frames=1, window=3, chunk=2, grid=(4, 8)),
                            (16, 16)),
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


def run_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kc: torch.Tensor,
               vc: torch.Tensor, state: SessionState, layout: CacheLayout,
               **kw: object) -> torch.Tensor:
    """The Triton path end to end under the interpreter: the RoPE kernel rotates the
    chunk's queries (both clocks) and keys, the attention kernel does the rest; kw
    (out, block, visited) go to the attention kernel."""
    rope = chunk_rope(layout, state[3], q.shape[-1])
    rope_qk = kernel_module("kernels.triton_rope", torch.device("cpu")).rope_qk_triton
    q_sink, q_rest, k_chunk = rope_qk(q, k, rope.sink_cos, rope.sink_sin, rope.cos, rope.sin)
    return triton_attention().chunk_attention_triton(q_sink, q_rest, k_chunk, v, kc, vc,
                                                     *state[:3], layout, **kw)


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
    run_triton(q, k, v, kc, vc, state, layout, out=out, block=block)
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
            with force_backend("torch"):
                out = chunk_attention(q, k, v, kc, vc, *state, layout)
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
    out = run_triton(q, k, v, kc, vc, state, layout, block=block)
    assert max_err(out, ref) < 1e-5


@pytest.mark.parametrize("lengths", ["odd-15tok-16blk", "aligned-32tok-16blk"])
@pytest.mark.parametrize("wrap", [False, True], ids=["nowrap", "wrap"])
def test_invalid_slots_are_never_read(wrap: bool, lengths: str, gen: torch.Generator) -> None:
    """NaN in every invalid sink / window slot would poison the output if the kernel
    read it (0 * NaN = NaN even for a masked score): it must not."""
    layout, block = LENGTHS[lengths]
    q, k, v, kc, vc = inputs(layout, 32, torch.float32, gen)
    state = sessions(layout, wrap)
    cache_pos, window_valid = layout.cache_positions(state[1], state[2])
    valid = window_valid | (torch.arange(layout.capacity)[None, :] < state[0][:, None].long())
    assert (~valid).any(dim=1)[1:].all()                      # sessions 1, 2 have holes
    ref = chunk_attention_ref(q, k, v, kc, vc, *state, layout)
    hole = ~valid[:, None, :, None]
    kc_nan = kc.masked_fill(hole, float("nan"))
    vc_nan = vc.masked_fill(hole, float("nan"))
    out = run_triton(q, k, v, kc_nan, vc_nan, state, layout, block=block)
    assert torch.isfinite(out).all()
    assert max_err(out, ref) < 1e-5


@pytest.mark.parametrize("lengths", ["odd-15tok-16blk", "aligned-32tok-16blk"])
def test_fully_masked_blocks_are_skipped(lengths: str, gen: torch.Generator) -> None:
    """Each program reads exactly the key blocks covering the session's valid tokens
    (sink, window in age order, chunk), not the cache's capacity."""
    layout, (bm, bn) = LENGTHS[lengths]
    q, k, v, kc, vc = inputs(layout, 32, torch.float32, gen)
    state = sessions(layout, wrap=True)
    sink_len, ring_start, window_len, _ = state
    n_q = -(-layout.chunk_tokens // bm)
    visited = torch.full((3 * H * n_q,), -1, dtype=torch.int32)
    run_triton(q, k, v, kc, vc, state, layout, block=(bm, bn), visited=visited)
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
        triton_attention().chunk_attention_triton(q, q, k, v, kc, vc,
                                                  *sessions(layout, False)[:3], layout)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_stored_rotation_equals_window_relative_positions(backend: str,
                                                          gen: torch.Generator) -> None:
    """Keys rotated once at write time on the stream's clock give the attention of
    keys rotated at every call at window-relative positions (the dense model's
    definition), for streams of any age: here up to 2e9 frames (over two years at
    30 fps), where fp32 angles would be off by radians."""
    layout, block = LENGTHS["odd-15tok-16blk"]
    q, k, v, raw, vc = inputs(layout, 32, torch.float32, gen)
    state = sessions(layout, wrap=True)
    sink_len, ring_start, window_len, frame_pos = state
    rel, window_valid = layout.cache_positions(ring_start, window_len)
    valid = window_valid | (torch.arange(layout.capacity)[None, :] < sink_len[:, None].long())
    chunk_rel = layout.chunk_positions()
    scores = (apply_rope_ref(q, chunk_rel) @ torch.cat(
        (apply_rope_ref(raw, rel[:, None]), apply_rope_ref(k, chunk_rel)), 2).transpose(-1, -2)
              ) * 32**-0.5
    keep = torch.cat((valid, valid.new_ones(3, layout.chunk_tokens)), 1)[:, None, None, :]
    want = scores.masked_fill(~keep, float("-inf")).softmax(-1) @ torch.cat((vc, v), 2)
    stored = apply_rope_ref(raw, layout.stored_positions(ring_start, window_len,
                                                         frame_pos)[:, None])
    with force_backend(backend):  # type: ignore[arg-type]
        got = chunk_attention(q, k, v, stored, vc, *state, layout)
    assert max_err(got, want) < 2e-5


def test_rope_rows_kernel_rotates_and_writes_cache_slots(gen: torch.Generator) -> None:
    """The RoPE kernel: rows rotated in one rounding (bf16), and the fused cache write
    puts each rotated row in its slot and touches no other slot."""
    from kernels.rope import rope_cos_sin, rope_rows

    rows = kernel_module("kernels.triton_rope", torch.device("cpu")).rope_rows_triton
    B, Hh, L, D, S = 2, 3, 21, 64, 40
    x = torch.randn(B, Hh, L, D, generator=gen).to(torch.bfloat16)
    pos = torch.randint(0, 10**9, (B, L, 3), generator=gen)
    cos, sin = rope_cos_sin(pos, D)
    want = apply_rope_ref(x, pos[:, None])
    assert torch.equal(rows(x, cos, sin), want)
    with force_backend("torch"):
        assert torch.equal(rope_rows(x, cos, sin), want)
    slots = torch.stack([torch.randperm(S, generator=gen)[:L] for _ in range(B)])
    for write in (rows, rope_rows):
        cache = torch.full((B, Hh, S, D), 7.0, dtype=torch.bfloat16)
        with force_backend("torch"):
            write(x, cos, sin, out=cache, slots=slots)
        for b in range(B):
            assert torch.equal(cache[b][:, slots[b]], want[b])
            untouched = torch.ones(S, dtype=torch.bool)
            untouched[slots[b]] = False
            assert bool((cache[b][:, untouched] == 7.0).all())



@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_fused_query_key_rotation_equals_separate_passes(dtype: torch.dtype,
                                                         gen: torch.Generator) -> None:
    """The entry point's one-launch RoPE of a chunk (q at both clocks, k) gives exactly
    what three separate row rotations give, strided inputs included."""
    from kernels.rope import rope_rows

    layout, _ = LENGTHS["odd-15tok-16blk"]
    B, L, D = 3, layout.chunk_tokens, 64
    qkv = torch.randn(B, L, 3, H, D, generator=gen).to(dtype).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    rope = chunk_rope(layout, sessions(layout, wrap=True)[3], D)
    rope_qk = kernel_module("kernels.triton_rope", torch.device("cpu")).rope_qk_triton
    got = rope_qk(q, k, rope.sink_cos, rope.sink_sin, rope.cos, rope.sin)
    with force_backend("torch"):
        want = (rope_rows(q, rope.sink_cos[None], rope.sink_sin[None]),
                rope_rows(q, rope.cos, rope.sin), rope_rows(k, rope.cos, rope.sin))
    for g, w in zip(got, want, strict=True):
        assert g.is_contiguous() and g.dtype == dtype
        assert max_err(g, w) <= (1e-6 if dtype == torch.float32 else 0.0)
