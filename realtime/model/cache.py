"""Per-session KV cache for the streaming DiT (layout: `kernels.layout`).

One preallocated pair of tensors for the whole model, allocated in `setup()`:

    k, v : (depth, B, H, S, D)      S = sink_tokens + window * tokens_per_frame

    slots [0, sink_tokens)            identity sink: the reference frames' keys/values,
                                      computed once per reference (`set_sink`), pinned
    slots [sink_tokens + f*T, +T)     window frame slot f < window: a ring buffer of the
                                      last W generated frames, overwritten in place

Keys are stored rotated (RoPE), each once, when it is written, at a position that
never changes: the sink at t = 0, a generated frame at its index in the stream
(`kernels.layout`), so attention never re-rotates the window as it slides. Angles
are computed in float64, so a stream hours (or years) long rotates as exactly as
its first frame. The ring state is four (B,) tensors on the cache's device: int32
`sink_len`, `ring_start`, `window_len` and int64 `frame_pos` (a frame counter that
cannot overflow in any stream's life): advancing the ring is tensor
arithmetic, never `.item()`, so a chunk step is free of host syncs and can be
captured in a CUDA graph.

Like gpt-fast's and nanochat's caches: a fixed-shape buffer written by index.
"""

from __future__ import annotations

import torch

from kernels.attention import ChunkRope, chunk_rope
from kernels.layout import CacheLayout
from kernels.rope import rope_cos_sin, rope_rows

_STATE = ("k", "v", "sink_len", "ring_start", "window_len", "frame_pos")


class KVCache:
    def __init__(
        self,
        layout: CacheLayout,
        depth: int,
        heads: int,
        head_dim: int,
        batch: int = 1,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.layout = layout
        self.shape = (depth, batch, heads, layout.capacity, head_dim)
        self.device = torch.device(device)
        self.dtype = dtype
        self.k = torch.empty(0)
        self.v = torch.empty(0)
        self.sink_len = torch.empty(0)
        self.ring_start = torch.empty(0)
        self.window_len = torch.empty(0)
        self.frame_pos = torch.empty(0)
        self._rope: ChunkRope | None = None

    def setup(self) -> KVCache:
        """Allocate the buffers (zeros) and the ring state. Called once per session."""
        _, B, *_ = self.shape
        self.k = torch.zeros(self.shape, device=self.device, dtype=self.dtype)
        self.v = torch.zeros(self.shape, device=self.device, dtype=self.dtype)
        self.sink_len = torch.zeros(B, dtype=torch.int32, device=self.device)
        self.ring_start = torch.zeros(B, dtype=torch.int32, device=self.device)
        self.window_len = torch.zeros(B, dtype=torch.int32, device=self.device)
        self.frame_pos = torch.zeros(B, dtype=torch.int64, device=self.device)
        self._rope = None
        D = self.shape[-1]
        self._sink_rope = rope_cos_sin(self.layout.sink_positions(self.device), D)
        # token offsets of one chunk's frames, reused by every write
        T = self.layout.tokens_per_frame
        self._frame_of_token = torch.arange(self.layout.chunk_tokens, device=self.device) // T
        self._token_in_frame = torch.arange(self.layout.chunk_tokens, device=self.device) % T
        return self

    @property
    def ready(self) -> bool:
        return self.k.numel() > 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.k, self.v, self.sink_len, self.ring_start, self.window_len,
                    self.frame_pos))

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, v) of layer i, each (B, H, S, D): views into the buffers."""
        return self.k[i], self.v[i]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Copies of the buffers and ring state (a training stream's resumable state)."""
        return {name: getattr(self, name).clone() for name in _STATE}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in _STATE:
            getattr(self, name).copy_(state[name])
        self._rope = None

    # --- state changes -------------------------------------------------------------

    def reset(self, keep_sink: bool = True, rows: torch.Tensor | None = None) -> None:
        """Forget the window (a new stream); keep the reference unless asked not to.
        `rows` (a (B,) bool mask) resets only those sessions of a batched cache."""
        state = [self.ring_start, self.window_len, self.frame_pos]
        if not keep_sink:
            state.append(self.sink_len)
        for t in state:
            if rows is None:
                t.zero_()
            else:
                t.masked_fill_(rows.to(t.device), 0)
        self._rope = None

    def set_sink(self, ks: list[torch.Tensor], vs: list[torch.Tensor],
                 rows: torch.Tensor | None = None) -> None:
        """Write the reference frames' keys (un-rotated) and values, each (B, H, n, D)
        per layer with n <= sink_tokens, into the sink slots, keys rotated at t = 0.
        Swapping the reference this way keeps the session (and its window) alive.
        With `rows` (a (B,) bool mask) only those sessions take the new sink."""
        n = ks[0].shape[2]
        if n > self.layout.sink_tokens:
            raise ValueError(f"{n} sink tokens exceed the cache's {self.layout.sink_tokens}")
        cos, sin = (t[None, :n] for t in self._sink_rope)
        sel = slice(None) if rows is None else rows.to(self.device)
        for i, (k, v) in enumerate(zip(ks, vs, strict=True)):
            self.k[i, sel, :, :n] = rope_rows(k.to(self.dtype), cos, sin)[sel]
            self.v[i, sel, :, :n] = v.to(self.dtype)[sel]
        self.sink_len[sel] = n

    def chunk_slots(self) -> torch.Tensor:
        """(B, chunk_tokens) cache slots the next chunk's tokens go to: frame j of the
        chunk lands in ring slot (ring_start + window_len + j) % W, which, once the
        window is full, is the slot of the oldest frame (overwritten in place)."""
        lay = self.layout
        frame_slot = (self.ring_start[:, None].long() + self.window_len[:, None].long()
                      + self._frame_of_token[None, :]) % lay.window            # (B, L)
        return lay.sink_tokens + frame_slot * lay.tokens_per_frame + self._token_in_frame

    def chunk_rope(self) -> ChunkRope:
        """The next chunk's RoPE tables (`kernels.attention.ChunkRope`): what every
        layer and denoising step of the chunk, and its cache write, rotate with.
        Computed once per chunk (they change only when the ring advances or resets)."""
        if self._rope is None:
            self._rope = chunk_rope(self.layout, self.frame_pos, self.shape[-1])
        return self._rope

    def write_chunk(self, ks: list[torch.Tensor], vs: list[torch.Tensor]) -> None:
        """Append one chunk's keys (un-rotated) and values, each (B, H, chunk_tokens, D)
        per layer, to the window, evicting the oldest frames when full, then advance
        the ring. Keys are rotated and written to their slots in one pass
        (`rope_rows` with slots: one fused Triton kernel on CUDA)."""
        slots = self.chunk_slots()                                              # (B, L)
        rope = self.chunk_rope()
        _, _, H, _, D = self.shape
        idx = slots[:, None, :, None].expand(-1, H, -1, D)                      # (B,H,L,D)
        for i, (k, v) in enumerate(zip(ks, vs, strict=True)):
            rope_rows(k.to(self.dtype), rope.cos, rope.sin, out=self.k[i], slots=slots)
            self.v[i].scatter_(2, idx, v.to(self.dtype))
        self.advance(self.layout.chunk)

    def advance(self, frames: int) -> None:
        """Account for `frames` new frames: the window grows to W, then the ring turns."""
        W = self.layout.window
        total = self.window_len + frames
        overflow = (total - W).clamp(min=0)
        self.ring_start.copy_((self.ring_start + overflow) % W)
        self.window_len.copy_(total.clamp(max=W))
        self.frame_pos.add_(frames)
        self._rope = None
