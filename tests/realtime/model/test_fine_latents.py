"""The `cpu32` preset: the `cpu` transformer on latents twice as fine (32x32x4, each
token 4x4 latent pixels). What a user choosing it relies on: the attention and the
KV cache cost what the `cpu` preset's do, and a checkpoint of it streams frames of
its resolution from conditions at its own pose-map size."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine import StreamingEngine
from realtime.model.checkpoint import CheckpointError, init_checkpoint, load_checkpoint
from realtime.model.config import get_preset
from realtime.motion.types import FACE_DIM, N_POSE_CHANNELS, MotionCondition


def test_cpu32_has_twice_the_latent_resolution_and_the_cpu_transformer() -> None:
    cpu, fine = get_preset("cpu"), get_preset("cpu32")
    assert (fine.resolution, fine.latent_channels) == (cpu.resolution, cpu.latent_channels)
    assert fine.latent_size == 2 * cpu.latent_size == 32
    assert fine.pose_size == 2 * cpu.pose_size
    # the same tokens, widths and cache: the transformer's cost is the cpu preset's
    assert fine.tokens_per_frame == cpu.tokens_per_frame == 64
    assert fine.layout() == cpu.layout()
    for field in ("width", "depth", "heads", "mlp_ratio", "chunk", "window", "ref_frames",
                  "steps", "cache_write"):
        assert getattr(fine, field) == getattr(cpu, field), field


def test_a_cpu32_checkpoint_streams_frames_and_is_not_taken_for_a_cpu_one(tmp_path) -> None:
    ckpt = init_checkpoint("cpu32", tmp_path / "c", seed=0)
    with pytest.raises(CheckpointError, match="does not match preset 'cpu'"):
        load_checkpoint(ckpt, preset="cpu")
    model = load_checkpoint(ckpt, preset="cpu32")
    engine = StreamingEngine(model, seed=0)
    rng = np.random.default_rng(0)
    engine.set_reference([rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)])
    size = model.cfg.pose_size
    frames = []
    for i in range(3):
        cond = MotionCondition(frame_id=i, t_capture=i / 30,
                               pose_maps=rng.random((N_POSE_CHANNELS, size, size), np.float32),
                               face=rng.standard_normal(FACE_DIM).astype(np.float32),
                               presence=np.ones(4, np.float32))
        frames += engine.push([cond])
    assert [f.frame_id for f in frames] == [0, 1, 2]
    for f in frames:
        assert f.image.shape == (128, 128, 3) and f.image.dtype == np.uint8
    # random weights still carry their inputs: frames of other motion differ
    assert np.abs(frames[0].image.astype(int) - frames[1].image.astype(int)).mean() > 0.5
