"""Our codec wrappers: x264 on the preset asked for, per-frame timing stamps, and
decoded frames that keep their exact RTP timestamp (the telemetry key)."""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streaming import barcode, codecs
from streaming.transport import video_codec_preferences

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102,
                             parameters={"packetization-mode": "1",
                                         "profile-level-id": "42e01f"})


def frames(n: int) -> list[av.VideoFrame]:
    out = []
    for i in range(n):
        image = barcode.encode(np.full((240, 320, 3), 60 + 5 * i, np.uint8), i)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = 3001 * i + 1, fractions.Fraction(1, 90000)   # odd pts
        out.append(frame)
    return out


@pytest.mark.parametrize("codec", [VP8, H264], ids=["VP8", "H264"])
def test_roundtrip_keeps_exact_timestamps_and_stamps_both_sides(
    codec: RTCRtpCodecParameters,
) -> None:
    encoder, decoder = codecs.make_encoder(codec), codecs.make_decoder(codec)
    seen, sent = [], []
    for i, frame in enumerate(frames(12)):
        stamps: dict[str, Any] = {}
        frame.opaque = stamps
        payloads, timestamp = encoder.encode(frame, force_keyframe=(i == 0))
        assert frame.opaque["encode"][0] <= frame.opaque["encode"][1]
        assert frame.opaque["rtp_timestamp"] == timestamp       # what telemetry reports
        sent.append((timestamp, i))
        data = b"".join(depayload(codec, p) for p in payloads)
        for out in decoder.decode(JitterFrame(data, timestamp)):
            assert isinstance(out, av.VideoFrame) and isinstance(out.opaque, dict)
            assert out.opaque["video_decode"][0] <= out.opaque["video_decode"][1]
            seen.append((out.pts, barcode.decode(out.to_ndarray(format="rgb24"))))
    assert seen == sent                      # same timestamp, same picture, both ends


def test_h264_encoder_uses_the_preset_given() -> None:
    encoder = codecs.FastH264Encoder("ultrafast")
    context = encoder._open(frames(1)[0])          # aiortc would fall back to "medium"
    assert context.options["preset"] == "ultrafast" and context.options["tune"] == "zerolatency"
    assert list(encoder._encode_frame(frames(1)[0], force_keyframe=True))   # it encodes
    with pytest.raises(ValueError, match="preset"):
        codecs.FastH264Encoder("warp-speed")


def test_codec_preferences_follow_the_order_given() -> None:
    names = [c.mimeType for c in video_codec_preferences(("VP8", "H264"))]
    assert names[0] == "video/VP8" and names.index("video/H264") < names.index("video/rtx")
    names = [c.mimeType for c in video_codec_preferences(("H264", "VP8"))]
    assert names[0] == "video/H264" and names[-1] == "video/rtx"
