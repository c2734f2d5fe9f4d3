"""Telemetry: one JSON record per generated frame, sent on the `telemetry` data
channel (and kept by the Python client, which the latency benchmark reads).

Record schema (JSON object; all times are the server's time.monotonic() in
seconds -- on one machine that is the same clock the Python client uses):

    type        "frame"
    session     session id (str)
    frame_id    server frame id: the n-th input frame this session received (int)
    input_id    the client's frame index read from the barcode drawn in the input
                frame's pixels (streaming/barcode.py), or null when none was found
                (a camera without a barcode, the demo performer)
    t_capture   when the input frame reached the server (float; the server cannot
                see the client's capture, the client keeps its own send times)
    out_pts     pts of the output video frame that carried it, on the 90 kHz RTP
                clock, counted from the first frame of the output track (int); the
                receiver sees the same value relative to its first decoded frame
    t_sent      when the frame's last RTP packet was handed to the transport
    stages      {stage: [start, end]} in pipeline order; present when measured:
                  receive    aiortc handed us the decoded frame -> into the mailbox
                  video_decode  aiortc's video decoder (its own thread)
                  mailbox    waiting in the 1-slot mailbox for the motion thread
                  convert    VideoFrame -> RGB array + barcode read (motion thread)
                  extract, motion, condition
                             the pipeline's motion stage (`prepare`, motion thread)
                  handoff    prepared, waiting in the one-chunk hand-off for the
                             model thread: for the chunk to fill, and for the
                             model to finish the previous chunk (and to settle
                             it: its cache write, after its frames left)
                  cache_write  the previous chunk's cache write, made first when
                             nobody settled it (not in sessions, which do)
                  model, decode
                             the pipeline's model stage (`generate`, model thread;
                             "decode" is the model's autoencoder decode). Other
                             names: whatever else the pipeline stamped
                             (realtime/frames.py)
                  output     waiting in the paced output buffer
                  encode     the video encoder (aiortc's executor thread)
                  send       encode end -> last packet handed to the transport
    cpu_ms      {stage: ms} CPU time the stage's thread spent on it, where the
                pipeline measured it (the model's "model" and "decode": its thread's
                CPU time over the chunk); that stage's wall time minus this is time
                spent waiting for a core, the GIL or the device. Absent when empty
    drops       {stage: count} frames dropped so far in this session:
                  receive    skipped while draining aiortc's receive queue
                  mailbox    replaced unread in the mailbox
                  handoff    prepared, then pushed out of the one-chunk hand-off
                             (oldest first) while the model was busy
                  output     pushed out of the bounded output buffer
    repeats     output frames so far that repeated the previous frame (int)

Other message types on the channel: {"type": "hello", "session", "fps",
"resolution", "schema": SCHEMA_VERSION}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realtime.motion.types import Stamps

SCHEMA_VERSION = 1
STAGE_ORDER = ("video_decode", "receive", "mailbox", "convert", "extract", "motion",
               "condition", "handoff", "cache_write", "model", "decode", "output", "encode",
               "send")


@dataclass
class FrameTrace:
    """What the session knows about one input frame on its way through."""

    frame_id: int
    input_id: int | None
    t_capture: float
    stamps: Stamps = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)


def ordered_stages(stamps: Stamps) -> dict[str, list[float]]:
    """Stamps as JSON-ready [start, end] lists, known stages first in pipeline order."""
    known = [s for s in STAGE_ORDER if s in stamps]
    rest = sorted(s for s in stamps if s not in STAGE_ORDER)
    return {s: [float(stamps[s][0]), float(stamps[s][1])] for s in (*known, *rest)}


def frame_record(
    session: str,
    trace: FrameTrace,
    out_pts: int,
    t_sent: float,
    drops: dict[str, int],
    repeats: int,
) -> dict[str, Any]:
    """The telemetry record of one generated frame (schema above)."""
    record: dict[str, Any] = {
        "type": "frame",
        "session": session,
        "frame_id": trace.frame_id,
        "input_id": trace.input_id,
        "t_capture": trace.t_capture,
        "out_pts": out_pts,
        "t_sent": t_sent,
        "stages": ordered_stages(trace.stamps),
        "drops": dict(drops),
        "repeats": repeats,
    }
    if trace.cpu_ms:
        record["cpu_ms"] = {k: float(v) for k, v in trace.cpu_ms.items()}
    return record
