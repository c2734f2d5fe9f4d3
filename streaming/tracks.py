"""The output video track (paced, bounded, repeats rather than stalls) and the
viewer track that lets WHEP viewers watch a session's output.

aiortc's sender calls `recv()` in a loop: recv -> encode (executor thread) ->
send every RTP packet -> recv again. So the moment `recv()` is entered, the
previous frame has been fully handed to the transport: that is where a frame's
`send` stage ends and its telemetry record is emitted.

Pacing, at the session fps (interval T = 1/fps):
- a new frame goes out as soon as it arrives, but not sooner than T/2 after the
  previous one (a lone frame never waits for a clock tick), and frames of one
  chunk that arrive together go out T apart;
- when nothing new arrives for T, the last frame is sent again (a "repeat"), so
  the remote decoder never sees the stream stall and PLIs are answered;
- the buffer holds at most one chunk: when a new chunk arrives, frames still
  waiting from the previous one are stale and dropped (counted).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.telemetry import FrameTrace

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)

SentCallback = Callable[[FrameTrace, int, float], None]
"""on_sent(trace, out_pts, t_sent): called once per generated frame, after its
last packet left."""


def black_frame(width: int, height: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")


class OutputTrack(MediaStreamTrack):
    """A session's generated video. Fed by `push` on the event loop."""

    kind = "video"

    def __init__(self, fps: float, resolution: tuple[int, int], on_sent: SentCallback) -> None:
        super().__init__()
        self.fps = fps
        self._on_sent = on_sent
        self._buffer: deque[tuple[av.VideoFrame, FrameTrace]] = deque()
        self._arrived = asyncio.Event()
        self._last: av.VideoFrame = black_frame(*resolution)
        self._pending: tuple[av.VideoFrame, FrameTrace, int] | None = None
        self._t0: float | None = None
        self._t_last = 0.0
        self._last_pts = -1
        self._delivered = asyncio.Condition()
        self.delivered = 0          # frames handed to the sender, repeats included
        self.repeats = 0
        self.dropped = 0

    @property
    def interval(self) -> float:
        return 1.0 / self.fps

    @property
    def last_frame(self) -> av.VideoFrame:
        return self._last

    def push(self, frames: list[tuple[av.VideoFrame, FrameTrace]]) -> None:
        """Add one chunk of generated frames (call on the event loop)."""
        if not frames:
            return
        now = time.monotonic()
        while self._buffer:                          # never more than one chunk ahead
            self._buffer.popleft()
            self.dropped += 1
        for frame, trace in frames:
            trace.stamps["output"] = (now, now)
            self._buffer.append((frame, trace))
        self._arrived.set()

    def _emit_pending(self, now: float) -> None:
        if self._pending is None:
            return
        frame, trace, pts = self._pending
        self._pending = None
        opaque = frame.opaque if isinstance(frame.opaque, dict) else {}
        encode = opaque.get("encode")
        if encode is not None and encode[0] >= trace.stamps["output"][1]:
            trace.stamps["encode"] = encode
            trace.stamps["send"] = (encode[1], now)
            pts = int(opaque.get("rtp_timestamp", pts))   # what the receiver will see
        self._on_sent(trace, pts, now)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        self._emit_pending(now)
        if self._t0 is not None:
            if self._buffer:
                gap = self.interval if len(self._buffer) > 1 else self.interval / 2
                await asyncio.sleep(max(0.0, self._t_last + gap - now))
            else:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(
                        self._arrived.wait(), max(0.0, self._t_last + self.interval - now)
                    )
                except TimeoutError:
                    pass
                else:
                    now = time.monotonic()
                    await asyncio.sleep(max(0.0, self._t_last + self.interval / 2 - now))
            if self.readyState != "live":
                raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        pts = max(round((now - self._t0) * VIDEO_CLOCK), self._last_pts + 1)
        if self._buffer:
            frame, trace = self._buffer.popleft()
            trace.stamps["output"] = (trace.stamps["output"][0], now)
            self._pending = (frame, trace, pts)
            self._last = frame
        else:
            frame = self._last
            self.repeats += 1
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        self._t_last, self._last_pts = now, pts
        self.delivered += 1
        async with self._delivered:
            self._delivered.notify_all()
        return frame

    async def wait_delivery(self, seen: int) -> av.VideoFrame:
        """Wait until more than `seen` frames were delivered; the latest frame."""
        async with self._delivered:
            await self._delivered.wait_for(lambda: self.delivered > seen or
                                           self.readyState != "live")
        if self.readyState != "live":
            raise MediaStreamError
        return self._last

    def stop(self) -> None:
        super().stop()
        self._arrived.set()
        asyncio.ensure_future(self._wake_viewers())

    async def _wake_viewers(self) -> None:
        async with self._delivered:
            self._delivered.notify_all()


class ViewerTrack(MediaStreamTrack):
    """A copy of a session's output for a WHEP viewer: every frame the session
    delivers, with this track's own timestamps."""

    kind = "video"

    def __init__(self, source: OutputTrack) -> None:
        super().__init__()
        self._source = source
        self._seen = source.delivered
        self._t0: float | None = None
        self._last_pts = -1

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        latest = await self._source.wait_delivery(self._seen)
        self._seen = self._source.delivered
        frame = latest.reformat(format="yuv420p")   # own object: own pts, no shared state
        frame.opaque = None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._last_pts = max(round((now - self._t0) * VIDEO_CLOCK), self._last_pts + 1)
        frame.pts, frame.time_base = self._last_pts, VIDEO_TIME_BASE
        return frame
