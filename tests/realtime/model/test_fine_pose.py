"""Pose maps drawn finer than twice the latent size (`pose_scale`): a checkpoint at the
shipped scale gains the finer path with its function unchanged, the path can learn
what the finer strokes show, and such a checkpoint loads, streams and trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import (
    CheckpointError,
    add_fine_pose,
    load_checkpoint,
    save_checkpoint,
)
from realtime.model.config import get_preset
from realtime.model.dit import FINE_PLANES
from realtime.motion.types import POSE_CHANNELS
from realtime.training.student import new_cache

CFG = get_preset("tiny")
INDEX_L = POSE_CHANNELS.index("index_l")


def _velocity(model: AnimationModel, pose: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    cfg, B = model.cfg, pose.shape[0]
    x = torch.randn(B, cfg.chunk, cfg.latent_channels, cfg.latent_size, cfg.latent_size,
                    generator=gen)
    face = torch.randn(B, cfg.chunk, cfg.face_dim, generator=gen)
    with torch.no_grad():
        v = model.dit.forward_chunk(x, torch.full((B, cfg.chunk), 0.5), pose, face,
                                    torch.ones(B, cfg.chunk, cfg.n_parts),
                                    new_cache(model.dit, B, torch.device("cpu")))[0]
    assert v is not None
    return v


def _fine_maps(seed: int) -> torch.Tensor:
    P = 2 * CFG.pose_size
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, CFG.chunk, CFG.pose_channels, P, P, generator=gen)


def test_the_finer_maps_start_as_the_old_model_on_them_averaged_down() -> None:
    old = AnimationModel.random(CFG, seed=1)
    new = add_fine_pose(old, 4)
    assert new.cfg.pose_size == 2 * old.cfg.pose_size
    maps = _fine_maps(0)
    coarse = F.avg_pool2d(maps.flatten(0, 1), 2).unflatten(0, maps.shape[:2])
    before = _velocity(old, coarse)
    assert torch.allclose(_velocity(new, maps), before, atol=1e-6)
    # a model given maps finer than its own (a teacher beside such a student)
    # averages them down; coarser ones than it reads are refused
    assert torch.allclose(_velocity(old, maps), before, atol=1e-6)
    with pytest.raises(ValueError, match="coarser"):
        _velocity(new, coarse)


def test_the_finer_path_sees_what_averaging_hides() -> None:
    """Two finger strokes with the same 2x2 averages, one pixel apart inside each
    square: the shipped scale cannot tell them apart; the new planes can, and once
    the conv reads them (as training would make it) the output moves."""
    new = add_fine_pose(AnimationModel.random(CFG, seed=1), 4)
    a, b = torch.zeros_like(_fine_maps(0)), torch.zeros_like(_fine_maps(0))
    a[..., INDEX_L, 8:16, 8] = 1.0          # a vertical stroke in the left column...
    b[..., INDEX_L, 8:16, 9] = 1.0          # ...and in the right one: same 2x2 sums
    assert torch.equal(F.avg_pool2d(a.flatten(0, 1), 2), F.avg_pool2d(b.flatten(0, 1), 2))
    assert torch.equal(_velocity(new, a), _velocity(new, b))    # at step 0: as before
    with torch.no_grad():
        new.dit.pose_encoder.conv.weight[:, -FINE_PLANES:] = 0.1
    assert not torch.allclose(_velocity(new, a), _velocity(new, b), atol=1e-4)


def test_a_checkpoint_with_finer_maps_round_trips_and_loads_under_its_preset(
        tmp_path: Path) -> None:
    new = add_fine_pose(AnimationModel.random(CFG, seed=3), 4)
    with torch.no_grad():
        new.dit.pose_encoder.fine.weight.add_(0.01)         # type: ignore[union-attr]
    save_checkpoint(new, tmp_path / "fine")
    loaded = load_checkpoint(tmp_path / "fine", preset="tiny")
    assert loaded.cfg.pose_scale == 4
    maps = _fine_maps(1)
    assert torch.equal(_velocity(loaded, maps), _velocity(new, maps))
    # a scale cannot be taken back, and a preset of another architecture still refuses it
    with pytest.raises(CheckpointError, match="pose_scale"):
        add_fine_pose(loaded, 2)
    with pytest.raises(CheckpointError, match="does not match preset"):
        load_checkpoint(tmp_path / "fine", preset="cpu")


def test_pose_scale_must_be_even() -> None:
    with pytest.raises(ValueError, match="pose_scale"):
        CFG.with_(pose_scale=3)
