"""Transport settings tuned for latency, applied per peer connection.

Each knob is a field of `TransportConfig` so it can be measured on and off
(`marionette bench latency`, streaming/TRANSPORT.md):

- `marker_release`: release video frames from aiortc's jitter buffer on the RTP
  marker bit (streaming/jitter.py) instead of one frame later.
- `bwe_floor_bps`: floor under the REMB we send back (streaming/bwe.py).
- `start_bitrate_kbps`: Chrome's `x-google-start-bitrate` added to the answer, so
  the browser's uplink starts there instead of ~300 kbps; the floor then keeps it.
- `codec_order`: video codecs in order of preference. Set on the transceiver
  BEFORE `setRemoteDescription`: when aiortc answers, codecs are chosen inside
  it and preferences set afterwards are silently ignored (aiortc issue #104).
- `h264_preset`: x264 preset (streaming/codecs.py).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass

from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from streaming.bwe import DEFAULT_FLOOR_BPS, FlooredBitrateEstimator
from streaming.codecs import DEFAULT_H264_PRESET
from streaming.jitter import MarkerJitterBuffer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransportConfig:
    marker_release: bool = True
    bwe_floor_bps: int = DEFAULT_FLOOR_BPS          # 0 = aiortc's own estimate
    codec_order: tuple[str, ...] = ("H264", "VP8")  # chosen by measurement: TRANSPORT.md
    h264_preset: str = DEFAULT_H264_PRESET
    start_bitrate_kbps: int = DEFAULT_FLOOR_BPS // 1000  # x-google-start-bitrate; 0 = off


STOCK = TransportConfig(marker_release=False, bwe_floor_bps=0, codec_order=(), h264_preset="medium",
                        start_bitrate_kbps=0)
"""aiortc's behaviour, for before/after measurements."""

PRESETS: dict[str, TransportConfig] = {
    "tuned": TransportConfig(),
    "stock": STOCK,
    # one knob back to stock each, to measure what it buys (TRANSPORT.md)
    "no-marker": TransportConfig(marker_release=False),
    "no-floor": TransportConfig(bwe_floor_bps=0),
    "x264-medium": TransportConfig(h264_preset="medium"),
    "no-start-bitrate": TransportConfig(start_bitrate_kbps=0),
}


def transport_preset(name: str, codec_order: str | None = None) -> TransportConfig:
    """A named preset, optionally with codec order overridden ("VP8,H264")."""
    config = PRESETS[name]
    if codec_order:
        order = tuple(c.strip().upper() for c in codec_order.split(",") if c.strip())
        config = dataclasses.replace(config, codec_order=order)
    return config


def video_codec_preferences(order: tuple[str, ...]) -> list[RTCRtpCodecCapability]:
    """aiortc's video capabilities sorted by `order` (names like "H264", "VP8");
    codecs not named keep their place after the named ones; RTX stays enabled."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    rank = {name.upper(): i for i, name in enumerate(order)}

    def key(cap: RTCRtpCodecCapability) -> int:
        name = cap.mimeType.split("/")[1].upper()
        return rank.get(name, len(rank) + (1 if name == "RTX" else 0))

    return sorted(caps, key=key)


def prefer_codecs(transceiver: RTCRtpTransceiver, order: tuple[str, ...]) -> None:
    """Set codec preferences; call before setRemoteDescription / createOffer."""
    if order:
        transceiver.setCodecPreferences(video_codec_preferences(order))


def tune_receiver(receiver: RTCRtpReceiver, config: TransportConfig) -> None:
    """Swap in the marker-bit jitter buffer and the floored bandwidth estimator.

    aiortc keeps both as private attributes created in `RTCRtpReceiver.__init__`;
    replacing them before the first packet arrives (i.e. before the answer is
    applied and ICE connects) is safe. Pinned to aiortc 1.16's attribute names;
    if they change we log and keep the stock behaviour.
    """
    if receiver.track is not None and receiver.track.kind != "video":
        return
    names = ("_RTCRtpReceiver__jitter_buffer", "_RTCRtpReceiver__remote_bitrate_estimator")
    if not all(hasattr(receiver, n) for n in names):
        log.warning("aiortc internals changed: marker-bit release and BWE floor not applied")
        return
    if getattr(receiver, "_RTCRtpReceiver__kind", "video") != "video":
        return
    if config.marker_release:
        setattr(receiver, names[0], MarkerJitterBuffer(capacity=512))
    if config.bwe_floor_bps > 0:
        setattr(receiver, names[1], FlooredBitrateEstimator(config.bwe_floor_bps))


def with_start_bitrate(sdp: str, kbps: int) -> str:
    """Add Chrome's `x-google-start-bitrate` to every H264/VP8 payload of an answer,
    so its uplink starts at `kbps` instead of ~300 kbps (a Chrome extension;
    other browsers ignore it)."""
    if kbps <= 0:
        return sdp
    lines = sdp.split("\r\n")
    video_pts = {m.group(1) for line in lines
                 if (m := re.match(r"a=rtpmap:(\d+) (H264|VP8)/", line))}
    out = []
    with_fmtp = set()
    for line in lines:
        m = re.match(r"a=fmtp:(\d+) (.*)", line)
        if m and m.group(1) in video_pts:
            line += f";x-google-start-bitrate={kbps}"
            with_fmtp.add(m.group(1))
        out.append(line)
        m = re.match(r"a=rtpmap:(\d+) VP8/", line)
        if m and m.group(1) not in with_fmtp and f"a=fmtp:{m.group(1)} " not in sdp:
            out.append(f"a=fmtp:{m.group(1)} x-google-start-bitrate={kbps}")
    return "\r\n".join(out)
