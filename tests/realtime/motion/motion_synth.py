"""Generated landmarks and frames for the motion tests (no media needed), and a
small clip reader for the real-media ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.motion.retarget import rest_body_landmarks
from realtime.motion.types import N_BODY, MotionFrame

W, H = 640, 480  # image size of the synthetic frames


def synthetic_body(center: tuple[float, float] = (0.5, 0.5), height: float = 0.8,
                   image_size: tuple[int, int] = (W, H), visibility: float = 0.99) -> np.ndarray:
    """(33, 4) landmarks of the canonical standing adult, `height` image heights tall,
    mid-hip at `center` (normalised image coordinates)."""
    w, h = image_size
    rest = rest_body_landmarks()                                     # body heights, y down
    out = np.empty((N_BODY, 4), dtype=np.float32)
    out[:, 0] = center[0] + rest[:, 0] * height * h / w
    out[:, 1] = center[1] + rest[:, 1] * height
    out[:, 2] = rest[:, 2] * height * h / w
    out[:, 3] = visibility
    return out


def synthetic_hand(wrist: tuple[float, float] = (0.6, 0.6), size: float = 0.15,
                   image_size: tuple[int, int] = (W, H)) -> np.ndarray:
    """(21, 3) an open hand pointing up, fingers spread, `size` image heights long."""
    w, h = image_size
    pts = np.zeros((21, 3))
    for f, angle in enumerate(np.linspace(-0.9, 0.5, 5)):            # thumb .. pinky
        d = np.array([np.sin(angle), -np.cos(angle), 0.0])
        for j in range(4):
            pts[1 + 4 * f + j] = d * size * (0.45 + 0.17 * j) * (0.8 if f == 0 else 1.0)
    pts[:, 0] = wrist[0] + pts[:, 0] * h / w
    pts[:, 1] = wrist[1] + pts[:, 1]
    return pts.astype(np.float32)


def make_frame(i: int, fps: float = 30.0, body: np.ndarray | None = None,
               left_hand: np.ndarray | None = None, right_hand: np.ndarray | None = None,
               face: np.ndarray | None = None, image_size: tuple[int, int] = (W, H)
               ) -> MotionFrame:
    conf = {"body": 1.0 if body is not None else 0.0, "face": float(face is not None),
            "left_hand": float(left_hand is not None), "right_hand": float(right_hand is not None)}
    return MotionFrame(frame_id=i, t_capture=i / fps, image_size=image_size, body=body,
                       left_hand=left_hand, right_hand=right_hand, face=face, confidence=conf)


# --- real clips ---------------------------------------------------------------------

def read_frames(path: Path, every: int = 1, count: int = 30, start: int = 0) -> list[np.ndarray]:
    """Decode `count` RGB frames, every `every`-th from `start`."""
    import av

    out = []
    with av.open(str(path)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i >= start and (i - start) % every == 0:
                out.append(vf.to_ndarray(format="rgb24"))
                if len(out) >= count:
                    break
    return out




def synthetic_face(eye_aperture: float = 0.006, mouth_gap: float = 0.0,
                   mouth_half_width: float = 0.025, yaw: float = 0.0, roll: float = 0.0,
                   center: tuple[float, float] = (0.5, 0.4), size: float = 1.0,
                   image_size: tuple[int, int] = (W, H)) -> np.ndarray:
    """(478, 3) a schematic face: only the landmarks the face features read are
    placed (the rest sit at the nose bridge). Built in metres-like units (0.01 = 1 cm)
    in pixel-proportional space, optionally turned by `yaw` (nose towards the image
    right when > 0) and `roll` (clockwise on the image when > 0), then normalised."""
    from realtime.motion import face as F

    p = np.zeros((478, 3))

    def eye(outer: int, inner: int, lids: tuple, iris: int, sign: float) -> None:
        xo, xi = sign * 0.045, sign * 0.015
        p[outer], p[inner] = (xo, 0.003, 0.02), (xi, 0.004, 0.012)
        for k, (up, low) in enumerate(lids):
            x = xo + (xi - xo) * (k + 1) / 4
            p[up] = (x, 0.0035 - eye_aperture / 2, 0.012)
            p[low] = (x, 0.0035 + eye_aperture / 2, 0.012)
        p[iris] = ((xo + xi) / 2, 0.0035, 0.012)

    eye(F.R_EYE_OUT, F.R_EYE_IN, F.R_LIDS, F.R_IRIS, -1.0)
    eye(F.L_EYE_OUT, F.L_EYE_IN, F.L_LIDS, F.L_IRIS, 1.0)
    for idx, sign in ((F.R_BROW, -1.0), (F.L_BROW, 1.0)):
        for k, i in enumerate(idx):
            p[i] = (sign * (0.05 - 0.008 * k), -0.025, 0.01)
    p[F.LIP_UPPER] = (0.0, 0.065 - mouth_gap / 2, -0.005)
    p[F.LIP_LOWER] = (0.0, 0.065 + mouth_gap / 2, -0.005)
    p[F.MOUTH_R], p[F.MOUTH_L] = (-mouth_half_width, 0.065, 0.0), (mouth_half_width, 0.065, 0.0)
    p[F.NOSE_TIP] = (0.0, 0.045, -0.02)
    p[F.FOREHEAD] = (0.0, -0.055, 0.01)
    p[F.CHIN] = (0.0, 0.115, 0.01)
    p[F.CHEEK_R], p[F.CHEEK_L] = (-0.07, 0.025, 0.06), (0.07, 0.025, 0.06)
    # yaw about the vertical axis: the nose (-z) turns towards +x when yaw > 0
    cy, sy = np.cos(yaw), np.sin(yaw)
    p = p @ np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]]).T
    cr, sr = np.cos(roll), np.sin(roll)
    p = p @ np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]).T
    w, h = image_size
    p *= size * 2.0                                   # face ~ 25 % of the image height
    out = np.empty_like(p)
    out[:, 0] = center[0] + p[:, 0] * h / w
    out[:, 1] = center[1] + p[:, 1]
    out[:, 2] = p[:, 2] * h / w
    return out.astype(np.float32)
