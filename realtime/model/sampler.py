"""Few-step flow-matching sampler for one chunk, and the cache write that follows.

Flow matching (rectified flow): x_t = (1 - t) x_0 + t * noise, and the model predicts
the velocity v = noise - x_0. Sampling integrates dx/dt = v from t = 1 (noise) to
t = 0 with Euler steps; with 1-4 steps the student (guidance distilled in) needs no
classifier-free guidance pass. The noise comes from the caller, so a session seeded
once is deterministic.

After the chunk, its keys/values enter the cache by one of two modes
(`config.CacheWrite`), which must match training:
  'clean'      one extra pass over the clean latents at t = 0 (stops after the last
               layer's keys/values), so the history is what the viewer saw;
  'last_step'  reuse the keys/values of the last denoising step (input at t_last):
               no extra pass, cheaper, as in self-forcing style rollouts.

`sample_chunk` does both at once. A live stream splits them (`denoise_chunk`, then
`write_pending` once the frames have left): the write only has to land before the
next chunk reads the cache, so its pass (half of a 1-step frame's DiT time) need not
delay the frames it follows. The result is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from realtime.model.cache import KVCache
from realtime.model.config import CACHE_WRITES
from realtime.model.dit import Motion, StudentDiT


def timesteps(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 flow times from 1 to 0. shift > 1 spends more of the steps at high
    noise (SD3's t' = s t / (1 + (s - 1) t))."""
    if not 1 <= steps <= 4:
        raise ValueError(f"steps must be in 1..4, got {steps}")
    ts = [1.0 - i / steps for i in range(steps + 1)]
    return [shift * t / (1.0 + (shift - 1.0) * t) for t in ts]


@dataclass
class SampledChunk:
    latents: torch.Tensor               # (B, K, c, h, w) clean latents, t = 0
    written: torch.Tensor               # (B, K, c, h, w) the latents whose K/V the cache got
    written_t: float                    # their flow time (0 for 'clean')


@dataclass
class PendingWrite:
    """A chunk's cache write not made yet: the keys/values themselves ('last_step'),
    or the inputs of the clean pass that computes them ('clean')."""
    kv: tuple[list[torch.Tensor], list[torch.Tensor]] | None
    latents: torch.Tensor               # (B, K, c, h, w) the chunk's clean latents
    pose: torch.Tensor
    face: torch.Tensor
    presence: torch.Tensor
    motion: Motion


@torch.no_grad()
def denoise_chunk(
    model: StudentDiT,
    cache: KVCache,
    noise: torch.Tensor,                # (B, K, c, h, w)
    pose: torch.Tensor,                 # (B, K, 16, P, P)
    face: torch.Tensor,                 # (B, K, 12)
    presence: torch.Tensor,             # (B, K, 4)
    steps: int,
    time_shift: float = 1.0,
    cache_write: str = "clean",
) -> tuple[SampledChunk, PendingWrite]:
    """Denoise one chunk against the cache; the cache is not touched. The second
    value is the write `write_pending` makes, which must come before the next chunk."""
    if cache_write not in CACHE_WRITES:
        raise ValueError(f"cache_write must be one of {CACHE_WRITES}, got {cache_write!r}")
    ts = timesteps(steps, time_shift)
    B, K = noise.shape[:2]
    x = noise
    last_kv: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
    written, written_t = x, ts[-2]
    motion = model.embed_motion(pose, face, presence, x.dtype)   # once per chunk
    for i in range(steps):
        t = torch.full((B, K), ts[i], device=x.device)        # fp32 even in bf16
        v, ks, vs = model.forward_chunk(x, t, pose, face, presence, cache, motion=motion)
        assert v is not None
        if i == steps - 1:
            last_kv, written, written_t = (ks, vs), x, ts[i]
        x = x + (ts[i + 1] - ts[i]) * v
    if cache_write == "clean":
        last_kv, written, written_t = None, x, 0.0
    return (SampledChunk(x, written, written_t),
            PendingWrite(last_kv, x, pose, face, presence, motion))


@torch.no_grad()
def write_pending(model: StudentDiT, cache: KVCache, pending: PendingWrite) -> None:
    """Append a denoised chunk to the cache (the clean pass first, in 'clean' mode)."""
    kv = pending.kv
    if kv is None:
        x = pending.latents
        t0 = torch.zeros(x.shape[:2], device=x.device)
        _, ks, vs = model.forward_chunk(x, t0, pending.pose, pending.face, pending.presence,
                                        cache, kv_only=True, motion=pending.motion)
        kv = (ks, vs)
    cache.write_chunk(*kv)


@torch.no_grad()
def sample_chunk(
    model: StudentDiT,
    cache: KVCache,
    noise: torch.Tensor,                # (B, K, c, h, w)
    pose: torch.Tensor,                 # (B, K, 16, P, P)
    face: torch.Tensor,                 # (B, K, 12)
    presence: torch.Tensor,             # (B, K, 4)
    steps: int,
    time_shift: float = 1.0,
    cache_write: str = "clean",
    write: bool = True,
) -> SampledChunk:
    """Denoise one chunk against the cache, then (if `write`) append it to the cache."""
    res, pending = denoise_chunk(model, cache, noise, pose, face, presence, steps,
                                 time_shift, cache_write)
    if write:
        write_pending(model, cache, pending)
    return res
