"""The paced output track: repeats instead of stalling, never more than one chunk
ahead, one telemetry callback per generated frame."""

from __future__ import annotations

import av
import numpy as np

from streaming.telemetry import FrameTrace
from streaming.tracks import OutputTrack


def chunk(first_id: int, n: int) -> list[tuple[av.VideoFrame, FrameTrace]]:
    out = []
    for i in range(first_id, first_id + n):
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i, np.uint8), format="rgb24")
        frame.opaque = {}
        out.append((frame, FrameTrace(i, i, 0.0)))
    return out


def pts_of(frame: av.VideoFrame) -> int:
    assert frame.pts is not None
    return frame.pts


async def test_repeats_the_last_frame_when_nothing_new_arrives() -> None:
    sent: list[int] = []
    track = OutputTrack(
        fps=200, resolution=(64, 64), on_sent=lambda t, pts, ts: sent.append(t.frame_id)
    )
    first = await track.recv()                           # black frame before any output
    assert first.to_ndarray(format="rgb24").max() == 0
    track.push(chunk(0, 1))
    pts = [pts_of(first)]
    for _ in range(4):                      # read pts at once: a repeat reuses the frame
        pts.append(pts_of(await track.recv()))
    assert pts == sorted(set(pts))                        # strictly increasing 90 kHz pts
    assert track.repeats >= 3                             # kept streaming the last frame
    await track.recv()
    assert sent == [0]                                    # telemetry once, not per repeat
    track.stop()


async def test_a_new_chunk_replaces_frames_still_waiting() -> None:
    sent: list[int] = []
    track = OutputTrack(
        fps=200, resolution=(64, 64), on_sent=lambda t, pts, ts: sent.append(t.frame_id)
    )
    await track.recv()
    track.push(chunk(0, 3))
    track.push(chunk(3, 3))                               # the first chunk was never sent
    assert track.dropped == 3
    for _ in range(4):
        await track.recv()
    assert sent == [3, 4, 5]
    track.stop()
