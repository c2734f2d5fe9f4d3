"""What a session's pipeline returns, and the interface the server drives.

The server (streaming/) knows nothing of MediaPipe or the model: it hands decoded
frames to a `FramePipeline` and sends back what comes out. The work is split in
two stages so that a session can overlap them on two threads (MediaPipe and torch
both release the GIL):

    prepare(image) ──► Prepared ──► generate([Prepared] * chunk) ──► [GeneratedFrame]
    (motion thread: extraction,        (model thread: DiT + decode, once per chunk)
     filtering, condition rendering)

`process(...)` is `generate([prepare(...)])`, for offline use on one thread. Two
implementations exist: `realtime.pipeline.AnimationPipeline` (extraction + model)
and `EchoPipeline` below, which returns its input and lets the transport be
measured on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from realtime.motion.types import NormalizedMotion, Skeleton, Stamps

if TYPE_CHECKING:
    from realtime.model.face_paste import HeadShape


@dataclass
class GeneratedFrame:
    """One output frame, carrying the id and capture time of the input it came from."""

    frame_id: int
    t_capture: float                        # time.monotonic() of the input's capture
    image: np.ndarray                       # (H, W, 3) uint8 RGB
    stamps: Stamps = field(default_factory=dict)
    # CPU time (ms) the producing thread spent on a stage, beside its wall-clock stamp:
    # wall minus CPU is time spent waiting for a core, the GIL or the device
    cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Reference:
    """An uploaded picture made ready for `set_reference_image`: what can be done
    before the session is touched (`FramePipeline.prepare_reference`)."""

    image: np.ndarray                       # (H, W, 3) uint8 RGB, as uploaded
    skeleton: Skeleton | None = None        # its figure's, where one was found
    # its head, fitted to the face found in it, where one fits: finds its skin for the
    # hand paste (`realtime.model.face_paste.HeadShape.of_upload`)
    head: HeadShape | None = None


Prepared: TypeAlias = Any
"""One input after the motion stage, opaque to the server: a `MotionCondition`
for AnimationPipeline, the resized frame for EchoPipeline."""


class FramePipeline(Protocol):
    """Per-session processing, never called from the event loop.

    Threads: the motion stage (`prepare`, `prepare_motion`, `set_filter_strength`,
    `reset_calibration`) is called from one thread and the model stage
    (`generate`, `set_character`, `set_reference_image`, `set_steps`) from one
    other thread, concurrently; each stage's state belongs to its thread. The one
    thing they share, the character's skeleton, is swapped by the model stage as
    a single attribute assignment (the motion stage may retarget one more frame to
    the old skeleton). `close` is called once, after both have returned.
    """

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the frames it produces."""
        ...

    @property
    def steps(self) -> int | None:
        """Denoising steps the model runs at now (None: no model)."""
        ...

    @property
    def chunk(self) -> int:
        """Frames per `generate` call that produce output (K; 1 for per-frame pipelines)."""
        ...

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> Prepared | None:
        """Motion stage for one RGB (H, W, 3) uint8 camera frame; None when the
        frame gives the model nothing to do."""
        ...

    def prepare_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> Prepared | None:
        """Same, for motion that needs no extraction (the built-in demo performer)."""
        ...

    def generate(self, prepared: list[Prepared]) -> list[GeneratedFrame]:
        """Model stage: returns the frames completed by these inputs (none while a
        chunk is filling, K when one completes), in input order."""
        ...

    def settle(self) -> bool:
        """Model stage, once the frames of a `generate` call have left: work that must
        be done before the next call but need not delay those frames (the engine's
        cache write); True if there was any. Optional: the next `generate` does it
        first if nobody did."""
        ...

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> list[GeneratedFrame]:
        """`generate([prepare(...)])` on the calling thread (offline use)."""
        ...

    def process_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> list[GeneratedFrame]:
        """`generate([prepare_motion(...)])` on the calling thread."""
        ...

    def set_character(self, name: str, framing: str = "full") -> None:
        """Switch to a built-in gallery character, shot in `framing` ("full",
        "upper", "face"). KeyError for an unknown name, ValueError for an unknown
        framing."""
        ...

    def prepare_reference(self, image: np.ndarray) -> Reference:
        """The slow part of an upload (finding the figure in the picture: about 0.15 s
        on the 2-core CPU), on any thread but the two stages', so that neither
        stalls. ValueError if the image is unusable."""
        ...

    def set_reference_image(self, reference: Reference | np.ndarray) -> None:
        """Model stage: switch to an uploaded RGB picture (prepared, or prepared here
        first). ValueError if unusable."""
        ...

    def set_steps(self, steps: int) -> None: ...

    def set_filter_strength(self, strength: float) -> None:
        """0 = no smoothing, 1 = default, larger = smoother (more lag)."""
        ...

    def reset_calibration(self) -> None: ...

    def close(self) -> None: ...


class EchoPipeline:
    """Returns each input frame, resized: the model replaced by a pass-through.
    prepare = resize (stamped "model", as before the split), generate = pass-through."""

    chunk = 1
    steps: int | None = None

    def __init__(self, width: int = 256, height: int = 256) -> None:
        self._size = (width, height)

    @property
    def resolution(self) -> tuple[int, int]:
        return self._size

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> GeneratedFrame:
        import cv2

        start = time.monotonic()
        out = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        return GeneratedFrame(frame_id, t_capture, out, {"model": (start, time.monotonic())})

    def prepare_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> GeneratedFrame:
        grey = np.full((self._size[1], self._size[0], 3), 128, np.uint8)
        now = time.monotonic()
        return GeneratedFrame(frame_id, t_capture, grey, {"model": (now, now)})

    def generate(self, prepared: list[GeneratedFrame]) -> list[GeneratedFrame]:
        return list(prepared)

    def settle(self) -> bool:
        return False

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> list[GeneratedFrame]:
        return self.generate([self.prepare(image, frame_id, t_capture)])

    def process_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> list[GeneratedFrame]:
        return self.generate([self.prepare_motion(motion, frame_id, t_capture)])

    def set_character(self, name: str, framing: str = "full") -> None:
        pass

    def prepare_reference(self, image: np.ndarray) -> Reference:
        return Reference(image)

    def set_reference_image(self, reference: Reference | np.ndarray) -> None:
        pass

    def set_steps(self, steps: int) -> None:
        pass

    def set_filter_strength(self, strength: float) -> None:
        pass

    def reset_calibration(self) -> None:
        pass

    def close(self) -> None:
        pass
