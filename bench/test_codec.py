"""Microbenchmarks: video encode and decode per frame with aiortc's own codec classes.

    pytest bench/test_codec.py --benchmark-only --benchmark-json=raw.json
    python bench/test_codec.py raw.json bench/results/latency-codec-cpu.json "notes"

What one call includes: encode = RGB -> yuv420p conversion, the encoder, and RTP
packetisation (aiortc's `Encoder.encode`), the work the server does per output frame;
decode = RTP depayloading plus the decoder (aiortc's `Decoder.decode`), the work the
server does per input frame. Excluded: the network, the jitter buffer, pacing.

Sizes: the model presets' output resolutions (what the server encodes) and the
camera's 640x480 (what the server decodes). Content: 30 frames of a moving pattern
with noise, cycled, so the encoder sees motion and never a static scene. The first
calls (warm-up rounds) open the codec and produce the keyframe; the decode stream
holds one keyframe per 30 frames. Codecs: VP8, H264 with aiortc's defaults (x264
falls back to its `medium` preset), and H264 as the server configures it
(streaming.codecs.FastH264Encoder, `veryfast`) when that module is present.
"""

from __future__ import annotations

import fractions
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("aiortc")

from aiortc.codecs import depayload  # noqa: E402
from aiortc.codecs.base import Decoder, Encoder  # noqa: E402
from aiortc.codecs.h264 import H264Decoder, H264Encoder  # noqa: E402
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder  # noqa: E402
from aiortc.jitterbuffer import JitterFrame  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpCodecParameters  # noqa: E402

N_FRAMES = 30
TIME_BASE = fractions.Fraction(1, 90_000)


def _sizes() -> dict[str, tuple[int, int]]:
    """name -> (width, height): each model preset's output, and the camera input."""
    try:
        from realtime.model.config import PRESETS

        sizes = {f"{n}-preset": (c.resolution, c.resolution) for n, c in PRESETS.items()
                 if n != "tiny"}
    except ImportError:                # model code absent: the sizes the presets use
        sizes = {"cpu-preset": (128, 128), "gpu-preset": (256, 256)}
    return {**sizes, "camera": (640, 480)}


def _encoders() -> dict[str, Callable[[], Encoder]]:
    enc: dict[str, Callable[[], Encoder]] = {"vp8": Vp8Encoder, "h264-aiortc": H264Encoder}
    try:
        from streaming.codecs import FastH264Encoder

        enc["h264-server"] = FastH264Encoder
    except ImportError:
        pass
    return enc


DECODERS: dict[str, tuple[Callable[[], Decoder], str]] = {
    "vp8": (Vp8Decoder, "video/VP8"),
    "h264": (H264Decoder, "video/H264"),
}


def _frames(width: int, height: int) -> list[Any]:
    """N_FRAMES RGB av.VideoFrames of a moving gradient, a moving block and noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(N_FRAMES):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (x + 4 * i) % 256
        img[..., 1] = (y + 2 * i) % 256
        img[..., 2] = 128
        bx, by = (i * width // N_FRAMES), height // 3
        img[by:by + height // 4, bx:bx + width // 6] = (240, 240, 40)
        img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255)
        frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
        frames.append(frame)
    return frames


class _Cycle:
    """Feeds frames in a loop with ever-increasing pts (30 fps on the 90 kHz clock)."""

    def __init__(self, frames: list[Any]) -> None:
        self.frames, self.i = frames, 0

    def next(self) -> Any:
        frame = self.frames[self.i % len(self.frames)]
        frame.pts, frame.time_base = self.i * 3000, TIME_BASE
        self.i += 1
        return frame


@pytest.mark.parametrize("size", list(_sizes()))
@pytest.mark.parametrize("codec", list(_encoders()))
def test_encode(benchmark: Any, codec: str, size: str) -> None:
    width, height = _sizes()[size]
    encoder = _encoders()[codec]()
    source = _Cycle(_frames(width, height))

    def encode() -> int:
        payloads, _ = encoder.encode(source.next())
        return sum(len(p) for p in payloads)

    benchmark.extra_info.update(codec=codec, width=width, height=height)
    nbytes = benchmark.pedantic(encode, rounds=60, iterations=1, warmup_rounds=5)
    assert nbytes > 0


def _encoded_stream(codec: str, width: int, height: int) -> list[JitterFrame]:
    """N_FRAMES encoded, depayloaded frames; the first (and only the first) a keyframe."""
    encoder: Encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    params = RTCRtpCodecParameters(mimeType=DECODERS[codec][1], clockRate=90_000,
                                   payloadType=96)
    source = _Cycle(_frames(width, height))
    stream = []
    for i in range(N_FRAMES):
        payloads, ts = encoder.encode(source.next(), force_keyframe=i == 0)
        stream.append(JitterFrame(b"".join(depayload(params, p) for p in payloads), ts))
    return stream


@pytest.mark.parametrize("size", list(_sizes()))
@pytest.mark.parametrize("codec", list(DECODERS))
def test_decode(benchmark: Any, codec: str, size: str) -> None:
    width, height = _sizes()[size]
    stream = _encoded_stream(codec, width, height)
    decoder = DECODERS[codec][0]()
    state = {"i": 0}

    def decode() -> int:
        frames = decoder.decode(stream[state["i"] % N_FRAMES])
        state["i"] += 1
        return len(frames)

    benchmark.extra_info.update(codec=codec, width=width, height=height)
    benchmark.pedantic(decode, rounds=60, iterations=1, warmup_rounds=N_FRAMES)
    # a decodable stream: every frame of a fresh pass comes out, at the right size
    check = DECODERS[codec][0]()
    out = [f for jf in stream for f in check.decode(jf)]
    assert len(out) == N_FRAMES
    assert all(isinstance(f, av.VideoFrame) and (f.width, f.height) == (width, height)
               for f in out)


def summarise(raw: Path, out: Path, notes: str) -> dict[str, Any]:
    """pytest-benchmark JSON -> the committed results file (bench/machine.py)."""
    import aiortc
    import av

    from bench.machine import summarise_pytest_benchmark

    versions = {"aiortc": aiortc.__version__, "av": av.__version__}
    return summarise_pytest_benchmark(raw, out, "codec", notes, versions)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(json.dumps(summarise(Path(sys.argv[1]), Path(sys.argv[2]),
                               sys.argv[3] if len(sys.argv) > 3 else "")))
