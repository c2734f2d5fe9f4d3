"""Identity-agnostic face features from MediaPipe's 478 refined face landmarks.

Two steps:
1. `raw_face_measures(face, image_size)`: per-frame geometric measures (head angles,
   eye aspect ratios, iris offsets, brow heights, lip gap, mouth width, chin drop),
   each a ratio of distances or an angle, so they do not change when the image is
   scaled or shifted.
2. `FaceCalibration`: the performer's neutral face, taken as the per-measure median
   over the first `calibration_s` seconds of a stream (or after `reset()`), turns the
   measures into FACE_FEATURES where 0 is that performer at rest. A narrow-eyed and a
   wide-eyed performer both read eye_open = 0 at rest and -1 with eyes closed.

Landmark indices follow MediaPipe Face Mesh's topology (478 points with irises: 468
is the centre of the performer's right iris, 473 of the left). Distances are taken
in pixel-proportional 3D, (x * W, y * H, z * W), since MediaPipe's z is in the scale
of x: this keeps measures steady when the head turns.

Head pose: a small canonical 3D face (below: nine rigid landmarks, approximate adult
anthropometry in cm, written for this project) is aligned to the observed landmarks
by a similarity Procrustes fit (Umeyama, "Least-squares estimation of transformation
parameters between two point patterns", PAMI 1991); the rotation gives yaw, pitch
and roll. Only points that do not move with expression (eye corners, nose, forehead,
cheekbones, chin at rest) are used; the neutral calibration removes the canonical
model's residual error and the performer's resting head angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.motion.types import FACE_DIM

# --- landmark indices (performer's left / right) -------------------------------------

R_EYE_OUT, R_EYE_IN, L_EYE_OUT, L_EYE_IN = 33, 133, 263, 362
R_LIDS = ((160, 144), (159, 145), (158, 153))    # (upper, lower) pairs
L_LIDS = ((385, 380), (386, 374), (387, 373))
R_IRIS, L_IRIS = 468, 473                        # iris centres (refined landmarks)
R_BROW, L_BROW = (70, 63, 105, 66, 107), (300, 293, 334, 296, 336)
LIP_UPPER, LIP_LOWER = 13, 14                    # inner lip midpoints
MOUTH_R, MOUTH_L = 61, 291                       # mouth corners
NOSE_BRIDGE, NOSE_TIP, FOREHEAD, CHIN = 168, 1, 10, 152
CHEEK_R, CHEEK_L = 234, 454

# Canonical rigid face: x to the image right (performer's left), y down, z away from
# the camera, origin at the nose bridge, centimetres. Hand-made approximation.
_CANON_IDX = np.array([R_EYE_OUT, R_EYE_IN, L_EYE_OUT, L_EYE_IN, NOSE_BRIDGE, NOSE_TIP,
                       FOREHEAD, CHEEK_R, CHEEK_L])
_CANON_PTS = np.array([
    (-4.4, 0.3, 2.0), (-1.5, 0.4, 1.2),       # right eye: outer, inner corner
    (4.4, 0.3, 2.0), (1.5, 0.4, 1.2),         # left eye
    (0.0, 0.0, 0.0), (0.0, 4.5, -2.0),        # nose bridge, nose tip
    (0.0, -5.5, 1.0),                         # top of the forehead
    (-7.0, 2.5, 6.0), (7.0, 2.5, 6.0),        # cheekbones at the face oval
])

# How each measure becomes a feature relative to its neutral value:
#   "diff": (m - m0) * gain     "ratio": (m / m0 - 1) * gain
# Gains keep the 2nd-98th percentiles of every feature within about +-1 on the
# exaggerated LivePortrait driving clips (d0, d6, d14: measured, max 1.2); eye
# openness keeps gain 1 so closed eyes read -1.
_RELATIVE: tuple[tuple[str, float], ...] = (
    ("diff", 1.0), ("diff", 1.0), ("diff", 1.0),      # yaw, pitch, roll (radians)
    ("ratio", 1.0), ("ratio", 1.0),                   # eye_open_l, eye_open_r
    ("diff", 3.0), ("diff", 3.0),                     # gaze_x, gaze_y
    ("ratio", 4.0), ("ratio", 4.0),                   # brow_l, brow_r
    ("diff", 2.0),                                    # mouth_open
    ("ratio", 3.0),                                   # mouth_width
    ("ratio", 4.0),                                   # jaw
)


def _pixel3d(face: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(478, 3) normalised landmarks -> pixel-proportional 3D, (x*W, y*H, z*W)."""
    w, h = image_size
    return face[:, :3].astype(np.float64) * np.array([w, h, w], dtype=np.float64)


def head_rotation(p: np.ndarray) -> np.ndarray:
    """(3, 3) rotation R with observed ~ s * R @ canonical + t (Umeyama 1991)."""
    obs = p[_CANON_IDX]
    q = _CANON_PTS - _CANON_PTS.mean(0)
    o = obs - obs.mean(0)
    u, _, vt = np.linalg.svd(o.T @ q)                 # cross-covariance, observed x canonical
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def euler_from_rotation(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians, image axes (x right, y down, z away).

    yaw > 0: the nose turns towards the image right, i.e. the performer's left on an
    unmirrored camera; pitch > 0: chin up; roll > 0: the eye line turns clockwise on
    the image. Mirroring the image flips the signs of yaw and roll.
    """
    nose = -r[:, 2]                                   # canonical "towards the camera"
    yaw = float(np.arctan2(nose[0], -nose[2]))
    pitch = float(np.arcsin(np.clip(-nose[1], -1.0, 1.0)))
    roll = float(np.arctan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


def raw_face_measures(face: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Per-frame face measures, (FACE_DIM,) in FACE_FEATURES order, not yet relative.

    Angles in radians; the rest are ratios of distances (so they do not change when
    the image is scaled or translated).
    """
    if face.ndim != 2 or face.shape[0] < 478 or face.shape[1] < 3:
        raise ValueError(f"face landmarks must be (478, 3) with irises, got {face.shape}")
    p = _pixel3d(face, image_size)
    dist = lambda a, b: float(np.linalg.norm(p[a] - p[b]))  # noqa: E731

    iod = dist(R_EYE_OUT, L_EYE_OUT) + 1e-9           # inter-ocular distance: face size
    yaw, pitch, roll = euler_from_rotation(head_rotation(p))

    def eye_ratio(lids: tuple[tuple[int, int], ...], outer: int, inner: int) -> float:
        return float(np.mean([dist(a, b) for a, b in lids])) / (dist(outer, inner) + 1e-9)

    # Gaze: iris centre relative to the eye-corner midpoint, in the face's own 2D
    # axes (u along the eye line, v perpendicular, downwards), over the eye width.
    u = p[L_EYE_OUT, :2] - p[R_EYE_OUT, :2]
    u /= np.linalg.norm(u) + 1e-9
    v = np.array([-u[1], u[0]])
    offs = []
    for iris, a, b in ((R_IRIS, R_EYE_OUT, R_EYE_IN), (L_IRIS, L_EYE_OUT, L_EYE_IN)):
        centre = 0.5 * (p[a, :2] + p[b, :2])
        d = p[iris, :2] - centre
        width = dist(a, b) + 1e-9
        offs.append((d @ u / width, d @ v / width))
    gaze_x, gaze_y = np.mean(offs, axis=0)

    def brow(idx: tuple[int, ...], outer: int, inner: int) -> float:
        eye_c = 0.5 * (p[outer] + p[inner])
        return float(np.linalg.norm(p[list(idx)].mean(0) - eye_c)) / iod

    return np.array([
        yaw, pitch, roll,
        eye_ratio(L_LIDS, L_EYE_OUT, L_EYE_IN),
        eye_ratio(R_LIDS, R_EYE_OUT, R_EYE_IN),
        gaze_x, gaze_y,
        brow(L_BROW, L_EYE_OUT, L_EYE_IN),
        brow(R_BROW, R_EYE_OUT, R_EYE_IN),
        dist(LIP_UPPER, LIP_LOWER) / iod,
        dist(MOUTH_R, MOUTH_L) / iod,
        dist(NOSE_BRIDGE, CHIN) / iod,
    ])


@dataclass(frozen=True)
class FaceCalibrationConfig:
    calibration_s: float = 1.0     # seconds of visible face that define "neutral"
    min_samples: int = 5           # at least this many frames, even at low frame rates


class FaceCalibration:
    """Turns raw measures into neutral-relative FACE_FEATURES.

    The neutral is the median of the measures over the first `calibration_s` seconds
    in which the face is seen (at least `min_samples` frames); until then, the median
    so far, so features hover around 0 while calibrating. `reset()` starts over,
    e.g. when a new performer steps in.
    """

    def __init__(self, config: FaceCalibrationConfig | None = None) -> None:
        self.config = config or FaceCalibrationConfig()
        self._samples: list[np.ndarray] = []
        self._t0: float | None = None
        self.neutral: np.ndarray | None = None        # (FACE_DIM,) once calibrated

    @property
    def calibrated(self) -> bool:
        return self.neutral is not None

    def reset(self) -> None:
        self._samples.clear()
        self._t0 = None
        self.neutral = None

    def set_neutral(self, measures: np.ndarray) -> None:
        """Use these raw measures as the neutral face (an explicit calibration)."""
        self.neutral = np.asarray(measures, dtype=np.float64).copy()

    def __call__(self, measures: np.ndarray, t: float) -> np.ndarray:
        """Raw measures of one frame at time t -> (FACE_DIM,) features, 0 = neutral."""
        if self.neutral is None:
            if self._t0 is None:
                self._t0 = t
            self._samples.append(measures)
            base = np.median(np.stack(self._samples), axis=0)
            if t - self._t0 >= self.config.calibration_s and \
                    len(self._samples) >= self.config.min_samples:
                self.neutral = base
                self._samples.clear()
        else:
            base = self.neutral
        return relative_features(measures, base)


def relative_features(measures: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Raw measures relative to a neutral: (FACE_DIM,) float32, 0 = neutral."""
    out = np.empty(FACE_DIM, dtype=np.float64)
    for i, (kind, gain) in enumerate(_RELATIVE):
        if kind == "diff":
            out[i] = (measures[i] - neutral[i]) * gain
        else:
            out[i] = (measures[i] / max(neutral[i], 1e-6) - 1.0) * gain
    return out.astype(np.float32)
