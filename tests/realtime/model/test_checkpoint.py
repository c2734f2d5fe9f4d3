"""Checkpoints: round trip, and clear errors for what a user can get wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from realtime.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    init_checkpoint,
    load_checkpoint,
)
from realtime.model.dit import DiTBlock


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    return init_checkpoint("tiny", tmp_path / "tiny", seed=3)


def test_round_trip_restores_every_weight(ckpt: Path) -> None:
    from realtime.model.bundle import AnimationModel
    from realtime.model.config import get_preset

    loaded = load_checkpoint(ckpt)
    original = AnimationModel.random(get_preset("tiny"), seed=3)
    assert loaded.cfg == original.cfg
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    other = AnimationModel.random(get_preset("tiny"), seed=4)
    block, loaded_block = other.dit.blocks[0], loaded.dit.blocks[0]
    assert isinstance(block, DiTBlock) and isinstance(loaded_block, DiTBlock)
    w = block.attn.qkv.weight
    assert not torch.equal(w, loaded_block.attn.qkv.weight)


def test_truncated_weights_give_a_clear_error(ckpt: Path) -> None:
    w = ckpt / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)


def test_config_that_does_not_match_the_weights(ckpt: Path) -> None:
    info = json.loads((ckpt / CONFIG_FILE).read_text())
    info["config"]["width"] = 128
    info["config"]["heads"] = 4
    (ckpt / CONFIG_FILE).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="does not match its config.json.*shape"):
        load_checkpoint(ckpt)


def test_checkpoint_of_another_preset_is_refused(ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="does not match preset 'cpu'.*width"):
        load_checkpoint(ckpt, preset="cpu")
    assert load_checkpoint(ckpt, preset="tiny").cfg.width == 64


def test_unknown_fields_and_versions_are_refused(ckpt: Path) -> None:
    info = json.loads((ckpt / CONFIG_FILE).read_text())
    (ckpt / CONFIG_FILE).write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(ckpt)
    info["config"]["temporal_compression"] = 4
    (ckpt / CONFIG_FILE).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="temporal_compression"):
        load_checkpoint(ckpt)


def test_missing_checkpoint_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="marionette train init"):
        load_checkpoint(tmp_path / "nothing")


def test_train_init_command_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from realtime.cli import main

    assert main(["train", "init", "--preset", "tiny", "--out", str(tmp_path / "c"),
                 "--seed", "5"]) == 0
    model = load_checkpoint(tmp_path / "c", preset="tiny")
    assert model.cfg.resolution == 32
    assert main(["train", "init", "--preset", "huge", "--out", str(tmp_path / "d")]) == 2
