"""A student's own latents, streamed exactly as a session streams them.

The decoder is trained on encode(frame), but at inference it decodes what the
student generated: latents that carry the body but little of the face's expression
or the fingers (the model card measures how little). `student_rollouts` streams
training clips through a `StreamingEngine` (reference in the sink, chunk by chunk,
the checkpoint's steps and cache-write mode) and keeps each chunk's latents with the
clip's ground-truth frames and motion, so `ae.rollout_step` can teach a decoder that
reads motion (`decoder_motion`) to draw from the motion what those latents lack.
Given each clip's counterfactual twin (`studio.counterfactual_split`), the pool also
keeps the twin's frames and motion beside the clip's, frame for frame, for
`ae.counterfactual_rollout_step`.
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
    twin: FramePool | None = None   # (N) the counterfactual twins' frames, if given

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def student_rollouts(model: Any, clips: list[Clip], seeds: tuple[int, ...],
                     twins: list[Clip] | None = None) -> RolloutPool:
    """Every clip streamed once per noise seed by `model` (an `AnimationModel` in
    inference mode); `twins[i]`, if given, is kept beside `clips[i]`'s frames."""
    from realtime.engine import StreamingEngine
    from realtime.motion.types import MotionCondition

    latents: list[torch.Tensor] = []
    truth: list[FramePool] = []
    twin: list[FramePool] = []
    has_next: list[torch.Tensor] = []
    K = model.cfg.chunk
    for c, clip in enumerate(clips):
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
            truth.append(_frames(clip, n))
            if twins is not None:
                twin.append(_frames(twins[c], n))
    # torch.cat outside inference mode: plain tensors, as training needs
    return RolloutPool(torch.cat(latents), FramePool.cat(truth), torch.cat(has_next),
                       None if twins is None else FramePool.cat(twin))


def _frames(clip: Clip, n: int) -> FramePool:
    """The first n frames of `clip`, with their motion."""
    return FramePool(torch.from_numpy(clip.frames[:n]).permute(0, 3, 1, 2).contiguous(),
                     maps_u8(clip.pose[:n]), torch.from_numpy(clip.face[:n]).float(),
                     torch.from_numpy(clip.presence[:n]).float())
