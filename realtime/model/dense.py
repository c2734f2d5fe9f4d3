"""Dense (teacher-forcing) forward: the whole sequence in one pass, with the mask that
streaming implies. It is the reference the streaming path is tested against, and the
shape a training step takes (all chunks of a clip at once).

Sequence, in order:  [reference frames R] [history frames N] [query frames N]

  history  the latents whose keys/values the cache holds (clean latents at t = 0, or
           the last step's input, per the cache-write mode), one per output frame
  query    the latents being denoised, at their flow time

Who sees whom (frame f is in chunk f // K):
  reference        -> reference                       (bidirectional, position t = 0)
  history/query in chunk c -> reference (sink, t = 0)
                            + history frames [cK - W, cK)   (the window)
                            + its own stream's chunk c      (bidirectional)

Temporal positions are relative to the querying chunk, exactly as `kernels.layout`
gives them: sink 0, frame g at W + 1 + g - cK. Because the sink's relative position
depends on the query chunk, keys are rotated once per query chunk; the loop is over
chunks, the math is one dense masked attention per chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.rope import apply_rope_ref
from realtime.model.dit import StudentDiT


def token_positions(frame_t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per-frame times (n,) -> per-token positions (n*T, 3)."""
    gh, gw = grid
    T = gh * gw
    p = torch.arange(T, device=frame_t.device)
    t = frame_t[:, None].expand(-1, T).reshape(-1)
    yx = torch.stack((p // gw, p % gw), dim=-1).repeat(frame_t.shape[0], 1)
    return torch.cat((t[:, None].float(), yx.float()), dim=-1)


@torch.no_grad()
def forward_dense(
    model: StudentDiT,
    ref: torch.Tensor,                  # (B, R, c, h, w) clean reference latents
    hist: torch.Tensor,                 # (B, N, c, h, w) cache-writing latents
    hist_t: float,                      # their flow time
    query: torch.Tensor,                # (B, N, c, h, w) noisy latents
    query_t: float,                     # their flow time
    pose: torch.Tensor,                 # (B, N, 16, P, P)
    face: torch.Tensor,                 # (B, N, 12)
    presence: torch.Tensor,             # (B, N, 4)
) -> torch.Tensor:                      # (B, N, c, h, w) velocity of the query frames
    cfg = model.cfg
    B, R = ref.shape[:2]
    N, K, W, T = hist.shape[1], cfg.chunk, cfg.window, cfg.tokens_per_frame
    if N % K:
        raise ValueError(f"{N} frames is not a whole number of chunks of {K}")
    dev = hist.device

    zeros = ref.new_zeros
    x_r, c_r = model.embed(ref, torch.zeros(B, R, device=dev), None,
                           zeros(B, R, cfg.face_dim), zeros(B, R, cfg.n_parts), is_reference=True)
    x_h, c_h = model.embed(hist, torch.full((B, N), hist_t, device=dev), pose, face, presence)
    x_q, c_q = model.embed(query, torch.full((B, N), query_t, device=dev), pose, face, presence)
    x = torch.cat((x_r, x_h, x_q), dim=1)                       # (B, (R+2N)*T, C)
    c = torch.cat((c_r, c_h, c_q), dim=1)                       # (B, R+2N, C)

    # frame bookkeeping over the R + 2N frames
    stream = torch.cat((torch.zeros(R), torch.ones(N), 2 * torch.ones(N))).to(dev)
    index = torch.cat((torch.zeros(R), torch.arange(N), torch.arange(N))).to(dev)
    chunk_of = (index // K).long()
    groups = [(0, R, None)] + [
        (R + (s - 1) * N + ch * K, R + (s - 1) * N + (ch + 1) * K, (s, ch))
        for s in (1, 2) for ch in range(N // K)
    ]

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: int) -> torch.Tensor:
        outs = []
        for f0, f1, who in groups:
            if who is None:                                     # reference frames
                see = stream == 0
                frame_t = torch.zeros(R + 2 * N, device=dev)
            else:
                s, ch = who
                start = ch * K
                window = (stream == 1) & (index < start) & (index >= start - W)
                own = (stream == s) & (chunk_of == ch)
                see = (stream == 0) | window | own
                frame_t = torch.where(stream == 0, 0.0, W + 1 + index - start)
            pos = token_positions(frame_t, cfg.grid)           # (all tokens, 3)
            qs = q[:, :, f0 * T: f1 * T]
            mask = see.repeat_interleave(T)                     # (all tokens,)
            qr = apply_rope_ref(qs.float(), pos[f0 * T: f1 * T])
            kr = apply_rope_ref(k.float(), pos)
            outs.append(F.scaled_dot_product_attention(
                qr, kr[:, :, mask], v.float()[:, :, mask]).to(q.dtype))
        return torch.cat(outs, dim=2)

    x, _, _ = model.run_blocks(x, c, attend)
    out = model.final(x[:, (R + N) * T:], c[:, R + N:])
    return model.unpatchify(out, N)
