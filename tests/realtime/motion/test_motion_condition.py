"""Condition maps: one channel per limb / finger, antialiased, any resolution,
nothing drawn for absent parts."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.condition import render_condition
from realtime.motion.retarget import default_skeleton, rest_body_dirs, retarget, unit
from realtime.motion.types import (
    FACE_DIM,
    HAND_BONES,
    N_PARTS,
    N_POSE_CHANNELS,
    POSE_CHANNELS,
    NormalizedMotion,
    Pose,
)

BODY_CH = POSE_CHANNELS[:6]
LEFT_FINGERS = [c for c in POSE_CHANNELS if c.endswith("_l") and c not in BODY_CH]
RIGHT_FINGERS = [c for c in POSE_CHANNELS if c.endswith("_r") and c not in BODY_CH]


def rest_pose(presence=(1.0, 1.0, 1.0, 1.0)) -> Pose:
    down = unit(np.tile([0.1, 1.0, -0.2], (len(HAND_BONES), 1)))
    motion = NormalizedMotion(
        frame_id=0, t_capture=0.0, root=np.zeros(3), scale=1.0, body_dirs=rest_body_dirs(),
        left_hand_dirs=down, right_hand_dirs=down,
        face=np.linspace(-1, 1, FACE_DIM).astype(np.float32),
        presence=np.asarray(presence, dtype=np.float32))
    return retarget(motion, default_skeleton())


def channel(cond, name: str) -> np.ndarray:
    return cond.pose_maps[POSE_CHANNELS.index(name)]


@pytest.mark.parametrize("size", [64, 256, (96, 160), (33, 17)])
def test_shape_range_and_every_channel_drawn(size) -> None:
    cond = render_condition(rest_pose(), size, frame_id=7, t_capture=1.5)
    w, h = (size, size) if isinstance(size, int) else size
    assert cond.pose_maps.shape == (N_POSE_CHANNELS, h, w)
    assert cond.pose_maps.dtype == np.float32
    assert cond.pose_maps.min() >= 0 and cond.pose_maps.max() <= 1
    assert (cond.frame_id, cond.t_capture) == (7, 1.5)
    assert cond.face.shape == (FACE_DIM,) and cond.presence.shape == (N_PARTS,)
    if min(w, h) >= 64:  # at tiny sizes fingers may merge, but something is drawn
        for name in POSE_CHANNELS:
            assert channel(cond, name).max() > 0.5, name


def test_strokes_are_antialiased() -> None:
    maps = render_condition(rest_pose(), 256).pose_maps
    partial = ((maps > 0.05) & (maps < 0.95)).sum()
    assert partial > 0.2 * (maps > 0.05).sum()


def test_limbs_land_in_their_own_channels_where_the_joints_are() -> None:
    pose = rest_pose()
    cond = render_condition(pose, 256)
    # The performer's left elbow (landmark 13) lies on the arm_l stroke, not arm_r's.
    x, y = (pose.body[13, :2] * 256).astype(int)
    assert channel(cond, "arm_l")[y - 2:y + 3, x - 2:x + 3].max() > 0.5
    assert channel(cond, "arm_r")[y - 2:y + 3, x - 2:x + 3].max() == 0
    # Left and right arms are on opposite sides of the image.
    cols = lambda m: np.nonzero(m.max(axis=0))[0].mean()  # noqa: E731
    assert cols(channel(cond, "arm_l")) > 128 > cols(channel(cond, "arm_r"))


def test_absent_parts_draw_nothing_and_read_absent() -> None:
    cond = render_condition(rest_pose(presence=(1.0, 0.0, 0.0, 1.0)), 128)
    assert all(channel(cond, c).max() == 0 for c in LEFT_FINGERS)
    assert all(channel(cond, c).max() > 0 for c in RIGHT_FINGERS)
    assert np.all(cond.face == 0)                                 # absent face
    np.testing.assert_array_equal(cond.presence, [1, 0, 0, 1])
    no_body = render_condition(rest_pose(presence=(0.0, 1.0, 1.0, 1.0)), 128)
    assert all(channel(no_body, c).max() == 0 for c in BODY_CH)
    assert no_body.face.any()


def test_fading_part_draws_fainter() -> None:
    full = render_condition(rest_pose(), 128).pose_maps.max()
    half = render_condition(rest_pose(presence=(0.5, 1, 0.5, 0.5)), 128).pose_maps.max()
    assert half == pytest.approx(0.5 * full, abs=0.02)


def test_invisible_joints_are_not_drawn() -> None:
    pose = rest_pose()
    vis = np.ones(33, np.float32)
    vis[25:] = 0.1                                                # legs out of frame
    pose.body_visibility = vis
    cond = render_condition(pose, 128)
    assert channel(cond, "leg_l").max() == 0 and channel(cond, "leg_r").max() == 0
    assert channel(cond, "torso").max() > 0


@pytest.mark.parametrize("left", [1.0, 0.3, 0.0])
def test_the_condition_carries_where_each_present_hand_is(left: float) -> None:
    """`hands` holds each hand's 21 points as the pose has them, for the hand paste;
    a hand the tracker lost (presence 0) is NaN, one it is unsure of is kept."""
    pose = rest_pose((1.0, 1.0, left, 1.0))
    cond = render_condition(pose, 32)
    assert cond.hands is not None and cond.hands.shape == (2, 21, 3)
    assert pose.right_hand is not None and np.allclose(cond.hands[1], pose.right_hand)
    if left > 0:
        assert pose.left_hand is not None and np.allclose(cond.hands[0], pose.left_hand)
    else:
        assert np.isnan(cond.hands[0]).all()
