"""Fixtures for the streaming tests: a server on 127.0.0.1 in the test's own
event loop, with ICE kept on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import pytest
from aiohttp import web

from clients.pyclient import ClientResult, run_client
from realtime.frames import EchoPipeline, FramePipeline
from streaming.server import Server, ServerConfig


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates on purpose; tests only
    talk over loopback (WEBRTC-NOTES)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **kwargs: ["127.0.0.1"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    server: Server
    url: str


async def start_server(
    factory: Callable[[], FramePipeline] = EchoPipeline, **config: object
) -> tuple[Running, web.AppRunner]:
    port = free_port()
    server = Server(factory, ServerConfig(host="127.0.0.1", port=port, **config))  # type: ignore[arg-type]
    runner = web.AppRunner(server.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Running(server, f"http://127.0.0.1:{port}"), runner


async def stream_once(
    factory: Callable[[], FramePipeline], seconds: float,
    control: list[dict[str, Any]] | None = None, **config: object,
) -> ClientResult:
    """A server for one run of the Python client (synthetic 320x240 frames for
    `seconds`, `control` messages sent once the channel opens), then shut down."""
    running, runner = await start_server(factory, **config)
    try:
        return await run_client(running.url, synthetic=True, seconds=seconds,
                                size=(320, 240), control=control)
    finally:
        await runner.cleanup()


@pytest.fixture
async def echo_server() -> AsyncIterator[Running]:
    running, runner = await start_server()
    yield running
    await runner.cleanup()
