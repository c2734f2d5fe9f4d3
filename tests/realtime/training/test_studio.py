"""Studio samples as training clips: the reference is shot as a session's is."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from realtime.avatars.dataset import DatasetConfig, _Tracks, make_sample, plan
from realtime.model.config import PRESETS
from realtime.training.metrics import FACE_CHANNELS, boxes_from_maps
from realtime.training.studio import sample_to_clip, shot_references

CFG = PRESETS["tiny"].with_(resolution=64)


def _sample(framing: str, k: int = 0) -> dict[str, Any]:
    conf = DatasetConfig(characters=4, clips=4, resolution=64, frames=2, seed=3,
                         performers=3, framings=(framing,), backgrounds=("plain",))
    sample: dict[str, Any] = dict(make_sample(plan(conf, [])[k], conf, _Tracks(None)))
    sample["meta"] = json.loads(str(sample["meta"]))      # as the dataset reader gives it
    return sample


def _err_in_head(image: np.ndarray, frame: np.ndarray, pose: np.ndarray) -> float:
    """Mean absolute difference of two uint8 pictures inside the frame's head box."""
    box = boxes_from_maps(torch.from_numpy(pose[:1]), FACE_CHANNELS, frame.shape[0])[0]
    assert box is not None
    y0, y1, x0, x1 = box
    return float(np.abs(image[y0:y1, x0:x1].astype(float)
                        - frame[y0:y1, x0:x1].astype(float)).mean())


@pytest.mark.parametrize("framing", ["face", "upper"])
def test_a_clips_reference_shows_the_face_where_its_frames_draw_it(framing: str) -> None:
    # A session's reference and its stream share a camera: the reference must show the
    # head at the place and size the frames draw it, not a full-body thumbnail. (The
    # performer may have moved by the first frame, so over three clips.)
    err_shot = err_full = 0.0
    for k in range(3):
        sample = _sample(framing, k)
        clip = sample_to_clip(sample, CFG)
        err_shot += _err_in_head(clip.reference[0], clip.frames[0], clip.pose)
        err_full += _err_in_head(sample["reference"][0], clip.frames[0], clip.pose)
    assert err_shot < 0.6 * err_full


def test_a_dataset_without_shot_references_reframes_its_full_body_one() -> None:
    # datasets built before `reference_shot` get the full-body picture resampled
    # through the clip's camera: close to the rendered one, far from the thumbnail
    for framing in ("face", "upper"):
        sample = _sample(framing)
        shot = sample["reference_shot"][0].astype(float)
        old = {k: v for k, v in sample.items() if k != "reference_shot"}
        reframed = shot_references(old)[0].astype(float)
        assert reframed.shape == shot.shape
        full = sample["reference"][0].astype(float)
        assert np.abs(reframed - shot).mean() < 0.5 * np.abs(full - shot).mean()
