"""`marionette client`: a Python aiortc client for the Marionette server.

Streams a video file or a synthetic source (each frame stamped with its index
as a barcode), records the generated video that comes back, collects the
server's telemetry records, and summarises glass-to-glass latency. Same machine
=> client and server share time.monotonic(), so a telemetry record's stages sit
on the same time axis as `ClientResult.sent` and `ClientResult.received`.

Python API (stable; bench/latency.py builds on it):

    result = await run_client("http://127.0.0.1:8080", synthetic=True, seconds=10)
    result.summary()       # frames_sent, frames_received, e2e_ms {p50, p95, ...}
    result.matched()       # one row per generated frame traced back to its input
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

log = logging.getLogger(__name__)


@dataclass
class ClientResult:
    """What one client run saw. Times are time.monotonic() seconds."""

    sent: dict[int, float]                   # input index -> capture (send) time
    received: list[tuple[int, float]]        # (output pts on the 90 kHz clock, arrival time)
    telemetry: list[dict[str, Any]]          # the server's "frame" records, in arrival order
    t_connect_start: float                   # just before the offer was made
    codec: str | None = None                 # negotiated video codec, e.g. "video/H264"
    session: str | None = None
    control: list[dict[str, Any]] = field(default_factory=list)  # server control messages

    def pts_offset(self) -> int:
        """received pts - server out_pts: 0 unless the first output frame was lost.

        Learnt as the offset under which the most records find an output frame
        that arrived after the server sent it (same clock), the tightest such
        one on ties: evenly paced pts also fit whole-frame shifts, but earlier
        shifts arrive before sending and later ones arrive late."""
        sent_at = {int(r["out_pts"]): float(r.get("t_sent", float("-inf")))
                   for r in self.telemetry}
        if not sent_at or not self.received:
            return 0
        firsts = sorted(sent_at)[:30]
        candidates = {pts - o for pts, _ in self.received[:30] for o in firsts} | {0}

        def score(offset: int) -> tuple[int, float]:
            arrival = {pts - offset: t for pts, t in self.received}
            lags = [t - t_sent for pts, t_sent in sent_at.items()
                    if (t := _lookup(arrival, pts)) is not None and t >= t_sent - 0.001]
            # most frames matched; among equals, the tightest (a shift by whole frames
            # to later outputs also "arrives after sending", but later)
            return len(lags), -sorted(lags)[len(lags) // 2] if lags else 0.0

        return max(sorted(candidates), key=score)

    def matched(self) -> list[dict[str, Any]]:
        """Generated frames traced end to end: input_id, t_sent, t_received,
        latency_ms and the telemetry record, for every record whose input index
        was read from the barcode and whose output frame arrived."""
        offset = self.pts_offset()
        arrival = {pts - offset: t for pts, t in self.received}
        rows = []
        for record in self.telemetry:
            index = record.get("input_id")
            t_received = _lookup(arrival, int(record["out_pts"]))
            if index is None or index not in self.sent or t_received is None:
                continue
            t_sent = self.sent[index]
            rows.append({"input_id": index, "t_sent": t_sent, "t_received": t_received,
                         "latency_ms": (t_received - t_sent) * 1000.0, "record": record})
        return rows

    def e2e_ms(self) -> list[float]:
        return [row["latency_ms"] for row in self.matched()]

    def time_to_first_frame_ms(self) -> float | None:
        if not self.received:
            return None
        return (self.received[0][1] - self.t_connect_start) * 1000.0

    def summary(self) -> dict[str, Any]:
        e2e = self.e2e_ms()
        return {
            "frames_sent": len(self.sent),
            "frames_received": len(self.received),
            "frames_matched": len(e2e),
            "telemetry_records": len(self.telemetry),
            "codec": self.codec,
            "session": self.session,
            "time_to_first_frame_ms": self.time_to_first_frame_ms(),
            "e2e_ms": percentiles(e2e),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "telemetry": self.telemetry,
                "received": self.received, "sent": self.sent}


def _lookup(arrival: dict[int, float], pts: int) -> float | None:
    """Arrival time of the frame with this pts. aiortc's VP8 path can come back
    one 90 kHz tick off (rounding in the decoder's time base), so +-1 counts."""
    for candidate in (pts, pts - 1, pts + 1):
        if candidate in arrival:
            return arrival[candidate]
    return None


def percentiles(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def _split_token(server: str) -> tuple[str, str | None]:
    parts = urlsplit(server)
    token = parse_qs(parts.query).get("token", [None])[0]
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, token


class _Recorder:
    """Writes received frames to an MP4 on its own thread (never the event loop)."""

    def __init__(self, path: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=256)
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def put(self, frame: Any) -> None:
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            log.warning("recorder falling behind: frame not written")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self, path: str) -> None:
        import fractions

        import av

        container = None
        stream = None
        last_pts = -1
        while (frame := self._queue.get()) is not None:
            if container is None:
                container = av.open(path, "w")
                stream = container.add_stream("libx264", rate=30)
                stream.width, stream.height = frame.width, frame.height
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = fractions.Fraction(1, 90000)
                stream.options = {"preset": "ultrafast"}
            assert stream is not None
            pts = max(int(frame.pts or 0), last_pts + 1)
            last_pts = pts
            out = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            out.pts, out.time_base = pts, fractions.Fraction(1, 90000)
            for packet in stream.encode(out):
                container.mux(packet)
        if container is not None and stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()


async def run_client(
    server: str,
    *,
    video: str | None = None,
    synthetic: bool = False,
    seconds: float = 10,
    fps: float = 30,
    whip: bool = False,
    out: str | None = None,
    size: tuple[int, int] = (640, 480),
    codec_order: tuple[str, ...] | None = None,
    control: list[dict[str, Any]] | None = None,
    connect_timeout: float = 15.0,
    transport: Any = None,
) -> ClientResult:
    """Stream to `server` for `seconds` and return what came back.

    video/synthetic: the source (exactly one). whip: use WHIP (POST /whip,
    DELETE at the end) instead of POST /offer. out: record the output to an MP4.
    codec_order: video codec preference (default: the server's tuned order).
    control: messages to send on the control channel once it opens.
    transport: a streaming.transport.TransportConfig for this side (default: tuned).
    A `?token=...` in `server` is passed on as a bearer token.
    """
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from clients.sources import StampedSource, file_frames, synthetic_frames
    from streaming import codecs
    from streaming.transport import TransportConfig, prefer_codecs, tune_receiver

    if (video is None) == (not synthetic):
        raise ValueError("give exactly one source: video=PATH or synthetic=True")
    transport = transport or TransportConfig()
    codecs.install(transport.h264_preset)
    frames = synthetic_frames(size, fps) if synthetic else file_frames(str(video), size)
    source = StampedSource(frames, fps)
    base, token = _split_token(server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    result = ClientResult(sent=source.sent, received=[], telemetry=[],
                          t_connect_start=time.monotonic())
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(source, direction="sendrecv")
    prefer_codecs(transceiver, codec_order or transport.codec_order)
    tune_receiver(transceiver.receiver, transport)
    control_channel = pc.createDataChannel("control")
    telemetry_channel = pc.createDataChannel("telemetry")
    first_frame = asyncio.Event()
    recorder = _Recorder(out) if out else None
    tasks: list[asyncio.Task[None]] = []

    @telemetry_channel.on("message")
    def _on_telemetry(message: str | bytes) -> None:
        record = json.loads(message)
        if record.get("type") == "frame":
            result.telemetry.append(record)

    @control_channel.on("message")
    def _on_control(message: str | bytes) -> None:
        body = json.loads(message)
        result.control.append(body)
        if body.get("type") == "hello":
            result.session = body.get("session")

    @control_channel.on("open")
    def _on_open() -> None:
        for message in control or []:
            control_channel.send(json.dumps(message))

    async def _receive(track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            result.received.append((int(frame.pts), time.monotonic()))
            first_frame.set()
            if recorder is not None:
                recorder.put(frame)

    @pc.on("track")
    def _on_track(track: Any) -> None:
        if track.kind == "video":
            tasks.append(asyncio.ensure_future(_receive(track)))

    location: str | None = None
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription
        async with aiohttp.ClientSession(headers=headers) as http:
            if whip:
                async with http.post(f"{base}/whip", data=offer.sdp,
                                     headers={"Content-Type": "application/sdp"}) as resp:
                    if resp.status != 201:
                        raise ConnectionError(f"WHIP refused: {resp.status} {await resp.text()}")
                    answer = RTCSessionDescription(sdp=await resp.text(), type="answer")
                    location = resp.headers.get("Location")
            else:
                async with http.post(f"{base}/offer",
                                     json={"sdp": offer.sdp, "type": offer.type}) as resp:
                    if resp.status != 200:
                        raise ConnectionError(f"offer refused: {resp.status} {await resp.text()}")
                    body = await resp.json()
                    answer = RTCSessionDescription(sdp=body["sdp"], type=body["type"])
                    result.session = body.get("session")
            await pc.setRemoteDescription(answer)
            codecs_negotiated = getattr(transceiver, "_codecs", None) or []
            result.codec = codecs_negotiated[0].mimeType if codecs_negotiated else None
            await asyncio.wait_for(first_frame.wait(), connect_timeout)
            await asyncio.sleep(seconds)
            if location is not None:
                async with http.delete(f"{base}{location}") as resp:
                    await resp.read()
    finally:
        source.stop()
        await pc.close()
        for task in tasks:
            task.cancel()
        if recorder is not None:
            await asyncio.to_thread(recorder.close)
    return result


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default="http://127.0.0.1:8080",
                        help="server URL (may carry ?token=...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="video file to stream (loops)")
    source.add_argument("--synthetic", action="store_true", help="stream a synthetic scene")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", default="640x480", help="WxH of the frames sent")
    parser.add_argument("--whip", action="store_true", help="use WHIP instead of POST /offer")
    parser.add_argument("--codec", default=None, help="preferred codecs, e.g. 'VP8,H264'")
    parser.add_argument("--transport", default="tuned",
                        choices=("tuned", "stock", "no-marker", "no-floor", "x264-medium"),
                        help="this side's transport tuning (before/after measurements)")
    parser.add_argument("--out", help="record the generated video to this MP4")
    parser.add_argument("--json", help="write the summary and telemetry records here")


def run(args: argparse.Namespace) -> int:
    width, height = (int(v) for v in args.size.lower().split("x"))
    from streaming.transport import transport_preset

    order = tuple(c.strip().upper() for c in args.codec.split(",")) if args.codec else None
    try:
        result = asyncio.run(run_client(
            args.server, video=args.video, synthetic=args.synthetic, seconds=args.seconds,
            fps=args.fps, whip=args.whip, out=args.out, size=(width, height),
            codec_order=order, transport=transport_preset(args.transport)))
    except (ConnectionError, OSError, TimeoutError) as exc:
        print(f"client failed: {exc}")
        return 1
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_json(), f)
    return 0
