"""50 connect/disconnect cycles leave no sessions, threads or memory behind,
whether the client says goodbye (DELETE / close) or just vanishes."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.sources import StampedSource, synthetic_frames
from tests.streaming.conftest import Running

CYCLES = 50


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def connect_once(url: str, http: aiohttp.ClientSession, *, polite: bool) -> None:
    """Connect, wait for the first generated frame, then hang up (politely: WHIP
    DELETE; otherwise just drop the peer connection)."""
    pc = RTCPeerConnection()
    source = StampedSource(synthetic_frames((320, 240), 30), 30)
    pc.addTransceiver(source, direction="sendrecv")
    got_frame = asyncio.Event()

    @pc.on("track")
    def _on_track(track: object) -> None:
        async def first() -> None:
            await track.recv()  # type: ignore[attr-defined]
            got_frame.set()
        asyncio.ensure_future(first())

    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(f"{url}/whip", data=pc.localDescription.sdp,
                         headers={"Content-Type": "application/sdp"}) as resp:
        assert resp.status == 201, await resp.text()
        location = resp.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
    await asyncio.wait_for(got_frame.wait(), 10)
    if polite:
        async with http.delete(f"{url}{location}") as resp:
            assert resp.status == 200
    source.stop()
    await pc.close()


async def settle(running: Running) -> None:
    for _ in range(100):
        if not running.server.sessions:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    gc.collect()


async def test_connect_disconnect_cycles_leak_nothing(echo_server: Running) -> None:
    async with aiohttp.ClientSession() as http:
        for i in range(5):                                   # warm up pools and caches
            await connect_once(echo_server.url, http, polite=i % 2 == 0)
        await settle(echo_server)
        threads, memory = threading.active_count(), rss_mb()
        for i in range(CYCLES):
            await connect_once(echo_server.url, http, polite=i % 2 == 0)
        await settle(echo_server)
    assert not echo_server.server.sessions
    assert echo_server.server.metrics.gauges["sessions"] == 0
    assert threading.active_count() <= threads + 2, threading.enumerate()
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]
    growth = rss_mb() - memory
    assert growth < 40, f"RSS grew by {growth:.1f} MB over {CYCLES} cycles"


def vanish(pc: RTCPeerConnection) -> None:
    """Cut a peer connection's sockets: no DTLS close, no more packets, as when the
    client process is killed or the laptop lid shuts."""
    for transceiver in pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        for protocol in ice._connection._protocols:
            protocol.transport.close()


async def test_a_client_that_vanishes_is_freed_without_a_goodbye() -> None:
    from streaming.session import SessionConfig
    from tests.streaming.conftest import start_server

    running, runner = await start_server(session=SessionConfig(input_timeout=1.0))
    pc = RTCPeerConnection()
    try:
        source = StampedSource(synthetic_frames((320, 240), 30), 30)
        pc.addTransceiver(source, direction="sendrecv")
        got_frame = asyncio.Event()
        pc.on("track", lambda track: asyncio.ensure_future(track.recv()).add_done_callback(
            lambda _: got_frame.set()))
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{running.url}/whip", data=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp"}) as resp:
                await pc.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
        await asyncio.wait_for(got_frame.wait(), 10)
        (session,) = running.server.sessions.values()
        vanish(pc)
        await asyncio.wait_for(session.closed.wait(), 10)
        assert "no video from the client" in (session.close_reason or "")
        assert not running.server.sessions
        mine = f"pipeline-{session.id}-"
        assert not [t for t in threading.enumerate() if t.name.startswith(mine)]
    finally:
        await pc.close()
        await runner.cleanup()
