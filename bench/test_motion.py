"""Microbenchmarks of the motion stage, on the CPU.

    pytest bench/test_motion.py --benchmark-only --benchmark-json=raw.json
    python bench/test_motion.py raw.json bench/results/motion-cpu.json "notes"

What one call includes:
- extract: `MotionExtractor.process` on one real frame at the default input size
  (ExtractorConfig.long_side), in tracking mode, frames fed in clip order as a webcam
  would (RGB uint8 in, MotionFrame out: validation, resize, Holistic with refined
  face, the Hands fallback when it triggers). Clips: a talking face
  (LivePortrait__d3, 512x512) and a waist-up performer with both hands in view
  (LivePortrait__s20, 480x908). Needs ../shared/media; skipped without it.
- extract_long_side: the same on a full-body dance clip at long sides 256-640, with
  the detection rate per part and the process CPU time (all threads) per frame.
- motion: `MotionProcessor.process` + `retarget` of one frame (filters, face
  features, bone directions, joint placement).
- condition: `render_condition` of one retargeted pose at 64x64 and 256x256.
- measure_upload: an uploaded picture's figure found and measured, and a head fitted
  to its face (a new MediaPipe graph per picture: Holistic, then Face Mesh, which
  places the figure where Holistic finds no body and the pastes' head always).
Warm-up rounds are on (the first Holistic calls detect rather than track). The
conversion step writes the committed JSON (device, commit, date, load average,
median / p95 per call) and prints it as one JSON line.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.machine import summarise_pytest_benchmark

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "driving"
CLIPS = {"face": "LivePortrait__d3.mp4", "hands": "LivePortrait__s20.mp4"}
N_FRAMES = 60


def _frames(name: str, n: int = N_FRAMES) -> list[np.ndarray]:
    import av

    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"real media not found at {path}")
    out = []
    with av.open(str(path)) as c:
        for vf in c.decode(video=0):
            out.append(vf.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return out


@pytest.fixture(scope="module")
def tracks() -> dict[str, list]:
    """MotionFrames of the face clip, for the processor and condition benchmarks."""
    from realtime.motion.extractor import MotionExtractor

    with MotionExtractor() as ex:
        return {"face": [ex.process(f, i, i / 30) for i, f in enumerate(_frames(CLIPS["face"]))]}


@pytest.mark.parametrize("clip", list(CLIPS))
def test_extract(benchmark, clip: str) -> None:
    from realtime.motion.extractor import MotionExtractor

    frames = _frames(CLIPS[clip])
    counter = itertools.count()
    with MotionExtractor() as ex:
        def step():
            i = next(counter)
            return ex.process(frames[i % len(frames)], i, i / 30)

        out = benchmark.pedantic(step, rounds=100, iterations=1, warmup_rounds=10)
    benchmark.extra_info["long_side"] = ex.config.long_side
    benchmark.extra_info["image_size"] = list(out.image_size)
    benchmark.extra_info["hands_fallback_calls"] = ex.hands_fallback_calls
    assert out.face is not None


@pytest.mark.parametrize("long_side", [256, 384, 512, 640])
def test_extract_long_side(benchmark, long_side: int) -> None:
    """How ExtractorConfig.long_side was chosen: cost and detection per input size
    on a full-body dance clip (small hands and face: where size could matter)."""
    import time

    from realtime.motion.extractor import ExtractorConfig, MotionExtractor

    frames = _frames("animate-x__dance_1.mp4", n=48)
    counter = itertools.count()
    found = np.zeros(4)
    cpu_ms: list[float] = []
    with MotionExtractor(ExtractorConfig(long_side=long_side)) as ex:
        def step():
            i = next(counter)
            c0 = time.process_time()
            f = ex.process(frames[i % len(frames)], i, i / 24)
            cpu_ms.append((time.process_time() - c0) * 1e3)
            found[:] += [f.body is not None, f.face is not None,
                         f.left_hand is not None, f.right_hand is not None]
            return f

        benchmark.pedantic(step, rounds=len(frames), iterations=1, warmup_rounds=0)
    benchmark.extra_info["detected_body_face_left_right"] = (found / len(frames)).round(3).tolist()
    benchmark.extra_info["cpu_ms_p50_all_threads"] = round(float(np.median(cpu_ms)), 2)


def test_motion(benchmark, tracks) -> None:
    from realtime.motion.processor import MotionProcessor
    from realtime.motion.retarget import default_skeleton, retarget

    proc, skeleton = MotionProcessor(), default_skeleton()
    cycle = itertools.cycle(tracks["face"])
    benchmark.pedantic(lambda: retarget(proc.process(next(cycle)), skeleton),
                       rounds=300, iterations=1, warmup_rounds=30)


@pytest.mark.parametrize("size", [64, 256])
def test_condition(benchmark, tracks, size: int) -> None:
    from realtime.motion.condition import render_condition
    from realtime.motion.processor import MotionProcessor
    from realtime.motion.retarget import default_skeleton, retarget

    proc, skeleton = MotionProcessor(), default_skeleton()
    poses = itertools.cycle([retarget(proc.process(f), skeleton) for f in tracks["face"]])
    out = benchmark.pedantic(lambda: render_condition(next(poses), size),
                             rounds=500, iterations=1, warmup_rounds=50)
    assert out.pose_maps.shape == (16, size, size)


@pytest.mark.parametrize("picture", ["photo-body", "drawn-face"])
def test_measure_upload(benchmark, picture: str) -> None:
    """What an upload costs before it is swapped in (`prepare_reference`, off the
    session's threads): the figure found in a still and the head fitted to its face,
    a new MediaPipe graph each time. photo-body: a full-length photograph (Holistic
    finds the body, Face Mesh the face); drawn-face: a built-in character's face
    close-up (Holistic finds nothing, Face Mesh places the figure and the head)."""
    from PIL import Image

    from realtime.engine import pad_square
    from realtime.model.face_paste import HeadShape
    from realtime.motion.reference import measure_upload

    def measure() -> tuple[object, object]:
        skeleton, features = measure_upload(square)
        head = None if skeleton is None or features is None else HeadShape.of_upload(
            features, skeleton)
        return skeleton, head

    if picture == "photo-body":
        path = MEDIA.parent / "source" / "Moore-AnimateAnyone__anyone-3.png"
        if not path.exists():
            pytest.skip(f"real media not found at {path}")
        square = pad_square(np.asarray(Image.open(path).convert("RGB")))
    else:
        from realtime.avatars import gallery
        from realtime.avatars.render import framing_for, render_reference

        juniper = gallery.get("juniper")
        square = render_reference(juniper, 512, framing=framing_for(juniper, "face"))
    skeleton, _ = benchmark.pedantic(measure, rounds=20, iterations=1, warmup_rounds=2)
    assert skeleton is not None
    benchmark.extra_info["size"] = list(square.shape[:2])


def summarise(raw: Path, out: Path, notes: str) -> dict:
    """pytest-benchmark JSON -> the committed results file (bench/machine.py)."""
    import mediapipe

    versions = {"mediapipe": mediapipe.__version__}
    return summarise_pytest_benchmark(raw, out, "motion", notes, versions)


if __name__ == "__main__":
    summary = summarise(Path(sys.argv[1]), Path(sys.argv[2]),
                        sys.argv[3] if len(sys.argv) > 3 else "")
    print(json.dumps(summary))
