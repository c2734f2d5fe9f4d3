"""Small FramePipeline fakes for the server tests (the real model is too slow
for most tests on 2 cores)."""

from __future__ import annotations

import threading
import time

import numpy as np

from realtime.frames import EchoPipeline, GeneratedFrame, Reference


class SlowPipeline(EchoPipeline):
    """Echo, but its motion stage takes `seconds` per frame: slower than a 30 fps camera."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> GeneratedFrame:
        time.sleep(self.seconds)
        return super().prepare(image, frame_id, t_capture)


class BusyPipeline(EchoPipeline):
    """Echo whose model stage burns `cpu_ms` of CPU time then sleeps `idle_ms`, and
    reports the CPU time it measured, as the real engine does."""

    def __init__(self, cpu_ms: float, idle_ms: float) -> None:
        super().__init__()
        self.cpu_ms, self.idle_ms = cpu_ms, idle_ms

    def generate(self, prepared: list[GeneratedFrame]) -> list[GeneratedFrame]:
        t0, c0 = time.monotonic(), time.thread_time()
        while time.thread_time() - c0 < self.cpu_ms / 1e3:
            pass
        time.sleep(self.idle_ms / 1e3)
        t1, c1 = time.monotonic(), time.thread_time()
        out = super().generate(prepared)
        for f in out:
            f.stamps["model"] = (t0, t1)
            f.cpu_ms = {"model": (c1 - c0) * 1e3}
        return out


class FailingPipeline(EchoPipeline):
    """Echo for `after` frames, then raises, like a model that runs out of memory."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.calls = 0
        self.failed_at: float | None = None

    def generate(self, prepared: list[GeneratedFrame]) -> list[GeneratedFrame]:
        self.calls += len(prepared)
        if self.calls > self.after:
            self.failed_at = time.monotonic()
            raise RuntimeError("simulated CUDA out of memory")
        return super().generate(prepared)


class RecordingPipeline(EchoPipeline):
    """Echo that remembers which character/reference it was given, and on which thread."""

    CHARACTERS = ("robot", "fox")

    def __init__(self) -> None:
        super().__init__()
        self.character: str | None = None
        self.framing: str | None = None
        self.reference: np.ndarray | None = None
        self.steps: int | None = 2       # as a model that runs 2 steps by default
        self.threads: set[str] = set()
        self.closed = False
        self.motions: list[object] = []
        self.prepared_on: str | None = None

    def set_character(self, name: str, framing: str = "full") -> None:
        self.threads.add(threading.current_thread().name)
        if name not in self.CHARACTERS:
            raise KeyError(name)
        self.character, self.framing, self.reference = name, framing, None

    def prepare_reference(self, image: np.ndarray) -> Reference:
        self.prepared_on = threading.current_thread().name
        return Reference(image)

    def set_reference_image(self, reference: Reference | np.ndarray) -> None:
        self.threads.add(threading.current_thread().name)
        image = reference.image if isinstance(reference, Reference) else reference
        self.reference, self.character = image, None

    def set_steps(self, steps: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.steps = steps

    def prepare_motion(self, motion: object, frame_id: int, t_capture: float) -> GeneratedFrame:
        self.threads.add(threading.current_thread().name)
        self.motions.append(motion)
        return super().prepare_motion(motion, frame_id, t_capture)  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True


class SlowUploadPipeline(RecordingPipeline):
    """Finding the figure in an upload takes `seconds` (MediaPipe on a still)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.prepared: list[tuple[int, int]] = []

    def prepare_reference(self, image: np.ndarray) -> Reference:
        time.sleep(self.seconds)
        self.prepared.append((image.shape[1], image.shape[0]))
        return super().prepare_reference(image)
