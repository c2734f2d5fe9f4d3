"""Kinematics of the procedural performer: controls -> bone directions, and the
two-way map between poses and identity-agnostic motion.

Controls (see motion.py) are offsets from a performer's rest pose; a limb segment
is given by two angles (`_seg`), a hand by a frame built from the same angles, so
everything is continuous in the controls. `fk` places a skeleton's bones along a
motion's directions (the motion stage's retargeting rule); `pose_to_motion` is its
inverse for any Pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.avatars.character import Character, hand_template
from realtime.avatars.head import head_rotation
from realtime.motion.types import (
    BODY_BONES,
    FACE_DIM,
    FACE_FEATURES,
    FINGERS,
    HAND_BONES,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    MID_HIP,
    MID_SHOULDER,
    N_BODY,
    N_BODY_EXT,
    N_PARTS,
    NOSE,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    NormalizedMotion,
    Pose,
    Skeleton,
)

FI = {name: i for i, name in enumerate(FACE_FEATURES)}
_BONE = {bone: i for i, bone in enumerate(BODY_BONES)}
REST_ARM = np.deg2rad(12.0)          # the rest A-pose: arms 12 degrees out from vertical

# Every control is an offset from rest; missing keys are 0. Arm/leg segment angles:
# `a` swings the segment in the image plane (0 = straight down, +pi/2 out to the side,
# pi = up, negative = across the body), `f` tilts it towards the camera.
Controls = dict[str, float]

@dataclass(frozen=True)
class RestDirections:
    body: np.ndarray          # (len(BODY_BONES), 3)
    hands: dict[str, np.ndarray]   # side -> (21, 3) rest hand relative to the wrist, unit hand


def rest_directions(c: Character) -> RestDirections:
    """A performer's rest bone directions and unit-length rest hands."""
    b = c.rest_body
    d = np.array([b[ch] - b[p] for p, ch in BODY_BONES])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    hands = {s: hand_template(c, s) / c.hand_len for s in ("left", "right")}
    return RestDirections(d, hands)


def _rot_y(a: float) -> np.ndarray:
    ca, sa = np.cos(a), np.sin(a)
    return np.array([[ca, 0, -sa], [0, 1, 0], [sa, 0, ca]])


def _rot_z(a: float) -> np.ndarray:
    ca, sa = np.cos(a), np.sin(a)
    return np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])


def _rot_axis(axis: np.ndarray, a: float) -> np.ndarray:
    """Rodrigues' rotation about a unit axis."""
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def _seg(sgn: float, a: float, f: float) -> np.ndarray:
    """Unit segment direction: swing `a` in the image plane (outward for sgn=+1 on the
    performer's left), tilt `f` towards the camera (-z)."""
    return np.array([sgn * np.sin(a) * np.cos(f), np.cos(a) * np.cos(f), -np.sin(f)])


def _hand_frame(sgn: float, a: float, f: float, roll: float) -> np.ndarray:
    """(3, 3) columns x, y, z of a hand continuing the forearm `_seg(sgn, a, f)`: the
    rest hand (fingers +y, palm to the camera) swung by `a` in the image plane, then
    tilted by `f` towards the camera, after `roll` about its own finger axis. Built
    from the angles, not from the direction, so it stays continuous everywhere (a
    frame found from the direction alone must flip somewhere)."""
    swing = _rot_z(-sgn * a)                           # (0, 1, 0) -> (sgn sin a, cos a, 0)
    in_plane = swing @ np.array([0.0, 1.0, 0.0])
    tilt = _rot_axis(np.cross(in_plane, [0.0, 0.0, -1.0]), f)
    return tilt @ swing @ _rot_axis(np.array([0.0, 1.0, 0.0]), roll)


def _hand_points(rest: np.ndarray, c: Controls, side: str, frame: np.ndarray) -> np.ndarray:
    """(21, 3) hand joints (unit hand length) relative to the wrist, curled and posed."""
    pts = rest.copy()
    sgn = 1.0 if side == "l" else -1.0
    for finger, chain in FINGERS.items():
        curl = c.get(f"{side}curl_{finger}", 0.0)
        if curl == 0.0:
            continue
        base = pts[chain[0]]
        if finger == "thumb":
            tdir = pts[chain[-1]] - base
            axis = np.array([tdir[1], -tdir[0], 0.0]) * sgn
            per_joint = (0.35, 0.45, 0.45)
        else:
            axis = np.array([1.0, 0.0, 0.0])
            per_joint = (0.9, 1.1, 0.7)
        # bend joint by joint, from the knuckle out, towards the palm (-z)
        for j, k in enumerate(per_joint):
            rot = _rot_axis(axis, -curl * k)
            pivot = pts[chain[j]]
            pts[list(chain[j + 1:])] = (pts[list(chain[j + 1:])] - pivot) @ rot.T + pivot
    return pts @ frame.T


def controls_to_motion(
    c: Controls, rest: RestDirections, frame_id: int, t: float
) -> NormalizedMotion:
    """Bone directions, root, face features and presence for one set of controls."""
    g = c.get
    dirs = rest.body.copy()
    body_yaw = _rot_y(g("body_yaw", 0.0))
    lean = _rot_z(-g("lean", 0.0))
    spine_rot = body_yaw @ lean
    dirs[_BONE[(MID_HIP, MID_SHOULDER)]] = spine_rot @ rest.body[_BONE[(MID_HIP, MID_SHOULDER)]]
    for bone in ((MID_HIP, L_HIP), (MID_HIP, R_HIP)):
        dirs[_BONE[bone]] = body_yaw @ rest.body[_BONE[bone]]
    for bone in ((MID_SHOULDER, L_SHOULDER), (MID_SHOULDER, R_SHOULDER)):
        dirs[_BONE[bone]] = spine_rot @ rest.body[_BONE[bone]]
    # head: the face features' yaw/pitch/roll (plus the body's yaw) turn the neck + face
    yaw = g("yaw", 0.0) + g("body_yaw", 0.0)
    head = head_rotation(yaw, g("pitch", 0.0), g("roll", 0.0))
    for i, (parent, _child) in enumerate(BODY_BONES):
        if parent == NOSE:
            dirs[i] = head @ rest.body[i]
    neck = _BONE[(MID_SHOULDER, NOSE)]
    dirs[neck] = lean @ head @ rest.body[neck]
    hands: dict[str, np.ndarray] = {}
    for side, sgn, sh, el, wr, hand_side in (("l", 1.0, L_SHOULDER, L_ELBOW, L_WRIST, "left"),
                                             ("r", -1.0, R_SHOULDER, R_ELBOW, R_WRIST, "right")):
        upper = body_yaw @ _seg(sgn, REST_ARM + g(f"{side}ua", 0.0), g(f"{side}uf", 0.0))
        fore_a, fore_f = REST_ARM + g(f"{side}fa", 0.0), g(f"{side}ff", 0.0)
        dirs[_BONE[(sh, el)]] = upper
        dirs[_BONE[(el, wr)]] = body_yaw @ _seg(sgn, fore_a, fore_f)
        frame = body_yaw @ _hand_frame(sgn, fore_a, fore_f, sgn * g(f"{side}roll", 0.0))
        # the rest template hangs with fingers along +y: express it in the hand frame
        hp = _hand_points(rest.hands[hand_side], c, side, frame)
        hands[side] = hp
        for k, landmark in ((17, wr + 2), (5, wr + 4), (2, wr + 6)):
            v = hp[k] / np.linalg.norm(hp[k])
            dirs[_BONE[(wr, landmark)]] = v
    for side, sgn, hip, knee, ankle in (("l", 1.0, L_HIP, L_KNEE, L_ANKLE),
                                        ("r", -1.0, R_HIP, R_KNEE, R_ANKLE)):
        rest_thigh = rest.body[_BONE[(hip, knee)]]
        a0 = np.arctan2(sgn * rest_thigh[0], rest_thigh[1])
        dirs[_BONE[(hip, knee)]] = body_yaw @ _seg(sgn, a0 + g(f"{side}ta", 0.0),
                                                   g(f"{side}tf", 0.0))
        dirs[_BONE[(knee, ankle)]] = body_yaw @ _seg(sgn, g(f"{side}sa", 0.0),
                                                     g(f"{side}sf", 0.0))
        for i, (parent, _child) in enumerate(BODY_BONES):
            if parent == ankle:
                dirs[i] = body_yaw @ rest.body[i]
    hand_dirs = {s: _dirs(hands[s], HAND_BONES) for s in ("l", "r")}
    face = np.zeros(FACE_DIM)
    for name, i in FI.items():
        face[i] = g(name, 0.0)
    face[FI["yaw"]] = yaw
    return NormalizedMotion(
        frame_id=frame_id, t_capture=t,
        root=np.array([g("root_x", 0.0), -g("root_y", 0.0), 0.0]),
        scale=1.0 + g("scale", 0.0),
        body_dirs=dirs.astype(np.float32),
        left_hand_dirs=hand_dirs["l"].astype(np.float32),
        right_hand_dirs=hand_dirs["r"].astype(np.float32),
        face=face.astype(np.float32),
        presence=np.ones(N_PARTS, np.float32),
    )


def _dirs(joints: np.ndarray, bones: tuple[tuple[int, int], ...]) -> np.ndarray:
    idx = np.asarray(bones)
    v = joints[idx[:, 1]] - joints[idx[:, 0]]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def pose_to_motion(pose: Pose, skeleton: Skeleton, frame_id: int = 0,
                   t: float = 0.0) -> NormalizedMotion:
    """Normalise a pose: bone directions, root offset in torso lengths, scale from the
    torso (the inverse of retargeting onto `skeleton`)."""
    ext = np.empty((N_BODY_EXT, 3))
    ext[:N_BODY] = pose.body[:, :3]
    ext[MID_HIP] = (ext[L_HIP] + ext[R_HIP]) / 2
    ext[MID_SHOULDER] = (ext[L_SHOULDER] + ext[R_SHOULDER]) / 2
    torso = float(np.linalg.norm(ext[MID_SHOULDER] - ext[MID_HIP]))
    scale = torso / skeleton.torso
    root = ext[MID_HIP] - np.array([*skeleton.rest_root, 0.0])
    return NormalizedMotion(
        frame_id=frame_id, t_capture=t, root=root / skeleton.torso, scale=scale,
        body_dirs=_dirs(ext, BODY_BONES).astype(np.float32),
        left_hand_dirs=None if pose.left_hand is None else _dirs(pose.left_hand, HAND_BONES),
        right_hand_dirs=None if pose.right_hand is None else _dirs(pose.right_hand, HAND_BONES),
        face=np.asarray(pose.face, np.float32).copy(),
        presence=np.asarray(pose.presence, np.float32).copy(),
    )


def fk(motion: NormalizedMotion, skeleton: Skeleton) -> Pose:
    """Forward kinematics: `skeleton`'s lengths (x motion.scale) along the motion's bone
    directions from its root. Same rule as realtime.motion.retarget.retarget on a
    square canvas with the body present; kept here so the studio does not depend on
    the motion stage being importable."""
    joints = np.empty((N_BODY_EXT, 3))
    joints[MID_HIP] = (skeleton.rest_root[0] + motion.root[0] * skeleton.torso,
                       skeleton.rest_root[1] + motion.root[1] * skeleton.torso,
                       motion.root[2] * skeleton.torso)
    for (parent, child), d, length in zip(BODY_BONES, motion.body_dirs,
                                          skeleton.body * motion.scale, strict=True):
        joints[child] = joints[parent] + length * d
    hands: list[np.ndarray | None] = []
    for dirs, wrist in ((motion.left_hand_dirs, L_WRIST), (motion.right_hand_dirs, R_WRIST)):
        if dirs is None:
            hands.append(None)
            continue
        h = np.empty((21, 3))
        h[0] = joints[wrist]
        for (parent, child), d, length in zip(HAND_BONES, dirs,
                                              skeleton.hand * motion.scale, strict=True):
            h[child] = h[parent] + length * d
        hands.append(h)
    return Pose(body=joints[:N_BODY].copy(), left_hand=hands[0], right_hand=hands[1],
                face=np.asarray(motion.face).copy(), presence=np.asarray(motion.presence).copy())


def to_pose(motion: NormalizedMotion, skeleton: Skeleton) -> Pose:
    """The motion stage's retarget when it is importable, else `fk` (same rule)."""
    try:
        from realtime.motion.retarget import retarget
    except ImportError:
        return fk(motion, skeleton)
    return retarget(motion, skeleton)
