"""Training forward of the streaming DiT: a whole clip in one pass, with gradients.

The same attention pattern as `realtime.model.dense.forward_dense` (the model's own
teacher-forcing reference, which runs under no_grad with one flow time for all
frames), extended for training:

- per-frame flow times for the query frames (each chunk its own t) and for the
  history frames;
- classifier-free-guidance dropout per sample: `keep_ref` False hides the identity
  sink from the query frames, `keep_motion` False zeroes the query frames' pose maps,
  face vector and presence flags (presence 0 = "unknown": the model's learned null).

Sequence: [reference R] [history N] [query N]. Query chunk c sees the sink (unless
dropped), history frames [cK - W, cK) and its own chunk; history chunk c sees the
sink, history [cK - W, cK) and itself, which is exactly what the cache held when
inference wrote that chunk. Positions are relative to the querying chunk, as in
`kernels.layout`, so keys are rotated once per query chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.rope import apply_rope_ref
from realtime.model.dense import token_positions
from realtime.model.dit import StudentDiT


def drop_motion(
    pose: torch.Tensor, face: torch.Tensor, presence: torch.Tensor, keep: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero the motion of samples where keep (B,) is False: the unconditional branch."""
    k = keep.to(pose.dtype)
    return (pose * k[:, None, None, None, None], face * k[:, None, None],
            presence * k[:, None, None])


def forward_train(
    model: StudentDiT,
    ref: torch.Tensor,                  # (B, R, c, h, w) clean reference latents
    hist: torch.Tensor,                 # (B, N, c, h, w) history (cache-writing) latents
    hist_t: torch.Tensor,               # (B, N) their flow time (0 = clean)
    query: torch.Tensor,                # (B, N, c, h, w) noisy latents
    query_t: torch.Tensor,              # (B, N) flow time, constant inside a chunk
    pose: torch.Tensor,                 # (B, N, 16, P, P)
    face: torch.Tensor,                 # (B, N, 12)
    presence: torch.Tensor,             # (B, N, 4)
    keep_ref: torch.Tensor | None = None,       # (B,) bool, default all True
    keep_motion: torch.Tensor | None = None,    # (B,) bool, default all True
    hist_motion: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:                      # (B, N, c, h, w) velocity of the query frames
    cfg = model.cfg
    B, R = ref.shape[:2]
    N, K, W, T = hist.shape[1], cfg.chunk, cfg.window, cfg.tokens_per_frame
    if N % K:
        raise ValueError(f"{N} frames is not a whole number of chunks of {K}")
    dev = hist.device
    ones = torch.ones(B, dtype=torch.bool, device=dev)
    keep_ref = ones if keep_ref is None else keep_ref.to(dev)
    q_pose, q_face, q_pres = (pose, face, presence) if keep_motion is None else \
        drop_motion(pose, face, presence, keep_motion.to(dev))

    zeros = ref.new_zeros
    x_r, c_r = model.embed(ref, zeros(B, R), None, zeros(B, R, cfg.face_dim),
                           zeros(B, R, cfg.n_parts), is_reference=True)
    # the history frames' own (pose, face, presence) when they differ from the query's
    # (a counterfactual twin queried on its original's history), else the same
    x_h, c_h = model.embed(hist, hist_t, *(hist_motion or (pose, face, presence)))
    x_q, c_q = model.embed(query, query_t, q_pose, q_face, q_pres)
    x = torch.cat((x_r, x_h, x_q), dim=1)                       # (B, (R+2N)*T, C)
    c = torch.cat((c_r, c_h, c_q), dim=1)                       # (B, R+2N, C)

    # RoPE depends only on position differences, and every non-sink frame of a query
    # chunk starting at frame `start` sits at W + 1 + index - start: the shared -start
    # cancels, so those tokens can be rotated ONCE at global time W + 1 + index. Only
    # the sink (time 0 relative to the querying chunk) moves with the chunk: in global
    # time it sits at `start`, so each chunk start gets its own rotated copy of the
    # sink keys. One masked attention then covers every group of queries.
    n_ch = N // K
    index = torch.arange(N, device=dev)
    frame_t = torch.cat((torch.zeros(R, device=dev), W + 1 + index, W + 1 + index))
    q_pos = token_positions(frame_t, cfg.grid)                         # (Lq, 3)
    sink_pos = torch.cat([token_positions(torch.full((R,), float(ch * K), device=dev),
                                           cfg.grid) for ch in range(n_ch)])
    frame_pos = q_pos[R * T:]                                           # (2N*T, 3)

    # mask (B, Lq, Lk): keys = [sink copy per chunk start (n_ch*R*T)] [hist N*T] [query N*T]
    f_stream = torch.cat((torch.zeros(R), torch.ones(N), 2 * torch.ones(N))).to(dev)
    f_chunk = torch.cat((torch.zeros(R, device=dev), index // K, index // K)).long()
    k_chunk = torch.cat((index // K, index // K)).long()                # key frames' chunk
    k_index = torch.cat((index, index))
    k_stream = torch.cat((torch.ones(N), 2 * torch.ones(N))).to(dev)
    start = (f_chunk * K)[:, None]                                      # (F_all, 1)
    in_window = (k_stream[None] == 1) & (k_index[None] < start) & (k_index[None] >= start - W)
    own = (k_stream[None] == f_stream[:, None]) & (k_chunk[None] == f_chunk[:, None])
    frames_ok = (in_window | own) & (f_stream[:, None] > 0)             # (F_all, 2N)
    sink_ok = torch.arange(n_ch, device=dev)[None] == f_chunk[:, None]  # (F_all, n_ch)
    sink_ok = sink_ok[None].expand(B, -1, -1).clone()
    query_rows = f_stream == 2
    sink_ok[:, query_rows] &= keep_ref[:, None, None]
    mask = torch.cat((sink_ok.repeat_interleave(R * T, dim=2),
                      frames_ok[None].expand(B, -1, -1).repeat_interleave(T, dim=2)), dim=2)
    mask = mask.repeat_interleave(T, dim=1)                             # (B, Lq, Lk)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: int) -> torch.Tensor:
        qr = apply_rope_ref(q, q_pos)
        k_sink, v_sink = k[:, :, :R * T], v[:, :, :R * T]
        ks = apply_rope_ref(k_sink.repeat(1, 1, n_ch, 1), sink_pos)
        kr = torch.cat((ks, apply_rope_ref(k[:, :, R * T:], frame_pos)), dim=2)
        vv = torch.cat((v_sink.repeat(1, 1, n_ch, 1), v[:, :, R * T:]), dim=2)
        return F.scaled_dot_product_attention(qr, kr, vv, attn_mask=mask[:, None])

    x, _, _ = model.run_blocks(x, c, attend)
    out = model.final(x[:, (R + N) * T:], c[:, R + N:])
    return model.unpatchify(out, N)


def part_mask(pose: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K, 1, size, size) 1 on and around the face and hands drawn in the pose maps
    (B, K, 16, P, P), else 0: where `--region-weight` weighs the loss up (the
    teacher's flow matching, the student's ground-truth pull)."""
    from realtime.training.metrics import DRAWN, FACE_CHANNELS, HAND_CHANNELS

    B, K = pose.shape[:2]
    on = (pose[:, :, list(FACE_CHANNELS + HAND_CHANNELS)].amax(2) > DRAWN).float()
    on = F.adaptive_max_pool2d(on.flatten(0, 1)[:, None], size)
    on = F.max_pool2d(on, 3, stride=1, padding=1)                  # a margin of one
    return on.view(B, K, 1, size, size)
