"""The face sketch plane (`ModelConfig.face_sketch`): a checkpoint without it gains it
with its function unchanged, the new plane gets gradient, a model without it reads a
sketch model's maps as its own, and a sketch checkpoint loads, streams and refuses maps
without the plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.engine import StreamingEngine
from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import add_face_sketch, load_checkpoint, save_checkpoint
from realtime.model.config import get_preset
from realtime.motion.types import N_POSE_CHANNELS, MotionCondition
from realtime.training.student import new_cache

CFG = get_preset("tiny")


def _velocity(model: AnimationModel, pose: torch.Tensor, grad: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    cfg, B = model.cfg, pose.shape[0]
    x = torch.randn(B, cfg.chunk, cfg.latent_channels, cfg.latent_size, cfg.latent_size,
                    generator=gen)
    face = torch.randn(B, cfg.chunk, cfg.face_dim, generator=gen)
    with torch.set_grad_enabled(grad):
        v = model.dit.forward_chunk(x, torch.full((B, cfg.chunk), 0.5), pose, face,
                                    torch.ones(B, cfg.chunk, cfg.n_parts),
                                    new_cache(model.dit, B, torch.device("cpu")))[0]
    assert v is not None
    return v


def _maps(seed: int, planes: int = N_POSE_CHANNELS + 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    P = CFG.pose_size
    return torch.rand(1, CFG.chunk, planes, P, P, generator=gen)


def test_the_sketch_starts_as_the_old_model_and_learns_through_its_plane() -> None:
    old = AnimationModel.random(CFG, seed=3)
    new = add_face_sketch(old)
    assert new.cfg.face_sketch and new.cfg.pose_channels == N_POSE_CHANNELS + 1
    maps = _maps(1)
    assert torch.equal(_velocity(new, maps), _velocity(old, maps[:, :, :N_POSE_CHANNELS]))
    # the old model reads the new maps as its own: the plane after the 16 is skipped
    assert torch.equal(_velocity(old, maps), _velocity(new, maps))
    # the new plane's weights get gradient, and once they move the sketch changes the output
    _velocity(new, maps, grad=True).pow(2).mean().backward()
    w = new.dit.pose_encoder.conv.weight
    assert w.grad is not None and w.grad[:, N_POSE_CHANNELS].abs().sum() > 0
    with torch.no_grad():
        w[:, N_POSE_CHANNELS] += 0.1
    other = maps.clone()
    other[:, :, -1] = 0.0
    assert not torch.allclose(_velocity(new, maps), _velocity(new, other))


def test_a_sketch_checkpoint_round_trips_streams_and_refuses_maps_without_it(
        tmp_path: Path) -> None:
    new = add_face_sketch(AnimationModel.random(CFG, seed=3))
    with torch.no_grad():
        new.dit.pose_encoder.conv.weight[:, N_POSE_CHANNELS] += 0.05
    save_checkpoint(new, tmp_path / "sketch")
    loaded = load_checkpoint(tmp_path / "sketch", preset="tiny")
    assert loaded.cfg.face_sketch
    maps = _maps(2)
    assert torch.equal(_velocity(loaded, maps), _velocity(new, maps))

    def cond(planes: int) -> MotionCondition:
        rng = np.random.default_rng(0)
        P = CFG.pose_size
        return MotionCondition(0, 0.0, rng.random((planes, P, P), np.float32),
                               np.zeros(CFG.face_dim, np.float32),
                               np.ones(CFG.n_parts, np.float32))

    engine = StreamingEngine(loaded, seed=0)
    engine.set_reference([np.zeros((CFG.resolution, CFG.resolution, 3), np.uint8)])
    got = engine.push([cond(N_POSE_CHANNELS + 1) for _ in range(CFG.chunk)])
    assert len(got) == CFG.chunk and got[0].image.shape == (CFG.resolution, CFG.resolution, 3)
    with pytest.raises(ValueError, match="channels"):
        engine.push([cond(N_POSE_CHANNELS) for _ in range(CFG.chunk)])
