"""The data that flows through Marionette's motion stage, and the skeleton topology.

Pure numpy, no MediaPipe: the model, the avatar studio and the GPU machine (which
has no MediaPipe) import these types freely.

Flow, one frame at a time:

    image ─► MotionExtractor ─► MotionFrame         raw landmarks in the input image
          ─► MotionProcessor ─► NormalizedMotion    identity-agnostic: bone directions,
                                                    root motion, face features, presence
          ─► retarget(motion, skeleton) ─► Pose     joint positions with the character's
                                                    bone lengths, in canvas coordinates
          ─► render_condition(pose, size) ─► MotionCondition   what the model consumes

Coordinates (MotionFrame and Pose): x, y are normalised to the image (or canvas)
width and height, origin at the top-left corner, x to the right, y downwards. z is
depth in roughly the same scale as x, smaller is nearer the camera (MediaPipe's
convention); for the body it is relative to the hips, for a hand relative to its
wrist. "Left" and "right" are the performer's own (MediaPipe's convention), not
the image's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- parts and their presence flags ------------------------------------------------

PARTS: tuple[str, ...] = ("body", "face", "left_hand", "right_hand")
N_PARTS = len(PARTS)

# --- body: MediaPipe Pose's 33 landmarks, plus two virtual joints -----------------

N_BODY = 33
N_HAND = 21
N_FACE = 478  # Face Mesh with refined iris landmarks

NOSE, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 0, 11, 12, 13, 14
L_WRIST, R_WRIST, L_HIP, R_HIP = 15, 16, 23, 24
L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 25, 26, 27, 28
# Virtual joints appended after the 33 landmarks: body arrays with them are (35, 3).
MID_HIP, MID_SHOULDER = 33, 34
N_BODY_EXT = 35

# Bones as (parent, child), parents before children, rooted at MID_HIP. Every one of
# the 33 landmarks (and MID_SHOULDER) is the child of exactly one bone, so bone
# directions + bone lengths + the root position determine the whole body.
BODY_BONES: tuple[tuple[int, int], ...] = (
    (MID_HIP, MID_SHOULDER),                    # spine
    (MID_HIP, L_HIP), (MID_HIP, R_HIP),         # pelvis
    (MID_SHOULDER, L_SHOULDER), (MID_SHOULDER, R_SHOULDER),
    (MID_SHOULDER, NOSE),                       # neck + head
    (NOSE, 1), (NOSE, 2), (NOSE, 3), (NOSE, 4), (NOSE, 5), (NOSE, 6),   # eyes
    (NOSE, 7), (NOSE, 8),                       # ears
    (NOSE, 9), (NOSE, 10),                      # mouth corners
    (L_SHOULDER, L_ELBOW), (L_ELBOW, L_WRIST),
    (R_SHOULDER, R_ELBOW), (R_ELBOW, R_WRIST),
    (L_WRIST, 17), (L_WRIST, 19), (L_WRIST, 21),  # pinky, index, thumb (pose model)
    (R_WRIST, 18), (R_WRIST, 20), (R_WRIST, 22),
    (L_HIP, L_KNEE), (L_KNEE, L_ANKLE),
    (R_HIP, R_KNEE), (R_KNEE, R_ANKLE),
    (L_ANKLE, 29), (L_ANKLE, 31),               # heel, foot index
    (R_ANKLE, 30), (R_ANKLE, 32),
)
SPINE_BONE = 0  # index into BODY_BONES of MID_HIP -> MID_SHOULDER: the torso length

# --- hands: MediaPipe Hands' 21 landmarks -------------------------------------------

WRIST = 0
FINGERS: dict[str, tuple[int, int, int, int]] = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    bone
    for chain in FINGERS.values()
    for bone in zip((WRIST, *chain[:-1]), chain, strict=True)
)

# --- face features ------------------------------------------------------------------

# Identity-agnostic, relative to the performer's neutral calibration: 0 is neutral.
# Angles in radians; the rest roughly in [-1, 1] (openness may exceed 1 when wide).
FACE_FEATURES: tuple[str, ...] = (
    "yaw", "pitch", "roll",           # head pose; yaw > 0 turns to the performer's left
    "eye_open_l", "eye_open_r",       # 0 neutral, -1 closed, > 0 wider
    "gaze_x", "gaze_y",               # iris offset in the eye, x right, y down
    "brow_l", "brow_r",               # raise > 0
    "mouth_open",                     # lip gap over face size, relative to neutral
    "mouth_width",                    # smile / widening > 0, pucker < 0
    "jaw",                            # jaw drop (chin travel) relative to neutral
)
FACE_DIM = len(FACE_FEATURES)

# --- condition maps -----------------------------------------------------------------

# One channel per group, so the model can tell a hand from an arm and each finger
# from the others. Values in [0, 1], antialiased strokes.
POSE_CHANNELS: tuple[str, ...] = (
    "head", "torso", "arm_l", "arm_r", "leg_l", "leg_r",
    *(f"{finger}_l" for finger in FINGERS),
    *(f"{finger}_r" for finger in FINGERS),
)
N_POSE_CHANNELS = len(POSE_CHANNELS)  # 16

Stamps = dict[str, tuple[float, float]]
"""Per-stage (start, end) on time.monotonic(), seconds. Stage names: 'receive',
'extract', 'motion', 'condition', 'model', 'decode', 'encode', 'send'."""


@dataclass
class MotionFrame:
    """Raw landmarks of one input frame, as MediaPipe saw them."""

    frame_id: int
    t_capture: float                        # time.monotonic() when the frame was captured
    image_size: tuple[int, int]             # (width, height) of the source image
    body: np.ndarray | None                 # (33, 4) x, y, z, visibility
    left_hand: np.ndarray | None            # (21, 3)
    right_hand: np.ndarray | None           # (21, 3)
    face: np.ndarray | None                 # (478, 3)
    confidence: dict[str, float] = field(default_factory=dict)  # part -> [0, 1]
    stamps: Stamps = field(default_factory=dict)


@dataclass
class NormalizedMotion:
    """Identity-agnostic motion: the performer's proportions are divided out."""

    frame_id: int
    t_capture: float
    root: np.ndarray                        # (3,) MID_HIP offset from the calibrated rest
                                            #      position, in performer torso lengths
    scale: float                            # performer torso length / calibrated torso
                                            #   length: >1 when they move closer
    body_dirs: np.ndarray                   # (len(BODY_BONES), 3) unit vectors
    left_hand_dirs: np.ndarray | None       # (len(HAND_BONES), 3) unit vectors
    right_hand_dirs: np.ndarray | None
    face: np.ndarray                        # (FACE_DIM,) features, 0 = neutral
    presence: np.ndarray                    # (N_PARTS,) confidence in [0, 1]; 0 = absent
    stamps: Stamps = field(default_factory=dict)
    # Added by the motion stage (optional; None when unknown):
    body_visibility: np.ndarray | None = None  # (33,) per-landmark visibility in [0, 1]
    hand_roots: np.ndarray | None = None    # (2, 3) left, right: wrist x, y (normalised
                                            #   source image) and hand size (wrist ->
                                            #   middle knuckle, source image heights);
                                            #   NaN rows for absent hands


@dataclass(frozen=True)
class Skeleton:
    """A character's proportions: bone lengths in canvas units (fraction of the
    canvas height at the character's rest framing) and where its root rests."""

    body: np.ndarray                        # (len(BODY_BONES),) lengths
    hand: np.ndarray                        # (len(HAND_BONES),) lengths, both hands
    rest_root: tuple[float, float] = (0.5, 0.75)  # MID_HIP (x, y) on the canvas at rest

    @property
    def torso(self) -> float:
        return float(self.body[SPINE_BONE])

    def through(self, center: tuple[float, float], zoom: float) -> Skeleton:
        """The skeleton as a camera centred on canvas point `center` with `zoom` sees
        it (canvas p lands at (p - center) * zoom + 0.5 of a square frame): bones x
        zoom, rest root moved into the frame. Retargeting onto it puts the character
        where that camera draws it (the avatar studio's framings)."""
        cx, cy = center
        root = ((self.rest_root[0] - cx) * zoom + 0.5, (self.rest_root[1] - cy) * zoom + 0.5)
        return Skeleton(body=np.asarray(self.body, np.float64) * zoom,
                        hand=np.asarray(self.hand, np.float64) * zoom,
                        rest_root=(float(root[0]), float(root[1])))


@dataclass
class Pose:
    """Joint positions of a character in canvas coordinates: what both the avatar
    renderer and the condition renderer draw."""

    body: np.ndarray                        # (33, 3)
    left_hand: np.ndarray | None            # (21, 3) canvas coordinates
    right_hand: np.ndarray | None
    face: np.ndarray                        # (FACE_DIM,)
    presence: np.ndarray                    # (N_PARTS,)
    body_visibility: np.ndarray | None = None  # (33,) added by the motion stage: joints
                                            #   below 0.5 (e.g. out of frame) are not drawn


@dataclass
class MotionCondition:
    """What the student model consumes for one frame."""

    frame_id: int
    t_capture: float
    pose_maps: np.ndarray                   # (N_POSE_CHANNELS, H, W) float32 in [0, 1]
    face: np.ndarray                        # (FACE_DIM,) float32
    presence: np.ndarray                    # (N_PARTS,) float32
    stamps: Stamps = field(default_factory=dict)
    # (3,) the pose's ears' middle (x, y) and torso length, canvas units, NaN where not
    # seen; None where unknown. They place a built-in character's face paste
    # (realtime.model.face_paste)
    head: np.ndarray | None = None
    # (2, 21, 3) the pose's left and right hand points, canvas units, NaN for a hand not
    # seen; None where unknown. They place the hand paste (realtime.model.hand_paste)
    hands: np.ndarray | None = None
