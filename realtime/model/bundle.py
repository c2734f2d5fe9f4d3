"""`AnimationModel`: everything one checkpoint holds, the DiT, its autoencoder, and
the face warp's settings where the checkpoint has them.

One instance is loaded per process and shared read-only by every session; each
session's `StreamingEngine` holds only its own KV cache and state.
"""

from __future__ import annotations

import torch
from torch import nn

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.config import ModelConfig
from realtime.model.dit import StudentDiT
from realtime.model.face_warp import FaceWarpConfig, warp_faces


class AnimationModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dit = StudentDiT(cfg)
        self.ae = TinyAutoencoder(cfg)
        # the expression drawn by warping each decoded frame's face (None: as decoded)
        self.face_warp: FaceWarpConfig | None = None

    @classmethod
    def random(cls, cfg: ModelConfig, seed: int = 0, zero_init: bool = False) -> AnimationModel:
        """Random weights, reproducible per seed. `zero_init=False` (the default here)
        gives every conditioning path a visible effect: what tests and benchmarks need
        before training exists; training from scratch wants adaLN-Zero (True)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(cfg)
            model.dit.initialize_weights(zero_init=zero_init)
        return model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def render(self, latents: torch.Tensor, pose: torch.Tensor, face: torch.Tensor,
               presence: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """latents (N, c, h, w) -> frames (N, 3, H, W): decoded with their motion, then,
        where the checkpoint has a face warp and `points` (N, N_FACE_POINTS, 2) say
        where each face is, the face moved from the reference's neutral expression to
        `face`'s, round the arms and hands of `pose` (`realtime.model.face_warp`)."""
        frames = self.ae.decode_driven(latents, pose, face, presence)
        if self.face_warp is None or points is None:
            return frames
        return warp_faces(frames, points, torch.zeros_like(face), face, self.face_warp, pose)
