"""`marionette serve`: the aiohttp + aiortc server.

Endpoints (all but /healthz need the token when one is set, see auth.py):

    GET  /                     the web client (clients/web/index.html); other files
    GET  /<file>               of clients/web/ by name, never outside it
    POST /offer                {"sdp", "type": "offer"} -> {"sdp", "type": "answer",
                               "session"}: the browser path
    POST /whip                 WHIP ingest (application/sdp): 201 + Location + answer,
                               whose video m-line also carries the generated track
    DELETE /whip/{id}          end that session
    POST /whep[/{id}]          WHEP egress: watch a session's output (the newest
                               session when no id): 201 + Location + answer
    DELETE /whep/{id}/{viewer} stop watching
    GET  /avatars              {"characters": [...]} (the avatar studio's gallery)
    GET  /avatars/{name}.png   a character's thumbnail
    GET  /healthz              {"status": "ok", "sessions": n}
    GET  /metrics              Prometheus text

Sessions live in `Server.sessions` and are closed on failure and at shutdown.
The server never imports the model: it calls a `FramePipeline` factory
(`realtime.pipeline.create_pipeline_factory` for `--engine model`, EchoPipeline
for `--engine echo`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from realtime.avatars.cli import FRAMINGS
from realtime.frames import EchoPipeline, FramePipeline
from streaming import auth, codecs
from streaming.metrics import Metrics
from streaming.session import Session, SessionConfig
from streaming.tracks import ViewerTrack
from streaming.transport import (
    PRESETS,
    TransportConfig,
    prefer_codecs,
    transport_preset,
    tune_receiver,
    with_start_bitrate,
)

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "clients" / "web"
MAX_SDP_BYTES = 64 * 1024
MAX_VIEWERS_PER_SESSION = 4
THUMBNAIL_SIZE = 160

PipelineFactory = Callable[[], FramePipeline]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_sessions: int = 4
    session: SessionConfig = field(default_factory=SessionConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    static_dir: Path = WEB_DIR


class BadRequest(web.HTTPBadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(text=reason, reason="Bad Request")


class Server:
    """The application: sessions, their peer connections, the HTTP routes."""

    def __init__(self, factory: PipelineFactory, config: ServerConfig | None = None) -> None:
        self.factory = factory
        self.config = config or ServerConfig()
        self.metrics = Metrics()
        self.sessions: dict[str, Session] = {}
        self._starting = 0
        self._viewer_ids = itertools.count(1)
        self._viewers: dict[str, tuple[Session, RTCPeerConnection]] = {}
        self._thumbnails: dict[str, bytes] = {}
        self._characters: list[str] | None = None
        codecs.install(self.config.transport.h264_preset)
        middlewares: list[Any] = (
            [auth.token_middleware(self.config.token)] if self.config.token else [])
        self.app = web.Application(middlewares=middlewares, client_max_size=MAX_SDP_BYTES)
        self.app.router.add_post("/offer", self.offer)
        self.app.router.add_post("/whip", self.whip)
        self.app.router.add_delete("/whip/{session}", self.whip_delete)
        self.app.router.add_post("/whep", self.whep)
        self.app.router.add_post("/whep/{session}", self.whep)
        self.app.router.add_delete("/whep/{session}/{viewer}", self.whep_delete)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics_text)
        self.app.router.add_get("/avatars", self.avatars)
        self.app.router.add_get("/avatars/{name}.png", self.avatar_png)
        self.app.router.add_get("/", self.static)
        self.app.router.add_get("/{path:.+}", self.static)
        self.app.on_shutdown.append(self._shutdown)
        self.metrics.set("sessions", 0, help="open sessions")

    # --- sessions -----------------------------------------------------------------------

    async def _open_session(self, offer: RTCSessionDescription) -> Session:
        """Create a session and answer `offer`. BadRequest / 503 on refusal."""
        if len(self.sessions) + self._starting >= self.config.max_sessions:
            self.metrics.inc("sessions_refused_total", help="offers refused: server full")
            raise web.HTTPServiceUnavailable(
                text=f"server full: {self.config.max_sessions} sessions already open")
        self._starting += 1
        pc = RTCPeerConnection()
        session: Session | None = None
        try:
            transceiver = pc.addTransceiver("video", direction="sendrecv")
            # codec preferences BEFORE setRemoteDescription (aiortc #104)
            prefer_codecs(transceiver, self.config.transport.codec_order)
            tune_receiver(transceiver.receiver, self.config.transport)
            try:
                pipeline = await asyncio.to_thread(self.factory)
            except Exception as exc:     # the engine could not start: say so, keep serving
                log.exception("pipeline factory failed")
                raise web.HTTPInternalServerError(
                    text=f"the engine failed to start a session: {type(exc).__name__}: {exc}"
                ) from None
            session = Session(pc, pipeline, self.config.session, self.metrics,
                              await self._character_names())
            transceiver.sender.replaceTrack(session.output)
            try:
                await pc.setRemoteDescription(offer)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise BadRequest(f"malformed SDP offer: {exc}") from None
            if transceiver.mid is None:
                raise BadRequest("the offer has no video m-line: send a video track "
                                 "(or a recvonly/sendrecv video transceiver)")
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            self._starting -= 1
            if session is not None:
                await session.close("offer refused")
            else:
                await pc.close()
            raise
        self._starting -= 1
        self.sessions[session.id] = session
        session.on_closed = self._forget
        self._update_gauges()
        self.metrics.inc("sessions_total", help="sessions opened")
        log.info("session %s opened (%d open)", session.id, len(self.sessions))
        return session

    def _answer_sdp(self, pc: RTCPeerConnection) -> str:
        return with_start_bitrate(pc.localDescription.sdp,
                                  self.config.transport.start_bitrate_kbps)

    def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        for key in [k for k, (s, _) in self._viewers.items() if s is session]:
            del self._viewers[key]
        self._update_gauges()
        log.info("session %s closed: %s", session.id, session.close_reason)

    def _update_gauges(self) -> None:
        self.metrics.set("sessions", len(self.sessions))
        self.metrics.set("viewers", len(self._viewers), help="open WHEP viewers")

    async def _shutdown(self, app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(s.close("server shutdown") for s in list(self.sessions.values())))

    async def _character_names(self) -> list[str]:
        if self._characters is None:
            try:
                from realtime.avatars.gallery import names
            except ImportError as exc:
                log.warning("no avatar gallery (%s): character picker will be empty", exc)
                self._characters = []
            else:
                self._characters = list(await asyncio.to_thread(names))
        return self._characters

    # --- signalling ---------------------------------------------------------------------

    async def offer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("body must be JSON: {\"sdp\": ..., \"type\": \"offer\"}") from None
        if not isinstance(body, dict) or not isinstance(body.get("sdp"), str):
            raise BadRequest("body must be a JSON object with a string 'sdp'")
        if body.get("type") != "offer":
            raise BadRequest("'type' must be \"offer\"")
        session = await self._open_session(_offer(body["sdp"]))
        local = session.pc.localDescription
        return web.json_response({"sdp": self._answer_sdp(session.pc), "type": local.type,
                                  "session": session.id})

    async def whip(self, request: web.Request) -> web.Response:
        session = await self._open_session(_offer(await _sdp_body(request)))
        return web.Response(status=201, text=self._answer_sdp(session.pc),
                            content_type="application/sdp",
                            headers={"Location": f"/whip/{session.id}"})

    async def whip_delete(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["session"])
        if session is None:
            raise web.HTTPNotFound(text="no such session")
        await session.close("ended by the client (WHIP DELETE)")
        return web.Response(status=200)

    async def whep(self, request: web.Request) -> web.Response:
        sid = request.match_info.get("session")
        if sid is None and self.sessions:
            sid = next(reversed(self.sessions))
        session = self.sessions.get(sid or "")
        if session is None:
            raise web.HTTPNotFound(text="no such session to watch")
        if len(session.viewers) >= MAX_VIEWERS_PER_SESSION:
            raise web.HTTPServiceUnavailable(text="too many viewers for this session")
        offer = _offer(await _sdp_body(request))
        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver("video", direction="sendonly")
        prefer_codecs(transceiver, self.config.transport.codec_order)
        transceiver.sender.replaceTrack(ViewerTrack(session.output))
        try:
            await pc.setRemoteDescription(offer)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            await pc.close()
            raise BadRequest(f"malformed SDP offer: {exc}") from None
        if transceiver.mid is None:
            await pc.close()
            raise BadRequest("the offer has no video m-line to receive on")
        await pc.setLocalDescription(await pc.createAnswer())
        viewer = f"v{next(self._viewer_ids)}"
        session.viewers.add(pc)
        self._viewers[viewer] = (session, pc)
        self._update_gauges()

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                session.viewers.discard(pc)
                self._viewers.pop(viewer, None)
                self._update_gauges()
                await pc.close()

        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp",
                            headers={"Location": f"/whep/{session.id}/{viewer}"})

    async def whep_delete(self, request: web.Request) -> web.Response:
        entry = self._viewers.pop(request.match_info["viewer"], None)
        if entry is None or entry[0].id != request.match_info["session"]:
            raise web.HTTPNotFound(text="no such viewer")
        session, pc = entry
        session.viewers.discard(pc)
        await pc.close()
        self._update_gauges()
        return web.Response(status=200)

    # --- everything else ----------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions)})

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain",
                            charset="utf-8", headers={"X-Prometheus-Format": "0.0.4"})

    async def avatars(self, request: web.Request) -> web.Response:
        names = await self._character_names()
        return web.json_response({"characters": names, "available": bool(names)})

    async def avatar_png(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in await self._character_names():
            raise web.HTTPNotFound(text=f"no character {name!r}")
        if name not in self._thumbnails:
            try:
                self._thumbnails[name] = await asyncio.to_thread(_thumbnail, name)
            except (ImportError, AttributeError, KeyError, TypeError) as exc:
                raise web.HTTPServiceUnavailable(text=f"no thumbnail for {name!r}: {exc}") from None
        return web.Response(body=self._thumbnails[name], content_type="image/png")

    async def static(self, request: web.Request) -> web.StreamResponse:
        root = self.config.static_dir.resolve()
        relative = request.match_info.get("path") or "index.html"
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise web.HTTPNotFound(text="not found")
        return web.FileResponse(target, headers={"Cache-Control": "no-cache"})


def _offer(sdp: str) -> RTCSessionDescription:
    if not sdp.lstrip().startswith("v=0"):
        raise BadRequest("malformed SDP offer: it must start with 'v=0'")
    return RTCSessionDescription(sdp=sdp, type="offer")


async def _sdp_body(request: web.Request) -> str:
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(text="Content-Type must be application/sdp")
    try:
        return await request.text()
    except UnicodeDecodeError:
        raise BadRequest("SDP must be UTF-8 text") from None


def _thumbnail(name: str) -> bytes:
    import io

    from PIL import Image

    from realtime.avatars import gallery
    from realtime.avatars.render import render_reference

    # the gallery's lookup by name (its API is the avatar studio's to settle)
    lookup = next((getattr(gallery, n) for n in ("get", "character", "load")
                   if callable(getattr(gallery, n, None))), None)
    if lookup is None:
        raise AttributeError("realtime.avatars.gallery has no get(name)")
    image = render_reference(lookup(name), THUMBNAIL_SIZE)          # (H, W, 3) uint8
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (anything but loopback requires a token)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: shipped)")
    parser.add_argument("--preset", default=None, help="model preset")
    parser.add_argument("--steps", type=_steps, default=None,
                        help="denoising steps each session starts at, 1-4 (default: the "
                             "checkpoint's); a session can change its own with the 'steps' "
                             "control message")
    parser.add_argument("--framing", choices=FRAMINGS, default="full",
                        help="shot each session's built-in character starts in: full body, "
                             "upper (head to hips) or face; a session can change it with "
                             "the 'character' control message")
    parser.add_argument("--engine", choices=("model", "echo"), default="model",
                        help="model: animate a character; echo: return the camera (transport "
                             "testing)")
    parser.add_argument("--max-sessions", type=int, default=4)
    parser.add_argument("--token", default=None, help="access token (generated when binding "
                                                      "beyond loopback without one)")
    parser.add_argument("--fps", type=float, default=30.0, help="output frame rate per session")
    parser.add_argument("--no-overlap", action="store_true",
                        help="run a session's motion and model stages in turn, not overlapped")
    parser.add_argument("--transport", choices=tuple(PRESETS), default="tuned",
                        help="stock: aiortc's defaults; no-*: one tuning off (before/after "
                             "measurements, streaming/TRANSPORT.md)")
    parser.add_argument("--codec-order", default=None,
                        help="video codec preference, e.g. 'VP8,H264' (default: H264,VP8)")


def _steps(text: str) -> int:
    steps = int(text)
    if not 1 <= steps <= 4:
        raise argparse.ArgumentTypeError(f"steps must be 1-4, got {steps}")
    return steps


def build_factory(args: argparse.Namespace) -> PipelineFactory:
    if args.engine == "echo":
        return EchoPipeline
    from realtime.pipeline import create_pipeline_factory

    factory: PipelineFactory = create_pipeline_factory(args.checkpoint, args.preset,
                                                       steps=args.steps, framing=args.framing)
    return factory


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token, generated = auth.required_token(args.host, args.token)
    if generated:
        print(f"Binding {args.host} (not loopback): generated access token {token}")
    transport = transport_preset(args.transport, args.codec_order)
    try:
        factory = build_factory(args)
    except ImportError as exc:
        print(f"cannot load the model engine ({exc}); try --engine echo")
        return 2
    config = ServerConfig(host=args.host, port=args.port, token=token,
                          max_sessions=args.max_sessions,
                          session=SessionConfig(fps=args.fps, overlap=not args.no_overlap),
                          transport=transport)
    server = Server(factory, config)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"Marionette is serving ({args.engine} engine). Open {url}")
    web.run_app(server.app, host=args.host, port=args.port, print=None,
                access_log=None, handle_signals=True)
    return 0
