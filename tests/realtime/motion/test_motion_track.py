"""Track files: MotionFrames survive a save/load round trip, absent parts stay absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.motion.track import load_track, save_track, track_meta
from tests.realtime.motion.motion_synth import make_frame, synthetic_body, synthetic_hand


def test_round_trip_keeps_values_and_absence(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    face = rng.random((478, 3)).astype(np.float32)
    frames = [
        make_frame(0, body=synthetic_body(), face=face),
        make_frame(1, left_hand=synthetic_hand()),            # no body, no face
        make_frame(2, body=synthetic_body(), right_hand=synthetic_hand(), image_size=(31, 17)),
    ]
    path = tmp_path / "t.npz"
    save_track(path, frames, meta={"source": "generated"})
    back = load_track(path)
    assert len(back) == 3
    for a, b in zip(frames, back, strict=True):
        assert (a.frame_id, a.t_capture, a.image_size) == (b.frame_id, b.t_capture, b.image_size)
        for part in ("body", "face", "left_hand", "right_hand"):
            va, vb = getattr(a, part), getattr(b, part)
            assert (va is None) == (vb is None), part
            if va is not None:
                np.testing.assert_array_equal(va, vb)
        assert a.confidence == pytest.approx(b.confidence)
    assert track_meta(path)["source"] == "generated"


def test_not_a_track_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a motion track"):
        load_track(path)
