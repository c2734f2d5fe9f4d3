"""A student's own latents, streamed exactly as a session streams them.

The decoder is trained on encode(frame), but at inference it decodes what the
student generated: latents that carry the body but little of the face's expression
or the fingers (the model card measures how little). `student_rollouts` streams
training clips through a `StreamingEngine` (reference in the sink, chunk by chunk,
the checkpoint's steps and cache-write mode) and keeps each chunk's latents with the
clip's ground-truth frames and motion, so `ae.rollout_step` can teach a decoder that
reads motion (`decoder_motion`) to draw from the motion what those latents lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from realtime.training.data import Clip, FramePool, maps_u8


@dataclass
class RolloutPool:
    latents: torch.Tensor           # (N, c, h, w) what the student generated
    truth: FramePool                # (N) the ground-truth frames, with their motion
    has_next: torch.Tensor          # (N,) bool: frame i + 1 is the same stream's next

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def student_rollouts(model: Any, clips: list[Clip], seeds: tuple[int, ...]) -> RolloutPool:
    """Every clip streamed once per noise seed by `model` (an `AnimationModel` in
    inference mode)."""
    from realtime.engine import StreamingEngine
    from realtime.motion.types import MotionCondition

    latents: list[torch.Tensor] = []
    truth: list[FramePool] = []
    has_next: list[torch.Tensor] = []
    K = model.cfg.chunk
    for clip in clips:
        n = len(clip.frames) - len(clip.frames) % K
        for seed in seeds:
            engine = StreamingEngine(model, seed=seed)
            engine.set_reference([r for r in clip.reference])
            for i in range(0, n, K):
                engine.push([MotionCondition(j, 0.0, clip.pose[j], clip.face[j],
                                             clip.presence[j]) for j in range(i, i + K)])
                assert engine.last_latents is not None
                latents.append(engine.last_latents.float().cpu())
            has_next.append(torch.arange(n) < n - 1)
            truth.append(FramePool(
                torch.from_numpy(clip.frames[:n]).permute(0, 3, 1, 2).contiguous(),
                maps_u8(clip.pose[:n]), torch.from_numpy(clip.face[:n]).float(),
                torch.from_numpy(clip.presence[:n]).float()))
    # torch.cat outside inference mode: plain tensors, as training needs
    return RolloutPool(torch.cat(latents), FramePool.cat(truth), torch.cat(has_next))
