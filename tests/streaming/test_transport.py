"""Receive-side tuning: the REMB floor and the start-bitrate hint in answers."""

from __future__ import annotations

from streaming.bwe import FlooredBitrateEstimator
from streaming.transport import with_start_bitrate


def test_remb_never_reports_below_the_floor() -> None:
    estimator = FlooredBitrateEstimator(floor_bps=1_500_000)
    reports = []
    # a trickle of small packets: aiortc's own estimate would be a few kbit/s
    for i in range(400):
        remb = estimator.add(arrival_time_ms=1000 + 33 * i, abs_send_time=(33 * i) << 8,
                             payload_size=200, ssrc=1234)
        if remb is not None:
            reports.append(remb)
    assert reports, "the estimator sent no REMB at all"
    assert all(bitrate >= 1_500_000 and ssrcs == [1234] for bitrate, ssrcs in reports)


def test_start_bitrate_is_added_to_every_video_codec_and_nothing_else() -> None:
    answer = "\r\n".join([
        "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99", "a=rtpmap:97 VP8/90000",
        "a=rtpmap:98 H264/90000", "a=fmtp:98 packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:99 rtx/90000", "a=fmtp:99 apt=98", "",
    ])
    munged = with_start_bitrate(answer, 1500).split("\r\n")
    assert "a=fmtp:97 x-google-start-bitrate=1500" in munged
    assert ("a=fmtp:98 packetization-mode=1;profile-level-id=42e01f;"
            "x-google-start-bitrate=1500") in munged
    assert "a=fmtp:99 apt=98" in munged                         # RTX untouched
    assert with_start_bitrate(answer, 0) == answer
