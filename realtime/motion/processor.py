"""From raw landmarks to identity-agnostic motion, one frame at a time.

`MotionProcessor.process(MotionFrame) -> NormalizedMotion`:
1. Landmarks go to units of the source image height, (x * W/H, y, z * W/H), so
   directions do not depend on the image's aspect ratio.
2. One Euro filters (realtime/motion/filters.py) smooth every landmark coordinate
   and every face feature; `set_filter_strength` scales them all at once.
3. Body and hands become unit bone directions (BODY_BONES, HAND_BONES in types.py);
   the body's root motion and scale are relative to the performer's calibrated
   rest: the median mid-hip position and torso length (in the picture) over the
   first `calibration_s` seconds of visible body (or after `reset_calibration()`).
   The body keeps only what the tracker measures (`trusted_dirs`): a bone through a
   joint it does not see (hips and legs below a webcam's frame) is the rest's, and
   the spine, the neck and the face's bones keep their direction in the picture, not
   the depth BlazePose guesses for them.
4. Face landmarks become FACE_FEATURES relative to the performer's neutral face
   (realtime/motion/face.py).

Missing parts: a part that disappears keeps its last value while its presence
decays linearly from its last confidence to 0 over `hold_s` seconds; after that it
is absent: presence exactly 0, hand directions None, face features 0 and body
directions the canonical rest pose. Consumers must read `presence`, never the values
alone, to know whether a part is there (absent is never passed off as real data).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from realtime.motion.face import FaceCalibration, FaceCalibrationConfig, raw_face_measures
from realtime.motion.filters import OneEuroConfig, OneEuroFilter
from realtime.motion.retarget import (
    HAND_SIZE_BONE,
    bone_vectors,
    rest_body_dirs,
    rest_body_landmarks,
    to_height_units,
    unit,
    with_virtual_joints,
)
from realtime.motion.types import (
    BODY_BONES,
    FACE_DIM,
    HAND_BONES,
    MID_HIP,
    MID_SHOULDER,
    N_BODY,
    N_PARTS,
    NOSE,
    MotionFrame,
    NormalizedMotion,
)


@dataclass
class ProcessorConfig:
    """Filtering, hold and calibration settings (defaults: a 30 fps webcam)."""

    body_filter: OneEuroConfig = field(default_factory=OneEuroConfig)
    hand_filter: OneEuroConfig = field(default_factory=OneEuroConfig)
    # Face features are angles (rad) and ratios, ~1 unit for a strong expression.
    face_filter: OneEuroConfig = field(
        default_factory=lambda: OneEuroConfig(min_cutoff=1.5, beta=0.5))
    filter_strength: float = 1.0     # 0 none, 1 the configs above, > 1 smoother
    hold_s: float = 0.5              # a lost part fades over this long, then is absent
    calibration_s: float = 1.0       # neutral face and rest body: first second seen
    min_calibration_frames: int = 5

    @classmethod
    def preset(cls, name: str) -> ProcessorConfig:
        """'default'; 'raw' (no filtering, no hold); 'smooth' (twice the smoothing)."""
        presets = {
            "default": cls(),
            "raw": cls(filter_strength=0.0, hold_s=0.0),
            "smooth": cls(filter_strength=2.0),
        }
        if name not in presets:
            raise ValueError(f"unknown processor preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


class _Held:
    """A part's last value, when it was seen, and with what confidence."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None
        self.t: float = 0.0
        self.conf: float = 0.0

    def update(self, value: np.ndarray, t: float, conf: float) -> None:
        self.value, self.t, self.conf = value, t, conf

    def presence(self, t: float, hold_s: float) -> float:
        """Decayed confidence at time t; 0 once older than hold_s (or never seen)."""
        if self.value is None:
            return 0.0
        age = t - self.t
        if age <= 0:
            return self.conf
        if age >= hold_s - 1e-6:  # (timestamps are floats: 0.5 s may read 0.4999..)
            return 0.0
        return self.conf * (1.0 - age / hold_s)


class _BodyCalibration:
    """The performer's rest mid-hip position and torso length (median of the first
    `calibration_s` seconds of visible body)."""

    def __init__(self, seconds: float, min_frames: int) -> None:
        self.seconds, self.min_frames = seconds, min_frames
        self.reset()

    def reset(self) -> None:
        self._samples: list[np.ndarray] = []
        self._t0: float | None = None
        self.rest: np.ndarray | None = None          # (4,): mid-hip x, y, z, torso length

    def __call__(self, mid_hip: np.ndarray, torso: float, t: float) -> np.ndarray:
        if self.rest is not None:
            return self.rest
        if self._t0 is None:
            self._t0 = t
        self._samples.append(np.append(mid_hip, torso))
        base = np.median(np.stack(self._samples), axis=0)
        if t - self._t0 >= self.seconds and len(self._samples) >= self.min_frames:
            self.rest = base
        return base


# the canonical rest's bones (`rest_body_dirs` is their directions)
_REST_VECTORS = bone_vectors(with_virtual_joints(rest_body_landmarks()), BODY_BONES)
# bones whose child is one of the pose's face landmarks (0 to 10: nose, eyes, ears,
# mouth corners): BlazePose computes no depth of its own for these ("z-values for facial
# landmarks are not calculated, so please disregard them", ML Kit's pose detection
# reference, the same model), and a head-and-shoulders webcam shot puts the nose 1.7
# image heights before the shoulders, folding the neck into the camera
_FACE_BONES = np.array([child <= 10 for _, child in BODY_BONES])
_NECK = BODY_BONES.index((MID_SHOULDER, NOSE))
# bones taken in the picture with the rest's depth: the neck (above) and the spine,
# whose depth BlazePose reads off the shoulders' z against the hips' (less accurate
# than x and y, the same reference says): a seated or webcam performer's shoulders come
# out far before the hips, the spine folding into the camera, where the avatar studio
# never tilts a spine out of the picture
_SPINE = BODY_BONES.index((MID_HIP, MID_SHOULDER))
# what the rest gives every frame, found once: each bone's picture share at rest,
# the sign of its depth, the bones taken in the picture, and each bone's two ends
_REST_LEN = np.linalg.norm(_REST_VECTORS, axis=1)
_REST_FLAT = np.linalg.norm(_REST_VECTORS[:, :2], axis=1)
_REST_ACROSS = _REST_FLAT / _REST_LEN
_REST_DEPTH_SIGN = np.where(_REST_VECTORS[:, 2] < 0, -1.0, 1.0)
_PLANAR = _FACE_BONES | (np.arange(len(BODY_BONES)) == _SPINE)
_HEAD = _FACE_BONES & (np.arange(len(BODY_BONES)) != _NECK)
_ENDS = np.asarray(BODY_BONES)
# how far the tracker must see a joint (its visibility) for a bone through it to be
# taken as measured: below `lo` the bone is the canonical rest's, above `hi` the
# measured one, blended between so a joint at the frame's edge does not snap
VISIBLE = (0.3, 0.7)


def trusted_dirs(vectors: np.ndarray, rest: np.ndarray,
                 visibility: np.ndarray | None) -> np.ndarray:
    """Unit bone directions from the measured bone `vectors` (len(BODY_BONES), 3),
    `rest` the canonical rest's (`rest_body_dirs`), keeping only what the tracker
    measures:
    - the spine and the neck keep their direction in the picture and take the rest's
      depth (`rest`): the spine none, the neck the canonical head's lean;
    - a bone to a face landmark keeps its direction in the picture and takes its depth
      from the canonical head, scaled by the face's own spread in the picture (one
      least-squares scale over the face's bones but the neck), so a turned head still
      foreshortens the side it turns away;
    - a bone with an end the tracker does not see (`visibility` (33,) below `VISIBLE`,
      such as hips and legs below a webcam's frame, whose place it guesses) takes the
      rest direction; None: every joint counts as seen.
    Rows that are zero take the rest direction too."""
    dirs = unit(vectors, rest)
    flat = vectors[:, :2]
    seen = np.linalg.norm(flat, axis=1)
    # the share of each bone the picture shows: the rest's for the spine and the neck;
    # for the face's own bones their picture length against the rest's, the face
    # measured against the canonical head by one least-squares scale
    across = _REST_ACROSS.copy()
    head = _HEAD & (seen > 1e-9)
    if head.any():
        k = float((seen[head] * _REST_FLAT[head]).sum() / (seen[head] ** 2).sum())
        across[head] = np.minimum(1.0, k * seen[head] / _REST_LEN[head])
    planar = _PLANAR & (seen > 1e-9)
    depth = np.sqrt(np.clip(1.0 - across[planar] ** 2, 0.0, None)) * _REST_DEPTH_SIGN[planar]
    dirs[planar] = np.concatenate(
        [flat[planar] / seen[planar, None] * across[planar, None], depth[:, None]], 1)
    if visibility is not None and visibility.shape == (N_BODY,):
        vis = np.append(visibility, [min(visibility[23], visibility[24]),
                                     min(visibility[11], visibility[12])])
        lo, hi = VISIBLE
        w = np.clip((np.minimum(vis[_ENDS[:, 0]], vis[_ENDS[:, 1]]) - lo) / (hi - lo), 0, 1)
        dirs = unit(w[:, None] * dirs + (1 - w[:, None]) * rest, rest)
    return dirs


class MotionProcessor:
    """Per-stream state: filters, held parts and calibrations. One per performer."""

    def __init__(self, config: ProcessorConfig | None = None) -> None:
        self.config = config = config or ProcessorConfig()
        self._filters: dict[str, OneEuroFilter] = {}
        self.set_filter_strength(config.filter_strength)
        self._held = {part: _Held() for part in ("body", "face", "left_hand", "right_hand")}
        self._body_cal = _BodyCalibration(config.calibration_s, config.min_calibration_frames)
        self._face_cal = FaceCalibration(
            FaceCalibrationConfig(config.calibration_s, config.min_calibration_frames))
        self._rest_dirs = rest_body_dirs()
        self._last_root = np.zeros(3)
        self._last_scale = 1.0
        self._hand_roots = np.full((2, 3), np.nan)
        self._visibility: np.ndarray | None = None

    # --- control ------------------------------------------------------------------

    def set_filter_strength(self, strength: float) -> None:
        """0 disables filtering, 1 is the configured smoothing, > 1 smoother.
        Filters restart from the next sample."""
        cfg = self.config
        self.config = replace(cfg, filter_strength=strength)
        self._filters = {
            "body": OneEuroFilter(cfg.body_filter.with_strength(strength)),
            "left_hand": OneEuroFilter(cfg.hand_filter.with_strength(strength)),
            "right_hand": OneEuroFilter(cfg.hand_filter.with_strength(strength)),
            "face": OneEuroFilter(cfg.face_filter.with_strength(strength)),
        }

    def reset_calibration(self) -> None:
        """Forget the neutral face and rest body; the next `calibration_s` seconds
        calibrate again (e.g. a new performer, or they sat down)."""
        self._body_cal.reset()
        self._face_cal.reset()

    @property
    def calibrated(self) -> bool:
        return self._body_cal.rest is not None and self._face_cal.calibrated

    # --- per frame ----------------------------------------------------------------

    def process(self, frame: MotionFrame) -> NormalizedMotion:
        t = frame.t_capture
        size = frame.image_size
        hold = self.config.hold_s
        conf = frame.confidence

        # Body.
        if frame.body is not None:
            pts = self._filters["body"](to_height_units(frame.body[:, :3], size), t)
            self._held["body"].update(pts, t, conf.get("body", 1.0))
            self._visibility = frame.body[:, 3].astype(np.float32).copy() \
                if frame.body.shape[1] > 3 else None
            joints = with_virtual_joints(pts)
            # in the picture, as the spine is taken (`trusted_dirs`): the shoulders'
            # depth against the hips' would make a seated performer zoom in and out
            torso = float(np.linalg.norm(joints[MID_SHOULDER, :2] - joints[MID_HIP, :2]))
            rest = self._body_cal(joints[MID_HIP], torso, t)
            rest_torso = max(float(rest[3]), 1e-6)
            self._last_root = (joints[MID_HIP] - rest[:3]) / rest_torso
            self._last_root[2] = 0.0  # MediaPipe's body z is relative to the hips
            self._last_scale = torso / rest_torso
        body_presence = self._held["body"].presence(t, hold)
        if body_presence > 0:
            assert self._held["body"].value is not None
            joints = with_virtual_joints(self._held["body"].value)
            body_dirs = trusted_dirs(bone_vectors(joints, BODY_BONES), self._rest_dirs,
                                     self._visibility)
            root, scale = self._last_root.copy(), self._last_scale
        else:
            self._filters["body"].reset()
            body_dirs, root, scale = self._rest_dirs.copy(), np.zeros(3), 1.0

        # Hands.
        hand_dirs: list[np.ndarray | None] = []
        hand_presence = []
        for k, part in enumerate(("left_hand", "right_hand")):
            raw = getattr(frame, part)
            held = self._held[part]
            if raw is not None:
                pts = self._filters[part](to_height_units(raw, size), t)
                held.update(pts, t, conf.get(part, 1.0))
                w, h = size
                size_h = float(np.linalg.norm(bone_vectors(pts, HAND_BONES)[HAND_SIZE_BONE]))
                self._hand_roots[k] = (pts[0, 0] * h / w, pts[0, 1], size_h)
            p = held.presence(t, hold)
            hand_presence.append(p)
            if p > 0:
                assert held.value is not None
                hand_dirs.append(unit(bone_vectors(held.value, HAND_BONES)))
            else:
                self._filters[part].reset()
                self._hand_roots[k] = np.nan
                hand_dirs.append(None)

        # Face.
        held = self._held["face"]
        if frame.face is not None:
            feats = self._face_cal(raw_face_measures(frame.face, size), t)
            held.update(self._filters["face"](feats, t), t, conf.get("face", 1.0))
        face_presence = held.presence(t, hold)
        if face_presence > 0:
            assert held.value is not None
            face = held.value.astype(np.float32)
        else:
            self._filters["face"].reset()
            face = np.zeros(FACE_DIM, dtype=np.float32)

        presence = np.array([body_presence, face_presence, *hand_presence], dtype=np.float32)
        assert presence.shape == (N_PARTS,)
        return NormalizedMotion(
            frame_id=frame.frame_id,
            t_capture=t,
            root=root,
            scale=scale,
            body_dirs=body_dirs,
            left_hand_dirs=hand_dirs[0],
            right_hand_dirs=hand_dirs[1],
            face=face,
            presence=presence,
            stamps=dict(frame.stamps),
            body_visibility=self._visibility if body_presence > 0 and
            self._visibility is not None and self._visibility.shape == (N_BODY,)
            else None,
            hand_roots=self._hand_roots.copy(),
        )
