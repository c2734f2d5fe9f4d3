"""`AnimationPipeline`: one session's camera-frame-to-character-frame pipeline.

    image ─► MotionExtractor ─► MotionProcessor ─► retarget(character skeleton)
          ─► render_condition ─► StreamingEngine (DiT + KV cache + decode) ─► frames

It implements `realtime.frames.FramePipeline`, the interface the streaming server
drives from two threads per session: `prepare*` (extraction, motion filtering,
retargeting, condition rendering: everything up to the `MotionCondition`) on the
motion thread, `generate` (the engine, once per chunk of K) on the model thread.
`create_pipeline_factory` loads the weights once and returns a factory of
per-session pipelines sharing them: only the extractor, the motion filters and the
engine's cache are per session.

Motion, avatars and MediaPipe are imported when first needed, so the model side
(and the GPU machine, which has no MediaPipe) can import this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime.engine import StreamingEngine, configure_torch_threads
from realtime.frames import FramePipeline, GeneratedFrame, Reference
from realtime.model.bundle import AnimationModel
from realtime.motion.types import (
    MotionCondition,
    MotionFrame,
    NormalizedMotion,
    Pose,
    Skeleton,
)

if TYPE_CHECKING:
    from realtime.motion.extractor import MotionExtractor

log = logging.getLogger(__name__)


class AnimationPipeline:
    def __init__(
        self,
        model: AnimationModel,
        *,
        character: str | None = None,
        framing: str = "full",
        steps: int | None = None,
        seed: int = 0,
    ) -> None:
        from realtime.motion.processor import MotionProcessor, ProcessorConfig

        self.engine = StreamingEngine(model, seed=seed, steps=steps)
        self.processor = MotionProcessor(ProcessorConfig())
        self._extractor: MotionExtractor | None = None
        self.skeleton: Skeleton = _default_skeleton()
        self.character: str | None = None
        self.framing: str | None = framing
        # an uploaded picture's: whether its figure was found (None: a built-in character)
        self.reference_figure: bool | None = None
        self.last_pose: Pose | None = None          # for offline pictures (realtime/strip.py)
        if character is None:
            from realtime.avatars import gallery

            character = gallery.names()[0]
        self.set_character(character, framing)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.engine.resolution

    @property
    def steps(self) -> int:
        return self.engine.steps

    @property
    def chunk(self) -> int:
        """K: frames the engine generates at once."""
        return self.engine.cfg.chunk

    # --- motion stage (motion thread) ---------------------------------------------------

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> MotionCondition:
        """Camera frame (H, W, 3) uint8 RGB -> the model's condition for it."""
        t0 = time.monotonic()
        frame = self.extractor.process(image, frame_id, t_capture)
        frame.stamps.setdefault("extract", (t0, time.monotonic()))
        return self.prepare_frame(frame)

    def prepare_frame(self, frame: MotionFrame) -> MotionCondition:
        """Extracted landmarks (a camera frame's or a recorded track's) -> condition."""
        t0 = time.monotonic()
        motion = self.processor.process(frame)
        motion.stamps = {**frame.stamps, **motion.stamps}
        motion.stamps.setdefault("motion", (t0, time.monotonic()))
        return self.prepare_motion(motion, frame.frame_id, frame.t_capture)

    def prepare_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> MotionCondition:
        return self.condition(motion, frame_id, t_capture)

    # --- model stage (model thread) -----------------------------------------------------

    def generate(self, prepared: list[MotionCondition]) -> list[GeneratedFrame]:
        """Conditions into the engine; the frames of every chunk they complete."""
        return self.engine.push(prepared)

    def settle(self) -> bool:
        """The engine's cache write for the chunk `generate` returned (off its frames' path)."""
        return self.engine.settle()

    # --- both, on the calling thread (offline) ------------------------------------------

    def process(self, image: np.ndarray, frame_id: int, t_capture: float) -> list[GeneratedFrame]:
        return self.generate([self.prepare(image, frame_id, t_capture)])

    def process_frame(self, frame: MotionFrame) -> list[GeneratedFrame]:
        """Extracted landmarks in (a camera frame or a recorded track's frame)."""
        return self.generate([self.prepare_frame(frame)])

    def process_motion(
        self, motion: NormalizedMotion, frame_id: int, t_capture: float
    ) -> list[GeneratedFrame]:
        return self.generate([self.prepare_motion(motion, frame_id, t_capture)])

    def condition(self, motion: NormalizedMotion, frame_id: int,
                  t_capture: float) -> MotionCondition:
        """Retarget to the current character and render the model's condition."""
        from realtime.motion.condition import render_condition
        from realtime.motion.retarget import retarget

        t0 = time.monotonic()
        pose = retarget(motion, self.skeleton)      # one read: the model thread may swap it
        self.last_pose = pose
        cfg = self.engine.cfg
        cond = render_condition(pose, cfg.pose_size, frame_id, t_capture, sketch=cfg.face_sketch)
        cond.stamps = {**motion.stamps, **cond.stamps, "condition": (t0, time.monotonic())}
        return cond

    @property
    def extractor(self) -> MotionExtractor:
        """MediaPipe starts on the first camera frame, not for motion-only sessions."""
        if self._extractor is None:
            from realtime.motion.extractor import ExtractorConfig, MotionExtractor

            self._extractor = MotionExtractor(ExtractorConfig())
        return self._extractor

    # --- controls: character, reference, steps on the model thread; filter and
    # calibration on the motion thread (see realtime.frames.FramePipeline) -------------

    def set_character(self, name: str, framing: str = "full") -> None:
        """Built-in character: its rendered reference into the identity sink, its
        skeleton for retargeting. KeyError for an unknown name, ValueError for an
        unknown framing.

        `framing` is the shot: "full" (the whole figure), "upper" (head to hips) or
        "face". The reference is the character at rest through that camera and the
        skeleton is seen through the same one, so the stream is drawn in that shot
        (reference and stream share a camera, as the model was trained)."""
        from realtime.avatars import gallery
        from realtime.avatars.render import FRAMINGS, framing_for, render_reference
        from realtime.model.face_paste import HeadShape

        if framing not in FRAMINGS:
            raise ValueError(f"framing {framing!r}; expected one of {', '.join(FRAMINGS)}")
        character = gallery.get(name)
        cam = framing_for(character, framing)
        self.engine.set_reference([render_reference(character, self.engine.cfg.resolution,
                                                    framing=cam)],
                                  head=HeadShape.of(character, cam))
        self.skeleton = character.skeleton.through(cam.center, cam.zoom)
        self.character = name
        self.framing = framing
        self.reference_figure = None

    def prepare_reference(self, image: np.ndarray) -> Reference:
        """An uploaded picture and the skeleton of the figure it shows, measured on the
        square canvas the engine encodes (`realtime.motion.reference`): retargeting
        onto it draws the performer where the picture shows its figure, as a
        built-in character's shot does. None where no figure is found (then the
        default adult, standing full-body). Any thread; ValueError if unusable."""
        from realtime.engine import check_reference_image, pad_square
        from realtime.model.face_paste import HeadShape
        from realtime.motion.reference import measure_upload

        check_reference_image(image)
        try:
            skeleton, features = measure_upload(pad_square(image))
        except ImportError:                         # no MediaPipe (the GPU image)
            return Reference(image)
        head = (HeadShape.of_upload(features, skeleton)
                if skeleton is not None and features is not None else None)
        return Reference(image, skeleton, head)

    def set_reference_image(self, reference: Reference | np.ndarray) -> None:
        """An uploaded picture as the identity; retargets onto its figure's skeleton
        (the default adult where none was found). ValueError if unusable."""
        if not isinstance(reference, Reference):
            reference = self.prepare_reference(reference)
        # the head fitted to its face finds the skin for the hand paste; the face paste
        # it would misplace (the model card's "Uploads: the hand paste")
        self.engine.set_reference([reference.image], head=reference.head, paste_face=False)
        self.skeleton = (reference.skeleton if reference.skeleton is not None
                         else _default_skeleton())
        self.character = None
        self.framing = None                         # an uploaded picture is its own shot
        self.reference_figure = reference.skeleton is not None

    def set_steps(self, steps: int) -> None:
        self.engine.set_steps(steps)

    def set_filter_strength(self, strength: float) -> None:
        self.processor.set_filter_strength(strength)

    def reset_calibration(self) -> None:
        self.processor.reset_calibration()

    def close(self) -> None:
        if self._extractor is not None:
            self._extractor.close()
            self._extractor = None


def _default_skeleton() -> Skeleton:
    from realtime.motion.retarget import default_skeleton

    return default_skeleton()


def create_pipeline_factory(
    checkpoint: str | None = None,
    preset: str | None = None,
    device: Any = None,
    **pipeline_kw: Any,
) -> Callable[[], FramePipeline]:
    """Load the weights once; return a factory making per-session pipelines that
    share them (what the streaming server calls once at start-up)."""
    from realtime.model.checkpoint import load_model

    configure_torch_threads()
    model = load_model(checkpoint, preset, device)
    log.info("model ready: %s on %s, %d frames/chunk, window %d", model.cfg.resolution,
             model.device, model.cfg.chunk, model.cfg.window)

    def factory() -> FramePipeline:
        return AnimationPipeline(model, **pipeline_kw)

    return factory
