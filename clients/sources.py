"""Video sources for the Python client: a synthetic scene or a video file, each
frame stamped with its index as a barcode (streaming/barcode.py) and its send
time recorded, so output frames can be matched back to the input they came from.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import Iterator

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming import barcode

VIDEO_CLOCK = 90_000


def synthetic_frames(size: tuple[int, int], fps: float) -> Iterator[np.ndarray]:
    """An endless, cheap moving scene: a gradient with a bouncing disc and a bar.
    (H, W, 3) uint8 RGB, W x H = size."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 200 // max(width, 1), yy * 200 // max(height, 1),
                     np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    radius = max(8, min(width, height) // 8)
    for i in range(1 << 62):
        t = i / fps
        image = base.copy()
        cx = int((0.5 + 0.35 * np.sin(t * 1.3)) * width)
        cy = int((0.5 + 0.3 * np.cos(t * 0.9)) * height)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
        image[disc] = (240, 220, 60)
        bar = int((t * 80) % width)
        image[height - 24 :, bar : bar + 20] = 250
        yield image


def file_frames(path: str, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The frames of a video file, resized to size (W, H), looping forever."""
    while True:
        with av.open(path) as container:
            stream = container.streams.video[0]
            count = 0
            for frame in container.decode(stream):
                yield frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
                count += 1
            if count == 0:
                raise ValueError(f"{path}: no video frames")


class StampedSource(MediaStreamTrack):
    """A paced video track whose n-th frame carries barcode n. `sent[n]` is the
    time.monotonic() at which frame n was handed to the encoder (its "capture")."""

    kind = "video"

    def __init__(self, frames: Iterator[np.ndarray], fps: float) -> None:
        super().__init__()
        self.fps = fps
        self.sent: dict[int, float] = {}
        self._frames = frames
        self._lock = threading.Lock()
        self._index = 0
        self._t0: float | None = None

    def _next_image(self) -> np.ndarray:
        with self._lock:                    # one reader of the iterator at a time
            return next(self._frames)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        image = await asyncio.to_thread(self._next_image)
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._index / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        index = self._index
        self._index += 1
        barcode.encode(image, index)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = round(index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent[index] = time.monotonic()
        return frame
