"""The face paste: a built-in character's face taken from its reference, placed where
the frame's head is, moved to the expression."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from realtime.avatars.character import make_character
from realtime.avatars.render import framing_for, render, render_reference, rest_pose
from realtime.model.face_paste import FITTED_WARP, HeadShape, paste_faces
from realtime.model.face_warp import FaceWarpConfig
from realtime.motion.types import FACE_DIM, FACE_FEATURES

S = 128
CHAR = make_character(5, accessories=())
CAM = framing_for(CHAR, "face")
SHAPE = HeadShape.of(CHAR, CAM)
REF = render_reference(CHAR, S, framing=CAM)                  # (S, S, 3) uint8


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1


def image(x: torch.Tensor) -> np.ndarray:
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def luma(img: np.ndarray, p: np.ndarray) -> float:
    x, y = (np.asarray(p) * S).astype(int)
    return float(img[y - 1:y + 2, x - 1:x + 2].astype(float).mean())


def rest_head() -> np.ndarray:
    return np.array([*SHAPE.ears, SHAPE.torso], np.float32)


def paste(frame: np.ndarray, head: np.ndarray, face: np.ndarray | None = None) -> np.ndarray:
    f = np.zeros(FACE_DIM, np.float32) if face is None else face
    out = paste_faces(tensor(frame)[None], tensor(REF), SHAPE, torch.from_numpy(f)[None],
                      torch.from_numpy(head)[None])
    return image(out[0])


def test_the_head_shape_finds_the_drawn_eyes() -> None:
    """The eyes it places on the reference are where the studio drew them: darker
    (iris and pupil) than the skin at the nose and between the eyes."""
    pts = SHAPE.points()
    between = (pts[0] + pts[1]) / 2
    for eye in pts[:2]:
        assert luma(REF, eye) < luma(REF, between) - 40
        assert luma(REF, eye) < luma(REF, pts[2]) - 40


def test_a_frame_with_the_head_at_rest_gets_the_reference_face() -> None:
    blank = np.full((S, S, 3), 128, np.uint8)
    out = paste(blank, rest_head())
    pts = SHAPE.points()
    centre = ((pts[:2].mean(0) + pts[3]) / 2 * S).astype(int)
    x, y = centre
    assert np.abs(out[y - 4:y + 4, x - 4:x + 4].astype(int)
                  - REF[y - 4:y + 4, x - 4:x + 4].astype(int)).max() <= 3
    # outside the face the frame is untouched
    assert np.array_equal(out[:8], blank[:8])
    assert np.array_equal(out[:, :8], blank[:, :8])


def test_the_face_follows_the_head() -> None:
    """Ears 12 pixels to the right and 6 down: the eyes are drawn there."""
    blank = np.full((S, S, 3), 200, np.uint8)
    shift = np.array([12, 6]) / S
    head = rest_head()
    head[:2] += shift
    out = paste(blank, head)
    for eye in SHAPE.points()[:2]:
        assert luma(out, eye + shift) < 150
        assert luma(out, eye) > luma(out, eye + shift) + 30


def test_the_face_turns_with_the_head() -> None:
    """A head turned by roll: the pasted eyes lie on the turned line between them."""
    face = np.zeros(FACE_DIM, np.float32)
    face[FACE_FEATURES.index("roll")] = 0.4
    out = paste(np.full((S, S, 3), 200, np.uint8), rest_head(), face)
    turned = SHAPE.points(face)
    for eye in turned[:2]:
        assert luma(out, eye) < 150


def test_the_pasted_face_opens_its_mouth() -> None:
    blank = np.full((S, S, 3), 128, np.uint8)
    face = np.zeros(FACE_DIM, np.float32)
    face[FACE_FEATURES.index("mouth_open")] = 1.5
    closed, opened = paste(blank, rest_head()), paste(blank, rest_head(), face)
    x, y = (SHAPE.points()[3] * S).astype(int)
    box = np.s_[y - 4:y + 12, x - 10:x + 10]           # the mouth and below it
    # the dark line stretched into an opening: the box darkens
    assert opened[box].mean() < closed[box].mean() - 8


def test_no_head_no_paste() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    assert np.array_equal(paste(frame, np.full(3, np.nan, np.float32)), frame)


@pytest.mark.parametrize("framing", ["full", "upper"])
def test_a_rendered_frame_of_the_character_gets_its_own_face_back(framing: str) -> None:
    """The studio's frame of the character at rest with the eyes shut, pasted with
    the reference's face at the rest expression: the eyes come back open, where the
    studio draws them."""
    cam = framing_for(CHAR, framing)
    shape = HeadShape.of(CHAR, cam)
    ref = render_reference(CHAR, S, framing=cam)
    pose = rest_pose(CHAR)
    pose.face[FACE_FEATURES.index("eye_open_l")] = -1.0
    pose.face[FACE_FEATURES.index("eye_open_r")] = -1.0
    shut = render(CHAR, pose, S, "plain", cam)[..., :3]
    out = paste_faces(tensor(shut)[None], tensor(ref), shape, torch.zeros(1, FACE_DIM),
                      torch.tensor([[*shape.ears, shape.torso]], dtype=torch.float32))
    got = image(out[0])
    for eye in shape.points()[:2]:
        assert abs(luma(got, eye) - luma(ref, eye)) < abs(luma(shut, eye) - luma(ref, eye))


@pytest.mark.parametrize("framing", ["full", "upper", "face"])
def test_the_pasted_mouth_opens_as_the_studio_draws_it(framing: str) -> None:
    """The studio's frame of the character with its mouth open, against the pasted
    face moved to that expression: with the open mouth drawn in, the mouth comes
    closer to the studio's than the warp alone brings it."""
    cam = framing_for(CHAR, framing)
    shape = HeadShape.of(CHAR, cam)
    ref = render_reference(CHAR, S, framing=cam)
    pose = rest_pose(CHAR)
    pose.face[FACE_FEATURES.index("mouth_open")] = 1.0
    truth = render(CHAR, pose, S, "plain", cam)[..., :3]
    face = torch.from_numpy(pose.face.astype(np.float32))[None]
    head = torch.tensor([[*shape.ears, shape.torso]], dtype=torch.float32)
    x, y = shape.points()[3] * S
    r = max(3, int(round(shape.rx * S * 0.45)))
    box = np.s_[int(y) - r // 2:int(y) + r + 1, int(x) - r:int(x) + r + 1]

    def error(warp: FaceWarpConfig) -> float:
        got = image(paste_faces(tensor(truth)[None], tensor(ref), shape, face, head,
                                warp=warp)[0])
        return float(np.abs(got[box].astype(int) - truth[box].astype(int)).mean())

    assert error(FITTED_WARP) < 0.8 * error(dataclasses.replace(FITTED_WARP, mouth_depth=0))


def test_a_hand_before_the_face_stays_in_front_of_the_pasted_face() -> None:
    """The condition maps put a hand over the mouth: the frame's hand is kept there,
    while the eyes above it are pasted."""
    import cv2

    from realtime.model.face_paste import LIMB_CHANNELS

    frame = np.full((S, S, 3), 128, np.uint8)
    x, y = (SHAPE.points()[3] * S).astype(int)
    cv2.rectangle(frame, (x - 6, y - 4), (x + 6, S - 1), (90, 60, 200), -1)   # a glove
    maps = np.zeros((16, 32, 32), np.float32)
    cv2.line(maps[LIMB_CHANNELS[-1]], (x // 4, y // 4), (x // 4, 31), (1.0,), 1)  # its bones
    out = paste_faces(tensor(frame)[None], tensor(REF), SHAPE, torch.zeros(1, FACE_DIM),
                      torch.from_numpy(rest_head())[None], torch.from_numpy(maps)[None])
    got = image(out[0])
    hand = np.s_[y - 2:y + 8, x - 4:x + 4]
    assert np.abs(got[hand].astype(int) - frame[hand].astype(int)).max() <= 2
    without = paste(frame, rest_head())                     # no maps: pasted over it
    assert np.abs(without[hand].astype(int) - frame[hand].astype(int)).max() > 30
    for eye in SHAPE.points()[:2]:
        assert luma(got, eye) < 150


@pytest.mark.parametrize("seed", [5, 11])
def test_a_head_is_fitted_back_from_its_own_features(seed: int) -> None:
    """`fit`, given a built-in head's own eyes, nose and mouth and its figure's ears
    and torso, finds that head again: its size, its eye drop, no offset."""
    char = make_character(seed)
    shape = HeadShape.of(char, framing_for(char, "upper"))
    got = HeadShape.fit(shape.rest, np.asarray(shape.ears), shape.torso)
    assert got is not None
    assert got.rx == pytest.approx(shape.rx) and got.ry == pytest.approx(shape.ry)
    assert got.eye_v == shape.eye_v
    assert np.allclose(got.offset, 0.0, atol=1e-9)


def test_a_face_away_from_the_ears_is_followed_by_its_offset() -> None:
    """An upload's face need not sit where the studio puts one by the ears: the fitted
    offset puts it back, and it turns with the head."""
    moved = SHAPE.rest + np.array([0.03, -0.02])
    got = HeadShape.fit(moved, np.asarray(SHAPE.ears), SHAPE.torso)
    assert got is not None
    assert np.abs(got.rest - moved).max() < 1e-9
    roll = np.zeros(FACE_DIM)
    roll[FACE_FEATURES.index("roll")] = 0.5
    turned, plain = got.points(roll), SHAPE.points(roll)
    # the offset turned with the head: not the rest offset added to the plain head's
    assert np.abs((turned - plain).mean(0) - np.array([0.03, -0.02])).max() > 0.002


def test_features_no_head_fits_are_refused() -> None:
    """A mouth above the eyes, or eyes on one spot, fit no head: no paste."""
    upside_down = SHAPE.rest.copy()
    upside_down[3, 1] = SHAPE.rest[:2, 1].mean() - 0.1
    assert HeadShape.fit(upside_down, np.asarray(SHAPE.ears), SHAPE.torso) is None
    one_eye = SHAPE.rest.copy()
    one_eye[1] = one_eye[0]
    assert HeadShape.fit(one_eye, np.asarray(SHAPE.ears), SHAPE.torso) is None


def test_an_arm_beside_a_small_face_leaves_the_face_pasted() -> None:
    """A full-body shot's face is a few pixels across: an arm drawn down beside it, a
    little over an eye span from the nearer eye, keeps its own pixels, and the eyes
    are still pasted (the guard is made at the frame's resolution, not grown by whole
    condition-map pixels)."""
    import cv2

    from realtime.model.face_paste import LIMB_CHANNELS

    cam = framing_for(CHAR, "full")
    shape = HeadShape.of(CHAR, cam)
    ref = render_reference(CHAR, S, framing=cam)
    pts = shape.points()
    spread = float(np.linalg.norm(pts[0] - pts[1]))
    x = float(pts[0, 0] + 1.6 * spread)                     # beside the image-right eye
    frame = np.full((S, S, 3), 128, np.uint8)
    px = int(round(x * S))
    cv2.line(frame, (px, 0), (px, S - 1), (90, 60, 200), 2)    # the arm, as drawn
    maps = np.zeros((16, 32, 32), np.float32)
    cv2.line(maps[LIMB_CHANNELS[0]], (int(x * 32), 0), (int(x * 32), 31), (1.0,), 1)
    out = paste_faces(tensor(frame)[None], tensor(ref), shape, torch.zeros(1, FACE_DIM),
                      torch.tensor([[*shape.ears, shape.torso]], dtype=torch.float32),
                      torch.from_numpy(maps)[None])
    got = image(out[0])
    assert np.array_equal(got[:, px - 1:px + 1], frame[:, px - 1:px + 1])   # the arm kept
    for eye in pts[:2]:
        ex, ey = (eye * S).astype(int)
        assert np.abs(got[ey, ex].astype(int) - 128).max() > 20          # the eye pasted
