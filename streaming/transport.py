"""Transport settings tuned for latency, applied per peer connection.

Each knob is a field of `TransportConfig` so it can be measured on and off
(`marionette bench latency`, streaming/TRANSPORT.md):

- `marker_release`: release video frames from aiortc's jitter buffer on the RTP
  marker bit (streaming/jitter.py) instead of one frame later.
- `bwe_floor_bps`: floor under the REMB we send back (streaming/bwe.py).
- `codec_order`: video codecs in order of preference. Set on the transceiver
  BEFORE `setRemoteDescription`: when aiortc answers, codecs are chosen inside
  it and preferences set afterwards are silently ignored (aiortc issue #104).
- `h264_preset`: x264 preset (streaming/codecs.py).
"""

from __future__ import annotations

import logging
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


STOCK = TransportConfig(marker_release=False, bwe_floor_bps=0, codec_order=(), h264_preset="medium")
"""aiortc's behaviour, for before/after measurements."""

PRESETS: dict[str, TransportConfig] = {
    "tuned": TransportConfig(),
    "stock": STOCK,
    # one knob back to stock each, to measure what it buys (TRANSPORT.md)
    "no-marker": TransportConfig(marker_release=False),
    "no-floor": TransportConfig(bwe_floor_bps=0),
    "x264-medium": TransportConfig(h264_preset="medium"),
}


def transport_preset(name: str, codec_order: str | None = None) -> TransportConfig:
    """A named preset, optionally with codec order overridden ("VP8,H264")."""
    config = PRESETS[name]
    if codec_order:
        order = tuple(c.strip().upper() for c in codec_order.split(",") if c.strip())
        config = TransportConfig(config.marker_release, config.bwe_floor_bps, order,
                                 config.h264_preset)
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
