"""A session runs the pipeline's motion stage (prepare) and model stage (generate)
on two threads, joined by a one-chunk hand-off that drops the oldest input: the
stages overlap, and nothing queues up behind a slow model."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np
import pytest

from clients.pyclient import run_client
from realtime.frames import EchoPipeline, GeneratedFrame
from streaming.handoff import HandOff
from streaming.session import SessionConfig
from tests.streaming.conftest import start_server, stream_once


class StagedPipeline(EchoPipeline):
    """Echo whose motion stage sleeps `prepare_s` per frame and whose model stage
    sleeps `generate_s` per frame, a chunk of `chunk` frames at a time; it records
    what each stage saw, and on which thread."""

    def __init__(self, prepare_s: float, generate_s: float, chunk: int = 2,
                 fail_in_prepare_after: int | None = None, settle_s: float = 0.0) -> None:
        super().__init__()
        self.prepare_s, self.generate_s, self.settle_s = prepare_s, generate_s, settle_s
        self.settles: list[tuple[float, float]] = []           # (start, end) per settle
        self.chunk = chunk
        self.fail_after = fail_in_prepare_after
        self.prepared = 0
        self.batches: list[list[int]] = []                     # frame ids per generate call
        self.produced: list[float] = []                        # when each frame came out
        self.threads: dict[str, set[str]] = {}
        self.closed = False

    def _seen(self, what: str) -> None:
        self.threads.setdefault(what, set()).add(threading.current_thread().name)

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> GeneratedFrame:
        self._seen("prepare")
        self.prepared += 1
        if self.fail_after is not None and self.prepared > self.fail_after:
            raise RuntimeError("simulated extractor crash")
        time.sleep(self.prepare_s)
        return super().prepare(image, frame_id, t_capture)

    def generate(self, prepared: list[GeneratedFrame]) -> list[GeneratedFrame]:
        self._seen("generate")
        self.batches.append([p.frame_id for p in prepared])
        time.sleep(self.generate_s * len(prepared))
        now = time.monotonic()
        self.produced.extend(now for _ in prepared)
        return super().generate(prepared)

    def settle(self) -> bool:
        self._seen("settle")
        start = time.monotonic()
        time.sleep(self.settle_s)
        self.settles.append((start, time.monotonic()))
        return True

    def set_steps(self, steps: int) -> None:
        self._seen("steps")

    def set_character(self, name: str, framing: str = "full") -> None:
        self._seen("character")

    def set_filter_strength(self, strength: float) -> None:
        self._seen("filter")

    def reset_calibration(self) -> None:
        self._seen("reset_calibration")

    def close(self) -> None:
        self.closed = True


def _rate(times: list[float], skip: float = 0.5) -> float:
    """Frames per second over the steady part of a run (after `skip` s of warm-up)."""
    start = times[0] + skip
    steady = [t for t in times if t >= start]
    assert len(steady) > 10, times
    return (len(steady) - 1) / (steady[-1] - steady[0])


@pytest.mark.parametrize("overlap", [True, False])
async def test_motion_and_model_stages_overlap(overlap: bool) -> None:
    """60 ms to prepare a frame, 60 ms per frame to generate: one thread doing both
    cannot pass 8.3 frames/s (sleeps only ever overshoot), two overlapping threads
    make up to 16.7 (about 15 measured on the shared 2-core CPU). The 30 fps camera
    is never the limit. The bound, 25 % above the serial ceiling, fails any serial
    session and leaves the overlapped one room for a loaded machine. With
    `overlap=False` the stages take turns, and the rate must stay below it."""
    made: list[StagedPipeline] = []

    def factory() -> StagedPipeline:
        made.append(StagedPipeline(prepare_s=0.06, generate_s=0.06))
        return made[-1]

    result = await stream_once(factory, seconds=4, session=SessionConfig(overlap=overlap))
    (pipeline,) = made
    serial_ceiling = 1 / (0.06 + 0.06)
    rate = _rate(pipeline.produced)
    assert (rate > 1.25 * serial_ceiling) == overlap, (rate, len(pipeline.produced))
    assert len(result.received) > 20                       # and the frames reached the client
    (prepare_thread,) = pipeline.threads["prepare"]
    (generate_thread,) = pipeline.threads["generate"]
    assert prepare_thread != generate_thread
    assert pipeline.closed


async def test_a_slow_model_drops_the_oldest_prepared_frames_and_latency_stays_flat() -> None:
    """Preparing is instant, the model takes 150 ms per chunk of 2 against a 30 fps
    camera: the hand-off fills, drops its oldest and hands over full chunks only."""
    made: list[StagedPipeline] = []

    def factory() -> StagedPipeline:
        made.append(StagedPipeline(prepare_s=0.0, generate_s=0.075))
        return made[-1]

    running, runner = await start_server(factory)
    try:
        result = await run_client(running.url, synthetic=True, seconds=4, size=(320, 240))
        dropped = running.server.metrics.counters["dropped_frames_total"]["handoff"]
    finally:
        await runner.cleanup()
    (pipeline,) = made
    assert pipeline.batches and all(len(b) == pipeline.chunk for b in pipeline.batches)
    ids = [i for batch in pipeline.batches for i in batch]
    assert ids == sorted(set(ids))                     # each input once, in order
    records = [r for r in result.telemetry if r["type"] == "frame"]
    assert records[-1]["drops"]["handoff"] > 15, records[-1]["drops"]
    assert dropped >= records[-1]["drops"]["handoff"]
    waits = [r["stages"]["handoff"][1] - r["stages"]["handoff"][0] for r in records]
    third = len(waits) // 3
    early, late = statistics.median(waits[:third]), statistics.median(waits[-third:])
    # a FIFO would wait ~1.5 s longer by the end of this run; a chunk takes 0.15 s
    assert late < early + 0.1, (early, late)


async def test_the_model_thread_settles_a_chunk_after_its_frames_are_sent() -> None:
    """The engine's cache write (`settle`, 200 ms here) runs once per chunk on the
    model thread, after the chunk's frames were handed to the output: the frames
    leave while it runs, not after it."""
    made: list[StagedPipeline] = []

    def factory() -> StagedPipeline:
        made.append(StagedPipeline(prepare_s=0.0, generate_s=0.005, settle_s=0.2))
        return made[-1]

    running, runner = await start_server(factory)
    try:
        result = await run_client(running.url, synthetic=True, seconds=3, size=(320, 240))
        exported = running.server.metrics.render()
    finally:
        await runner.cleanup()
    (pipeline,) = made
    assert pipeline.threads["settle"] == pipeline.threads["generate"]
    count = next(line for line in exported.splitlines()
                 if line.startswith("marionette_settle_seconds_count"))
    assert int(count.split()[-1]) >= 5                # its time is on /metrics
    assert len(pipeline.settles) >= len(pipeline.batches) - 1 >= 5
    sent = {r["frame_id"]: r["t_sent"] for r in result.telemetry if r["type"] == "frame"}
    chunks = [(batch[0], end) for batch, (_, end) in zip(pipeline.batches, pipeline.settles,
                                                         strict=False) if batch[0] in sent]
    assert len(chunks) >= 5, (len(sent), len(pipeline.batches))
    before = [sent[first] < settled for first, settled in chunks]
    assert sum(before) >= 0.9 * len(before), before


async def test_controls_run_on_the_thread_owning_their_stage() -> None:
    made: list[StagedPipeline] = []

    def factory() -> StagedPipeline:
        made.append(StagedPipeline(prepare_s=0.0, generate_s=0.0))
        return made[-1]

    messages: list[dict[str, Any]] = [
        {"type": "steps", "value": 2}, {"type": "character", "name": "robot"},
        {"type": "filter", "value": 0.5}, {"type": "reset_calibration"}]
    result = await stream_once(factory, seconds=1.5, control=messages)
    acks = {m["for"] for m in result.control if m["type"] == "ack"}
    assert {"steps", "character", "filter", "reset_calibration"} <= acks
    threads = made[0].threads
    assert threads["steps"] == threads["character"] == threads["generate"]
    assert threads["filter"] == threads["reset_calibration"] == threads["prepare"]
    assert threads["prepare"] != threads["generate"]


async def test_a_failing_motion_stage_closes_its_session_and_both_threads_end() -> None:
    made: list[StagedPipeline] = []

    def factory() -> StagedPipeline:
        made.append(StagedPipeline(prepare_s=0.0, generate_s=0.0, fail_in_prepare_after=10))
        return made[-1]

    running, runner = await start_server(factory)
    try:
        result = await run_client(running.url, synthetic=True, seconds=1.5, size=(320, 240))
        sessions = list(running.server.sessions.values())
    finally:
        await runner.cleanup()
    closed = [m for m in result.control if m["type"] == "closed"]
    assert closed and "simulated extractor crash" in closed[0]["reason"]
    assert not sessions
    assert made[0].closed
    names = made[0].threads["prepare"] | made[0].threads["generate"]
    assert not [t for t in threading.enumerate() if t.name in names]


def test_handoff_holds_one_chunk_drops_the_oldest_and_hands_over_full_chunks() -> None:
    box: HandOff[int] = HandOff(2)
    assert box.put(1) is None
    assert box.take(timeout=0.01) == []          # a partial chunk stays to be completed
    assert box.put(2) is None
    assert box.put(3) == 1 and box.put(4) == 2   # full: the oldest goes
    assert len(box) == 2 and box.dropped == 2
    assert box.take(timeout=0.01) == [3, 4]
    assert len(box) == 0


def test_handoff_take_wakes_for_a_chunk_a_wake_or_close() -> None:
    box: HandOff[int] = HandOff(2)
    got: list[list[int]] = []
    taker = threading.Thread(target=lambda: got.append(box.take(timeout=10)))
    taker.start()
    box.put(5)
    box.put(6)
    taker.join(5)
    assert got == [[5, 6]]
    for release in (box.wake, box.close):
        taker = threading.Thread(target=lambda: got.append(box.take(timeout=10)))
        taker.start()
        release()
        taker.join(5)
        assert not taker.is_alive() and got[-1] == []
