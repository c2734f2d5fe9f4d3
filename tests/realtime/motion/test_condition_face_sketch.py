"""The face sketch (`render_condition(..., sketch=True)`): one more plane after the
pose channels, with the face vector drawn where the face is: the lids part as the
eyes open, the lips as the mouth opens, nothing for an absent face."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.condition import render_condition, render_face_sketch
from realtime.motion.retarget import default_skeleton, rest_body_dirs, retarget
from realtime.motion.types import FACE_DIM, FACE_FEATURES, N_POSE_CHANNELS, NormalizedMotion, Pose

SIZE = 256


def face_pose(presence=(1.0, 1.0, 1.0, 1.0), **features: float) -> Pose:
    face = np.zeros(FACE_DIM, dtype=np.float32)
    for name, value in features.items():
        face[FACE_FEATURES.index(name)] = value
    motion = NormalizedMotion(
        frame_id=0, t_capture=0.0, root=np.zeros(3), scale=1.0, body_dirs=rest_body_dirs(),
        left_hand_dirs=None, right_hand_dirs=None, face=face,
        presence=np.asarray(presence, dtype=np.float32))
    return retarget(motion, default_skeleton())


def rows_lit(plane: np.ndarray, around: np.ndarray, radius: int) -> int:
    """Rows with ink within `radius` px of the canvas point `around`."""
    x, y = (around[:2] * SIZE).astype(int)
    box = plane[max(0, y - radius):y + radius, max(0, x - radius):x + radius]
    return int((box.max(axis=1) > 0.3).sum())


def test_the_sketch_is_one_more_plane_and_the_others_are_unchanged() -> None:
    pose = face_pose(mouth_open=0.5)
    plain = render_condition(pose, SIZE).pose_maps
    both = render_condition(pose, SIZE, sketch=True).pose_maps
    assert both.shape == (N_POSE_CHANNELS + 1, SIZE, SIZE)
    assert np.array_equal(both[:N_POSE_CHANNELS], plain)
    assert both[-1].max() > 0.5 and both[-1].min() >= 0.0


def test_the_lids_part_as_the_eyes_open() -> None:
    eye = face_pose().body[2]                   # the performer's left eye
    shut = render_face_sketch(face_pose(eye_open_l=-1.0), SIZE)
    wide = render_face_sketch(face_pose(eye_open_l=0.5), SIZE)
    assert rows_lit(wide, eye, 6) > rows_lit(shut, eye, 6) + 1
    # the other eye did not change
    other = face_pose().body[5]
    assert rows_lit(wide, other, 6) == rows_lit(shut, other, 6)


def test_the_lips_part_as_the_mouth_opens() -> None:
    pose = face_pose()
    mouth = 0.5 * (pose.body[9] + pose.body[10])
    shut = render_face_sketch(face_pose(mouth_open=0.0), SIZE)
    open_ = render_face_sketch(face_pose(mouth_open=1.0), SIZE)
    assert rows_lit(open_, mouth, 10) > rows_lit(shut, mouth, 10) + 2
    assert not np.array_equal(open_, shut)


@pytest.mark.parametrize("presence", [(1.0, 0.0, 1.0, 1.0), (0.0, 1.0, 1.0, 1.0)])
def test_nothing_is_drawn_without_a_face_or_a_body(presence) -> None:
    assert render_face_sketch(face_pose(presence, mouth_open=1.0), SIZE).max() == 0.0


def test_hidden_face_points_draw_nothing() -> None:
    pose = face_pose(mouth_open=1.0)
    pose.body_visibility = np.ones(len(pose.body), dtype=np.float32)
    assert render_face_sketch(pose, SIZE).max() > 0.0
    pose.body_visibility[9] = 0.0               # a mouth corner out of sight
    assert render_face_sketch(pose, SIZE).max() == 0.0


def test_the_condition_strip_shows_the_sketch_in_white() -> None:
    from realtime.strip import colorize_condition

    cond = render_condition(face_pose(mouth_open=1.0), 64, sketch=True)
    cond.pose_maps[:N_POSE_CHANNELS] = 0.0      # only the sketch left
    rgb = colorize_condition(cond, 64)
    lit = rgb.max(axis=2) > 100
    assert lit.any()
    assert (rgb[lit].min(axis=1) == rgb[lit].max(axis=1)).all()     # grey levels: white ink
