"""Motion tracks on disk: a list of `MotionFrame` <-> one .npz file.

Layout (N frames; absent parts are NaN-filled *and* flagged in `present`, so no
reader can mistake a missing part for landmarks at zero):

    frame_id    (N,)          int64
    t_capture   (N,)          float64, seconds
    image_size  (N, 2)        int32, (width, height)
    present     (N, 4)        bool, PARTS order: body, face, left_hand, right_hand
    confidence  (N, 4)        float32, PARTS order
    body        (N, 33, 4)    float32, x, y, z, visibility (NaN where absent)
    face        (N, 478, 3)   float32 (NaN where absent)
    left_hand   (N, 21, 3)    float32 (NaN where absent)
    right_hand  (N, 21, 3)    float32 (NaN where absent)
    meta        ()            str, JSON (source, fps, format version)

Tracks from real clips are training motion for the avatar studio, and `marionette
animate` accepts a track in place of a video.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.motion.types import N_BODY, N_FACE, N_HAND, PARTS, MotionFrame

FORMAT_VERSION = 1
_SHAPES = {"body": (N_BODY, 4), "face": (N_FACE, 3), "left_hand": (N_HAND, 3),
           "right_hand": (N_HAND, 3)}


def save_track(path: str | Path, frames: Sequence[MotionFrame],
               meta: dict[str, Any] | None = None) -> None:
    """Write frames to a compressed .npz (layout in the module docstring)."""
    n = len(frames)
    arrays: dict[str, np.ndarray] = {
        "frame_id": np.array([f.frame_id for f in frames], dtype=np.int64),
        "t_capture": np.array([f.t_capture for f in frames], dtype=np.float64),
        "image_size": np.array([f.image_size for f in frames], dtype=np.int32).reshape(n, 2),
        "present": np.zeros((n, len(PARTS)), dtype=bool),
        "confidence": np.array(
            [[f.confidence.get(p, 0.0) for p in PARTS] for f in frames],
            dtype=np.float32).reshape(n, len(PARTS)),
    }
    for k, part in enumerate(PARTS):
        data = np.full((n, *_SHAPES[part]), np.nan, dtype=np.float32)
        for i, f in enumerate(frames):
            value = getattr(f, part)
            if value is not None:
                data[i] = value
                arrays["present"][i, k] = True
        arrays[part] = data
    info = {"format": FORMAT_VERSION, **(meta or {})}
    np.savez_compressed(Path(path), meta=np.array(json.dumps(info)), **arrays)


def load_track(path: str | Path) -> list[MotionFrame]:
    """Read a .npz written by `save_track` back into MotionFrames."""
    with np.load(Path(path), allow_pickle=False) as z:
        missing = {"frame_id", "t_capture", "image_size", "present", "confidence",
                   *PARTS} - set(z.files)
        if missing:
            raise ValueError(f"{path} is not a motion track (missing {sorted(missing)})")
        data = {k: z[k] for k in z.files}
    frames = []
    for i in range(len(data["frame_id"])):
        parts = {
            part: data[part][i].copy() if data["present"][i, k] else None
            for k, part in enumerate(PARTS)
        }
        frames.append(MotionFrame(
            frame_id=int(data["frame_id"][i]),
            t_capture=float(data["t_capture"][i]),
            image_size=(int(data["image_size"][i, 0]), int(data["image_size"][i, 1])),
            body=parts["body"],
            left_hand=parts["left_hand"],
            right_hand=parts["right_hand"],
            face=parts["face"],
            confidence={p: float(data["confidence"][i, k]) for k, p in enumerate(PARTS)},
        ))
    return frames


def track_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored with a track."""
    with np.load(Path(path), allow_pickle=False) as z:
        return dict(json.loads(str(z["meta"]))) if "meta" in z.files else {}
