"""Streaming motion extraction: one camera frame in, one `MotionFrame` out.

MediaPipe Holistic (mediapipe==0.10.21, `solutions` API) runs in tracking mode
(`static_image_mode=False`): after the first detection it follows the person from
the previous frame's landmarks, which is both faster and steadier than detecting
in every frame. Face landmarks are refined (478 points, with irises).

Holistic finds hands only through the body: in hand-only close-ups (no body in
view) it misses them in almost every frame, where MediaPipe's standalone Hands
model finds them in nearly all (../shared/media/MANIFEST.tsv, `mediapipe_check`).
So when the body is absent, or a wrist is in view but Holistic lost its hand, the
standalone Hands model (also in tracking mode) fills the missing hands in.

MediaPipe is imported inside this module only, never at package import: the GPU
machine has no MediaPipe and imports `realtime.motion.types` freely.

Input images are RGB by default (what PyAV's `to_ndarray(format="rgb24")` and
browsers give); pass `bgr=True` for OpenCV-style frames. RGBA, grayscale (H, W) or
(H, W, 1), and odd sizes are accepted; anything else raises `ValueError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from realtime.motion.types import (
    L_WRIST,
    N_BODY,
    N_FACE,
    N_HAND,
    R_WRIST,
    MotionFrame,
)


@dataclass
class ExtractorConfig:
    """How frames are fed to MediaPipe.

    long_side: the image is resized (never enlarged) so its long side is at most
        this many pixels before MediaPipe sees it; 0 disables resizing. Holistic
        crops and resizes internally to its own model inputs, so the input size
        changes the cost little: measured on a full-body dance clip
        (bench/test_motion.py::test_extract_long_side, bench/results/motion-cpu.json)
        the process CPU time per frame stayed within 51-57 ms from 256 to 640 px
        (two runs) and the detection rates did not change beyond noise (also on a small subject in a
        1280x720 frame and on a 1080x1920 one). 512 is chosen because it leaves a
        640x480 webcam frame almost untouched (the face and hand crops keep their
        pixels, which the iris and finger landmarks need) while bounding the
        conversion and copy cost of HD and 4K inputs.
    model_complexity: Holistic's pose model. Only 1 ships inside the
        mediapipe==0.10.21 wheel; 0 and 2 would download a model at run time, which
        Marionette never does, so they are rejected.
    hands_fallback: run the standalone Hands model when Holistic has no body or
        lost a hand whose wrist is in view.
    """

    long_side: int = 512
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    refine_face_landmarks: bool = True
    hands_fallback: bool = True
    hands_model_complexity: int = 1          # 0 (lite) and 1 (full) both ship in the wheel
    wrist_visibility: float = 0.5            # a wrist this visible "should" have a hand
    hands_retry_every: int = 4               # frames between fallbacks that find nothing
    bgr: bool = False                        # input channel order; RGB unless set

    @classmethod
    def preset(cls, name: str) -> ExtractorConfig:
        """Named presets: 'default', 'fast' (no hands fallback, lite hands)."""
        presets = {
            "default": cls(),
            "fast": cls(hands_fallback=False, hands_model_complexity=0),
        }
        if name not in presets:
            raise ValueError(f"unknown extractor preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


def to_rgb(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Validate an input image and return it as a contiguous (H, W, 3) uint8 RGB array.

    Accepts uint8 arrays shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); the
    3- and 4-channel forms are RGB(A) unless `bgr` (then BGR(A)).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0-255), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(
            f"image must be shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is empty or too small: {image.shape}")
    image = np.ascontiguousarray(image)  # e.g. a mirrored view; OpenCV needs plain strides
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    if bgr:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _landmarks(lms: Any, n: int, with_visibility: bool = False) -> np.ndarray | None:
    """MediaPipe landmark list -> (n, 3) or (n, 4) float32, or None."""
    if lms is None:
        return None
    pts = lms.landmark
    if len(pts) != n:
        return None
    if with_visibility:
        return np.array([(p.x, p.y, p.z, p.visibility) for p in pts], dtype=np.float32)
    return np.array([(p.x, p.y, p.z) for p in pts], dtype=np.float32)


def _wrist_in_view(body: np.ndarray | None, idx: int, min_vis: float) -> bool:
    if body is None:
        return False
    x, y, _, vis = body[idx]
    return bool(vis >= min_vis and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0)


_SAME_HAND = 0.05  # wrist distance (normalised image units) below which two hands are one


def _same_hand(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.linalg.norm(a[0, :2] - b[0, :2]) < _SAME_HAND)


class MotionExtractor:
    """MediaPipe Holistic in tracking mode, plus the standalone Hands fallback.

    Feed frames in capture order; one extractor per stream (it keeps tracking state).
    """

    def __init__(self, config: ExtractorConfig | None = None) -> None:
        self.config = config = config or ExtractorConfig()
        if config.model_complexity != 1:
            raise ValueError(
                "model_complexity must be 1: only the 'full' pose model ships in the "
                "mediapipe==0.10.21 wheel (0 and 2 would download one at run time)"
            )
        if config.long_side < 0:
            raise ValueError(f"long_side must be >= 0, got {config.long_side}")
        import mediapipe as mp  # here, not at import: the GPU machine has no MediaPipe

        self._holistic = mp.solutions.holistic.Holistic(
            static_image_mode=False,
            model_complexity=config.model_complexity,
            smooth_landmarks=True,
            refine_face_landmarks=config.refine_face_landmarks,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._hands: Any = None
        if config.hands_fallback:
            self._hands = mp.solutions.hands.Hands(
                static_image_mode=False,
                max_num_hands=2,
                model_complexity=config.hands_model_complexity,
                min_detection_confidence=config.min_detection_confidence,
                min_tracking_confidence=config.min_tracking_confidence,
            )
        self.hands_fallback_calls = 0
        self._hands_wait = 0

    def close(self) -> None:
        """Release MediaPipe's graphs. Safe to call twice."""
        for graph in (self._holistic, self._hands):
            if graph is not None:
                graph.close()
        self._holistic = None
        self._hands = None

    def __enter__(self) -> MotionExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        long_side = self.config.long_side
        if long_side <= 0 or max(h, w) <= long_side:
            return rgb
        s = long_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> MotionFrame:
        """Extract the landmarks of one frame (RGB unless the config says BGR).

        Coordinates are MediaPipe's normalised image coordinates of the *original*
        image (resizing keeps them), see realtime/motion/types.py.
        """
        if self._holistic is None:
            raise RuntimeError("MotionExtractor is closed")
        t0 = time.monotonic()
        rgb = to_rgb(image, self.config.bgr)
        h, w = rgb.shape[:2]
        small = self._resize(rgb).view()  # a view: the caller's array stays writeable
        small.flags.writeable = False       # lets MediaPipe wrap the buffer without a copy
        res = self._holistic.process(small)

        body = _landmarks(res.pose_landmarks, N_BODY, with_visibility=True)
        face = _landmarks(res.face_landmarks, N_FACE)
        left = _landmarks(res.left_hand_landmarks, N_HAND)
        right = _landmarks(res.right_hand_landmarks, N_HAND)
        conf = {
            # Holistic reports no per-part scores: the body's is the mean visibility
            # of the nose and shoulders (in view in every framing from webcam to full
            # body), the others are 1 when found (the tracker drops parts below
            # min_tracking_confidence on its own).
            "body": float(body[[0, 11, 12], 3].mean()) if body is not None else 0.0,
            "face": 1.0 if face is not None else 0.0,
            "left_hand": 1.0 if left is not None else 0.0,
            "right_hand": 1.0 if right is not None else 0.0,
        }

        left, right = self._reconcile_hands(small, body, face, left, right, conf)

        return MotionFrame(
            frame_id=frame_id,
            t_capture=t_capture,
            image_size=(w, h),
            body=body,
            left_hand=left,
            right_hand=right,
            face=face,
            confidence=conf,
            stamps={"extract": (t0, time.monotonic())},
        )

    def _reconcile_hands(
        self,
        small: np.ndarray,
        body: np.ndarray | None,
        face: np.ndarray | None,
        left: np.ndarray | None,
        right: np.ndarray | None,
        conf: dict[str, float],
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Holistic's hands, de-duplicated and completed by the Hands fallback.
        Updates `conf` for the hands it changes."""
        # A body without a face is usually Holistic guessing a person around a hand
        # close-up; it then may report one hand as both.
        body_trusted = body is not None and face is not None
        if left is not None and right is not None and _same_hand(left, right):
            if body_trusted and body is not None:
                d_l = np.linalg.norm(left[0, :2] - body[L_WRIST, :2])
                d_r = np.linalg.norm(right[0, :2] - body[R_WRIST, :2])
                if d_l <= d_r:
                    right, conf["right_hand"] = None, 0.0
                else:
                    left, conf["left_hand"] = None, 0.0
            else:  # let the Hands model (and its handedness) decide
                left = right = None
                conf["left_hand"] = conf["right_hand"] = 0.0

        if self._hands is not None and (left is None or right is None):
            # No body, or an untrusted one, or a wrist in view whose hand Holistic lost.
            want = not body_trusted or any(
                hand is None and _wrist_in_view(body, idx, self.config.wrist_visibility)
                for hand, idx in ((left, L_WRIST), (right, R_WRIST))
            )
            # With a trusted body, after a fallback that saw no hand at all, wait
            # `hands_retry_every` frames before trying again: Hands re-runs its palm
            # detector on every call while it tracks fewer than two hands, which would
            # double the cost of frames whose hand is just out of view. Without a
            # body (a hand close-up) it runs on every frame.
            if want and body_trusted and self._hands_wait > 0:
                self._hands_wait -= 1
            elif want and body_trusted:
                found, seen = self._run_hands(small, body, (left, right))
                if not seen:
                    self._hands_wait = self.config.hands_retry_every - 1
                if left is None and "left_hand" in found:
                    left, conf["left_hand"] = found["left_hand"]
                if right is None and "right_hand" in found:
                    right, conf["right_hand"] = found["right_hand"]
            elif want:
                # A close-up: when the Hands model sees hands, its hands and its
                # handedness replace Holistic's guesses around an imagined body
                # (which may swap sides from frame to frame).
                found, seen = self._run_hands(small, None, (None, None))
                if seen:
                    left, conf["left_hand"] = found.get("left_hand", (None, 0.0))
                    right, conf["right_hand"] = found.get("right_hand", (None, 0.0))
        return left, right

    def _run_hands(
        self,
        rgb: np.ndarray,
        body: np.ndarray | None,
        known: tuple[np.ndarray | None, np.ndarray | None],
    ) -> tuple[dict[str, tuple[np.ndarray, float]], int]:
        """Standalone Hands on the frame -> ({'left_hand'|'right_hand': (landmarks,
        score)}, number of hands the model saw before de-duplication).

        Hands within `_SAME_HAND` of a hand Holistic already found are dropped.
        Which hand is which: with a trusted body, each hand goes to the nearer body
        wrist; without one, MediaPipe's handedness label decides. That label assumes
        a mirrored (selfie) image, so on an unmirrored camera frame 'Left' is the
        performer's right hand (checked on LivePortrait__s20.mp4, where Holistic
        finds both hands: the label was the opposite of Holistic's side 78/78 times).
        """
        self.hands_fallback_calls += 1
        res = self._hands.process(rgb)
        if not res.multi_hand_landmarks:
            return {}, 0
        found: dict[str, tuple[np.ndarray, float]] = {}
        for lms, handed in zip(res.multi_hand_landmarks, res.multi_handedness, strict=False):
            pts = _landmarks(lms, N_HAND)
            if pts is None:
                continue
            if any(k is not None and _same_hand(pts, k) for k in known):
                continue
            cls = handed.classification[0]
            if body is not None:
                d_l = np.linalg.norm(pts[0, :2] - body[L_WRIST, :2])
                d_r = np.linalg.norm(pts[0, :2] - body[R_WRIST, :2])
                part = "left_hand" if d_l <= d_r else "right_hand"
            else:
                part = "right_hand" if cls.label == "Left" else "left_hand"
            if part not in found or cls.score > found[part][1]:
                found[part] = (pts, float(cls.score))
        return found, len(res.multi_hand_landmarks)
