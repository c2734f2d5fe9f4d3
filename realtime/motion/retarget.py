"""Retargeting: a performer's identity-agnostic motion onto a character's skeleton.

`retarget(motion, skeleton)` walks BODY_BONES from the root and places every joint
at its parent plus (the character's bone length x the performer's scale) along the
performer's bone direction; hands hang off the character's wrists the same way
along HAND_BONES. Bone lengths therefore are the character's, directions are the
performer's (tests/realtime/motion/test_retarget.py checks both).

Framing rule (where the character stands on the canvas):
- The character's own rest framing sets the shot: `Skeleton.rest_root` and its bone
  lengths (fractions of the canvas height) come from its reference image, so a
  close-up reference gives a close-up avatar and a full-body one a full-body avatar.
- The performer moves it relative to their calibrated rest: a root offset of r
  performer torso lengths moves the character r of *its* torso lengths, and a
  performer `scale` s (s > 1: they stepped closer) scales every bone by s, so
  stepping towards the camera makes the avatar bigger.
- With no body in view but a hand (a hand close-up), each hand keeps the
  performer's framing: its wrist goes where the performer's wrist is in the camera
  image and it is sized like the performer's hand there, so a close-up hand gives a
  close-up avatar hand.

Canvas coordinates are those of types.py (x, y normalised to width and height);
lengths are in canvas heights, so `aspect` (canvas width / height) converts x.
"""

from __future__ import annotations

import numpy as np

from realtime.motion.types import (
    BODY_BONES,
    FINGERS,
    HAND_BONES,
    L_WRIST,
    MID_HIP,
    MID_SHOULDER,
    N_BODY,
    N_BODY_EXT,
    R_WRIST,
    WRIST,
    NormalizedMotion,
    Pose,
    Skeleton,
)

# --- a canonical adult, standing in a relaxed A-pose, facing the camera -------------
# Units: fractions of body height (1.0 = top of head to soles). Image axes: x to the
# image right (the performer's left), y down, z away from the camera; origin at the
# mid-hip. Approximate anthropometry (shoulder width ~0.23 H, hips at ~0.53 H above
# the floor, shoulders at ~0.82 H), written for this project.
_REST_BODY: dict[int, tuple[float, float, float]] = {
    0: (0.0, -0.400, -0.05),                                   # nose
    1: (0.012, -0.415, -0.04), 2: (0.025, -0.417, -0.04), 3: (0.037, -0.415, -0.035),
    4: (-0.012, -0.415, -0.04), 5: (-0.025, -0.417, -0.04), 6: (-0.037, -0.415, -0.035),
    7: (0.065, -0.405, 0.0), 8: (-0.065, -0.405, 0.0),         # ears
    9: (0.020, -0.375, -0.04), 10: (-0.020, -0.375, -0.04),    # mouth corners
    11: (0.115, -0.290, 0.0), 12: (-0.115, -0.290, 0.0),       # shoulders
    13: (0.140, -0.100, 0.0), 14: (-0.140, -0.100, 0.0),       # elbows
    15: (0.150, 0.050, 0.0), 16: (-0.150, 0.050, 0.0),         # wrists
    17: (0.160, 0.100, 0.0), 18: (-0.160, 0.100, 0.0),         # pinky knuckles
    19: (0.155, 0.110, -0.01), 20: (-0.155, 0.110, -0.01),     # index knuckles
    21: (0.140, 0.090, -0.01), 22: (-0.140, 0.090, -0.01),     # thumbs
    23: (0.070, 0.000, 0.0), 24: (-0.070, 0.000, 0.0),         # hips
    25: (0.075, 0.250, 0.0), 26: (-0.075, 0.250, 0.0),         # knees
    27: (0.075, 0.490, 0.0), 28: (-0.075, 0.490, 0.0),         # ankles
    29: (0.070, 0.510, 0.03), 30: (-0.070, 0.510, 0.03),       # heels
    31: (0.080, 0.520, -0.08), 32: (-0.080, 0.520, -0.08),     # toes
}
_REST_HIP_HEIGHT = 0.53   # mid-hip above the soles, in body heights
_HEAD_TOP = -0.47         # top of the head relative to the mid-hip

# Hand bone lengths (wrist->first joint, then phalanges), in body heights.
_HAND_LENGTHS: dict[str, tuple[float, float, float, float]] = {
    "thumb": (0.025, 0.025, 0.018, 0.015),
    "index": (0.055, 0.025, 0.015, 0.012),
    "middle": (0.053, 0.028, 0.017, 0.013),
    "ring": (0.050, 0.026, 0.016, 0.012),
    "pinky": (0.047, 0.020, 0.012, 0.011),
}
# wrist -> middle knuckle: the bone whose length is a hand's "size"
HAND_SIZE_BONE = HAND_BONES.index((WRIST, FINGERS["middle"][0]))


def with_virtual_joints(body: np.ndarray) -> np.ndarray:
    """(33, 3) -> (35, 3) with MID_HIP and MID_SHOULDER appended."""
    out = np.empty((N_BODY_EXT, 3), dtype=np.float64)
    out[:N_BODY] = body[:, :3]
    out[MID_HIP] = 0.5 * (body[23, :3] + body[24, :3])
    out[MID_SHOULDER] = 0.5 * (body[11, :3] + body[12, :3])
    return out


def _rest_body_ext() -> np.ndarray:
    return with_virtual_joints(rest_body_landmarks())


def bone_vectors(joints: np.ndarray, bones: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(J, 3) joints -> (len(bones), 3) child - parent vectors."""
    idx = np.asarray(bones)
    return joints[idx[:, 1]] - joints[idx[:, 0]]


def unit(v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Row-normalise (N, 3); zero rows become `fallback` rows (default: straight down)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    out = v / np.maximum(n, 1e-12)
    bad = (n[..., 0] < 1e-12)
    if bad.any():
        fb = np.array([0.0, 1.0, 0.0]) if fallback is None else fallback
        out[bad] = fb[bad] if fb.ndim == 2 else fb
    return out


def rest_body_landmarks() -> np.ndarray:
    """(33, 3) the canonical adult at rest, in body heights, mid-hip at the origin
    (x to the image right, y down, z away from the camera)."""
    return np.array([_REST_BODY[i] for i in range(N_BODY)], dtype=np.float64)


def rest_body_dirs() -> np.ndarray:
    """(len(BODY_BONES), 3) unit directions of the canonical rest pose."""
    return unit(bone_vectors(_rest_body_ext(), BODY_BONES))


def default_hand_lengths(body_height: float = 1.0) -> np.ndarray:
    """(len(HAND_BONES),) adult hand bone lengths for a body of this height."""
    return np.array([x for f in FINGERS for x in _HAND_LENGTHS[f]]) * body_height


def default_skeleton(height: float = 0.9, rest_root: tuple[float, float] | None = None) -> Skeleton:
    """An adult human standing full-body, `height` canvas heights tall, centred.

    The default is what an uploaded reference photo with no measurable person
    gets. rest_root defaults to feet a little above the canvas bottom.
    """
    lengths = np.linalg.norm(bone_vectors(_rest_body_ext(), BODY_BONES), axis=1) * height
    if rest_root is None:
        margin = (1.0 - height) / 2
        rest_root = (0.5, 1.0 - margin - _REST_HIP_HEIGHT * height)
    return Skeleton(body=lengths, hand=default_hand_lengths(height), rest_root=rest_root)


def to_height_units(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised image (x, y, z) -> units of the image height (x*W/H, y, z*W/H)."""
    w, h = image_size
    out = points[..., :3].astype(np.float64).copy()
    out[..., 0] *= w / h
    out[..., 2] *= w / h
    return out


def skeleton_from_landmarks(
    body33: np.ndarray,
    left_hand: np.ndarray | None = None,
    right_hand: np.ndarray | None = None,
    image_size: tuple[int, int] = (1, 1),
    min_visibility: float = 0.5,
) -> Skeleton:
    """Measure a performer or a reference image: bone lengths in image heights.

    body33: (33, 3) or (33, 4) MediaPipe landmarks in normalised image coordinates
    (with a 4th visibility column, bones whose child is less visible than
    `min_visibility`, e.g. legs below the frame, take the canonical adult's length
    scaled by the measured torso). Hands (21, 3) give the hand lengths (averaged
    when both are given); otherwise the canonical hand scaled by the torso.
    image_size: (width, height) of that image, so lengths are in image heights; the
    default treats the image as square.
    """
    body33 = np.asarray(body33)
    if body33.shape[0] != N_BODY or body33.shape[1] not in (3, 4):
        raise ValueError(f"body33 must be (33, 3) or (33, 4), got {body33.shape}")
    joints = with_virtual_joints(to_height_units(body33, image_size))
    lengths = np.linalg.norm(bone_vectors(joints, BODY_BONES), axis=1)
    rest = np.linalg.norm(bone_vectors(_rest_body_ext(), BODY_BONES), axis=1)
    body_scale = lengths[0] / rest[0]  # measured torso / canonical torso
    if body33.shape[1] == 4:
        vis = np.append(body33[:, 3], [1.0, 1.0])  # virtual joints count as visible
        hidden = np.array([vis[c] < min_visibility for _, c in BODY_BONES])
        lengths = np.where(hidden, rest * body_scale, lengths)
    hands = [
        np.linalg.norm(bone_vectors(to_height_units(hand, image_size), HAND_BONES), axis=1)
        for hand in (left_hand, right_hand) if hand is not None
    ]
    hand = np.mean(hands, axis=0) if hands else default_hand_lengths(body_scale)
    mid_hip = 0.5 * (body33[23, :2] + body33[24, :2])
    return Skeleton(body=lengths, hand=hand,
                    rest_root=(float(mid_hip[0]), float(mid_hip[1])))


def _place_hand(root: np.ndarray, dirs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Wrist position (3,) + bone directions -> (21, 3) joints (height units)."""
    hand = np.empty((21, 3), dtype=np.float64)
    hand[0] = root
    for (parent, child), d, length in zip(HAND_BONES, dirs, lengths, strict=True):
        hand[child] = hand[parent] + length * d
    return hand


def retarget(motion: NormalizedMotion, skeleton: Skeleton, aspect: float = 1.0) -> Pose:
    """The character's bone lengths along the performer's bone directions.

    aspect: canvas width / height (the Pose's x is normalised to the width).
    See the module docstring for the framing rule.
    """
    s = float(motion.scale)
    body_len = skeleton.body * s                                  # (B,) canvas heights
    hand_len = skeleton.hand * s
    joints = np.empty((N_BODY_EXT, 3), dtype=np.float64)
    rest_x = skeleton.rest_root[0] * aspect                       # to height units
    joints[MID_HIP] = (rest_x + motion.root[0] * skeleton.torso,
                       skeleton.rest_root[1] + motion.root[1] * skeleton.torso,
                       motion.root[2] * skeleton.torso)
    for (parent, child), d, length in zip(BODY_BONES, motion.body_dirs, body_len,
                                          strict=True):
        joints[child] = joints[parent] + length * d

    body_present = motion.presence[0] > 0
    hands: list[np.ndarray | None] = []
    for k, (dirs, wrist) in enumerate(((motion.left_hand_dirs, L_WRIST),
                                       (motion.right_hand_dirs, R_WRIST))):
        if dirs is None:
            hands.append(None)
            continue
        roots = motion.hand_roots
        if not body_present and roots is not None and np.isfinite(roots[k]).all():
            # Hand close-up: the performer's framing (module docstring).
            x, y, size = roots[k]
            lengths = skeleton.hand * (size / skeleton.hand[HAND_SIZE_BONE])
            hands.append(_place_hand(np.array([x * aspect, y, 0.0]), dirs, lengths))
        else:
            hands.append(_place_hand(joints[wrist], dirs, hand_len))

    def to_canvas(p: np.ndarray) -> np.ndarray:
        out = p.copy()
        out[..., 0] /= aspect
        out[..., 2] /= aspect
        return out.astype(np.float32)

    return Pose(
        body=to_canvas(joints[:N_BODY]),
        left_hand=None if hands[0] is None else to_canvas(hands[0]),
        right_hand=None if hands[1] is None else to_canvas(hands[1]),
        face=motion.face.copy(),
        presence=motion.presence.copy(),
        body_visibility=None if motion.body_visibility is None
        else motion.body_visibility.copy(),
    )
