"""The Python client side of a latency run, streaming its events into the matcher.

`clients.pyclient.run_client` returns everything it saw at the end of the run; a
30-minute soak would then hold ~54,000 telemetry records in memory. This drives the
same client building blocks (clients.sources.StampedSource with its barcodes,
streaming.codecs, streaming.transport) but hands every capture, arrival and telemetry
record to a `FrameMatcher` as it happens and settles the matcher once a second, so
memory stays flat however long the run. Everything else (offer/answer over
`POST /offer`, the `control` and `telemetry` data channels) is what run_client does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from bench.latency_match import FrameMatcher, estimate_pts_offset

CALIBRATION_S = 2.0         # arrivals and records held back to find the pts offset


def split_token(url: str) -> tuple[str, str | None]:
    """'http://h:p/?token=T' -> ('http://h:p', 'T'): the server's access token, if any."""
    parts = urlsplit(url)
    token = parse_qs(parts.query).get("token", [None])[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")), token


@dataclass
class LiveRun:
    """What the live client learned besides the matched samples."""

    t_connect_start: float = 0.0
    t_send_start: float | None = None
    t_send_end: float | None = None
    codec: str | None = None
    hello: dict[str, Any] = field(default_factory=dict)
    pts_offset: int | None = None    # received pts - out_pts (0 unless frames were lost)


async def stream_live(url: str, matcher: FrameMatcher, *, seconds: float, fps: float,
                      size: tuple[int, int], video: str | None = None,
                      codec_order: tuple[str, ...] | None = None,
                      on_start: Callable[[float], None] | None = None,
                      on_tick: Callable[[float], None] | None = None,
                      connect_timeout: float = 30.0) -> LiveRun:
    """Stream `seconds` of input to `url`, feeding `matcher` live. `on_start(t)` gets
    the connection start before anything else happens; `on_tick(now)` runs once a
    second (memory sampling)."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from clients.sources import StampedSource, file_frames, synthetic_frames
    from streaming import codecs
    from streaming.transport import TransportConfig, prefer_codecs, tune_receiver

    codecs.install()
    transport = TransportConfig()
    frames = file_frames(video, size) if video else synthetic_frames(size, fps)
    source = StampedSource(frames, fps)
    run = LiveRun(t_connect_start=time.monotonic())
    if on_start is not None:
        on_start(run.t_connect_start)
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(source, direction="sendrecv")
    prefer_codecs(transceiver, codec_order or transport.codec_order)
    tune_receiver(transceiver.receiver, transport)
    control = pc.createDataChannel("control")
    telemetry = pc.createDataChannel("telemetry")
    first_frame = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    # Until the pts offset is known, arrivals and records wait here (a few seconds'
    # worth); afterwards they go straight to the matcher.
    held_arrivals: list[tuple[int, float]] = []
    held_records: list[tuple[dict[str, Any], float]] = []

    def calibrate() -> None:
        sent = [(float(r["t_sent"]), int(r["out_pts"])) for r, _ in held_records
                if "t_sent" in r and r.get("out_pts") is not None]
        run.pts_offset = estimate_pts_offset(held_arrivals, sent) or 0
        for record, now in held_records:
            matcher.on_telemetry(record, now=now)
        for pts, t in held_arrivals:
            matcher.on_received((pts - run.pts_offset) % 2**32, t)
        held_arrivals.clear()
        held_records.clear()

    def drain_sent() -> None:
        # StampedSource.sent grows by one entry per frame: move them into the matcher.
        for index in sorted(source.sent):
            t = source.sent.pop(index)
            run.t_send_start = t if run.t_send_start is None else run.t_send_start
            run.t_send_end = t
            matcher.on_sent(index, t)

    @telemetry.on("message")
    def _on_telemetry(message: str | bytes) -> None:
        record = json.loads(message)
        if record.get("type") == "frame":
            drain_sent()
            if run.pts_offset is None:
                held_records.append((record, time.monotonic()))
            else:
                matcher.on_telemetry(record, now=time.monotonic())

    @control.on("message")
    def _on_control(message: str | bytes) -> None:
        body = json.loads(message)
        if body.get("type") == "hello":
            run.hello = body

    async def receive(track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            drain_sent()
            if run.pts_offset is None:
                held_arrivals.append((int(frame.pts), now))
            else:
                matcher.on_received((int(frame.pts) - run.pts_offset) % 2**32, now)
            first_frame.set()

    @pc.on("track")
    def _on_track(track: Any) -> None:
        if track.kind == "video":
            tasks.append(asyncio.ensure_future(receive(track)))

    base, token = split_token(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription
        async with aiohttp.ClientSession(headers=headers) as http, http.post(
                f"{base}/offer", json={"sdp": offer.sdp, "type": offer.type}) as resp:
            if resp.status != 200:
                raise ConnectionError(f"offer refused: {resp.status} {await resp.text()}")
            body = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        negotiated = getattr(transceiver, "_codecs", None) or []
        run.codec = negotiated[0].mimeType.split("/")[-1] if negotiated else None
        await asyncio.wait_for(first_frame.wait(), connect_timeout)
        end = time.monotonic() + seconds
        calibrate_at = time.monotonic() + min(CALIBRATION_S, seconds / 2)
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(1.0, end - now))
            drain_sent()
            if run.pts_offset is None and time.monotonic() >= calibrate_at:
                calibrate()
            matcher.expire(time.monotonic())
            if on_tick is not None:
                on_tick(time.monotonic())
    finally:
        source.stop()
        # let the frames already in flight arrive before counting them
        await asyncio.sleep(0.3)
        drain_sent()
        if run.pts_offset is None:
            calibrate()
        await pc.close()
        for task in tasks:
            task.cancel()
    return run
