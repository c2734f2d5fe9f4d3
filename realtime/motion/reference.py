"""Where the figure of an uploaded reference picture stands: its skeleton.

A built-in character's session retargets the performer onto the character's own
skeleton seen through the session's camera, so the pose the model is told to draw
lines up with the figure its reference shows (the model was trained on exactly such
pairs). An uploaded picture has no known skeleton. Without one the session would
retarget onto a default adult standing full-body in the middle of the frame, and a
head-and-shoulders portrait would be asked to become a small full-body figure: the
reference and the pose disagree on every pixel.

`measure_reference(image)` looks at the square canvas the engine encodes
(`pad_square`), one still image at a time, in two ways:
- the body: MediaPipe Holistic (`static_image_mode`); with both shoulders in view,
  `skeleton_from_landmarks` measures its bones in the picture's plane (a reference
  shows its figure facing the camera, and the single-image depth estimate only adds
  noise), and `as_drawn` reads MediaPipe's joints as the avatar studio draws them;
  hips out of the picture keep MediaPipe's estimate of where they are, which places
  the root below the frame;
- else the face: Face Mesh, and the studio's median figure for that kind of face
  (a big head's large, wide-set eyes, or not) placed and sized by it (`from_face`).
  Face Mesh finds most drawn faces, where Holistic finds few drawn bodies and almost
  no close-ups; the figure below a face is a guess from the studio's medians.
Where neither finds anything it returns None and the caller keeps the default
skeleton.

Both conversions are fitted on the studio's own drawings
(`python -m realtime.training.uploads --fit`) and `marionette eval --uploads`
measures what they are worth on characters of another seed (the model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.motion.retarget import skeleton_from_landmarks
from realtime.motion.types import (
    BODY_BONES,
    HAND_BONES,
    L_SHOULDER,
    R_SHOULDER,
    SPINE_BONE,
    Skeleton,
)


@dataclass
class ReferenceConfig:
    """min_visibility: both shoulders at least this visible, or no figure; also the
        visibility below which a bone takes canonical proportions (legs out of the
        picture). min_detection_confidence: MediaPipe's, for the figure itself.
    long_side: the square canvas is resized to this before detection (MediaPipe
        resizes internally anyway; this bounds the copy of a large upload).
    as_drawn: read MediaPipe's joints as the studio draws them (`as_drawn`); off,
        the skeleton MediaPipe sees (`marionette eval --uploads` compares both).
    face: where no body is found, place the studio's median figure around the face
        Face Mesh finds (`from_face`)."""

    min_visibility: float = 0.5
    min_detection_confidence: float = 0.5
    long_side: int = 512
    as_drawn: bool = True
    face: bool = True


def measure_reference(square: np.ndarray, config: ReferenceConfig | None = None,
                      ) -> Skeleton | None:
    """(N, N, 3) uint8 RGB, the reference as the engine sees it (padded square) ->
    the skeleton of the figure it shows, in that canvas's units, or None: from the
    body where MediaPipe finds one with both shoulders in view, else from the face
    (`config.face`)."""
    config = config or ReferenceConfig()
    image = _canvas(square, config.long_side)
    found = _body(image, config)
    if found is not None or not config.face:
        return found
    points = face_points(image, config.min_detection_confidence)
    return None if points is None else from_face(points)


def measure_upload(square: np.ndarray, config: ReferenceConfig | None = None,
                   ) -> tuple[Skeleton | None, np.ndarray | None]:
    """`measure_reference`'s skeleton, and the face's features (`face_features`)
    where Face Mesh finds one: what places the face and hand pastes on an upload
    (`face_paste.HeadShape.of_upload`). One Face Mesh pass serves both."""
    config = config or ReferenceConfig()
    image = _canvas(square, config.long_side)
    found = _body(image, config)
    points = face_points(image, config.min_detection_confidence)
    if found is None and config.face and points is not None:
        found = from_face(points)
    return found, None if points is None else face_features(points)


def _canvas(square: np.ndarray, long_side: int) -> np.ndarray:
    import cv2

    if square.ndim != 3 or square.shape[2] != 3 or square.shape[0] != square.shape[1]:
        raise ValueError(f"need a square (N, N, 3) RGB image, got {square.shape}")
    image = np.ascontiguousarray(square)
    if image.shape[0] > long_side:
        image = cv2.resize(image, (long_side, long_side), interpolation=cv2.INTER_AREA)
    return image


def _body(image: np.ndarray, config: ReferenceConfig) -> Skeleton | None:
    import mediapipe as mp  # here, not at import: the GPU machine has no MediaPipe

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


def face_points(image: np.ndarray, min_detection_confidence: float = 0.5,
                ) -> np.ndarray | None:
    """Face Mesh's 468 points (x, y) of the one face in a square picture, or None."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=False,
        min_detection_confidence=min_detection_confidence,
    ) as mesh:
        faces = mesh.process(image).multi_face_landmarks
    if not faces:
        return None
    return np.array([(p.x, p.y) for p in faces[0].landmark], np.float64)


# Face Mesh points: the outer corners of the eyes, the tip of the nose, the top of
# the forehead and the bottom of the chin
EYE_OUTER = (33, 263)
NOSE_TIP = 1
FOREHEAD, CHIN = 10, 152
# eye span / face height at and above which a face is drawn with a big head's large,
# wide-set eyes (the studio's chibis: 0.72 +- 0.05; its other builds 0.63 +- 0.05;
# the faces in the photographs and paintings of ../shared/media/source 0.50-0.62),
# whose body is a third the size of the others'
BIG_HEAD = 0.70


# Face Mesh points round each eye (the subject's left eye, on the image's right, first)
# and the lips' inner middles
EYE_RINGS = ((362, 385, 387, 263, 373, 380), (33, 160, 158, 133, 153, 144))
LIPS = (13, 14)


def face_features(points: np.ndarray) -> np.ndarray:
    """(4, 2) the face's left eye (on the image's right), right eye, nose tip and
    mouth, from Face Mesh's points: `face_paste.HeadShape.points()`' order."""
    return np.stack([points[list(EYE_RINGS[0])].mean(0), points[list(EYE_RINGS[1])].mean(0),
                     points[NOSE_TIP], points[list(LIPS)].mean(0)])


def face_size(points: np.ndarray) -> tuple[float, np.ndarray]:
    """The face's scale (outer eye corners apart, canvas units) and its nose tip."""
    return float(np.linalg.norm(points[EYE_OUTER[0]] - points[EYE_OUTER[1]])), points[NOSE_TIP]


def big_head(points: np.ndarray) -> bool:
    """Whether the face is drawn as a big head's (`BIG_HEAD`)."""
    span, _ = face_size(points)
    return span / float(np.linalg.norm(points[FOREHEAD] - points[CHIN])) >= BIG_HEAD


def from_face(points: np.ndarray) -> Skeleton:
    """The studio's median figure around a face of its kind (`big_head`): every bone
    and the root's offset from the nose tip in units of the face's eye span
    (`FACE_FIGURES`)."""
    span, nose = face_size(points)
    figure = FACE_FIGURES["big head" if big_head(points) else "other"]
    root = nose + np.asarray(figure["root"]) * span
    return Skeleton(body=np.asarray(figure["body"]) * span,
                    hand=np.asarray(figure["hand"]) * span,
                    rest_root=(float(root[0]), float(root[1])))


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


# The studio's median figure around a face of each kind, in units of the face's eye
# span (outer corners) and offset from its nose tip: medians over the faces Face Mesh
# finds among 164 characters (the gallery's and 150 of studio seed 3) x 3 framings,
# 88 big heads and 254 others (`python -m realtime.training.uploads --fit`).
# Order: BODY_BONES, HAND_BONES.
FACE_FIGURES: dict[str, dict[str, Any]] = {
    "big head": {
        "root": (0.02, 2.331),
        "body": np.array([
            1.650, 0.508, 0.508, 0.924, 0.924, 1.239, 0.265, 0.420,
            0.587, 0.265, 0.420, 0.587, 1.244, 1.244, 0.472, 0.472,
            0.789, 0.729, 0.789, 0.729, 0.341, 0.364, 0.272, 0.341,
            0.364, 0.272, 0.505, 0.505, 0.505, 0.505, 0.067, 0.157,
            0.067, 0.157,
        ]),
        "hand": np.array([
            0.130, 0.142, 0.112, 0.091, 0.364, 0.169, 0.107, 0.084, 0.362, 0.192,
            0.123, 0.092, 0.349, 0.176, 0.115, 0.084, 0.341, 0.138, 0.084, 0.077,
        ]),
    },
    "other": {
        "root": (0.022, 6.292),
        "body": np.array([
            5.096, 0.693, 0.693, 1.260, 1.260, 1.593, 0.290, 0.421,
            0.572, 0.290, 0.421, 0.572, 1.176, 1.176, 0.503, 0.503,
            3.462, 3.196, 3.462, 3.196, 0.595, 0.636, 0.475, 0.595,
            0.636, 0.475, 2.637, 2.637, 2.637, 2.637, 0.351, 0.820,
            0.351, 0.820,
        ]),
        "hand": np.array([
            0.227, 0.248, 0.195, 0.159, 0.636, 0.295, 0.188, 0.148, 0.632, 0.335,
            0.214, 0.161, 0.610, 0.308, 0.201, 0.147, 0.595, 0.241, 0.148, 0.134,
        ]),
    },
}
assert all(len(f["body"]) == len(BODY_BONES) and len(f["hand"]) == len(HAND_BONES)
           for f in FACE_FIGURES.values())
