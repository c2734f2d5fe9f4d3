"""The shipped checkpoint (`realtime/checkpoints/default`), streamed as a session streams
it, on characters, performers and backgrounds it was not trained on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from realtime.avatars.dataset import ClipPlan, DatasetConfig, _Tracks, make_sample
from realtime.engine import StreamingEngine
from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from realtime.motion.types import MotionCondition
from realtime.training.data import Clip
from realtime.training.evaluate import run_student
from realtime.training.studio import sample_to_clip

pytestmark = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "config.json").is_file(),
                                reason="no shipped checkpoint in this tree")


def _border(img: np.ndarray, width: int = 6) -> np.ndarray:
    """Median RGB of the frame's outer ring, where the scene is and the figure is not."""
    ring = np.concatenate([img[:width].reshape(-1, 3), img[-width:].reshape(-1, 3),
                           img[:, :width].reshape(-1, 3), img[:, -width:].reshape(-1, 3)])
    return np.median(ring.astype(float), axis=0)


def _studio_clip(model: AnimationModel, cfg: DatasetConfig, k: int) -> Clip:
    """Held-out clip k of the studio config `cfg`: an unseen character, an unseen
    performer, conditions made as a session makes them."""
    plan = ClipPlan(k, "heldout_both", k % cfg.characters, "performer:5")
    sample: dict[str, Any] = dict(make_sample(plan, cfg, _Tracks(None)))
    sample["meta"] = {}
    return sample_to_clip(sample, model.cfg)


def test_the_output_shows_the_scene_of_the_reference() -> None:
    """Behind the character a user sees the background of the reference image they chose,
    from the first frame on: two clips on two plain backgrounds come out on two
    backgrounds, each its own reference's (stop 18's checkpoint drew the same grey
    behind every character, whatever the reference)."""
    model = load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    cfg = DatasetConfig(characters=6, clips=8, resolution=model.cfg.resolution, frames=8,
                        seed=19, backgrounds=("plain",), framings=("upper",))
    clips: list[Clip] = []
    for k in range(8):                  # two clips whose backgrounds differ clearly
        clip = _studio_clip(model, cfg, k)
        if all(np.abs(_border(clip.reference[0]) - _border(c.reference[0])).max() >= 40
               for c in clips):
            clips.append(clip)
        if len(clips) == 2:
            break
    assert len(clips) == 2
    for clip, other in (clips, clips[::-1]):
        want, wrong = _border(clip.reference[0]), _border(other.reference[0])
        out = run_student(model, clip, model.cfg.steps, seed=0).frames
        for frame in (out[0], out[-1]):
            got = _border(frame)
            assert np.abs(got - want).max() <= 24, (got, want)
            assert np.abs(got - want).sum() < np.abs(got - wrong).sum() / 2


def test_each_camera_frame_gets_its_avatar_frame_without_waiting_for_the_next() -> None:
    """The shipped default generates frame by frame (chunk K=1): a session answers a
    camera frame as soon as it is conditioned, instead of holding it for the frame
    after it (33 ms at 30 fps, plus as much again to pace the chunk's second frame
    out). Each push of one frame's condition returns that frame, with its id."""
    model = load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    cfg = DatasetConfig(characters=2, clips=2, resolution=model.cfg.resolution, frames=4,
                        seed=20, backgrounds=("plain",), framings=("upper",))
    clip = _studio_clip(model, cfg, 0)
    engine = StreamingEngine(model, seed=0)
    engine.set_reference(list(clip.reference))
    for j in range(len(clip.pose)):
        got = engine.push([MotionCondition(100 + j, 0.0, clip.pose[j], clip.face[j],
                                           clip.presence[j])])
        assert [g.frame_id for g in got] == [100 + j]
        assert got[0].image.shape == (model.cfg.resolution, model.cfg.resolution, 3)


def test_a_cpu_model_trained_from_nothing_streams_as_the_shipped_one() -> None:
    """`marionette train all --preset cpu` writes the preset's inference settings into
    its checkpoint: it must stream as the shipped default does (frame by frame, at the
    step count whose latency was measured), not at a slower setting."""
    from realtime.model.checkpoint import read_config
    from realtime.model.config import get_preset

    shipped, preset = read_config(DEFAULT_CHECKPOINT), get_preset("cpu")
    assert (preset.chunk, preset.steps, preset.cache_write) == \
        (shipped.chunk, shipped.steps, shipped.cache_write)
