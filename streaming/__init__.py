"""WebRTC server: aiohttp + aiortc, sessions, tracks, telemetry."""
