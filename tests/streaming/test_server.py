"""The server end to end, in process: the Python client against the server on
127.0.0.1 (EchoPipeline or small fakes in place of the model)."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import statistics
import sys
import threading
import types
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from PIL import Image

from clients.pyclient import run_client
from tests.streaming.conftest import Running, start_server, stream_once
from tests.streaming.fakes import (
    BusyPipeline,
    FailingPipeline,
    RecordingPipeline,
    SlowPipeline,
    SlowUploadPipeline,
)


def png(size: tuple[int, int]) -> str:
    """A plain red picture as a PNG upload (base64), `size` (width, height)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_frames_flow_both_ways_and_telemetry_traces_each_input(
    echo_server: Running,
) -> None:
    result = await run_client(echo_server.url, synthetic=True, seconds=2.5, size=(320, 240))
    assert len(result.sent) > 30 and len(result.received) > 30
    frames = result.telemetry
    assert len(frames) > 30
    ids = [r["input_id"] for r in frames]
    assert all(i in result.sent for i in ids if i is not None)
    assert sum(i is not None for i in ids) >= 0.9 * len(ids)     # barcode read back
    assert ids == sorted(ids)                                     # never out of order
    record = frames[-1]
    for stage in ("receive", "mailbox", "convert", "model", "encode", "send"):
        start, end = record["stages"][stage]
        assert start <= end
    assert record["stages"]["receive"][0] <= record["stages"]["send"][1] <= record["t_sent"]
    assert set(record["drops"]) == {"receive", "mailbox", "handoff", "output"}
    assert "cpu_ms" not in record                 # the echo pipeline measures no CPU time
    # matched latency is positive: outputs arrive after their inputs were sent
    matched = result.matched()
    assert len(matched) > 0.8 * len(frames)
    assert all(row["latency_ms"] > 0 for row in matched)


async def test_telemetry_carries_the_cpu_time_a_stage_measured_beside_its_wall_time() -> None:
    """A model stage that works 10 ms and waits 30 ms: its record says both, so a
    latency run can tell a slow stage from one waiting for a core."""
    result = await stream_once(lambda: BusyPipeline(cpu_ms=10, idle_ms=30), seconds=2.0)
    records = [r for r in result.telemetry if "model" in r["stages"]]
    assert len(records) > 10
    for r in records[-5:]:
        start, end = r["stages"]["model"]
        wall = (end - start) * 1e3
        assert 9.5 <= r["cpu_ms"]["model"] <= 30 and wall >= 39
        assert set(r["cpu_ms"]) == {"model"}


async def test_latency_does_not_grow_when_the_pipeline_is_slower_than_the_camera() -> None:
    """60 ms per frame against a 30 fps camera: a FIFO would fall further behind
    every frame (about 3 s by the end of this run); the mailbox drops instead."""
    result = await stream_once(lambda: SlowPipeline(0.06), seconds=4)
    matched = result.matched()
    assert len(matched) > 20
    third = len(matched) // 3
    early = statistics.median(r["latency_ms"] for r in matched[:third])
    late = statistics.median(r["latency_ms"] for r in matched[-third:])
    assert late < early + 100, (early, late)
    drops = matched[-1]["record"]["drops"]
    assert drops["mailbox"] + drops["receive"] > 20               # old input was dropped


async def test_whip_answer_carries_the_generated_track_and_delete_ends_it(
    echo_server: Running,
) -> None:
    result = await run_client(echo_server.url, synthetic=True, seconds=1.0, whip=True,
                              size=(320, 240))
    assert len(result.received) > 10                              # generated video came back
    assert result.telemetry and result.telemetry[-1]["input_id"] is not None
    for _ in range(50):                                           # DELETE closed the session
        if not echo_server.server.sessions:
            break
        await asyncio.sleep(0.05)
    assert not echo_server.server.sessions


async def test_whep_viewer_watches_a_running_session(echo_server: Running) -> None:
    performer = asyncio.ensure_future(
        run_client(echo_server.url, synthetic=True, seconds=3.0, size=(320, 240)))
    while not echo_server.server.sessions:
        await asyncio.sleep(0.05)
    viewer = RTCPeerConnection()
    viewer.addTransceiver("video", direction="recvonly")
    got: list[int] = []
    done = asyncio.Event()

    @viewer.on("track")
    def _on_track(track: object) -> None:
        async def pull() -> None:
            while len(got) < 15:
                frame = await track.recv()  # type: ignore[attr-defined]
                got.append(frame.width)
            done.set()
        asyncio.ensure_future(pull())

    await viewer.setLocalDescription(await viewer.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{echo_server.url}/whep", data=viewer.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"}) as resp:
            assert resp.status == 201
            location = resp.headers["Location"]
            answer = await resp.text()
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(done.wait(), 10)
        async with http.delete(f"{echo_server.url}{location}") as resp:
            assert resp.status == 200
    await viewer.close()
    await performer
    assert got and all(w == 256 for w in got)                     # the session's output


async def test_control_changes_apply_on_the_worker_and_bad_uploads_keep_the_character() -> None:
    pipelines: list[RecordingPipeline] = []

    def factory() -> RecordingPipeline:
        pipelines.append(RecordingPipeline())
        return pipelines[-1]

    bomb = io.BytesIO()
    Image.new("L", (5000, 5000)).save(bomb, format="PNG")
    messages: list[dict[str, Any]] = [
        {"type": "character", "name": "robot", "framing": "upper"},
        {"type": "character", "name": "no-such-character"},
        {"type": "reference", "image": base64.b64encode(b"GIF89a? no, garbage").decode()},
        {"type": "reference", "image": base64.b64encode(bomb.getvalue()).decode()},
        {"type": "steps", "value": 3},
        {"type": "warp", "value": 9},
        {"type": "ping", "t": 1.5},
    ]
    result = await stream_once(factory, seconds=1.5, control=messages)
    hello = next(m for m in result.control if m["type"] == "hello")
    assert hello["steps"] == 2 and hello["chunk"] == 1      # what the session started with
    replies = [m for m in result.control if m["type"] in ("ack", "error", "pong")]
    errors = {m["for"]: m["message"] for m in replies if m["type"] == "error"}
    acks = {m["for"] for m in replies if m["type"] == "ack"}
    assert "no-such-character" in errors["character"]
    assert "reference" in errors and "reference" not in acks
    assert "warp" in errors
    assert {"character", "steps"} <= acks
    assert any(m["type"] == "pong" and m["t"] == 1.5 for m in replies)
    (pipeline,) = pipelines
    assert pipeline.character == "robot" and pipeline.reference is None   # kept
    assert pipeline.framing == "upper"
    assert pipeline.steps == 3
    assert pipeline.threads and all(t.startswith("pipeline-") for t in pipeline.threads)
    assert pipeline.closed                                                  # freed at the end

    # a good upload, in parts, replaces the character
    running, runner = await start_server(factory)
    try:
        data = png((120, 90))
        parts = [data[i : i + 200] for i in range(0, len(data), 200)]
        uploads = [{"type": "reference", "image": p, "part": i, "parts": len(parts)}
                   for i, p in enumerate(parts)]
        result = await run_client(running.url, synthetic=True, seconds=1.0, size=(320, 240),
                                  control=uploads)
    finally:
        await runner.cleanup()
    ack = next(m for m in result.control if m["type"] == "ack" and m["for"] == "reference")
    assert ack["size"] == [120, 90] and ack["figure"] is False      # a red square: no one
    assert ack["hands"] is False                                    # and no face
    assert pipelines[-1].reference is not None and pipelines[-1].reference.shape == (90, 120, 3)
    # the slow part of an upload ran on neither of the session's stages
    assert pipelines[-1].prepared_on and not pipelines[-1].prepared_on.startswith("pipeline-")


async def test_a_slow_upload_stalls_no_frame_and_a_newer_one_replaces_a_waiting_one() -> None:
    """Finding the figure in an upload takes long (0.6 s here): frames keep flowing
    meanwhile, and of three uploads sent at once the first is prepared, the second
    (still waiting) is replaced by the third, which ends as the reference."""
    made: list[SlowUploadPipeline] = []

    def factory() -> SlowUploadPipeline:
        made.append(SlowUploadPipeline(seconds=0.6))
        return made[-1]

    uploads = [{"type": "reference", "image": png(size)} for size in ((40, 30), (50, 30), (60, 30))]
    result = await stream_once(factory, seconds=2.5, control=uploads)
    (pipeline,) = made
    assert pipeline.prepared == [(40, 30), (60, 30)]
    assert pipeline.reference is not None and pipeline.reference.shape == (30, 60, 3)
    errors = [m for m in result.control if m["type"] == "error" and m["for"] == "reference"]
    assert len(errors) == 1 and "newer upload" in errors[0]["message"]
    acks = [m for m in result.control if m["type"] == "ack" and m["for"] == "reference"]
    assert [a["size"] for a in acks] == [[40, 30], [60, 30]]
    # the output never waited for the uploads: no gap of more than a few frame times
    t = sorted(r["t_sent"] for r in result.telemetry)
    assert max(b - a for a, b in itertools.pairwise(t)) < 0.3 and len(t) > 40


async def test_a_failing_pipeline_closes_its_session_and_others_keep_streaming() -> None:
    made: list[FailingPipeline] = []

    def factory() -> FailingPipeline:
        made.append(FailingPipeline(after=10 if not made else 10**9))
        return made[-1]

    running, runner = await start_server(factory)
    try:
        doomed = await asyncio.wait_for(
            run_client(running.url, synthetic=True, seconds=1.0, size=(320, 240)), 20)
        survivor_task = asyncio.ensure_future(
            run_client(running.url, synthetic=True, seconds=2.0, size=(320, 240)))
        survivor = await survivor_task
        assert running.server.metrics.counters["session_failures_total"][""] == 1
    finally:
        await runner.cleanup()
    closed = [m for m in doomed.control if m["type"] == "closed"]
    assert closed and "simulated CUDA out of memory" in closed[0]["reason"]
    assert made[0].failed_at is not None
    assert len(survivor.received) > 30 and len(survivor.telemetry) > 30


async def test_concurrent_sessions_one_fails_mid_stream_other_unaffected() -> None:
    made: list[FailingPipeline] = []
    lock = threading.Lock()

    def factory() -> FailingPipeline:
        with lock:
            made.append(FailingPipeline(after=15 if not made else 10**9))
            return made[-1]

    running, runner = await start_server(factory)
    try:
        first = asyncio.ensure_future(
            run_client(running.url, synthetic=True, seconds=2.5, size=(320, 240)))
        while not made:
            await asyncio.sleep(0.01)
        second = await run_client(running.url, synthetic=True, seconds=2.5, size=(320, 240))
        doomed = await first
    finally:
        await runner.cleanup()
    failed_at = made[0].failed_at
    assert failed_at is not None
    assert any(m["type"] == "closed" for m in doomed.control)
    after = [t for _, t in second.received if t > failed_at + 0.5]
    assert len(after) > 15                                          # still streaming


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "JSON"),
    (b'{"type": "offer"}', "'sdp'"),
    (b'{"sdp": "v=0\\r\\n", "type": "answer"}', "offer"),
    (b'{"sdp": "hello", "type": "offer"}', "malformed SDP"),
    (b'{"sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\nt=0 0\\r\\n", "type": "offer"}',
     "no video"),
    (b'{"sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\nt=0 0\\r\\n'
     b'm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\n", "type": "offer"}', "malformed SDP"),
])
async def test_bad_offers_get_400_with_a_reason(
    echo_server: Running, body: bytes, reason: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{echo_server.url}/offer", data=body,
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert reason in await resp.text()
    assert not echo_server.server.sessions


async def test_whip_needs_sdp(echo_server: Running) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{echo_server.url}/whip", data="v=0",
                             headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
        async with http.post(f"{echo_server.url}/whip", data="nonsense",
                             headers={"Content-Type": "application/sdp"}) as resp:
            assert resp.status == 400
        async with http.delete(f"{echo_server.url}/whip/nope") as resp:
            assert resp.status == 404


async def test_more_sessions_than_allowed_get_503() -> None:
    running, runner = await start_server(max_sessions=1)
    try:
        first = asyncio.ensure_future(
            run_client(running.url, synthetic=True, seconds=1.5, size=(320, 240)))
        while not running.server.sessions:
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectionError, match="503"):
            await run_client(running.url, synthetic=True, seconds=0.5, size=(320, 240))
        assert len((await first).received) > 10                   # the first one was unharmed
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("path", [
    "/..%2fpyproject.toml", "/%2e%2e/pyproject.toml", "/..%2f..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2fstreaming%2fserver.py", "/nonexistent.js",
])
async def test_static_files_never_escape_the_web_folder(echo_server: Running, path: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{echo_server.url}{path}") as resp:
            assert resp.status == 404
        async with http.get(f"{echo_server.url}/") as resp:
            assert resp.status == 200 and "<html" in (await resp.text()).lower()


async def test_token_is_required_when_set() -> None:
    running, runner = await start_server(token="s3cret")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{running.url}/") as resp:
                assert resp.status == 401
            async with http.get(f"{running.url}/metrics?token=wrong") as resp:
                assert resp.status == 401
            async with http.get(f"{running.url}/?token=s3cret") as resp:
                assert resp.status == 200
            async with http.get(f"{running.url}/healthz") as resp:
                assert resp.status == 200                          # open for probes
        result = await run_client(f"{running.url}/?token=s3cret", synthetic=True, seconds=0.5,
                                  size=(320, 240))
        assert result.received
    finally:
        await runner.cleanup()


async def test_page_opened_with_the_token_can_load_its_own_scripts() -> None:
    """Browsers fetch the page's scripts and thumbnails without `?token=`: the cookie
    set when the page itself was opened with the token lets them through."""
    running, runner = await start_server(token="s3cret")
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{running.url}/app.js") as resp:
                assert resp.status == 401                          # no token, no cookie yet
            async with http.get(f"{running.url}/?token=s3cret") as resp:
                assert resp.status == 200
            async with http.get(f"{running.url}/app.js") as resp:
                assert resp.status == 200
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            http.cookie_jar.update_cookies({"marionette_token": "wrong"})
            async with http.get(f"{running.url}/app.js") as resp:
                assert resp.status == 401
    finally:
        await runner.cleanup()


async def test_healthz_and_metrics_report_sessions_frames_and_stages(echo_server: Running) -> None:
    await run_client(echo_server.url, synthetic=True, seconds=1.0, size=(320, 240))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{echo_server.url}/healthz") as resp:
            assert (await resp.json())["status"] == "ok"
        async with http.get(f"{echo_server.url}/metrics") as resp:
            text = await resp.text()
    lines = {line.split(" ")[0]: line.split(" ")[-1] for line in text.splitlines()
             if not line.startswith("#")}
    assert float(lines["marionette_frames_in_total"]) > 10
    assert float(lines["marionette_frames_out_total"]) > 10
    assert "marionette_sessions" in lines and "marionette_sessions_total" in lines
    assert 'marionette_stage_seconds_count{stage="model"}' in lines
    assert 'marionette_stage_seconds_bucket{stage="encode",le="+Inf"}' in lines


async def test_demo_motion_drives_the_pipeline_and_degrades_clearly_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipelines: list[RecordingPipeline] = []

    def factory() -> RecordingPipeline:
        pipelines.append(RecordingPipeline())
        return pipelines[-1]

    fake = types.ModuleType("realtime.avatars.motion")
    fake.demo_performer = lambda seed=0: (f"motion-{i}" for i in itertools.count())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "realtime.avatars.motion", fake)
    running, runner = await start_server(factory)
    try:
        result = await run_client(running.url, synthetic=True, seconds=1.5, size=(320, 240),
                                  control=[{"type": "demo", "on": True}])
        monkeypatch.setitem(sys.modules, "realtime.avatars.motion", None)   # not installed
        missing = await run_client(running.url, synthetic=True, seconds=1.0, size=(320, 240),
                                   control=[{"type": "demo", "on": True}])
    finally:
        await runner.cleanup()
    motions = pipelines[0].motions
    assert len(motions) > 15 and motions[:3] == ["motion-0", "motion-1", "motion-2"]
    assert any(m["type"] == "ack" and m["for"] == "demo" for m in result.control)
    demo_records = [r for r in result.telemetry if r["input_id"] is None]
    assert len(demo_records) > 15                       # generated from motion, not pixels
    errors = [m for m in missing.control if m["type"] == "error" and m["for"] == "demo"]
    assert errors and "demo motion is not available" in errors[0]["message"]
    assert len(missing.received) > 10                   # the session itself went on


async def test_an_engine_that_cannot_start_gives_500_and_the_server_goes_on() -> None:
    attempts: list[int] = []

    def factory() -> RecordingPipeline:
        attempts.append(1)
        if len(attempts) == 1:
            raise MemoryError("no room for another KV cache")
        return RecordingPipeline()

    running, runner = await start_server(factory)
    try:
        with pytest.raises(ConnectionError, match="500.*KV cache"):
            await run_client(running.url, synthetic=True, seconds=0.5, size=(320, 240))
        assert not running.server.sessions
        result = await run_client(running.url, synthetic=True, seconds=0.8, size=(320, 240))
        assert len(result.received) > 5
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host, given, needs", [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
    ("0.0.0.0", None, True), ("192.168.1.20", None, True), ("0.0.0.0", "mine", True),
])
def test_binding_beyond_loopback_always_has_a_token(host: str, given: str | None,
                                                    needs: bool) -> None:
    from streaming.auth import required_token

    token, generated = required_token(host, given)
    assert (token is not None) == needs
    assert generated == (needs and given is None)
    if given:
        assert token == given
