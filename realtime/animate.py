"""`marionette animate`: animate a character with a driving video or motion track,
offline, frame by frame exactly as a streaming session would (the same
`AnimationPipeline`: extraction, filtering, retargeting, condition, engine).

    marionette animate --character NAME | --reference IMG
                       --driving VIDEO | TRACK.npz --out OUT.mp4
                       [--checkpoint C] [--preset P] [--steps S] [--json OUT.json]
                       [--strip OUT.png [--strip-columns N]]

The JSON summary: {frames, fps, ms_per_frame: {stage: {p50, p95}}, ...}. Stages
'extract', 'motion', 'condition' are per input frame; 'cache_write' (the previous
chunk's, which the engine makes before the next: nothing here waits for frames to
leave), 'model' and 'decode' run once per chunk of K frames and are reported per frame
(chunk time / K); 'total' is their sum per frame. When the driving input ends
mid-chunk, the last motion is repeated to complete the chunk and only the real frames
are written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime.avatars.cli import FRAMINGS
from realtime.frames import GeneratedFrame
from realtime.motion.types import MotionFrame
from realtime.strip import StripRecorder, pick_frames

if TYPE_CHECKING:
    from realtime.pipeline import AnimationPipeline

STAGES = ("extract", "motion", "condition", "cache_write", "model", "decode")
CHUNK_STAGES = ("cache_write", "model", "decode")


class InputError(Exception):
    """A user-caused problem with the inputs: exit 2 with this one-line reason."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--character", help="built-in character (default: the first one)")
    who.add_argument("--reference", help="reference image (PNG/JPEG) of the character; the stream "
                     "is drawn where its figure stands (when MediaPipe finds one)")
    parser.add_argument("--framing", choices=FRAMINGS, default="full",
                        help="shot of a built-in character: full body, upper (head to hips) "
                             "or face")
    parser.add_argument("--driving", required=True, help="driving video, or a .npz motion "
                        "track from `marionette motion`")
    parser.add_argument("--out", required=True, help="output video (.mp4)")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--preset", help="tiny | cpu | cpu32 | gpu (default: per device)")
    parser.add_argument("--steps", type=int, help="denoising steps 1-4 (default: checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-frames", type=int, help="stop after this many input frames")
    parser.add_argument("--json", help="write the summary JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--strip", help="also write a picture: input, landmarks, condition, "
                        "studio render and output for a few frames (realtime/strip.py)")
    parser.add_argument("--strip-columns", type=int, default=6, help="frames in the strip")


# --- inputs -------------------------------------------------------------------------------


def _read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise InputError(f"cannot read reference image {path}: {e}") from e


def _video_frames(path: Path) -> tuple[float, int | None, Iterator[tuple[np.ndarray, float]]]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"cannot read driving video {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {path}")
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 30.0)

    def frames() -> Iterator[tuple[np.ndarray, float]]:
        try:
            for i, vf in enumerate(container.decode(stream)):
                yield vf.to_ndarray(format="rgb24"), (float(vf.time) if vf.time is not None
                                                      else i / fps)
        finally:
            container.close()

    return fps, stream.frames or None, frames()


def _drive(pipe: AnimationPipeline, driving: Path, max_frames: int | None,
           progress: Any, strip: StripRecorder | None = None,
           ) -> tuple[float, Iterator[list[GeneratedFrame]]]:
    """fps and an iterator of the frames each input produced."""
    if driving.suffix.lower() == ".npz":
        from realtime.motion.track import load_track, track_meta

        try:
            track = load_track(driving)
            fps = float(track_meta(driving).get("fps", 30.0))
        except (ValueError, OSError, KeyError) as e:
            raise InputError(f"cannot read motion track {driving}: {e}") from e
        track = track[:max_frames] if max_frames else track
        task = progress.add_task("animate", total=len(track))

        def from_track() -> Iterator[list[GeneratedFrame]]:
            for mf in track:
                yield _step(pipe, mf, None, strip)
                progress.advance(task)

        return fps, from_track()

    fps, total, frames = _video_frames(driving)
    if max_frames:
        total = min(total or max_frames, max_frames)
    task = progress.add_task("animate", total=total)

    def from_video() -> Iterator[list[GeneratedFrame]]:
        for i, (rgb, t) in enumerate(frames):
            if max_frames and i >= max_frames:
                break
            t0 = time.monotonic()
            mf = pipe.extractor.process(rgb, i, t)
            mf.stamps.setdefault("extract", (t0, time.monotonic()))
            yield _step(pipe, mf, rgb, strip)
            progress.advance(task)

    return fps, from_video()


def _step(pipe: AnimationPipeline, mf: MotionFrame, rgb: np.ndarray | None,
          strip: StripRecorder | None) -> list[GeneratedFrame]:
    """One input frame through the pipeline's two stages, as a live session runs them
    (`prepare_frame` on the motion thread, `generate` on the model thread)."""
    cond = pipe.prepare_frame(mf)
    if strip is not None and strip.wants(mf.frame_id):
        if rgb is not None:
            strip.record_input(mf.frame_id, rgb, mf)
        if pipe.last_pose is not None:
            strip.record_motion(mf.frame_id, pipe.last_pose, cond)
    out = pipe.generate([cond])
    if strip is not None:
        for f in out:
            strip.record_output(f.frame_id, f.image)
    return out


def _strip_recorder(args: argparse.Namespace, pipe: AnimationPipeline,
                    driving: Path) -> StripRecorder | None:
    if not args.strip:
        return None
    if driving.suffix.lower() == ".npz":
        from realtime.motion.track import load_track

        length: int | None = len(load_track(driving))
    else:
        length = _video_frames_count(driving)
    total = min(filter(None, (length, args.max_frames)), default=None)
    character = camera = None
    if pipe.character is not None:
        from realtime.avatars import gallery
        from realtime.avatars.render import framing_for

        character = gallery.get(pipe.character)
        camera = framing_for(character, pipe.framing)
    return StripRecorder(pick_frames(total, args.strip_columns), character=character,
                         camera=camera)


def _video_frames_count(path: Path) -> int | None:
    import av

    try:
        with av.open(str(path)) as c:
            return c.streams.video[0].frames or None if c.streams.video else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def _flush(pipe: AnimationPipeline) -> list[GeneratedFrame]:
    """Complete a partial chunk by repeating its last condition; keep the real frames."""
    pending = pipe.engine.pending
    if not pending:
        return []
    filler = replace(pending[-1], frame_id=-1, stamps={})
    out: list[GeneratedFrame] = []
    while pipe.engine.pending:
        out += pipe.engine.push([filler])
    return [f for f in out if f.frame_id != -1]


# --- output -------------------------------------------------------------------------------


class _Writer:
    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        from fractions import Fraction

        self.stream = self.container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "18", "preset": "veryfast"}

    def write(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def stage_summary(frames: list[GeneratedFrame], chunk: int) -> dict[str, dict[str, float]]:
    """{stage: {p50, p95}} in ms per frame, plus 'total' (sum of stages per frame)."""
    per: dict[str, list[float]] = {s: [] for s in STAGES}
    totals = []
    for f in frames:
        total = 0.0
        for s in STAGES:
            if s in f.stamps:
                a, b = f.stamps[s]
                ms = (b - a) * 1e3 / (chunk if s in CHUNK_STAGES else 1)
                per[s].append(ms)
                total += ms
        totals.append(total)
    per["total"] = totals
    return {s: {"p50": round(float(np.percentile(v, 50)), 3),
                "p95": round(float(np.percentile(v, 95)), 3)} for s, v in per.items() if v}


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except InputError as e:
        print(f"marionette animate: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from realtime.model.checkpoint import CheckpointError, load_model
    from realtime.pipeline import AnimationPipeline

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    driving = Path(args.driving)
    if not driving.is_file():
        raise InputError(f"driving input not found: {driving}")
    if args.steps is not None and not 1 <= args.steps <= 4:
        raise InputError(f"--steps must be in 1..4, got {args.steps}")
    reference = _read_image(args.reference) if args.reference else None
    from realtime.engine import configure_torch_threads

    configure_torch_threads()
    try:
        model = load_model(args.checkpoint, args.preset, seed=args.seed)
    except (CheckpointError, KeyError) as e:
        raise InputError(str(e).strip("'\"")) from e
    try:
        pipe = AnimationPipeline(model, character=args.character, framing=args.framing,
                                 steps=args.steps, seed=args.seed)
        if reference is not None:
            pipe.set_reference_image(reference)
    except KeyError as e:
        raise InputError(str(e).strip("'\"")) from e
    except ValueError as e:
        raise InputError(str(e)) from e

    out_frames: list[GeneratedFrame] = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        disable=args.quiet)
    writer: _Writer | None = None
    strip: StripRecorder | None = None
    try:
        with progress:
            strip = _strip_recorder(args, pipe, driving)
            fps, produced = _drive(pipe, driving, args.max_frames, progress, strip)
            writer = _Writer(Path(args.out), fps, pipe.resolution)
            for frames in produced:
                for f in frames:
                    writer.write(f.image)
                out_frames += frames
            for f in _flush(pipe):
                writer.write(f.image)
                out_frames.append(f)
                if strip is not None:
                    strip.record_output(f.frame_id, f.image)
    finally:
        if writer is not None:
            writer.close()
        pipe.close()
    if not out_frames:
        raise InputError(f"no frames could be read from {driving}")

    if strip is not None:
        from PIL import Image

        Image.fromarray(strip.compose()).save(args.strip)
    summary = {
        "frames": len(out_frames),
        "fps": fps,
        "resolution": list(pipe.resolution),
        "steps": pipe.engine.steps,
        "preset_resolution": model.cfg.resolution,
        "chunk": model.cfg.chunk,
        "character": pipe.character,
        "framing": pipe.framing,
        "reference_figure": pipe.reference_figure,
        "out": str(args.out),
        "ms_per_frame": stage_summary(out_frames, model.cfg.chunk),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0
