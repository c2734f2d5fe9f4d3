"""`AnimationModel`: everything one checkpoint holds, the DiT and its autoencoder.

One instance is loaded per process and shared read-only by every session; each
session's `StreamingEngine` holds only its own KV cache and state.
"""

from __future__ import annotations

import torch
from torch import nn

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.config import ModelConfig
from realtime.model.dit import StudentDiT


class AnimationModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dit = StudentDiT(cfg)
        self.ae = TinyAutoencoder(cfg)
        # a built-in character's face pasted from its reference onto each frame
        # (realtime.model.face_paste); False: the frames as decoded
        self.face_paste = True
        # and its hands drawn where the pose's fingers are (realtime.model.hand_paste)
        self.hand_paste = True

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
