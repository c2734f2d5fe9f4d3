"""What a session's pipeline returns, and the interface the server drives.

The server (streaming/) knows nothing of MediaPipe or the model: it hands decoded
frames to a `FramePipeline` on a worker thread and sends back what comes out. Two
implementations exist: `realtime.pipeline.AnimationPipeline` (extraction + model)
and `EchoPipeline` below, which returns its input and lets the transport be
measured on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from realtime.motion.types import NormalizedMotion, Stamps


@dataclass
class GeneratedFrame:
    """One output frame, carrying the id and capture time of the input it came from."""

    frame_id: int
    t_capture: float                        # time.monotonic() of the input's capture
    image: np.ndarray                       # (H, W, 3) uint8 RGB
    stamps: Stamps = field(default_factory=dict)


class FramePipeline(Protocol):
    """Per-session processing. Called from one worker thread, never the event loop."""

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the frames it produces."""
        ...

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> list[GeneratedFrame]:
        """Feed one RGB (H, W, 3) uint8 camera frame; returns the frames completed
        by it (none while a chunk is filling, K when it completes)."""
        ...

    def process_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> list[GeneratedFrame]:
        """Same, for motion that needs no extraction (the built-in demo performer)."""
        ...

    def set_character(self, name: str) -> None:
        """Switch to a built-in gallery character. KeyError for an unknown name."""
        ...

    def set_reference_image(self, image: np.ndarray) -> None:
        """Switch to an uploaded RGB reference image. ValueError if unusable."""
        ...

    def set_steps(self, steps: int) -> None: ...

    def set_filter_strength(self, strength: float) -> None:
        """0 = no smoothing, 1 = default, larger = smoother (more lag)."""
        ...

    def reset_calibration(self) -> None: ...

    def close(self) -> None: ...


class EchoPipeline:
    """Returns each input frame, resized: the model replaced by a pass-through."""

    def __init__(self, width: int = 256, height: int = 256) -> None:
        self._size = (width, height)

    @property
    def resolution(self) -> tuple[int, int]:
        return self._size

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> list[GeneratedFrame]:
        import cv2

        start = time.monotonic()
        out = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        return [GeneratedFrame(frame_id, t_capture, out, {"model": (start, time.monotonic())})]

    def process_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> list[GeneratedFrame]:
        grey = np.full((self._size[1], self._size[0], 3), 128, np.uint8)
        now = time.monotonic()
        return [GeneratedFrame(frame_id, t_capture, grey, {"model": (now, now)})]

    def set_character(self, name: str) -> None:
        pass

    def set_reference_image(self, image: np.ndarray) -> None:
        pass

    def set_steps(self, steps: int) -> None:
        pass

    def set_filter_strength(self, strength: float) -> None:
        pass

    def reset_calibration(self) -> None:
        pass

    def close(self) -> None:
        pass
