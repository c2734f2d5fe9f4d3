"""Generated landmarks and frames for the motion tests (no media needed), and a
small clip reader for the real-media ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.motion.retarget import _REST_BODY
from realtime.motion.types import N_BODY, MotionFrame

W, H = 640, 480  # image size of the synthetic frames


def synthetic_body(center: tuple[float, float] = (0.5, 0.5), height: float = 0.8,
                   image_size: tuple[int, int] = (W, H), visibility: float = 0.99) -> np.ndarray:
    """(33, 4) landmarks of the canonical standing adult, `height` image heights tall,
    mid-hip at `center` (normalised image coordinates)."""
    w, h = image_size
    rest = np.array([_REST_BODY[i] for i in range(N_BODY)])          # body heights, y down
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


