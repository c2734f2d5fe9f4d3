"""`marionette client`: streams a file to a server, records the output and
writes the JSON summary; and ClientResult traces output frames to inputs."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import aioice.ice
import av
import numpy as np
import pytest
from aiohttp import web

from clients.pyclient import ClientResult
from realtime.cli import main
from realtime.frames import EchoPipeline
from streaming.server import Server, ServerConfig


@pytest.fixture
def server_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An echo server on its own event loop thread (the CLI runs asyncio.run)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **kwargs: ["127.0.0.1"])
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        server = Server(EchoPipeline, ServerConfig())
        runner = web.AppRunner(server.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{holder['port']}"
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)  # type: ignore[attr-defined]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def make_clip(path: Path, frames: int = 20) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            image = np.full((240, 320, 3), (i * 12) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_cli_streams_a_file_records_output_and_writes_json(
    server_url: str, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "in.mp4")
    out, report = tmp_path / "out.mp4", tmp_path / "run.json"
    code = main(["client", "--server", server_url, "--video", str(clip), "--seconds", "1.5",
                 "--size", "320x240", "--out", str(out), "--json", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["frames_sent"] > 20                       # the 20-frame clip looped
    assert data["frames_received"] > 20
    assert data["e2e_ms"]["p50"] > 0 and data["e2e_ms"]["p95"] >= data["e2e_ms"]["p50"]
    assert data["telemetry"] and all(r["type"] == "frame" for r in data["telemetry"])
    with av.open(str(out)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded > 20
    assert decoded <= data["frames_received"]


def test_cli_refuses_two_sources() -> None:
    with pytest.raises(SystemExit):
        main(["client", "--video", "x.mp4", "--synthetic"])


def test_matching_survives_a_lost_first_output_frame() -> None:
    """The receiver's pts count from the first frame it decoded; if the server's
    first frame was lost they are offset by a constant, which is learnt."""
    sent = {i: 100.0 + i / 30 for i in range(60)}
    records = [{"type": "frame", "input_id": i, "out_pts": 3000 * (i + 1),
                "t_sent": 100.0 + i / 30 + 0.040} for i in range(60)]
    lost = 3000                                      # the receiver's pts 0 = server pts 3000
    received = [(3000 * (i + 1) - lost, 100.0 + i / 30 + 0.050) for i in range(1, 60)]
    result = ClientResult(sent=sent, received=received, telemetry=records, t_connect_start=99.0)
    assert result.pts_offset() == -lost
    rows = result.matched()
    assert [r["input_id"] for r in rows] == list(range(1, 60))
    assert all(abs(r["latency_ms"] - 50.0) < 1e-6 for r in rows)
    assert result.summary()["e2e_ms"]["p50"] == pytest.approx(50.0)
