"""Where the figure of an uploaded reference picture stands: its skeleton.

A built-in character's session retargets the performer onto the character's own
skeleton seen through the session's camera, so the pose the model is told to draw
lines up with the figure its reference shows (the model was trained on exactly such
pairs). An uploaded picture has no known skeleton. Without one the session would
retarget onto a default adult standing full-body in the middle of the frame, and a
head-and-shoulders portrait would be asked to become a small full-body figure: the
reference and the pose disagree on every pixel.

`measure_reference(image)` finds the figure with MediaPipe Holistic, one still image
(`static_image_mode`), on the square canvas the engine encodes (`pad_square`), and
measures its skeleton there with `skeleton_from_landmarks`, in the picture's plane:
a reference shows its figure facing the camera, and the single-image depth estimate
only adds noise to the lengths. Hips out of the picture (a portrait) keep
MediaPipe's estimate of where they are, which is what places the root below the
frame. Where no figure with both shoulders in view is found (most drawn chibis,
animals, a face cut off at the chin), it returns None and the caller keeps the
default skeleton.

Measured on the built-in characters, MediaPipe finds the figure of adult builds
drawn full-body and the stylised ones rarely (tests/realtime/motion/
test_motion_reference.py, bench/upload_alignment.py); on the photographs and
paintings of ../shared/media/source it finds one in 22 of 30.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.motion.retarget import skeleton_from_landmarks
from realtime.motion.types import BODY_BONES, L_SHOULDER, R_SHOULDER, SPINE_BONE, Skeleton


@dataclass
class ReferenceConfig:
    """min_visibility: both shoulders at least this visible, or no figure; also the
        visibility below which a bone takes canonical proportions (legs out of the
        picture). min_detection_confidence: MediaPipe's, for the figure itself.
    long_side: the square canvas is resized to this before detection (MediaPipe
        resizes internally anyway; this bounds the copy of a large upload).
    as_drawn: read MediaPipe's joints as the studio draws them (`as_drawn`); off,
        the skeleton MediaPipe sees (`marionette eval --uploads` compares both)."""

    min_visibility: float = 0.5
    min_detection_confidence: float = 0.5
    long_side: int = 512
    as_drawn: bool = True


def measure_reference(square: np.ndarray, config: ReferenceConfig | None = None,
                      ) -> Skeleton | None:
    """(N, N, 3) uint8 RGB, the reference as the engine sees it (padded square) ->
    the skeleton of the figure it shows, in that canvas's units, or None."""
    import cv2
    import mediapipe as mp  # here, not at import: the GPU machine has no MediaPipe

    config = config or ReferenceConfig()
    if square.ndim != 3 or square.shape[2] != 3 or square.shape[0] != square.shape[1]:
        raise ValueError(f"need a square (N, N, 3) RGB image, got {square.shape}")
    image = np.ascontiguousarray(square)
    if image.shape[0] > config.long_side:
        image = cv2.resize(image, (config.long_side, config.long_side),
                           interpolation=cv2.INTER_AREA)
    # a fresh graph per picture: uploads are rare, and a session's own extractor is
    # in tracking mode and owned by its motion thread
    with mp.solutions.holistic.Holistic(
        static_image_mode=True, model_complexity=1, refine_face_landmarks=False,
        min_detection_confidence=config.min_detection_confidence,
    ) as holistic:
        found = holistic.process(image)
    if found.pose_landmarks is None:
        return None
    body = np.array([(p.x, p.y, p.visibility) for p in found.pose_landmarks.landmark],
                    np.float64)
    if min(body[L_SHOULDER, 2], body[R_SHOULDER, 2]) < config.min_visibility:
        return None
    planar = np.c_[body[:, :2], np.zeros(len(body)), body[:, 2]]       # (33, 4), z = 0
    seen = skeleton_from_landmarks(planar, _planar(found.left_hand_landmarks),
                                   _planar(found.right_hand_landmarks),
                                   min_visibility=config.min_visibility)
    if not config.as_drawn:
        return seen
    return as_drawn(seen, 0.5 * (body[L_SHOULDER, :2] + body[R_SHOULDER, :2]))


# The skeleton the studio draws a figure on, per bone, over the one MediaPipe sees in
# that drawing (medians over the 77 figures found among 164 characters x 3 framings:
# the gallery's and 150 of studio seed 3; `python -m realtime.training.uploads --fit`).
# The model draws a figure's parts where the studio's joints put them, so a picture's
# figure is drawn in its place only once MediaPipe's joints are read as the studio's:
# the studio's spine is 1.3x longer (its hip joints sit lower in the figure), its
# arms 1.3x, its pelvis 0.85x, its ears twice as far from the nose. Order: BODY_BONES.
STUDIO_OVER_SEEN = np.array([
    1.30, 0.85, 0.85, 0.97, 0.97, 0.96,              # spine, pelvis, shoulders, neck
    0.92, 1.05, 1.14, 1.01, 1.16, 1.24,              # eyes
    1.83, 2.01, 1.15, 1.18,                          # ears, mouth corners
    1.30, 1.28, 1.29, 1.26,                          # upper arms, forearms
    0.90, 0.88, 0.96, 0.91, 0.89, 0.99,              # wrist to pinky, index, thumb
    0.90, 0.96, 0.89, 0.95,                          # thighs, shins
    0.78, 0.90, 0.79, 0.87,                          # feet
])


def as_drawn(seen: Skeleton, mid_shoulder: np.ndarray) -> Skeleton:
    """MediaPipe's skeleton of a figure -> the studio's for the same figure: bones x
    `STUDIO_OVER_SEEN`, the shoulders kept where they were seen (both agree on them),
    so the root moves along the spine with its new length."""
    spine = STUDIO_OVER_SEEN[SPINE_BONE]
    root = mid_shoulder + (np.asarray(seen.rest_root) - mid_shoulder) * spine
    return Skeleton(body=np.asarray(seen.body) * STUDIO_OVER_SEEN, hand=np.asarray(seen.hand),
                    rest_root=(float(root[0]), float(root[1])))


assert len(STUDIO_OVER_SEEN) == len(BODY_BONES)


def _planar(landmarks: object) -> np.ndarray | None:
    if landmarks is None:
        return None
    points = landmarks.landmark  # type: ignore[attr-defined]
    return np.array([(p.x, p.y, 0.0) for p in points], np.float64)
