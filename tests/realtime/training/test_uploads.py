"""`marionette eval --uploads`: a clip retargeted onto another skeleton."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from realtime.avatars.dataset import DatasetConfig, _Tracks, make_sample, plan
from realtime.model.config import PRESETS
from realtime.motion.retarget import default_skeleton
from realtime.training.studio import framed_skeleton, sample_to_clip
from realtime.training.uploads import _on_skeleton

CFG = PRESETS["tiny"].with_(resolution=64)


@pytest.mark.parametrize("framing", ["full", "face"])
def test_a_clip_on_its_own_skeleton_seen_through_its_camera_is_the_clip(framing: str) -> None:
    # The comparison's premise: a variant only changes the skeleton it retargets to,
    # so the character's own skeleton given in the picture's units (camera applied)
    # makes exactly the clip's conditions, and another skeleton other ones.
    conf = DatasetConfig(characters=4, clips=4, resolution=64, frames=3, seed=3,
                         performers=3, framings=(framing,), backgrounds=("plain",))
    sample: dict[str, Any] = dict(make_sample(plan(conf, [])[0], conf, _Tracks(None)))
    sample["meta"] = json.loads(str(sample["meta"]))
    own = framed_skeleton(sample["skeleton_body"], sample["skeleton_hand"],
                          sample["rest_root"], sample["framing"])
    clip = sample_to_clip(sample, CFG)
    same = sample_to_clip(_on_skeleton(sample, own), CFG)
    np.testing.assert_allclose(same.pose, clip.pose, atol=1e-5)
    assert np.array_equal(same.frames, clip.frames)
    assert np.array_equal(same.reference, clip.reference)
    other = sample_to_clip(_on_skeleton(sample, default_skeleton()), CFG)
    assert np.abs(other.pose - clip.pose).max() > 0.5
