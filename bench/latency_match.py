"""Pairing input frames with the generated frames made from them, by id.

Three event streams reach the client, in any order:

    sent       client frame index -> capture time          (client clock)
    received   output frame pts   -> arrival time          (client clock)
    telemetry  one record per generated frame: frame_id, input_id (the client index
               the server read from the barcode in the input pixels), out_pts (the pts
               of the output frame that carried it), per-stage [start, end] stamps and
               cumulative drop counters                      (server clock)

A generated frame is *matched* when its telemetry record, the arrival of `out_pts` and
the capture of `input_id` are all known: e2e latency = arrival - capture. Matching
goes through the ids only, never through arrival order. The output track repeats
the last frame when the model stalls; those repeats carry pts no telemetry record
names and are counted as repeats, not as frames. A pts that arrives twice counts
once, at its first arrival; a telemetry record seen twice counts once.

A sent frame that no generated frame came from is *dropped* if a later input did
make it through (the pipeline chose a newer frame over it), and *in flight* if it
was captured after the last input that made it through (the run ended first). One
whose generated frame never arrived (or, in the browser, was never shown) is a
*lost input*, with the record counted in `lost_outputs`. So every input is exactly
one of: matched, dropped, lost, in flight.

Same machine, so client and server share one CLOCK_MONOTONIC: server stamps and client
times subtract directly.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Server stage names (streaming/telemetry.py STAGE_ORDER), in pipeline order, and the
# label each is reported under. Names the server adds later keep their own.
SERVER_STAGES: dict[str, str] = {
    "video_decode": "video_decode",  # aiortc's video decoder
    "receive": "receive",          # decoded frame handed over -> into the mailbox
    "mailbox": "mailbox",          # waiting for the motion thread (1 slot)
    "convert": "convert",          # VideoFrame -> RGB + barcode read
    "extract": "extraction",       # MediaPipe
    "motion": "motion",            # filtering, normalisation, retargeting
    "condition": "condition",      # pose maps + face vector
    "handoff": "handoff",          # waiting for the chunk to fill and the model thread
    "cache_write": "cache_write",  # the previous chunk's write, when not settled before
    "model": "model",              # DiT chunk (all steps)
    "decode": "ae_decode",         # the model's autoencoder decode
    "decode_ae": "ae_decode",      # (its name in an earlier telemetry schema)
    "output": "output",            # waiting in the paced output buffer
    "encode": "encode",            # video encoder
    "send": "send",                # encode end -> last packet handed to the transport
}


@dataclass
class Sample:
    """One matched generated frame. Times in seconds on the shared monotonic clock."""

    input_id: int
    frame_id: int
    t_capture: float
    t_arrival: float
    parts_ms: dict[str, float] = field(default_factory=dict)   # stage label -> ms
    cpu_ms: dict[str, float] = field(default_factory=dict)     # stage label -> CPU ms

    @property
    def e2e_ms(self) -> float:
        return (self.t_arrival - self.t_capture) * 1e3


def stage_parts(t_capture: float, t_arrival: float, stages: Mapping[str, Any]) -> dict[str, float]:
    """Split one frame's e2e latency (ms) into parts that add up to it exactly.

    network_up   capture -> first server stamp (client encode, loopback, server jitter
                 buffer and video decode unless the server stamps those itself)
    <stage>      each stamped server stage's end - start
    queue        everything between stamped stages: mailbox wait, chunk filling,
                 output pacing (e2e minus all other parts)
    network_down last server stamp -> arrival (encode unless stamped, loopback, client
                 jitter buffer and decode)
    """
    spans = {str(k): (float(v[0]), float(v[1])) for k, v in stages.items()}
    e2e = (t_arrival - t_capture) * 1e3
    if not spans:
        return {"network_up": math.nan, "queue": math.nan, "network_down": math.nan}
    first = min(s for s, _ in spans.values())
    last = max(e for _, e in spans.values())
    parts = {"network_up": (first - t_capture) * 1e3}
    ordered = [n for n in SERVER_STAGES if n in spans] + sorted(set(spans) - set(SERVER_STAGES))
    for name in ordered:
        s, e = spans[name]
        parts[SERVER_STAGES.get(name, name)] = (e - s) * 1e3
    parts["network_down"] = (t_arrival - last) * 1e3
    parts["queue"] = e2e - sum(parts.values())
    return parts


@dataclass
class MatchCounts:
    sent: int = 0
    matched_inputs: int = 0            # distinct inputs a generated frame came from
    generated: int = 0                 # distinct telemetry records (generated frames)
    matched_outputs: int = 0           # generated frames matched to capture + arrival
    received: int = 0                  # distinct output pts that arrived
    duplicate_arrivals: int = 0        # a pts that arrived again (counted once)
    duplicate_telemetry: int = 0
    repeats: int = 0                   # arrivals no telemetry names (pacer repeats)
    lost_outputs: int = 0              # generated, never arrived
    lost_inputs: int = 0               # inputs whose generated frame never arrived
    unidentified: int = 0              # telemetry whose input_id was unreadable/unknown
    dropped: int = 0                   # inputs skipped while a later one got through
    in_flight: int = 0                 # inputs captured after the last one matched


class FrameMatcher:
    """Matches the three event streams by id and hands out `Sample`s in arrival order.

    Memory is bounded by `horizon_s`: `expire(now)` settles entries older than that
    (live runs call it about once a second). `reorder_s` is how long a matched sample
    waits for earlier-arriving ones before it is emitted; `math.inf` (the default)
    holds all until `finish()`, for matching a finished run's results.
    """

    def __init__(self, on_sample: Callable[[Sample], None], *, horizon_s: float = 10.0,
                 reorder_s: float = math.inf) -> None:
        self._on_sample = on_sample
        self.horizon_s = horizon_s
        self.reorder_s = reorder_s
        self.counts = MatchCounts()
        self.drops_by_stage: dict[str, int] = {}
        self._sent: dict[int, tuple[float, bool]] = {}     # idx -> (t_capture, matched)
        self._arrivals: dict[int, tuple[float, bool]] = {} # pts -> (t_arrival, claimed)
        self._telemetry: dict[int, tuple[float, dict[str, Any]]] = {}  # out_pts -> (t, rec)
        self._seen_frames: dict[int, float] = {}           # frame_id -> t seen (dedupe)
        self._generated_from: dict[int, float] = {}        # input idx -> t (a record names it)
        self._max_matched_input = -1
        self._heap: list[tuple[float, int, Sample]] = []
        self._latest_arrival = -math.inf
        self._seq = 0

    # --- events -----------------------------------------------------------------

    def on_sent(self, index: int, t_capture: float) -> None:
        if index not in self._sent:
            self.counts.sent += 1
            self._sent[index] = (t_capture, False)
            self._try_inputs(index)

    def on_received(self, pts: int, t_arrival: float) -> None:
        if pts in self._arrivals:
            self.counts.duplicate_arrivals += 1
            return
        self.counts.received += 1
        self._arrivals[pts] = (t_arrival, False)
        self._latest_arrival = max(self._latest_arrival, t_arrival)
        if pts in self._telemetry:
            self._complete(pts)
        self._emit_ready()

    def on_telemetry(self, record: Mapping[str, Any], now: float | None = None) -> None:
        """`now`: when the record arrived (live runs); else its last stamp is used."""
        frame_id = int(record["frame_id"])
        if frame_id in self._seen_frames:
            self.counts.duplicate_telemetry += 1
            return
        self.counts.generated += 1
        for stage, n in (record.get("drops") or {}).items():
            self.drops_by_stage[stage] = max(self.drops_by_stage.get(stage, 0), int(n))
        input_id, out_pts = record.get("input_id"), record.get("out_pts")
        t_seen = now if now is not None else self._record_time(record)
        if not math.isfinite(t_seen):
            t_seen = self._latest_arrival
        self._seen_frames[frame_id] = t_seen
        if input_id is None or int(input_id) < 0 or out_pts is None:
            self.counts.unidentified += 1
            return
        self._generated_from[int(input_id)] = t_seen
        self._telemetry[int(out_pts)] = (t_seen, dict(record))
        self._complete(int(out_pts))
        self._emit_ready()

    # --- matching ---------------------------------------------------------------

    def _try_inputs(self, index: int) -> None:
        for pts, (_, rec) in list(self._telemetry.items()):
            if int(rec["input_id"]) == index:
                self._complete(pts)

    def _complete(self, pts: int) -> None:
        waiting = self._telemetry.get(pts)
        arrival = self._arrivals.get(pts)
        if waiting is None or arrival is None:
            return
        rec = waiting[1]
        idx = int(rec["input_id"])
        sent = self._sent.get(idx)
        if sent is None:
            return                  # capture not known yet (or expired: settled there)
        del self._telemetry[pts]
        t_cap, already = sent
        if not already:
            self.counts.matched_inputs += 1
            self._sent[idx] = (t_cap, True)
        self._arrivals[pts] = (arrival[0], True)
        self._max_matched_input = max(self._max_matched_input, idx)
        self.counts.matched_outputs += 1
        stages = rec.get("stages") or rec.get("stamps") or {}
        cpu = {SERVER_STAGES.get(k, k): float(v) for k, v in (rec.get("cpu_ms") or {}).items()}
        sample = Sample(idx, int(rec["frame_id"]), t_cap, arrival[0],
                        stage_parts(t_cap, arrival[0], stages), cpu)
        self._seq += 1
        heapq.heappush(self._heap, (sample.t_arrival, self._seq, sample))

    def _emit_ready(self, flush: bool = False) -> None:
        while self._heap and (flush or self._heap[0][0] < self._latest_arrival - self.reorder_s):
            self._on_sample(heapq.heappop(self._heap)[2])

    # --- settling ---------------------------------------------------------------

    def _settle_input(self, index: int, final: bool) -> None:
        _, matched = self._sent.pop(index)
        if matched:
            return
        if index in self._generated_from:       # made it through; its output did not
            self.counts.lost_inputs += 1
        elif index < self._max_matched_input or not final:
            self.counts.dropped += 1
        else:
            self.counts.in_flight += 1

    def expire(self, now: float) -> None:
        """Settle everything older than `horizon_s`: an input nobody matched within
        the horizon is dropped, an arrival no record named is a repeat, a record whose
        frame never arrived is lost."""
        cutoff = now - self.horizon_s
        for idx in [i for i, (t, _) in self._sent.items() if t < cutoff]:
            self._settle_input(idx, final=False)
        for pts in [p for p, (t, _) in self._arrivals.items() if t < cutoff]:
            t, claimed = self._arrivals.pop(pts)
            self.counts.repeats += 0 if claimed else 1
        for pts in [p for p, (t, _) in self._telemetry.items() if t < cutoff]:
            self._settle_record(self._telemetry.pop(pts)[1])
        for fid in [f for f, t in self._seen_frames.items() if t < cutoff]:
            del self._seen_frames[fid]
        for idx in [i for i, t in self._generated_from.items() if t < cutoff - self.horizon_s]:
            del self._generated_from[idx]
        self._emit_ready()

    @staticmethod
    def _record_time(record: Mapping[str, Any]) -> float:
        stages = record.get("stages") or record.get("stamps") or {}
        return max((float(v[1]) for v in stages.values()), default=-math.inf)

    def _settle_record(self, record: Mapping[str, Any]) -> None:
        if int(record["out_pts"]) in self._arrivals or int(record["out_pts"]) < 0:
            self.counts.unidentified += 1     # arrived, but its input was never sent
        else:
            self.counts.lost_outputs += 1

    def finish(self) -> MatchCounts:
        """Settle everything still pending and emit the remaining samples."""
        for idx in list(self._sent):
            self._settle_input(idx, final=True)
        for pts in list(self._telemetry):
            self._settle_record(self._telemetry.pop(pts)[1])
        self.counts.repeats += sum(1 for _, claimed in self._arrivals.values() if not claimed)
        self._arrivals.clear()
        self._seen_frames.clear()
        self._generated_from.clear()
        self._emit_ready(flush=True)
        return self.counts


def feed_result(matcher: FrameMatcher, sent: Mapping[int, float],
                received: Iterable[tuple[int, float]],
                telemetry: Iterable[Mapping[str, Any]]) -> MatchCounts:
    """Match a finished run (e.g. a `clients.pyclient.ClientResult`) and finish."""
    for idx, t in sent.items():
        matcher.on_sent(int(idx), float(t))
    for pts, t in received:
        matcher.on_received(int(pts), float(t))
    for rec in telemetry:
        matcher.on_telemetry(rec)
    return matcher.finish()


def estimate_pts_offset(arrivals: list[tuple[int, float]],
                        sent: list[tuple[float, int]]) -> int | None:
    """The constant (received pts - out_pts) mod 2^32 of the output stream.

    A receiver counts pts from the first frame it decoded (the Python client) or sees
    raw RTP timestamps from a random origin (the browser), while the telemetry's
    `out_pts` counts from the first frame the server sent: the two differ by one
    constant. Each record votes with the first frame that arrived at or after its
    `t_sent` (its own frame, unless that one was lost); the most common difference
    wins. Pacer repeats never vote: no record precedes them more closely than their
    own frame. arrivals: (pts, t); sent: (t_sent, out_pts); one clock.
    """
    if not arrivals or not sent:
        return None
    arrivals = sorted(arrivals, key=lambda a: a[1])
    times = [t for _, t in arrivals]
    votes: collections.Counter[int] = collections.Counter()
    for t_sent, out_pts in sent:
        i = bisect.bisect_left(times, t_sent)
        if i < len(arrivals):
            votes[(arrivals[i][0] - out_pts) % 2**32] += 1
    return votes.most_common(1)[0][0] if votes else None
