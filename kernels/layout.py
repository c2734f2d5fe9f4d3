"""The KV cache layout shared by the model (`realtime.model.cache`) and the kernels.

Per layer, keys and values are preallocated tensors of shape (B, H, S, D) with

    S = sink_tokens + window * T,   T = tokens per frame = grid_h * grid_w

    slots [0, sink_tokens)              identity sink: reference-image tokens, pinned
    slots [sink_tokens + f*T, +T)       window frame slot f in [0, window): a ring buffer

Keys are stored rotated (RoPE, `kernels.rope`), each once, when it is written, at a
position that never changes afterwards; positions are (t, y, x), y = p // grid_w,
x = p % grid_w for token p of its frame:

    sink tokens                 t = 0
    a generated frame           t = its absolute frame index in the stream

Per-session state is four tensors of shape (B,) kept on the device: int32
`sink_len` (valid sink tokens), `ring_start` (slot of the oldest valid frame),
`window_len` (valid frames, <= window), and `frame_pos` (absolute index of the chunk's
first frame; int64 in the model's cache, any integer type here). Window frame of age
rank r (r = 0 oldest, valid r < window_len) sits in slot (ring_start + r) % window and
has t = frame_pos - window_len + r.

Queries are rotated twice, because attention scores depend only on position
differences and the two kinds of key use different clocks:

    against the window and the chunk    chunk frame j at t = frame_pos + j
    against the sink                    chunk frame j at t = window + 1 + j

The first gives the window exactly the relative offsets of a sliding window; the
second keeps the sink a fixed window + 1 + j frames behind the chunk, whatever the
stream's age. Chunk keys are rotated at t = frame_pos + j, which is also where the
cache write stores them. Angles are computed in float64 (`rope_cos_sin`), so a stream
hours long rotates as exactly as its first frame; nothing in the cache is ever
re-rotated as the window slides, and attention applies no RoPE to cached keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CacheLayout:
    sink_frames: int            # capacity in reference frames
    window: int                 # W: frames of history
    chunk: int                  # K: frames generated together
    grid: tuple[int, int]       # (grid_h, grid_w) tokens per frame

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def sink_tokens(self) -> int:
        return self.sink_frames * self.tokens_per_frame

    @property
    def capacity(self) -> int:
        return self.sink_tokens + self.window * self.tokens_per_frame

    @property
    def chunk_tokens(self) -> int:
        return self.chunk * self.tokens_per_frame

    def chunk_positions(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(chunk_tokens, 3) float positions (t, y, x) of the current chunk's tokens."""
        T = self.tokens_per_frame
        idx = torch.arange(self.chunk_tokens, device=device)
        p = idx % T
        t = self.window + 1 + idx // T
        return torch.stack((t, p // self.grid[1], p % self.grid[1]), dim=-1).float()

    def chunk_abs_positions(self, frame_pos: torch.Tensor) -> torch.Tensor:
        """(B, chunk_tokens, 3) int64 positions of the chunk's tokens on the stream's
        clock: t = frame_pos + j (queries against the window and chunk; chunk keys)."""
        pos = self.chunk_positions(frame_pos.device).long()
        pos = pos[None].repeat(frame_pos.shape[0], 1, 1)
        pos[..., 0] += frame_pos[:, None].long() - (self.window + 1)
        return pos

    def sink_positions(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(sink_tokens, 3) positions of the sink's tokens: t = 0."""
        return sink_positions(self.sink_frames, self.grid, device)

    def stored_positions(self, ring_start: torch.Tensor, window_len: torch.Tensor,
                         frame_pos: torch.Tensor) -> torch.Tensor:
        """(B, S, 3) int64 positions at which the keys in every slot are stored rotated
        (sink: t = 0; window rank r: t = frame_pos - window_len + r; invalid slots get
        positions too, meaningless)."""
        rel, _ = self.cache_positions(ring_start, window_len)
        pos = rel.long()
        in_window = torch.arange(self.capacity, device=pos.device) >= self.sink_tokens
        shift = frame_pos[:, None].long() - (self.window + 1)                  # rel -> abs
        pos[..., 0] = torch.where(in_window[None, :], pos[..., 0] + shift, 0)
        return pos

    def cache_positions(
        self, ring_start: torch.Tensor, window_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk-relative positions (B, S, 3) of every cache slot (the window's frames
        at t = window - window_len + 1 + r, so chunk frame j is at window + 1 + j) and a
        (B, S) bool mask of the valid window slots (sink validity comes from
        `sink_len`). Relative positions are what the dense reference uses; the cache
        stores keys at `stored_positions`, the same offsets on the stream's clock."""
        device = ring_start.device
        T, W = self.tokens_per_frame, self.window
        s = torch.arange(self.capacity, device=device)
        p = s % T
        in_window = s >= self.sink_tokens
        frame_slot = ((s - self.sink_tokens).clamp(min=0) // T)[None, :]            # (1, S)
        rank = (frame_slot - ring_start[:, None].long()) % W                        # (B, S)
        valid = in_window[None, :] & (rank < window_len[:, None].long())
        t = torch.where(in_window[None, :], W - window_len[:, None].long() + 1 + rank, 0)
        y = (p // self.grid[1]).expand_as(t)
        x = (p % self.grid[1]).expand_as(t)
        return torch.stack((t, y, x), dim=-1).float(), valid


def sink_positions(frames: int, grid: tuple[int, int],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """(frames * T, 3) int64 positions of reference tokens: t = 0, (y, x) on the grid."""
    gh, gw = grid
    p = torch.arange(frames * gh * gw, device=device) % (gh * gw)
    return torch.stack((torch.zeros_like(p), p // gw, p % gw), dim=-1)
