"""Retargeting keeps the target's bone lengths and the source's directions."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.processor import MotionProcessor, ProcessorConfig
from realtime.motion.retarget import (
    bone_vectors,
    default_skeleton,
    retarget,
    skeleton_from_landmarks,
    unit,
    with_virtual_joints,
)
from realtime.motion.types import (
    BODY_BONES,
    HAND_BONES,
    MID_HIP,
    NormalizedMotion,
    Pose,
    Skeleton,
)
from tests.realtime.motion.motion_synth import make_frame, synthetic_body, synthetic_hand


def random_motion(seed: int, scale: float = 1.0, root=(0.0, 0.0, 0.0)) -> NormalizedMotion:
    """Motion of a random pose: random landmarks through the processor, so the
    directions are those of a real landmark set (mid-hip between the hips, ...)."""
    rng = np.random.default_rng(seed)
    body = np.c_[rng.random((33, 3)), np.ones(33)].astype(np.float32)
    hands = [rng.random((21, 3)).astype(np.float32) for _ in range(2)]
    proc = MotionProcessor(ProcessorConfig.preset("raw"))
    m = proc.process(make_frame(0, body=body, left_hand=hands[0], right_hand=hands[1]))
    m.scale, m.root = scale, np.array(root, dtype=float)
    return m


def height_units(p: np.ndarray, aspect: float) -> np.ndarray:
    out = p.astype(np.float64).copy()
    out[..., 0] *= aspect
    out[..., 2] *= aspect
    return out


def chibi() -> Skeleton:
    """Big head, short legs, long arms: nothing like the source performer."""
    sk = default_skeleton()
    body = sk.body.copy()
    for i, (_parent, child) in enumerate(BODY_BONES):
        if child in (25, 26, 27, 28, 29, 30, 31, 32):
            body[i] *= 0.5
        elif child in (13, 14, 15, 16):
            body[i] *= 1.4
        elif child <= 10:
            body[i] *= 2.0
    return Skeleton(body=body, hand=sk.hand * 1.5, rest_root=(0.4, 0.6))


@pytest.mark.parametrize("aspect", [1.0, 16 / 9, 0.5625])
@pytest.mark.parametrize("scale", [1.0, 1.3])
def test_bone_lengths_are_the_targets_and_directions_the_sources(aspect, scale) -> None:
    motion = random_motion(0, scale=scale)
    for sk in (default_skeleton(), chibi()):
        pose = retarget(motion, sk, aspect=aspect)
        joints = with_virtual_joints(height_units(pose.body, aspect))
        vec = bone_vectors(joints, BODY_BONES)
        np.testing.assert_allclose(np.linalg.norm(vec, axis=1), sk.body * scale, rtol=1e-4)
        np.testing.assert_allclose(unit(vec), motion.body_dirs, atol=1e-4)
        for hand, dirs in ((pose.left_hand, motion.left_hand_dirs),
                           (pose.right_hand, motion.right_hand_dirs)):
            assert hand is not None and dirs is not None
            hv = bone_vectors(height_units(hand, aspect), HAND_BONES)
            np.testing.assert_allclose(np.linalg.norm(hv, axis=1), sk.hand * scale, rtol=1e-4)
            np.testing.assert_allclose(unit(hv), dirs, atol=1e-4)


def test_root_motion_is_in_target_torso_lengths() -> None:
    sk = chibi()
    rest = retarget(random_motion(1), sk)
    moved = retarget(random_motion(1, root=(0.5, -0.25, 0.0)), sk)
    hip = lambda p: with_virtual_joints(p.body)[MID_HIP]  # noqa: E731
    np.testing.assert_allclose(hip(rest)[:2], sk.rest_root, atol=1e-6)
    np.testing.assert_allclose(hip(moved)[:2] - hip(rest)[:2],
                               [0.5 * sk.torso, -0.25 * sk.torso], atol=1e-6)


def test_skeleton_from_landmarks_measures_the_performer() -> None:
    size = (640, 480)
    small, tall = synthetic_body(height=0.4), synthetic_body(height=0.8)
    s_small = skeleton_from_landmarks(small, image_size=size)
    s_tall = skeleton_from_landmarks(tall, synthetic_hand(size=0.2), image_size=size)
    np.testing.assert_allclose(s_tall.body, 2 * s_small.body, rtol=1e-4)
    assert s_tall.torso == pytest.approx(0.29 * 0.8, rel=1e-4)
    assert s_tall.rest_root == pytest.approx((0.5, 0.5))
    hv = bone_vectors(with_virtual_joints(tall[:, :3] * np.array([640 / 480, 1, 640 / 480])),
                      BODY_BONES)
    np.testing.assert_allclose(s_tall.body, np.linalg.norm(hv, axis=1), rtol=1e-4)
    # Legs below the frame (low visibility) take canonical proportions, not guesses.
    hidden = tall.copy()
    hidden[25:, :2] += 5.0
    hidden[25:, 3] = 0.1
    np.testing.assert_allclose(skeleton_from_landmarks(hidden, image_size=size).body,
                               s_tall.body, rtol=1e-4)


def test_performer_to_character_end_to_end() -> None:
    """A performer's processed motion retargeted onto their own measured skeleton
    reproduces their pose."""
    size = (640, 480)
    body = synthetic_body(center=(0.45, 0.55), height=0.7)
    proc = MotionProcessor(ProcessorConfig.preset("raw"))
    motion = [proc.process(make_frame(i, body=body)) for i in range(31)][-1]
    sk = skeleton_from_landmarks(body, image_size=size)
    pose = retarget(motion, sk, aspect=640 / 480)
    np.testing.assert_allclose(pose.body[:, :2], body[:, :2], atol=1e-4)


def test_hand_close_up_keeps_the_performers_framing() -> None:
    proc = MotionProcessor()
    hand = synthetic_hand(wrist=(0.3, 0.8), size=0.6)            # fills the frame
    motion = proc.process(make_frame(0, right_hand=hand))
    pose: Pose = retarget(motion, default_skeleton(), aspect=640 / 480)
    assert pose.left_hand is None and pose.right_hand is not None
    np.testing.assert_allclose(pose.right_hand[0, :2], (0.3, 0.8), atol=1e-4)
    # ... and sized like the performer's hand (wrist -> middle knuckle), so a close-up
    # hand gives a close-up avatar hand.
    size = lambda h: np.linalg.norm(height_units(h[9] - h[0], 640 / 480))  # noqa: E731
    assert size(pose.right_hand) == pytest.approx(size(hand), rel=1e-3)
