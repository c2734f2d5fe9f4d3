"""Procedural motion and augmentation: smooth, varied, deterministic, well-formed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from realtime.avatars.augment import AugmentConfig, augment_clip
from realtime.avatars.character import make_character
from realtime.avatars.motion import (
    ACTIONS,
    MotionConfig,
    ProceduralMotion,
    demo_performer,
    fk,
    pose_to_motion,
    to_pose,
)
from realtime.motion.types import BODY_BONES, FACE_FEATURES, HAND_BONES, PARTS

FI = {n: i for i, n in enumerate(FACE_FEATURES)}


def _stack(clip, name):
    return np.stack([getattr(m, name) for m in clip])


def test_motion_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    a = ProceduralMotion(4).clip(60)
    b = ProceduralMotion(4).clip(60)
    c = ProceduralMotion(5).clip(60)
    assert np.array_equal(_stack(a, "body_dirs"), _stack(b, "body_dirs"))
    assert np.array_equal(_stack(a, "face"), _stack(b, "face"))
    assert np.abs(_stack(a, "body_dirs") - _stack(c, "body_dirs")).max() > 0.1


def test_motion_is_well_formed_and_smooth() -> None:
    clip = ProceduralMotion(2, MotionConfig(min_action_s=1.6, max_action_s=2.0)).clip(450)
    body = _stack(clip, "body_dirs")                      # (T, B, 3)
    hands = _stack(clip, "left_hand_dirs")
    assert body.shape == (450, len(BODY_BONES), 3) and hands.shape[1] == len(HAND_BONES)
    assert np.allclose(np.linalg.norm(body, axis=-1), 1.0, atol=1e-4)
    assert np.allclose(np.linalg.norm(hands, axis=-1), 1.0, atol=1e-4)
    assert all(np.isfinite(m.face).all() and (m.presence == 1).all() for m in clip)
    # smooth: at 30 fps no bone direction (fingers included) turns more than ~30
    # degrees between frames (a flip or a cut would be 60-180), and the typical
    # frame-to-frame change is small
    for dirs, typical in ((body, 0.02), (hands, 0.08), (_stack(clip, "right_hand_dirs"), 0.08)):
        step = np.linalg.norm(np.diff(dirs, axis=0), axis=-1)
        assert step.max() < 0.5, step.max()
        assert np.median(step) < typical


def test_actions_and_expressions_show_up_in_the_features() -> None:
    for action, check in (
        ("talk", lambda f: f[:, FI["mouth_open"]].max() > 0.4),
        ("nod", lambda f: f[:, FI["pitch"]].min() < -0.2),
        ("turn", lambda f: np.abs(f[:, FI["yaw"]]).max() > 0.5),
        ("wave", lambda f: f[:, FI["mouth_width"]].max() > 0.5),
        ("cover_face", lambda f: f[:, FI["eye_open_l"]].min() < -0.8),
    ):
        gen = ProceduralMotion(1, MotionConfig(actions=(action,)))
        face = _stack(gen.clip(90), "face")
        assert check(face), action
    # blinks: eyes close briefly every few seconds in any performance
    face = _stack(ProceduralMotion(3, MotionConfig(actions=("idle",))).clip(300), "face")
    closed = face[:, FI["eye_open_l"]] < -0.8
    assert 1 <= np.sum(closed[1:] & ~closed[:-1]) <= 8


def test_timeline_draws_every_action() -> None:
    gen = ProceduralMotion(0, MotionConfig(min_action_s=0.8, max_action_s=1.0))
    seen = {gen.action_at(t) for t in np.arange(0, 120, 0.5)}
    assert seen == set(ACTIONS)


def test_pose_to_motion_inverts_forward_kinematics() -> None:
    performer = make_character(8, build="child")
    m = ProceduralMotion(6, performer=performer).frame(45)
    pose = fk(m, performer.skeleton)
    back = pose_to_motion(pose, performer.skeleton)
    assert back.left_hand_dirs is not None and m.left_hand_dirs is not None
    assert np.allclose(back.body_dirs, m.body_dirs, atol=1e-5)
    assert np.allclose(back.left_hand_dirs, m.left_hand_dirs, atol=1e-5)
    assert np.allclose(back.root, m.root, atol=1e-6) and abs(back.scale - 1.0) < 1e-6


def test_to_pose_agrees_with_the_motion_stage_retarget() -> None:
    pytest.importorskip("realtime.motion.retarget")
    c = make_character(2)
    m = ProceduralMotion(9).frame(77)
    ours, theirs = fk(m, c.skeleton), to_pose(m, c.skeleton)
    assert ours.right_hand is not None and theirs.right_hand is not None
    assert np.allclose(ours.body, theirs.body, atol=1e-5)
    assert np.allclose(ours.right_hand, theirs.right_hand, atol=1e-5)


def test_demo_performer_streams_30fps_frames() -> None:
    assert MotionConfig().fps == 30.0
    frames = list(itertools.islice(demo_performer(3), 45))
    assert [m.frame_id for m in frames] == list(range(45))
    assert (np.diff([m.t_capture for m in frames]) >= 0).all()   # stamped as made
    # frame i is the performance at i / 30 s
    gen = ProceduralMotion(3)
    assert np.array_equal(frames[30].body_dirs, gen.frame(30).body_dirs)
    again = list(itertools.islice(demo_performer(3), 45))
    assert np.array_equal(_stack(frames, "body_dirs"), _stack(again, "body_dirs"))


def test_augmentation_mimics_extraction_failures() -> None:
    clip = ProceduralMotion(1).clip(120)
    cfg = AugmentConfig(drop_rate=1.0, decay_rate=1.0, drop_frames=(20, 20))
    noisy = augment_clip(clip, seed=5, config=cfg)
    again = augment_clip(clip, seed=5, config=cfg)
    assert np.array_equal(_stack(noisy, "body_dirs"), _stack(again, "body_dirs"))
    # the clean clip is untouched and the noisy one stays unit-length but differs
    assert np.array_equal(_stack(clip, "presence"), np.ones((120, len(PARTS))))
    nb = _stack(noisy, "body_dirs")
    assert np.allclose(np.linalg.norm(nb, axis=-1), 1.0, atol=1e-4)
    assert 0.005 < np.abs(nb - _stack(clip, "body_dirs")).mean() < 0.1
    pres = _stack(noisy, "presence")
    for part in ("face", "left_hand", "right_hand"):
        k = PARTS.index(part)
        assert (pres[:, k] == 0).sum() >= 20                 # a dropped stretch
        assert ((pres[:, k] > 0) & (pres[:, k] < 0.9)).any()  # a confidence dip
    # a dropped hand is absent, not a hand of zeros; a dropped face is zeroed (unknown)
    for m in noisy:
        if m.presence[PARTS.index("left_hand")] == 0:
            assert m.left_hand_dirs is None
        if m.presence[PARTS.index("face")] == 0:
            assert not m.face.any()
    # no augmentation preset leaves the motion exactly as it was
    none = augment_clip(clip, 1, AugmentConfig.preset("none"))
    assert np.allclose(_stack(none, "body_dirs"), _stack(clip, "body_dirs"), atol=1e-6)
