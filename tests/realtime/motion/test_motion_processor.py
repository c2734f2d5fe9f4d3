"""MotionProcessor on generated landmarks: calibration, relative root and scale,
bone directions, missing parts holding then going absent."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.processor import MotionProcessor, ProcessorConfig
from realtime.motion.retarget import rest_body_dirs
from realtime.motion.types import BODY_BONES, MID_SHOULDER, PARTS
from tests.realtime.motion.motion_synth import make_frame, synthetic_body, synthetic_hand

FPS = 30.0


def feed(proc: MotionProcessor, frames: list) -> list:
    return [proc.process(f) for f in frames]


def test_rest_reads_zero_root_unit_scale_and_rest_directions() -> None:
    proc = MotionProcessor()
    out = feed(proc, [make_frame(i, body=synthetic_body()) for i in range(40)])[-1]
    assert proc._body_cal.rest is not None                  # calibrated after 1 s
    np.testing.assert_allclose(out.root, 0.0, atol=1e-6)
    assert out.scale == pytest.approx(1.0, abs=1e-6)
    # The synthetic body is the canonical adult: its directions are the rest pose's.
    np.testing.assert_allclose(out.body_dirs, rest_body_dirs(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out.body_dirs, axis=1), 1.0, atol=1e-6)
    assert out.presence[PARTS.index("body")] == pytest.approx(1.0)


def test_stepping_closer_and_sideways_is_relative_to_the_calibrated_rest() -> None:
    proc = MotionProcessor(ProcessorConfig.preset("raw"))
    feed(proc, [make_frame(i, body=synthetic_body()) for i in range(31)])
    # Same performer, 1.25x bigger in the image (closer), mid-hip 0.1 image heights
    # to the right: root is in calibrated torso lengths, scale is the size ratio.
    out = proc.process(make_frame(31, body=synthetic_body(center=(0.5 + 0.1 * 480 / 640, 0.5),
                                                          height=1.0)))
    torso = 0.29 * 0.8  # canonical torso (body heights) x synthetic height
    assert out.scale == pytest.approx(1.25, rel=1e-4)
    np.testing.assert_allclose(out.root[:2], [0.1 / torso, 0.0], atol=1e-4)
    np.testing.assert_allclose(out.body_dirs, rest_body_dirs(), atol=1e-5)  # same pose


def test_performer_proportions_do_not_change_directions_or_rest() -> None:
    """A smaller performer (a child) in the same pose reads the same motion."""
    a, b = MotionProcessor(), MotionProcessor()
    out_a = feed(a, [make_frame(i, body=synthetic_body(height=0.9)) for i in range(35)])[-1]
    out_b = feed(b, [make_frame(i, body=synthetic_body(height=0.45)) for i in range(35)])[-1]
    np.testing.assert_allclose(out_a.body_dirs, out_b.body_dirs, atol=1e-5)
    assert out_a.scale == pytest.approx(out_b.scale, abs=1e-6)
    np.testing.assert_allclose(out_a.root, out_b.root, atol=1e-6)


def test_missing_hand_holds_with_decaying_presence_then_goes_absent() -> None:
    hold = 0.5
    proc = MotionProcessor(ProcessorConfig(hold_s=hold))
    body, hand = synthetic_body(), synthetic_hand()
    seen = feed(proc, [make_frame(i, body=body, left_hand=hand) for i in range(30)])
    dirs_seen = seen[-1].left_hand_dirs
    assert dirs_seen is not None
    k = PARTS.index("left_hand")
    lost = feed(proc, [make_frame(i, body=body) for i in range(30, 60)])   # 1 s without it
    presence = np.array([m.presence[k] for m in lost])
    t_lost = np.arange(1, 31) / FPS
    held = t_lost < hold - 1e-3
    assert np.all(np.diff(presence[held]) < 0)                       # decays...
    assert np.all(presence[held] > 0)
    for m in (m for m, h in zip(lost, held, strict=True) if h):      # ...holding the value
        np.testing.assert_allclose(m.left_hand_dirs, dirs_seen)
    for m in (m for m, h in zip(lost, held, strict=True) if not h):  # then absent
        assert m.presence[k] == 0.0
        assert m.left_hand_dirs is None                              # never zero-filled
        assert np.isnan(m.hand_roots[0]).all()
    assert all(m.presence[PARTS.index("body")] == 1.0 for m in lost)  # others unaffected


def test_absent_body_and_face_are_flagged_not_zero_filled() -> None:
    proc = MotionProcessor()
    out = proc.process(make_frame(0, left_hand=synthetic_hand()))
    assert out.presence[PARTS.index("body")] == 0.0
    assert out.presence[PARTS.index("face")] == 0.0
    assert out.body_visibility is None
    # Body directions of an absent body are the rest pose (unit vectors), not zeros.
    np.testing.assert_allclose(np.linalg.norm(out.body_dirs, axis=1), 1.0, atol=1e-6)
    assert out.left_hand_dirs is not None and out.right_hand_dirs is None
    np.testing.assert_allclose(np.linalg.norm(out.left_hand_dirs, axis=1), 1.0, atol=1e-6)


def test_hand_directions_ignore_hand_size_and_position() -> None:
    a = MotionProcessor().process(make_frame(0, right_hand=synthetic_hand((0.3, 0.7), 0.1)))
    b = MotionProcessor().process(make_frame(0, right_hand=synthetic_hand((0.7, 0.4), 0.3)))
    assert a.right_hand_dirs is not None and b.right_hand_dirs is not None
    np.testing.assert_allclose(a.right_hand_dirs, b.right_hand_dirs, atol=1e-5)
    assert a.hand_roots is not None and b.hand_roots is not None
    assert b.hand_roots[1, 2] == pytest.approx(3 * a.hand_roots[1, 2], rel=1e-4)


def test_filter_strength_smooths_noisy_landmarks() -> None:
    rng = np.random.default_rng(0)
    frames = [make_frame(i, body=synthetic_body() + np.r_[rng.normal(0, 0.003, (33, 3)).T,
                                                         np.zeros((1, 33))].T.astype(np.float32))
              for i in range(90)]

    def spread(strength: float) -> float:
        proc = MotionProcessor()
        proc.set_filter_strength(strength)
        dirs = np.stack([m.body_dirs for m in feed(proc, frames)][30:])
        return float(dirs.std(axis=0).mean())

    assert spread(2.0) < spread(1.0) < spread(0.0)


def test_reset_calibration_takes_a_new_rest() -> None:
    proc = MotionProcessor()
    feed(proc, [make_frame(i, body=synthetic_body()) for i in range(35)])
    proc.reset_calibration()
    moved = synthetic_body(center=(0.6, 0.55), height=0.6)
    out = feed(proc, [make_frame(i, body=moved) for i in range(35, 70)])[-1]
    np.testing.assert_allclose(out.root, 0.0, atol=1e-3)
    assert out.scale == pytest.approx(1.0, abs=1e-3)


def webcam_body() -> np.ndarray:
    """The canonical adult as a head-and-shoulders webcam sees it, as BlazePose reports
    it: hips and legs guessed far below the frame (visibility 0), arms out of frame
    (0.05), and the face's landmarks, whose depth it does not compute, put far before
    the shoulders."""
    body = synthetic_body()
    body[23:, 1] += 1.0
    body[23:, 3] = 0.0
    body[13:23, 1] += 0.4
    body[13:23, 3] = 0.05
    body[:11, 2] -= 1.5
    return body


def test_a_webcam_shot_reads_the_rest_pose_not_the_guesses() -> None:
    """Only the head and shoulders are seen, at rest: every bone reads the rest
    direction. The neck no longer folds into the camera (it did: the nose 1.5 image
    heights before the shoulders left the neck a fifth of its length in the picture),
    and the spine, legs and arms the tracker guessed take the rest's."""
    out = feed(MotionProcessor(), [make_frame(i, body=webcam_body()) for i in range(35)])[-1]
    np.testing.assert_allclose(out.body_dirs, rest_body_dirs(), atol=1e-3)


def test_the_head_still_turns_and_tilts_in_the_picture() -> None:
    """A head turned to one side: the ear it turns away from draws nearer the nose in
    the picture, and shows shorter; a head tilted sideways tilts the neck."""
    body = webcam_body()
    nose = body[0, :2].copy()
    body[7, :2] = nose + 0.4 * (body[7, :2] - nose)        # the performer's left ear
    out = feed(MotionProcessor(), [make_frame(i, body=body) for i in range(35)])[-1]
    left, right = (out.body_dirs[BODY_BONES.index((0, e))] for e in (7, 8))
    assert np.linalg.norm(left[:2]) < 0.6 * np.linalg.norm(right[:2])
    np.testing.assert_allclose(np.linalg.norm(out.body_dirs, axis=1), 1.0, atol=1e-6)
    tilted = webcam_body()
    tilted[:11, 0] += 0.05                                  # the head leans to the image right
    neck = feed(MotionProcessor(), [make_frame(i, body=tilted) for i in range(35)])[-1] \
        .body_dirs[BODY_BONES.index((MID_SHOULDER, 0))]
    assert neck[0] > 0.2


@pytest.mark.parametrize("seen, measured_share", [(0.1, 0.0), (0.5, 0.5), (0.9, 1.0)])
def test_an_arm_at_the_frames_edge_blends_from_rest_to_measured(
        seen: float, measured_share: float) -> None:
    """An arm raised straight out, its elbow seen by the tracker at `seen`: unseen it is
    the rest's, seen it is the measured one, and between the two in between, so an
    arm crossing the frame's edge does not snap."""
    body = synthetic_body()
    shoulder = body[11, :2].copy()
    body[13, :2] = shoulder + [0.15 * 480 / 640, 0.0]      # the upper arm level, outwards
    body[13, 3] = seen
    out = feed(MotionProcessor(), [make_frame(i, body=body) for i in range(35)])[-1]
    bone = BODY_BONES.index((11, 13))
    rest = rest_body_dirs()[bone]
    angle_to_rest = np.arccos(np.clip(out.body_dirs[bone] @ rest, -1, 1))
    full = np.arccos(np.clip(np.array([1.0, 0.0, 0.0]) @ rest, -1, 1))
    assert angle_to_rest == pytest.approx(measured_share * full, abs=0.25 * full)
