"""Condition rendering: a `Pose` -> what the model consumes (ARCHITECTURE §3).

Body and hand pose become POSE_CHANNELS maps, one channel per group (head, torso,
each limb, each finger of each hand) so the model can tell an arm from a leg and
each finger from the others, at any resolution. Strokes are antialiased lines
drawn by OpenCV (LINE_AA, with 4 bits of sub-pixel precision), one uint8 plane per
channel, then scaled to [0, 1] float32.

Why OpenCV and not a numpy distance field: with ~60 short strokes, OpenCV touches
only the pixels near each stroke, while a distance field evaluates every
(stroke, pixel) pair: 60 x 256 x 256 = 4M distances per frame. Measured
(bench/test_motion.py, bench/results/motion-cpu.json, shared 2-core CPU): p50 0.1 ms
at 64x64 and 0.3 ms at 256x256, next to 25-55 ms of extraction.

A stroke's brightness is the part's presence (so a part that fades out while held
fades in the maps too); an absent part (presence 0) draws nothing. Body bones with
an endpoint less visible than `min_visibility` (off-frame legs MediaPipe guessed)
are not drawn.

With `sketch` the maps gain one more plane (`render_face_sketch`): the face vector
drawn where it shows, as lids, brows and lips placed on the pose's eye and mouth
points. The other planes give a convolution the place of a finger or an arm; the
face vector alone says "eyes closed" to the whole head, and the model must find the
eyes itself (stop 17 measured placed features doubling a decoder's expression
response). Face-landmark images are how portrait animators condition on expression
(AniPortrait, Wei et al. 2024, draws projected face landmarks for its pose guider).
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.motion.types import (
    BODY_BONES,
    FACE_FEATURES,
    FINGERS,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    MID_HIP,
    MID_SHOULDER,
    N_BODY,
    N_POSE_CHANNELS,
    NOSE,
    POSE_CHANNELS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    WRIST,
    MotionCondition,
    Pose,
)

_SHIFT = 4                      # sub-pixel bits for cv2.line
_ONE = 1 << _SHIFT


def _body_groups() -> dict[str, list[tuple[int, int]]]:
    """Body strokes per channel: the bones of BODY_BONES plus torso outline lines."""
    groups: dict[str, list[tuple[int, int]]] = {c: [] for c in POSE_CHANNELS[:6]}
    left_arm = {L_SHOULDER, L_ELBOW, L_WRIST, 17, 19, 21}
    right_arm = {R_SHOULDER, R_ELBOW, R_WRIST, 18, 20, 22}
    left_leg = {L_HIP, L_KNEE, L_ANKLE, 29, 31}
    right_leg = {R_HIP, R_KNEE, R_ANKLE, 30, 32}
    for parent, child in BODY_BONES:
        if child == NOSE or parent == NOSE:
            groups["head"].append((parent, child))
        elif parent in left_arm and child in left_arm:
            groups["arm_l"].append((parent, child))
        elif parent in right_arm and child in right_arm:
            groups["arm_r"].append((parent, child))
        elif parent in left_leg and child in left_leg:
            groups["leg_l"].append((parent, child))
        elif parent in right_leg and child in right_leg:
            groups["leg_r"].append((parent, child))
        else:  # spine, pelvis, shoulder girdle
            groups["torso"].append((parent, child))
    groups["torso"] += [(L_SHOULDER, L_HIP), (R_SHOULDER, R_HIP)]
    groups["leg_l"].append((29, 31))
    groups["leg_r"].append((30, 32))
    return groups


BODY_GROUPS = _body_groups()
HAND_GROUPS: dict[str, list[tuple[int, int]]] = {
    finger: list(zip((WRIST, *chain[:-1]), chain, strict=True))
    for finger, chain in FINGERS.items()
}
_CHANNEL = {name: i for i, name in enumerate(POSE_CHANNELS)}


def stroke_widths(height: int) -> tuple[int, int]:
    """(body, finger) line thickness in pixels for a map of this height."""
    return max(1, round(height / 48)), max(1, round(height / 128))


def _to_pixels(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """(N, >=2) canvas coordinates -> (N, 2) int32 fixed-point pixel coordinates."""
    xy = points[:, :2] * np.array([w, h]) - 0.5        # pixel centres at +0.5
    xy = np.clip(np.nan_to_num(xy, nan=-1e4), -4 * max(w, h), 5 * max(w, h))
    return np.round(xy * _ONE).astype(np.int32)


def _draw(plane: np.ndarray, px: np.ndarray, bones: list[tuple[int, int]],
          value: int, thickness: int, ok: np.ndarray | None = None) -> None:
    for a, b in bones:
        if ok is not None and not (ok[a] and ok[b]):
            continue
        cv2.line(plane, (int(px[a, 0]), int(px[a, 1])), (int(px[b, 0]), int(px[b, 1])),
                 (float(value),), thickness, cv2.LINE_AA, _SHIFT)


def render_pose_maps(pose: Pose, size: int | tuple[int, int],
                     min_visibility: float = 0.5, sketch: bool = False) -> np.ndarray:
    """(N_POSE_CHANNELS, H, W) float32 maps in [0, 1]; with `sketch`, the face sketch
    (`render_face_sketch`) as one more plane. `size` is S or (W, H)."""
    w, h = (size, size) if isinstance(size, int) else size
    if w < 1 or h < 1:
        raise ValueError(f"condition size must be positive, got {size}")
    maps = np.zeros((N_POSE_CHANNELS + int(sketch), h, w), dtype=np.uint8)   # (C, H, W)
    body_t, finger_t = stroke_widths(h)
    presence = np.clip(np.nan_to_num(pose.presence), 0.0, 1.0)

    if presence[0] > 0:
        joints = np.empty((N_BODY + 2, 2), dtype=np.float64)
        joints[:N_BODY] = pose.body[:, :2]
        joints[MID_HIP] = 0.5 * (pose.body[L_HIP, :2] + pose.body[R_HIP, :2])
        joints[MID_SHOULDER] = 0.5 * (pose.body[L_SHOULDER, :2] + pose.body[R_SHOULDER, :2])
        ok = np.isfinite(joints).all(axis=1)
        if pose.body_visibility is not None:
            ok[:N_BODY] &= pose.body_visibility >= min_visibility
        px = _to_pixels(joints, w, h)
        value = round(255 * float(presence[0]))
        for name, bones in BODY_GROUPS.items():
            _draw(maps[_CHANNEL[name]], px, bones, value, body_t, ok)

    for k, (hand, side) in enumerate(((pose.left_hand, "l"), (pose.right_hand, "r"))):
        p = float(presence[2 + k])
        if hand is None or p <= 0:
            continue
        px = _to_pixels(hand, w, h)
        ok = np.isfinite(hand[:, :2]).all(axis=1)
        for finger, bones in HAND_GROUPS.items():
            _draw(maps[_CHANNEL[f"{finger}_{side}"]], px, bones, round(255 * p), finger_t, ok)

    if sketch:
        _draw_face_sketch(maps[N_POSE_CHANNELS], pose, min_visibility)
    return maps.astype(np.float32) * np.float32(1.0 / 255.0)


# MediaPipe Pose's face points: (inner corner, centre, outer corner) of each eye, the
# performer's left first as in FACE_FEATURES' "_l", then the mouth's corners
_EYES = {"l": (1, 2, 3), "r": (4, 5, 6)}
_MOUTH = (9, 10)
_FACE_POINTS = [p for eye in _EYES.values() for p in eye] + list(_MOUTH)
_F = {name: i for i, name in enumerate(FACE_FEATURES)}


def _sketch_strokes(pose: Pose, min_visibility: float,
                    ) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """(lines, dots) of the face sketch in canvas coordinates, each an (n, 2) array;
    None when nothing is to be drawn (no face or body, hidden points, no face size)."""
    pts = pose.body[:, :2].astype(np.float64)
    ok = np.isfinite(pts[_FACE_POINTS]).all()
    if pose.body_visibility is not None:
        ok = ok and bool((pose.body_visibility[_FACE_POINTS] >= min_visibility).all())
    if pose.presence[1] <= 0 or pose.presence[0] <= 0 or not ok:
        return None
    f = np.nan_to_num(np.asarray(pose.face, dtype=np.float64))
    corner_l, corner_r = pts[_MOUTH[0]], pts[_MOUTH[1]]
    eyes_mid = 0.5 * (pts[_EYES["l"][1]] + pts[_EYES["r"][1]])
    mouth_mid = 0.5 * (corner_l + corner_r)
    down = mouth_mid - eyes_mid
    span = float(np.linalg.norm(down))
    if span < 1e-6:
        return None
    down /= span
    lines, dots = [], []
    for side, (inner, centre, outer) in _EYES.items():
        width = float(np.linalg.norm(pts[outer] - pts[inner])) or 0.3 * span
        gap = 0.5 * width * float(np.clip(1.0 + f[_F[f"eye_open_{side}"]], 0.0, 1.6))
        c = pts[centre]
        lines += [np.stack((pts[inner], c + sign * 0.5 * gap * down, pts[outer]))
                  for sign in (-1.0, 1.0)]
        if gap > 0.1 * width:
            across = (pts[outer] - pts[inner]) / width
            iris = c + 0.25 * width * (f[_F["gaze_x"]] * across + f[_F["gaze_y"]] * down)
            dots.append(np.stack((iris, iris)))
        lift = (0.45 + 0.25 * float(np.clip(f[_F[f"brow_{side}"]], -1.0, 1.5))) * span
        lines.append(np.stack((pts[inner] - lift * down, pts[outer] - lift * down)))
    half = 0.5 * (corner_l - corner_r) * (1.0 + 0.2 * float(np.clip(f[_F["mouth_width"]],
                                                                     -1.0, 1.5)))
    gap = max(0.0, span * (0.3 * float(np.clip(f[_F["mouth_open"]], -0.5, 2.0))
                           + 0.2 * max(0.0, float(f[_F["jaw"]]))))
    lines += [np.stack((mouth_mid + half, mouth_mid + sign * 0.5 * gap * down, mouth_mid - half))
              for sign in (-1.0, 1.0)]
    return lines, dots


def _draw_face_sketch(plane: np.ndarray, pose: Pose, min_visibility: float) -> None:
    """The face sketch into a uint8 (H, W) plane (see `render_face_sketch`)."""
    strokes = _sketch_strokes(pose, min_visibility)
    if strokes is None:
        return
    h, w = plane.shape
    value = (float(round(255 * float(np.clip(np.nan_to_num(pose.presence[1]), 0, 1)))),)
    thick = stroke_widths(h)[1]
    for group, t in zip(strokes, (thick, thick + 1), strict=True):
        if not group:
            continue
        px = np.split(_to_pixels(np.concatenate(group), w, h),
                      np.cumsum([len(g) for g in group])[:-1])
        cv2.polylines(plane, [p[:, None, :] for p in px], False, value, t, cv2.LINE_AA,
                      _SHIFT)


def render_face_sketch(pose: Pose, size: int | tuple[int, int],
                       min_visibility: float = 0.5) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the face vector drawn on the face. Each eye: its
    upper and lower lid from corner to corner, apart by the eye's width x 0.5 x
    (1 + eye_open) (closed: one line), the iris a dot moved by the gaze; each brow a
    line above its eye, higher with `brow_*`; the lips from corner to corner, the
    corners pushed out by `mouth_width`, apart by `mouth_open` and `jaw`. "Down" is
    from the eyes towards the mouth, so the sketch turns with the head. Brightness is
    the face's presence; nothing is drawn for an absent face or hidden points."""
    w, h = (size, size) if isinstance(size, int) else size
    plane = np.zeros((h, w), dtype=np.uint8)
    _draw_face_sketch(plane, pose, min_visibility)
    return plane.astype(np.float32) * np.float32(1.0 / 255.0)


def head_place(pose: Pose, min_visibility: float = 0.5) -> np.ndarray:
    """(3,) float32: the pose's ears' middle (x, y) and its torso length (shoulders'
    middle to hips' middle), canvas units; NaN when the face is absent or an ear is
    hidden."""
    b = np.asarray(pose.body, dtype=np.float64)[:, :2]
    ears = (b[7] + b[8]) / 2
    torso = float(np.linalg.norm((b[L_SHOULDER] + b[R_SHOULDER]) / 2 - (b[L_HIP] + b[R_HIP]) / 2))
    out = np.array([ears[0], ears[1], torso], np.float32)
    hidden = pose.presence[1] <= 0 or not np.isfinite(out).all()
    if pose.body_visibility is not None:
        hidden = hidden or bool((pose.body_visibility[[7, 8]] < min_visibility).any())
    return np.full(3, np.nan, np.float32) if hidden else out


def hand_place(pose: Pose, min_presence: float = 0.05) -> np.ndarray:
    """(2, 21, 3) float32: the performer's left then right hand's 21 points (x, y and
    depth), canvas units; NaN for a hand that is absent (presence at most
    `min_presence`, as the avatar studio draws a mitten there) or not fully seen."""
    out = np.full((2, 21, 3), np.nan, np.float32)
    for k, hand in enumerate((pose.left_hand, pose.right_hand)):
        p = float(np.nan_to_num(pose.presence[2 + k]))
        if hand is not None and p > min_presence and np.isfinite(hand).all():
            out[k] = hand
    return out


def render_condition(pose: Pose, size: int | tuple[int, int], frame_id: int = 0,
                     t_capture: float = 0.0, sketch: bool = False) -> MotionCondition:
    """Pose -> MotionCondition: pose maps at `size` (S or (W, H)), with `sketch` the
    face sketch after them (`render_face_sketch`), face vector, presence flags, and
    where the head and the hands are (`head_place`, `hand_place`). Face features of an
    absent face are zeroed here too."""
    presence = np.clip(np.nan_to_num(np.asarray(pose.presence, dtype=np.float32)), 0, 1)
    face = np.asarray(pose.face, dtype=np.float32) * np.float32(presence[1] > 0)
    return MotionCondition(
        frame_id=frame_id,
        t_capture=t_capture,
        pose_maps=render_pose_maps(pose, size, sketch=sketch),
        face=face,
        presence=presence,
        head=head_place(pose),
        hands=hand_place(pose),
    )
