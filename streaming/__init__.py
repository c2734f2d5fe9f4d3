"""WebRTC server: aiohttp + aiortc, sessions, tracks, telemetry.

    server.py     `marionette serve`: routes (/offer, WHIP, WHEP, /metrics, ...), sessions
    session.py    one connection: receive -> mailbox -> worker thread -> paced output
    mailbox.py    the 1-slot newest-frame mailbox
    tracks.py     the paced output track and WHEP viewer tracks
    control.py    control-channel messages and reference-image checks
    telemetry.py  the per-frame telemetry record (schema documented there)
    barcode.py    frame-index barcode drawn into input pixels
    transport.py  latency tuning knobs (TransportConfig); jitter.py, bwe.py, codecs.py
    metrics.py    Prometheus text; auth.py: token for non-loopback binds
    TRANSPORT.md  what each transport knob was measured to buy
"""
