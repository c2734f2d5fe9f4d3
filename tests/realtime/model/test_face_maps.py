"""The face vector painted onto the head (`face_maps`): the expression reaches the
head's tokens and only those, and checkpoints from before it keep working."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import (
    CheckpointError,
    add_face_maps,
    load_checkpoint,
    save_checkpoint,
)
from realtime.model.config import ModelConfig, get_preset
from realtime.motion.types import POSE_CHANNELS
from realtime.training.student import new_cache

HEAD = POSE_CHANNELS.index("head")


def _head_maps(cfg: ModelConfig, x0: int, y0: int, side: int) -> torch.Tensor:
    """(1, 1, 16, P, P): a filled square of head strokes, nothing else."""
    maps = torch.zeros(1, 1, cfg.pose_channels, cfg.pose_size, cfg.pose_size)
    maps[0, 0, HEAD, y0:y0 + side, x0:x0 + side] = 1.0
    return maps


@pytest.mark.parametrize("corner", [0, 1])
def test_the_expression_changes_only_the_tokens_at_the_head(corner: int) -> None:
    cfg = get_preset("tiny")
    enc = AnimationModel.random(cfg, seed=0).dit.pose_encoder
    P, g = cfg.pose_size, cfg.grid[0]
    # a one-pixel head inside a corner token: the dilation (radius 1) and the 3x3
    # conv (radius 1) keep its reach inside that token (P/g = 4 pixels)
    at = 1 if corner == 0 else P - 2
    maps = _head_maps(cfg, at, at, 1)
    neutral, smile = torch.zeros(1, 1, cfg.face_dim), torch.zeros(1, 1, cfg.face_dim)
    smile[..., 9:11] = 1.0                                 # mouth_open, mouth_width
    present = torch.ones(1, 1, cfg.n_parts)
    with torch.no_grad():
        d = (enc(maps, smile, present) - enc(maps, neutral, present)).abs().sum(-1).view(g, g)
    token = 0 if corner == 0 else g - 1
    assert d[token, token] > 0                             # the head's token moves
    d[token, token] = 0
    assert d.max() == 0                                    # no other token does
    # without a head drawn, or with the face absent, the expression paints nothing
    absent = present.clone()
    absent[..., 1] = 0.0                                   # PARTS.index("face")
    with torch.no_grad():
        empty = torch.zeros_like(maps)
        assert torch.equal(enc(empty, smile, present), enc(empty, neutral, present))
        assert torch.equal(enc(maps, smile, absent), enc(maps, neutral, absent))


def test_a_checkpoint_from_before_face_maps_loads_and_upgrades_to_the_same_function(
        tmp_path: Path) -> None:
    cfg = get_preset("tiny").with_(face_maps=False)
    old = AnimationModel.random(cfg, seed=2)
    save_checkpoint(old, tmp_path / "old")
    loaded = load_checkpoint(tmp_path / "old")             # no preset: as saved
    assert not loaded.cfg.face_maps
    new = load_checkpoint(tmp_path / "old", preset="tiny")  # the preset has them: added
    assert new.cfg.face_maps and new.cfg == get_preset("tiny")
    assert add_face_maps(new) is new
    # any other difference from the preset is still refused
    save_checkpoint(AnimationModel.random(cfg.with_(width=32, heads=2)), tmp_path / "narrow")
    with pytest.raises(CheckpointError, match="width"):
        load_checkpoint(tmp_path / "narrow", preset="tiny")
    B, K, ls = 1, cfg.chunk, cfg.latent_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, K, cfg.latent_channels, ls, ls, generator=gen)
    t = torch.full((B, K), 0.5)
    pose = torch.rand(B, K, cfg.pose_channels, cfg.pose_size, cfg.pose_size, generator=gen)
    face = torch.randn(B, K, cfg.face_dim, generator=gen)
    pres = torch.ones(B, K, cfg.n_parts)
    out: list[torch.Tensor] = []
    for m in (loaded, new):
        with torch.no_grad():
            v = m.dit.forward_chunk(x, t, pose, face, pres,
                                    new_cache(m.dit, B, torch.device("cpu")))[0]
        assert v is not None
        out.append(v)
    assert torch.allclose(out[0], out[1], atol=1e-6)
    # ... and the new planes are there to learn: the face changes the pose encoder's
    # input, and a non-zero weight on them changes the output
    with torch.no_grad():
        new.dit.pose_encoder.conv.weight[:, cfg.pose_channels:] = 0.1
        moved = new.dit.forward_chunk(x, t, pose, face, pres,
                                      new_cache(new.dit, B, torch.device("cpu")))[0]
    assert moved is not None
    assert not torch.allclose(moved, out[0], atol=1e-4)
