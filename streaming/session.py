"""One performer's session: a peer connection, a pipeline on two worker threads,
the paced output track, the data channels, and WHEP viewers of its output.

    aiortc track ─► receive coroutine ─► Mailbox (1 slot) ─► motion thread
       (drain to newest)    (event loop)                       pipeline.prepare
                                                                   │
                                      HandOff (one chunk, oldest dropped)
                                                                   │
                                                               model thread
                                                                   pipeline.generate
                                                                   │   then pipeline.settle
    telemetry ◄── OutputTrack.recv (paced, sender) ◄── push ◄──────┘ (call_soon_threadsafe)

The two threads overlap: while the model generates one chunk, the motion thread
extracts the next frames (MediaPipe and torch release the GIL). Once a chunk's
frames are handed to the loop, the model thread settles the chunk (its cache write),
so that pass is not part of the frames' latency. Each stage of the
pipeline is only touched from its own thread; control changes are queued to the
thread owning what they change (filter, calibration: motion; character, reference,
steps: model). If either thread raises, the session closes with the reason on
`control`; the server and the other sessions go on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.frames import FramePipeline, GeneratedFrame, Reference
from streaming import barcode, control
from streaming.handoff import HandOff
from streaming.mailbox import Mailbox
from streaming.metrics import Metrics
from streaming.telemetry import SCHEMA_VERSION, FrameTrace, frame_record
from streaming.tracks import OutputTrack

log = logging.getLogger(__name__)

MAX_TRACES = 512        # inputs awaiting their output; older ones are forgotten
WORKER_JOIN_TIMEOUT = 10.0   # seconds a closing session waits for a pipeline call to return
Command = Callable[[FramePipeline], dict[str, Any]]
MOTION, MODEL = "motion", "model"    # the worker threads, and the commands each runs


@dataclass
class SessionConfig:
    fps: float = 30.0
    max_reference_bytes: int = control.MAX_REFERENCE_BYTES
    max_reference_pixels: int = control.MAX_REFERENCE_PIXELS
    demo_seed: int = 0
    # a client that vanishes without a goodbye is otherwise noticed only by ICE
    # consent checks (~30 s); no inbound video for this long ends the session
    input_timeout: float = 15.0
    # the motion thread prepares the next frames while the model generates (True),
    # or waits for the model to finish first (False: the stages in turn, as one
    # thread would run them). Overlap pays when a core is free for it; on a CPU
    # already saturated the two stages slow each other (streaming/TRANSPORT.md §4)
    overlap: bool = True


@dataclass
class _Input:
    trace: FrameTrace
    frame: av.VideoFrame | None          # None: a demo-performer tick


@dataclass
class _Prepared:
    trace: FrameTrace
    item: Any                            # what pipeline.prepare returned


class Session:
    """Owns everything one connection holds; `close()` frees all of it."""

    _ids = itertools.count(1)

    def __init__(
        self,
        pc: RTCPeerConnection,
        pipeline: FramePipeline,
        config: SessionConfig,
        metrics: Metrics,
        characters: list[str] | None = None,
    ) -> None:
        self.id = f"s{next(self._ids)}-{int(time.time() * 1000) % 100000:05d}"
        self.pc = pc
        self.pipeline = pipeline
        self.config = config
        self.metrics = metrics
        self.characters = characters or []
        self.output = OutputTrack(config.fps, pipeline.resolution, self._on_sent)
        self.viewers: set[RTCPeerConnection] = set()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.on_closed: Callable[[Session], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._mailbox: Mailbox[_Input] = Mailbox()
        self._handoff: HandOff[_Prepared] = HandOff(max(1, int(pipeline.chunk)))
        self._commands: dict[str, queue.SimpleQueue[tuple[str, Command]]] = {
            MOTION: queue.SimpleQueue(), MODEL: queue.SimpleQueue()}
        self._control: RTCDataChannel | None = None
        self._telemetry: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._frame_ids = itertools.count()
        self._receive_drops = 0
        self._demo_task: asyncio.Task[None] | None = None
        self._reference = control.ReferenceAssembler(config.max_reference_bytes)
        self._upload_next: bytes | None = None   # a complete upload waiting to be prepared
        self._uploading = False
        self._closing = False
        self._last_input = time.monotonic()
        self._model_idle = threading.Event()     # set while no generate() runs
        self._model_idle.set()
        self._running = 2                    # worker threads not yet ended
        self._running_lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._guarded, args=(MOTION, self._motion_work),
                             name=f"pipeline-{self.id}-motion", daemon=True),
            threading.Thread(target=self._guarded, args=(MODEL, self._model_work),
                             name=f"pipeline-{self.id}-model", daemon=True)]
        for worker in self._workers:
            worker.start()
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    # --- event loop side --------------------------------------------------------------

    @property
    def drops(self) -> dict[str, int]:
        return {"receive": self._receive_drops, "mailbox": self._mailbox.dropped,
                "handoff": self._handoff.dropped, "output": self.output.dropped}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._spawn(self._receive(track))
            self._spawn(self._watch_input())

    async def _watch_input(self) -> None:
        """End the session when its client stops sending video (vanished, crashed)."""
        timeout = self.config.input_timeout
        while not self._closing:
            await asyncio.sleep(min(1.0, timeout / 4))
            if time.monotonic() - self._last_input > timeout:
                self._spawn(self.close(f"no video from the client for {timeout:g} s"))
                return

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._spawn(self.close(f"connection {self.pc.connectionState}"))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == "control":
            self._control = channel
            channel.on("message", self._on_control)
            if channel.readyState == "open":
                self._hello()
            else:
                channel.on("open", self._hello)
        elif channel.label == "telemetry":
            self._telemetry = channel

    def _hello(self) -> None:
        self.send_control({"type": "hello", "session": self.id, "fps": self.output.fps,
                           "resolution": list(self.pipeline.resolution),
                           "steps": self.pipeline.steps, "chunk": self.pipeline.chunk,
                           "characters": self.characters, "schema": SCHEMA_VERSION})

    def send_control(self, message: dict[str, Any]) -> None:
        if self._control is not None and self._control.readyState == "open":
            self._control.send(json.dumps(message))

    async def _receive(self, track: MediaStreamTrack) -> None:
        """Take frames from aiortc as they come, keep only the newest one."""
        pending: asyncio.Queue[Any] | None = getattr(track, "_queue", None)
        while not self._closing:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            start = self._last_input = time.monotonic()
            # aiortc's remote-track queue is unbounded (aiortc #1192): skip to the newest
            while pending is not None and not pending.empty():
                newer = pending.get_nowait()
                if newer is None:               # end of track: let the next recv() see it
                    pending.put_nowait(None)
                    break
                frame = newer
                self._receive_drops += 1
                self.metrics.inc("dropped_frames_total", label="receive")
            self.metrics.inc("frames_in_total", help="video frames received from clients")
            if self._demo_task is not None:
                continue
            trace = FrameTrace(next(self._frame_ids), None, start)
            opaque = frame.opaque if isinstance(frame.opaque, dict) else {}
            if "video_decode" in opaque:
                trace.stamps["video_decode"] = opaque["video_decode"]
            trace.stamps["receive"] = (start, time.monotonic())
            assert isinstance(frame, av.VideoFrame)
            if self._mailbox.put(_Input(trace, frame)):
                self.metrics.inc("dropped_frames_total", label="mailbox",
                                 help="frames dropped, by stage")

    def _on_control(self, text: str | bytes) -> None:
        try:
            msg = control.parse(text)
            self._handle_control(msg)
        except control.ControlError as exc:
            self.send_control({"type": "error", "for": exc.kind, "message": str(exc)})

    def _handle_control(self, msg: control.ControlMessage) -> None:
        body = msg.body
        if msg.type == "ping":
            self.send_control({"type": "pong", "t": body.get("t"),
                               "server_time": time.monotonic()})
        elif msg.type == "fps":
            self.output.fps = float(body["value"])
            self.send_control({"type": "ack", "for": "fps", "value": self.output.fps})
        elif msg.type == "demo":
            self._set_demo(bool(body["on"]))
        elif msg.type == "character":
            name, framing = body["name"], body.get("framing", "full")

            def set_character(p: FramePipeline) -> dict[str, Any]:
                try:
                    p.set_character(name, framing)
                except KeyError:
                    raise control.ControlError("character",
                                               f"unknown character {name!r}") from None
                return {"name": name, "framing": framing}

            self._command("character", set_character, MODEL)
        elif msg.type == "reference":
            data = self._reference.add(body)
            if data is not None:
                self._upload(data)
        elif msg.type == "steps":
            steps = int(body["value"])

            def set_steps(p: FramePipeline) -> dict[str, Any]:
                p.set_steps(steps)
                return {"value": steps}

            self._command("steps", set_steps, MODEL)
        elif msg.type == "filter":
            strength = float(body["value"])

            def set_filter(p: FramePipeline) -> dict[str, Any]:
                p.set_filter_strength(strength)
                return {"value": strength}

            self._command("filter", set_filter, MOTION)
        elif msg.type == "reset_calibration":

            def reset(p: FramePipeline) -> dict[str, Any]:
                p.reset_calibration()
                return {}

            self._command("reset_calibration", reset, MOTION)

    def _upload(self, data: bytes) -> None:
        """A complete upload: decoded and its figure found off the event loop and off
        both worker threads (`prepare_reference`, about 0.15 s), then swapped in on
        the model thread. One upload is prepared at a time; a newer one arriving
        meanwhile waits, replacing (and counting) any that was already waiting."""
        if self._upload_next is not None:
            self.metrics.inc("dropped_uploads_total",
                             help="reference uploads replaced by a newer one before use")
            self.send_control({"type": "error", "for": "reference",
                               "message": "reference: replaced by a newer upload"})
        self._upload_next = data
        if not self._uploading:
            self._uploading = True
            self._spawn(self._prepare_uploads())

    async def _prepare_uploads(self) -> None:
        max_pixels = self.config.max_reference_pixels
        try:
            while self._upload_next is not None and not self._closing:
                data, self._upload_next = self._upload_next, None
                try:
                    reference = await asyncio.to_thread(self._prepare_upload, data, max_pixels)
                except control.ControlError as exc:
                    self.send_control({"type": "error", "for": "reference",
                                       "message": str(exc)})
                    continue
                self._command("reference", self._reference_command(reference), MODEL)
        finally:
            self._uploading = False

    def _prepare_upload(self, data: bytes, max_pixels: int) -> Reference:
        image = control.decode_reference(data, max_pixels)          # (H, W, 3) uint8
        try:
            return self.pipeline.prepare_reference(image)
        except ValueError as exc:
            raise control.ControlError("reference", f"unusable reference: {exc}") from None

    @staticmethod
    def _reference_command(reference: Reference) -> Command:
        def set_reference(p: FramePipeline) -> dict[str, Any]:
            try:
                p.set_reference_image(reference)
            except ValueError as exc:
                raise control.ControlError("reference", f"unusable reference: {exc}") from None
            # figure: whether the picture's figure was found (the stream is drawn where
            # it stands) or the default standing adult is used; hands: whether a face
            # was found to fit a head to, whose skin the performer's hands are drawn in
            return {"size": [reference.image.shape[1], reference.image.shape[0]],
                    "figure": reference.skeleton is not None,
                    "hands": reference.head is not None}

        return set_reference

    def _command(self, kind: str, command: Command, thread: str) -> None:
        """Run `command` on the worker thread that owns what it changes."""
        self._commands[thread].put((kind, command))
        (self._mailbox if thread == MOTION else self._handoff).wake()

    def _set_demo(self, on: bool) -> None:
        if on and self._demo_task is None:
            self._demo_task = asyncio.ensure_future(self._demo_ticks())
        elif not on and self._demo_task is not None:
            self._demo_task.cancel()
            self._demo_task = None
        self.send_control({"type": "ack", "for": "demo", "on": on})

    async def _demo_ticks(self) -> None:
        """Drive the pipeline with the built-in performer at the session fps."""
        while not self._closing:
            now = time.monotonic()
            trace = FrameTrace(next(self._frame_ids), None, now, {"receive": (now, now)})
            self._mailbox.put(_Input(trace, None))
            await asyncio.sleep(1.0 / self.output.fps)

    def _deliver(self, frames: list[tuple[av.VideoFrame, FrameTrace]]) -> None:
        if not self._closing:
            before = self.output.dropped
            self.output.push(frames)
            if self.output.dropped > before:
                self.metrics.inc("dropped_frames_total", self.output.dropped - before,
                                 label="output")

    def _on_sent(self, trace: FrameTrace, out_pts: int, t_sent: float) -> None:
        record = frame_record(self.id, trace, out_pts, t_sent, self.drops, self.output.repeats)
        self.metrics.inc("frames_out_total", help="generated frames sent to clients")
        for stage, (start, end) in trace.stamps.items():
            self.metrics.observe("stage_seconds", stage, max(0.0, end - start),
                                 help="time spent per stage, per frame")
        self.metrics.observe("stage_seconds", "total", t_sent - trace.t_capture)
        if self._telemetry is not None and self._telemetry.readyState == "open":
            self._telemetry.send(json.dumps(record))

    def _fail(self, reason: str) -> None:
        self._spawn(self.close(reason, failed=True))

    async def close(self, reason: str = "closed", failed: bool = False) -> None:
        """Free everything: idempotent, safe to call from any state."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        self.close_reason = reason
        if failed:
            self.metrics.inc("session_failures_total", help="sessions ended by a pipeline error")
            self.send_control({"type": "closed", "reason": reason})
            await asyncio.sleep(0.05)          # let the reason leave before the transport closes
        if self._demo_task is not None:
            self._demo_task.cancel()
        self._mailbox.close()
        self._handoff.close()
        self.output.stop()
        for viewer in list(self.viewers):
            await viewer.close()
        self.viewers.clear()
        await self.pc.close()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.to_thread(self._join_workers)
        self.closed.set()
        if self.on_closed is not None:
            self.on_closed(self)

    # --- worker threads side -----------------------------------------------------------

    def _join_workers(self) -> None:
        deadline = time.monotonic() + WORKER_JOIN_TIMEOUT
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.error("session %s: %s still busy after %.0f s; abandoning it",
                          self.id, worker.name, WORKER_JOIN_TIMEOUT)

    def _guarded(self, stage: str, work: Callable[[], None]) -> None:
        """Run one worker loop; a pipeline error ends this session, not the server.
        The last thread out closes the pipeline (after both stopped calling it)."""
        try:
            work()
        except Exception as exc:  # the pipeline died: end this session, keep the server
            log.exception("session %s: pipeline %s stage failed", self.id, stage)
            reason = f"pipeline error: {type(exc).__name__}: {exc}"
            self._mailbox.close()          # stop the other thread now, not at close()
            self._handoff.close()
            self._loop.call_soon_threadsafe(self._fail, reason)
        finally:
            with self._running_lock:
                self._running -= 1
                last = self._running == 0
            if last:
                try:
                    self.pipeline.close()
                except Exception:
                    log.exception("session %s: pipeline.close() failed", self.id)

    def _motion_work(self) -> None:
        """Motion thread: take the newest input, prepare it, hand it to the model."""
        performer: Iterator[Any] | None = None
        while not self._mailbox.closed:
            self._run_commands(MOTION)
            if not self.config.overlap and not self._model_idle.wait(timeout=0.5):
                continue                         # no overlap: the model is generating
            item = self._mailbox.get(timeout=0.5)
            if item is None:
                continue
            trace = item.trace
            taken = time.monotonic()
            trace.stamps["mailbox"] = (trace.stamps["receive"][1], taken)
            if item.frame is None:
                if performer is None:
                    performer = self._demo_performer()
                    if performer is None:
                        continue
                prepared = self.pipeline.prepare_motion(next(performer), trace.frame_id,
                                                        trace.t_capture)
            else:
                image = item.frame.to_ndarray(format="rgb24")       # (H, W, 3)
                trace.input_id = barcode.decode(image)
                trace.stamps["convert"] = (taken, time.monotonic())
                prepared = self.pipeline.prepare(image, trace.frame_id, trace.t_capture)
            if prepared is None:
                continue
            trace.stamps["handoff"] = (time.monotonic(), 0.0)  # end set by the model thread
            if not self.config.overlap and len(self._handoff) + 1 >= self._handoff.capacity:
                self._model_idle.clear()         # this put completes a chunk: the model's turn
            if self._handoff.put(_Prepared(trace, prepared)) is not None:
                self._loop.call_soon_threadsafe(self._count_drop, "handoff")

    def _model_work(self) -> None:
        """Model thread: generate each full chunk of prepared inputs, send the frames,
        then settle the chunk."""
        traces: dict[int, FrameTrace] = {}
        while not self._handoff.closed:
            self._run_commands(MODEL)
            chunk = self._handoff.take(timeout=0.5)
            if not chunk:
                continue
            taken = time.monotonic()
            for prepared in chunk:
                trace = prepared.trace
                trace.stamps["handoff"] = (trace.stamps["handoff"][0], taken)
                traces[trace.frame_id] = trace
            if len(traces) > MAX_TRACES:
                for old in sorted(traces)[: len(traces) - MAX_TRACES]:
                    del traces[old]
            self._model_idle.clear()
            try:
                outputs = self.pipeline.generate([p.item for p in chunk])
                if outputs:
                    ready = [self._to_video(out, traces) for out in outputs]
                    self._loop.call_soon_threadsafe(self._deliver, ready)
                settle_start = time.monotonic()     # the frames are out: the cache write
                if self.pipeline.settle():
                    self._loop.call_soon_threadsafe(
                        self.metrics.observe, "settle_seconds", "",
                        time.monotonic() - settle_start,
                        "model-stage work after a chunk's frames left (its cache write)")
            finally:
                self._model_idle.set()

    def _count_drop(self, stage: str) -> None:
        self.metrics.inc("dropped_frames_total", label=stage)

    def _run_commands(self, thread: str) -> None:
        commands = self._commands[thread]
        while True:
            try:
                kind, command = commands.get_nowait()
            except queue.Empty:
                return
            try:
                reply = {"type": "ack", "for": kind, **command(self.pipeline)}
            except control.ControlError as exc:
                reply = {"type": "error", "for": kind, "message": str(exc)}
            except ValueError as exc:
                reply = {"type": "error", "for": kind, "message": f"{kind}: {exc}"}
            self._loop.call_soon_threadsafe(self.send_control, reply)

    def _demo_performer(self) -> Iterator[Any] | None:
        try:
            from realtime.avatars.motion import demo_performer
        except ImportError as exc:
            self._loop.call_soon_threadsafe(self.send_control, {
                "type": "error", "for": "demo",
                "message": f"the built-in demo motion is not available: {exc}"})
            self._loop.call_soon_threadsafe(self._set_demo, False)
            return None
        performer: Iterator[Any] = iter(demo_performer(self.config.demo_seed))
        return performer

    @staticmethod
    def _to_video(
        out: GeneratedFrame, traces: dict[int, FrameTrace]
    ) -> tuple[av.VideoFrame, FrameTrace]:
        trace = traces.pop(out.frame_id, None) or FrameTrace(out.frame_id, None, out.t_capture)
        trace.stamps.update(out.stamps)
        trace.cpu_ms.update(out.cpu_ms)
        image = np.ascontiguousarray(out.image)                       # (H, W, 3) uint8
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.opaque = {}
        return frame, trace
