"""`marionette motion`: extract motion from a video file.

    marionette motion --input VIDEO [--overlay OUT.mp4] [--track OUT.npz] [--json OUT.json]

Decodes with PyAV (any codec FFmpeg reads: H.264, HEVC, MPEG-4 Part 2, ...), runs
the streaming extractor frame by frame as a webcam would feed it, and writes an
overlay video (landmarks + face-feature gauges), a track (.npz, realtime/motion/
track.py) and/or a JSON summary: frames, detected fraction per part, and extraction
time per frame (p50, p95; extraction alone, not decoding or drawing). A missing or
unreadable input exits with status 2 and a one-line reason; a file truncated
mid-stream keeps the frames decoded before the damage and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="video file to read")
    parser.add_argument("--overlay", help="write an overlay video (.mp4) here")
    parser.add_argument("--track", help="write the landmark track (.npz) here")
    parser.add_argument("--json", help="write a JSON summary here")
    parser.add_argument("--long-side", type=int, default=None,
                        help="resize so the long side is at most this (default: extractor's)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    parser.add_argument("--no-hands-fallback", action="store_true",
                        help="Holistic only, without the standalone Hands model")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _fail(reason: str) -> int:
    print(f"marionette motion: {reason}", file=sys.stderr)
    return 2


def _percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50": float("nan"), "p95": float("nan"), "mean": float("nan")}
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean())}


class _OverlayWriter:
    """H.264 mp4 writer; pads frames to even sizes (yuv420p needs them)."""

    def __init__(self, path: str, fps: float) -> None:
        import av

        self._container = av.open(path, mode="w")
        self._fps = fps
        self._stream: Any = None

    def write(self, rgb: np.ndarray) -> None:
        import av

        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._stream is None:
            from fractions import Fraction

            rate = Fraction(self._fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "23", "preset": "veryfast"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()


def run(args: argparse.Namespace) -> int:
    import av

    from realtime.motion.extractor import ExtractorConfig, MotionExtractor
    from realtime.motion.overlay import render_overlay
    from realtime.motion.processor import MotionProcessor
    from realtime.motion.track import save_track
    from realtime.motion.types import PARTS, MotionFrame

    path = Path(args.input)
    if not path.is_file():
        return _fail(f"input not found: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return _fail(f"cannot read {path}: {e}")
    if not container.streams.video:
        container.close()
        return _fail(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = float(stream.average_rate or 30.0)
    total = stream.frames or None
    if args.max_frames and total:
        total = min(total, args.max_frames)

    for out in (args.overlay, args.track, args.json):
        if out and not Path(out).resolve().parent.is_dir():
            container.close()
            return _fail(f"cannot write {out}: its directory does not exist")
    writer = None
    if args.overlay:
        try:
            writer = _OverlayWriter(args.overlay, fps)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            container.close()
            return _fail(f"cannot write {args.overlay}: {e}")
    config = ExtractorConfig(hands_fallback=not args.no_hands_fallback)
    if args.long_side is not None:
        config.long_side = args.long_side
    extractor = MotionExtractor(config)
    processor = MotionProcessor() if args.overlay else None
    frames: list[MotionFrame] = []
    extract_ms: list[float] = []
    warning = None

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("motion"), BarColumn(), TextColumn("{task.completed} frames"),
                        TimeRemainingColumn(), disable=args.quiet, transient=False)
    try:
        with progress:
            task = progress.add_task("extract", total=total)
            try:
                for i, vf in enumerate(container.decode(stream)):
                    if args.max_frames and i >= args.max_frames:
                        break
                    rgb = vf.to_ndarray(format="rgb24")
                    t = float(vf.time) if vf.time is not None else i / fps
                    t0 = time.perf_counter()
                    mf = extractor.process(rgb, frame_id=i, t_capture=t)
                    extract_ms.append((time.perf_counter() - t0) * 1e3)
                    frames.append(mf)
                    if writer is not None and processor is not None:
                        writer.write(render_overlay(rgb, mf, processor.process(mf)))
                    progress.advance(task)
            except av.error.FFmpegError as e:  # truncated or corrupt mid-stream
                warning = f"decoding stopped after {len(frames)} frames: {e}"
    finally:
        extractor.close()
        container.close()
        if writer is not None:
            writer.close()

    if warning:
        print(f"marionette motion: warning: {warning}", file=sys.stderr)
    if not frames:
        return _fail(f"no frames could be decoded from {path}")

    n = len(frames)
    detected = {p: sum(getattr(f, p) is not None for f in frames) / n for p in PARTS}
    summary: dict[str, Any] = {
        "input": str(path),
        "frames": n,
        "fps": fps,
        "image_size": list(frames[0].image_size),
        "detected": detected,
        "ms_per_frame": _percentiles(extract_ms[min(5, n - 1):]),  # skip graph warm-up
        "long_side": config.long_side,
        "hands_fallback_calls": extractor.hands_fallback_calls,
        "truncated": warning,
    }
    if args.track:
        save_track(args.track, frames, meta={"source": str(path), "fps": fps})
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        det = ", ".join(f"{p} {v:.0%}" for p, v in detected.items())
        ms = summary["ms_per_frame"]
        print(f"{n} frames; detected {det}; extraction p50 {ms['p50']:.1f} ms, "
              f"p95 {ms['p95']:.1f} ms")
    return 0
