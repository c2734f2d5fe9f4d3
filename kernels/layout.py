"""The KV cache layout shared by the model (`realtime.model.cache`) and the kernels.

Per layer, keys and values are preallocated tensors of shape (B, H, S, D) with

    S = sink_tokens + window * T,   T = tokens per frame = grid_h * grid_w

    slots [0, sink_tokens)              identity sink: reference-image tokens, pinned
    slots [sink_tokens + f*T, +T)       window frame slot f in [0, window): a ring buffer

Keys are stored un-rotated. RoPE is applied when attention reads them, with
positions relative to the current chunk, so positions never grow with the stream:

    sink tokens                 t = 0
    window frame of age rank r  t = window - window_len + 1 + r   (r = 0 oldest, valid
                                r < window_len; rank r sits in slot (ring_start + r) % window)
    chunk frame j               t = window + 1 + j                (j in [0, chunk))
    token p of any frame        y = p // grid_w, x = p % grid_w

Per-session state is three int32 tensors of shape (B,) kept on the device:
`sink_len` (valid sink tokens), `ring_start` (slot of the oldest valid frame) and
`window_len` (valid frames, <= window).
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

    def cache_positions(
        self, ring_start: torch.Tensor, window_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (B, S, 3) of every cache slot and a (B, S) bool mask of the valid
        window slots (sink validity comes from `sink_len`)."""
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
