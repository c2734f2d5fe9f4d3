"""A picture of the engine at work: `marionette animate --strip OUT.png`.

Columns are frames of the driving input; rows, top to bottom: the input frame with
the landmarks extracted from it drawn over it (video input only), the pose-condition
maps the model consumes, the avatar studio's render of the retargeted motion (the
character's ground truth, built-in characters only) and the model's output.
Offline only; nothing here runs live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from realtime.motion.types import N_POSE_CHANNELS, MotionCondition, MotionFrame, Pose

# One hue per condition channel (head, torso, four limbs, ten fingers).
_HSV = np.array([[[int(180 * i / N_POSE_CHANNELS), 220, 255] for i in range(N_POSE_CHANNELS)]],
                dtype=np.uint8)                                 # (1, C, 3)
_PALETTE = np.concatenate((                                     # (C + 1, 3): the
    cv2.cvtColor(_HSV, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255.0,  # face sketch's
    np.ones((1, 3), np.float32)))                                         # plane in white


def colorize_condition(cond: MotionCondition, size: int) -> np.ndarray:
    """(C, h, w) maps in [0, 1] -> (size, size, 3) uint8: each channel in its own
    colour over black, the brightest channel winning where strokes overlap."""
    maps = cond.pose_maps.astype(np.float32)                    # (C, h, w)
    strongest = maps.argmax(axis=0)                             # (h, w)
    rgb = _PALETTE[strongest] * maps.max(axis=0)[..., None]     # (h, w, 3)
    out = (rgb * 255).clip(0, 255).astype(np.uint8)
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_NEAREST)


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize."""
    h, w = image.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(np.ascontiguousarray(image[y:y + s, x:x + s, :3]), (size, size),
                      interpolation=cv2.INTER_AREA)


def _on_canvas(pose: Pose, camera: Any) -> Pose:
    """A pose retargeted onto a skeleton seen through `camera` (frame coordinates) back
    on the character's canvas, where the studio renderer poses it before its camera
    frames it: q = (p - centre) * zoom + 0.5, so p = (q - 0.5) / zoom + centre."""
    if camera is None:
        return pose
    shift = np.array([0.5, 0.5, 0.0])
    centre = np.array([camera.center[0], camera.center[1], 0.0])

    def back(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else (a - shift) / camera.zoom + centre

    body = back(pose.body)
    assert body is not None
    return dataclasses.replace(pose, body=body, left_hand=back(pose.left_hand),
                               right_hand=back(pose.right_hand))


@dataclass
class StripRecorder:
    """Collects the rows for chosen frame ids while `animate` runs."""

    frame_ids: set[int]
    size: int = 160
    character: object | None = None          # realtime.avatars Character, if built-in
    camera: object | None = None             # its realtime.avatars Framing (None: full)
    rows: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def wants(self, frame_id: int) -> bool:
        return frame_id in self.frame_ids

    def record_input(self, frame_id: int, image: np.ndarray, frame: MotionFrame) -> None:
        from realtime.motion.overlay import draw_landmarks

        marked = np.ascontiguousarray(image[..., :3]).copy()
        draw_landmarks(marked, frame)
        self.rows.setdefault(frame_id, {})["landmarks"] = _square(marked, self.size)

    def record_motion(self, frame_id: int, pose: Pose, cond: MotionCondition) -> None:
        row = self.rows.setdefault(frame_id, {})
        row["condition"] = colorize_condition(cond, self.size)
        if self.character is not None:
            from realtime.avatars.render import render

            rgba = render(self.character, _on_canvas(pose, self.camera), self.size,  # type: ignore[arg-type]
                          background="plain", framing=self.camera)  # type: ignore[arg-type]
            row["studio"] = rgba[..., :3]

    def record_output(self, frame_id: int, image: np.ndarray) -> None:
        if frame_id in self.frame_ids:
            self.rows.setdefault(frame_id, {})["output"] = _square(image, self.size)

    def compose(self) -> np.ndarray:
        """(rows * size, columns * size, 3) uint8, one column per recorded frame."""
        order = ("landmarks", "condition", "studio", "output")
        ids = sorted(i for i, r in self.rows.items() if "output" in r)
        if not ids:
            raise ValueError("no frames were recorded for the strip")
        names = [n for n in order if all(n in self.rows[i] for i in ids)]
        gap = 2
        s = self.size
        out = np.full((len(names) * (s + gap) - gap, len(ids) * (s + gap) - gap, 3), 255,
                      np.uint8)
        for c, i in enumerate(ids):
            for r, name in enumerate(names):
                out[r * (s + gap):r * (s + gap) + s, c * (s + gap):c * (s + gap) + s] = \
                    self.rows[i][name]
        return out


def pick_frames(total: int | None, columns: int, every: int = 20) -> set[int]:
    """Evenly spaced frame ids over a known length, else one every `every` frames."""
    if total:
        step = max(1, total // columns)
        return {step // 2 + k * step for k in range(columns) if step // 2 + k * step < total}
    return {every // 2 + k * every for k in range(columns)}
