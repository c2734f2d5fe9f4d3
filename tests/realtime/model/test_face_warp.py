"""The face warp draws an expression onto a decoded face, placed by the pose's points."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from realtime.model.face_warp import FaceWarpConfig, warp_faces
from realtime.motion.types import FACE_DIM, FACE_FEATURES

S = 128
F = {name: i for i, name in enumerate(FACE_FEATURES)}
# eyes at (44, 56) and (84, 56), 16 px wide; mouth corners at (52, 90) and (76, 90)
EYES = ((44, 56), (84, 56))
POINTS = np.array([[36, 56], [44, 56], [52, 56], [76, 56], [84, 56], [92, 56],
                   [52, 90], [76, 90]], np.float32) / S + 0.5 / S


def drawn_face() -> np.ndarray:
    """A cartoon face: skin disc, white eyes with dark irises, a dark mouth line."""
    img = np.full((S, S, 3), (70, 120, 70), np.uint8)
    cv2.circle(img, (64, 68), 44, (220, 180, 150), -1)
    for c in EYES:
        cv2.ellipse(img, c, (8, 6), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, c, 3, (20, 20, 30), -1)
    cv2.line(img, (52, 90), (76, 90), (60, 20, 30), 2)
    return img


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1


def warp(img: np.ndarray, dst: np.ndarray, points: np.ndarray = POINTS,
         cfg: FaceWarpConfig | None = None) -> np.ndarray:
    out = warp_faces(to_tensor(img), torch.from_numpy(points)[None],
                     torch.zeros(1, FACE_DIM), torch.from_numpy(dst)[None],
                     cfg or FaceWarpConfig())
    return ((out[0] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def expression(**features: float) -> np.ndarray:
    e = np.zeros(FACE_DIM, np.float32)
    for name, v in features.items():
        e[F[name]] = v
    return e


def eye_white(img: np.ndarray) -> int:
    """White pixels around the eyes."""
    region = img[44:70, 30:100]
    return int((region.min(axis=-1) > 235).sum())


def eye_height(img: np.ndarray, eye: int = 0) -> int:
    """Rows of white in the column beside an eye's iris: how open it is drawn."""
    x = EYES[eye][0] + 5
    return int((img[40:72, x].min(axis=-1) > 235).sum())


def mouth_dark(img: np.ndarray) -> int:
    """Dark pixels around the mouth."""
    region = img[80:112, 44:84]
    return int((region.max(axis=-1) < 100).sum())


def test_the_neutral_face_and_a_face_without_points_come_back_as_drawn() -> None:
    img = drawn_face()
    assert np.array_equal(warp(img, expression()), img)
    hidden = np.full((8, 2), np.nan, np.float32)
    assert np.array_equal(warp(img, expression(eye_open_l=-1, mouth_open=1), hidden), img)


def test_closing_and_opening_the_eyes_changes_how_much_of_them_shows() -> None:
    img = drawn_face()
    shown = eye_white(img)
    closed = warp(img, expression(eye_open_l=-1.0, eye_open_r=-1.0))
    wide = warp(img, expression(eye_open_l=0.5, eye_open_r=0.5))
    assert eye_white(closed) < 0.35 * shown
    for eye in (0, 1):
        assert eye_height(closed, eye) <= 0.4 * eye_height(img, eye)
        assert eye_height(wide, eye) >= 1.2 * eye_height(img, eye)


def test_one_eye_closes_alone() -> None:
    out = warp(drawn_face(), expression(eye_open_l=-1.0))
    img = drawn_face()
    # the performer's left eye is the one drawn on the image's left here (its points
    # come first); the other eye is untouched
    assert eye_white(out[:, :64]) < 0.35 * eye_white(img[:, :64])
    assert abs(eye_white(out[:, 64:]) - eye_white(img[:, 64:])) <= 2


def test_an_open_mouth_shows_a_dark_opening_below_its_line() -> None:
    img = drawn_face()
    opened = warp(img, expression(mouth_open=1.0))
    assert mouth_dark(opened) > 2 * mouth_dark(img)
    # the jaw opens it too
    assert mouth_dark(warp(img, expression(jaw=1.0))) > 1.5 * mouth_dark(img)


def test_only_the_face_moves() -> None:
    img = drawn_face()
    out = warp(img, expression(eye_open_l=-1, eye_open_r=0.5, mouth_open=1.5, brow_l=1,
                               gaze_x=1, mouth_width=1))
    changed = np.abs(out.astype(int) - img.astype(int)).max(axis=-1) > 8
    assert changed[40:115, 25:105].any()
    far = changed.copy()
    far[20:128, 10:118] = False            # the face and a margin round it
    assert not far.any()


def test_the_warp_turns_with_the_head() -> None:
    """A face drawn turned 90 degrees, with its points turned alike, opens its mouth
    along its own down: the result is the upright result turned."""
    img = drawn_face()
    e = expression(mouth_open=1.0, eye_open_l=-1.0)
    upright = warp(img, e)
    turned = np.ascontiguousarray(np.rot90(img))            # counter-clockwise
    c = 0.5
    pts = POINTS - c
    turned_pts = (np.stack((pts[:, 1], -pts[:, 0]), -1) + c).astype(np.float32)
    back = np.rot90(warp(turned, e, turned_pts), -1)
    diff = np.abs(back.astype(int) - upright.astype(int)).max(axis=-1)
    assert (diff > 30).mean() < 0.01


MOUTH = FaceWarpConfig(mouth_depth=1.0, mouth_colour=(0.9, 0.1, 0.1))


def red(img: np.ndarray) -> np.ndarray:
    """Where the drawn mouth's colour shows."""
    r, g, b = (img[..., k].astype(int) for k in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def test_an_open_mouth_is_drawn_in_below_its_line_as_deep_as_it_opens() -> None:
    img = drawn_face()
    assert not red(img).any()
    assert np.array_equal(warp(img, expression(), cfg=MOUTH), img)
    rows = []
    for opening in (0.3, 0.8, 1.5):
        inside = red(warp(img, expression(mouth_open=opening), cfg=MOUTH))
        ys, xs = np.nonzero(inside)
        assert len(ys), opening
        # hung from the line (y 90) between the corners (x 52 to 76), centred on it
        assert ys.min() >= 90 - 0.3 * 12 * opening - 2 and ys.max() > 90
        assert xs.min() >= 50 and xs.max() <= 78 and abs(xs.mean() - 64) < 1.5
        rows.append(ys.max())
    assert rows[0] < rows[1] < rows[2]                     # deeper as it opens wider
    # the jaw opens it too, and a smile widens it
    assert red(warp(img, expression(jaw=1.0), cfg=MOUTH)).any()
    plain = np.nonzero(red(warp(img, expression(mouth_open=0.8), cfg=MOUTH)))[1]
    smile = np.nonzero(red(warp(img, expression(mouth_open=0.8, mouth_width=1.0),
                                cfg=MOUTH)))[1]
    assert smile.max() - smile.min() > plain.max() - plain.min() + 4


def test_the_drawn_mouth_turns_with_the_head() -> None:
    img = drawn_face()
    e = expression(mouth_open=1.2)
    upright = red(warp(img, e, cfg=MOUTH))
    c = 0.5
    pts = POINTS - c
    turned_pts = (np.stack((pts[:, 1], -pts[:, 0]), -1) + c).astype(np.float32)
    turned = red(np.rot90(warp(np.ascontiguousarray(np.rot90(img)), e, turned_pts,
                               cfg=MOUTH), -1))
    assert upright.sum() > 40
    assert (upright != turned).sum() <= 0.1 * upright.sum()
