"""A tiny studio dataset (tiny preset resolution) and tiny checkpoints, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.avatars.dataset import DatasetConfig, build
from realtime.model.checkpoint import init_checkpoint


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("studio")
    build(DatasetConfig(characters=4, clips=8, resolution=32, frames=8, performers=4,
                        clips_per_shard=8), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny checkpoint with a random-init teacher beside it."""
    out = tmp_path_factory.mktemp("ckpt")
    init_checkpoint("tiny", out, seed=0)
    init_checkpoint("tiny", out / "teacher", seed=1)
    return out
