"""The KV cache: fixed memory, the ring buffer's order, keys stored rotated at their
stream positions, the sink."""

from __future__ import annotations

import torch

from kernels.rope import apply_rope_ref
from realtime.model.cache import KVCache
from realtime.model.config import get_preset

CFG = get_preset("tiny")
LAYOUT = CFG.layout()


def _cache() -> KVCache:
    return KVCache(LAYOUT, CFG.depth, CFG.heads, CFG.head_dim).setup()


def _chunk_kv(frame0: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keys and values whose every element is the id of the frame they belong to (+0.5
    for values, which are stored as they are; keys are stored rotated)."""
    T, K = LAYOUT.tokens_per_frame, LAYOUT.chunk
    ids = (frame0 + torch.arange(K * T) // T).float()
    k = ids[None, None, :, None].expand(1, CFG.heads, K * T, CFG.head_dim).clone()
    return [k] * CFG.depth, [k + 0.5] * CFG.depth


def _window_frames(cache: KVCache) -> list[int]:
    """Frame ids in the window, oldest first, read through the layout's positions."""
    pos, valid = LAYOUT.cache_positions(cache.ring_start, cache.window_len)
    T = LAYOUT.tokens_per_frame
    frames = []
    for s in range(LAYOUT.sink_tokens, LAYOUT.capacity, T):
        if valid[0, s]:
            frames.append((int(pos[0, s, 0]), int(cache.v[0, 0, 0, s, 0])))
    return [f for _, f in sorted(frames)]


def test_memory_is_fixed_and_keys_are_stored_rotated_at_their_frame() -> None:
    cache = _cache()
    k_ptr, nbytes = cache.k.data_ptr(), cache.nbytes
    K, W = LAYOUT.chunk, LAYOUT.window
    for c in range(10_000 // K):
        cache.write_chunk(*_chunk_kv(c * K))
        frames = (c + 1) * K
        if frames in (10, 10_000):
            assert (cache.nbytes, cache.k.data_ptr()) == (nbytes, k_ptr)
            assert _window_frames(cache) == list(range(frames - W, frames))
            assert int(cache.frame_pos[0]) == frames
            # every stored key is its frame's raw key rotated at (frame, y, x)
            pos = LAYOUT.stored_positions(cache.ring_start, cache.window_len, cache.frame_pos)
            raw = (cache.v[:, 0, :, LAYOUT.sink_tokens:] - 0.5)        # the frame ids
            want = apply_rope_ref(raw, pos[0, LAYOUT.sink_tokens:])
            assert torch.allclose(cache.k[:, 0, :, LAYOUT.sink_tokens:], want, atol=1e-5)
            assert int(pos[0, LAYOUT.sink_tokens:, 0].max()) == frames - 1
    assert int(cache.window_len[0]) == W


def test_window_fills_in_order_before_the_ring_turns() -> None:
    cache = _cache()
    cache.write_chunk(*_chunk_kv(0))
    assert _window_frames(cache) == [0, 1]
    assert int(cache.ring_start[0]) == 0 and int(cache.window_len[0]) == 2


def test_sink_is_pinned_and_swappable_without_losing_the_window() -> None:
    cache = _cache()
    n = LAYOUT.sink_tokens
    sink = [torch.full((1, CFG.heads, n, CFG.head_dim), -7.0)] * CFG.depth
    cache.set_sink(sink, sink)
    for c in range(7):
        cache.write_chunk(*_chunk_kv(c * LAYOUT.chunk))
    sink_pos = LAYOUT.sink_positions()                             # t = 0, (y, x)
    assert torch.allclose(cache.k[:, :, :, :n], apply_rope_ref(sink[0], sink_pos))
    assert bool((cache.v[:, :, :, :n] == -7.0).all())           # never overwritten
    window_before = _window_frames(cache)
    new = [torch.full((1, CFG.heads, n, CFG.head_dim), 3.0)] * CFG.depth
    cache.set_sink(new, new)
    assert torch.allclose(cache.k[:, :, :, :n], apply_rope_ref(new[0], sink_pos))
    assert _window_frames(cache) == window_before
    assert int(cache.sink_len[0]) == n


def test_reset_empties_the_window_and_keeps_the_sink() -> None:
    cache = _cache()
    n = LAYOUT.sink_tokens
    sink = [torch.ones(1, CFG.heads, n, CFG.head_dim)] * CFG.depth
    cache.set_sink(sink, sink)
    cache.write_chunk(*_chunk_kv(0))
    cache.reset()
    assert int(cache.window_len[0]) == 0 and int(cache.sink_len[0]) == n
    cache.write_chunk(*_chunk_kv(100))
    assert _window_frames(cache) == [100, 101]


def test_chunk_rope_is_computed_once_per_chunk_and_follows_the_stream() -> None:
    """Every layer and step of a chunk shares one set of RoPE tables; the next chunk
    gets the tables of its own frames (t = frame_pos + j), and a reset restarts them."""
    from kernels.rope import rope_cos_sin

    cache = _cache()
    first = cache.chunk_rope()
    assert cache.chunk_rope() is first
    cache.write_chunk(*_chunk_kv(0))
    second = cache.chunk_rope()
    K = LAYOUT.chunk
    want, _ = rope_cos_sin(LAYOUT.chunk_abs_positions(torch.tensor([K])), CFG.head_dim)
    assert second is not first and torch.equal(second.cos, want)
    cache.reset()
    assert torch.equal(cache.chunk_rope().cos, first.cos)


def test_one_session_of_a_batched_cache_restarts_without_touching_the_others() -> None:
    """A batched cache (sessions side by side) resets and re-sinks one row: the other
    sessions keep their sink, window and clock exactly."""
    cache = KVCache(LAYOUT, CFG.depth, CFG.heads, CFG.head_dim, batch=3).setup()
    n = LAYOUT.sink_tokens
    sink = [torch.randn(3, CFG.heads, n, CFG.head_dim) for _ in range(CFG.depth)]
    cache.set_sink(sink, sink)
    for c in range(5):
        k, v = _chunk_kv(c * LAYOUT.chunk)
        cache.write_chunk([x.expand(3, -1, -1, -1) for x in k],
                          [x.expand(3, -1, -1, -1) for x in v])
    before = cache.state_dict()
    rows = torch.tensor([False, True, False])
    new = [torch.randn(3, CFG.heads, n, CFG.head_dim) for _ in range(CFG.depth)]
    cache.reset(rows=rows)
    cache.set_sink(new, new, rows)
    def row(t: torch.Tensor, b: int) -> torch.Tensor:
        return t[:, b] if t.dim() > 1 else t[b]          # buffers (depth, B, ...), state (B,)

    for name, t in before.items():
        for b in (0, 2):
            assert torch.equal(row(getattr(cache, name), b), row(t, b)), (name, b)
    assert [int(x) for x in cache.window_len] == [LAYOUT.window, 0, LAYOUT.window]
    assert [int(x) for x in cache.frame_pos] == [10, 0, 10]
    assert torch.equal(cache.v[:, 1, :, :n], torch.stack(new)[:, 1])
    # the restarted session's next chunk goes to the start of its ring, at t = 0
    assert int(cache.chunk_slots()[1, 0]) == n
    t = LAYOUT.chunk_abs_positions(cache.frame_pos)[..., 0]
    assert int(t[1].min()) == 0 and int(t[0].min()) == 10
