"""A floor under aiortc's receive-side bandwidth estimate (REMB).

aiortc's `RemoteBitrateEstimator` starts from the measured incoming rate and
ramps slowly, and Chrome caps its uplink at the REMB it is sent: WEBRTC-NOTES
measured Chrome starting near 200 kbps and reaching only ~800 kbps after 20 s,
so the model saw a blurry, downscaled face. On the paths this server is meant
for (loopback, LAN, a decent uplink) 1.5 Mbps is safe, so the estimate we send
back never goes below the floor; real congestion still shows up as loss, which
Chrome's loss-based controller reacts to on its own.
"""

from __future__ import annotations

from aiortc.rate import RemoteBitrateEstimator

DEFAULT_FLOOR_BPS = 1_500_000


class FlooredBitrateEstimator(RemoteBitrateEstimator):
    """`RemoteBitrateEstimator` whose REMB never reports less than `floor_bps`."""

    def __init__(self, floor_bps: int = DEFAULT_FLOOR_BPS) -> None:
        super().__init__()
        self.floor_bps = floor_bps

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        estimate = super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)
        if estimate is None:
            return None
        bitrate, ssrcs = estimate
        return max(bitrate, self.floor_bps), ssrcs
