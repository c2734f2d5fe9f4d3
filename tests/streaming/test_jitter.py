"""Marker-bit release: a complete frame leaves the jitter buffer on its last
packet, not one frame later; losses still fall back to aiortc's rule."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from streaming.jitter import MarkerJitterBuffer


def packet(seq: int, timestamp: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]   # what aiortc's depayloader sets
    return p


def frame_packets(first_seq: int, timestamp: int, parts: list[bytes]) -> list[RtpPacket]:
    return [packet(first_seq + i, timestamp, i == len(parts) - 1, part)
            for i, part in enumerate(parts)]


def test_frame_is_released_on_its_marker_packet() -> None:
    buffer = MarkerJitterBuffer()
    released = [buffer.add(p)[1] for p in frame_packets(100, 3000, [b"ab", b"cd", b"ef"])]
    assert released[:2] == [None, None]
    assert released[2] is not None
    assert released[2].data == b"abcdef" and released[2].timestamp == 3000


def test_stock_buffer_holds_the_frame_until_the_next_one_starts() -> None:
    """The behaviour being fixed: aiortc releases frame N on frame N+1's first packet."""
    stock = JitterBuffer(capacity=512, is_video=True)
    released = [stock.add(p)[1] for p in frame_packets(100, 3000, [b"ab", b"cd", b"ef"])]
    assert released == [None, None, None]
    _, frame = stock.add(packet(103, 6000, False, b"gh"))
    assert frame is not None and frame.data == b"abcdef"


def test_consecutive_frames_come_out_whole_and_in_order() -> None:
    buffer = MarkerJitterBuffer()
    out = []
    seq = 65530                                      # crosses the 16-bit wrap
    for n in range(5):
        parts = [bytes([n, k]) for k in range(n + 1)]
        for p in frame_packets(seq, 1000 * n, parts):
            frame = buffer.add(p)[1]
            if frame is not None:
                out.append(frame)
        seq = (seq + len(parts)) & 0xFFFF
    assert [f.timestamp for f in out] == [0, 1000, 2000, 3000, 4000]
    assert out[3].data == bytes([3, 0, 3, 1, 3, 2, 3, 3])


def test_missing_middle_packet_holds_the_frame_until_it_arrives() -> None:
    buffer = MarkerJitterBuffer()
    a, b, c = frame_packets(10, 500, [b"1", b"2", b"3"])
    assert buffer.add(a)[1] is None
    assert buffer.add(c)[1] is None                  # marker seen, but a gap before it
    frame = buffer.add(b)[1]                         # retransmission fills the gap
    assert frame is not None and frame.data == b"123"


def test_lost_marker_packet_falls_back_to_the_timestamp_change() -> None:
    buffer = MarkerJitterBuffer()
    a, b, _lost_marker = frame_packets(10, 500, [b"1", b"2", b"3"])
    buffer.add(a)
    buffer.add(b)
    # the sender moved on; the receiver filled seq 12 from the next frame's numbering
    frame = buffer.add(packet(12, 800, False, b"x"))[1]
    assert frame is not None and frame.timestamp == 500 and frame.data == b"12"
