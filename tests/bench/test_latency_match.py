"""Frames are matched by id, never by order; drops and repeats are counted, not mismatched."""

from __future__ import annotations

import random

import pytest

from bench.latency_match import (
    FrameMatcher,
    Sample,
    estimate_pts_offset,
    feed_result,
    stage_parts,
)


def _run(n: int = 60, latency_of=lambda i: 0.05 + 0.001 * (i % 7), dropped=(), repeat_every=0,
         late_telemetry_for=()):
    """A synthetic run: input i captured at i/30 s; generated frame j (from input i)
    carried by output pts 3000*k; its arrival = capture + latency_of(i). Returns the
    sent, received and telemetry streams and the true latency per input."""
    sent = {i: 100.0 + i / 30 for i in range(n)}
    received, telemetry, truth = [], [], {}
    pts = 0
    for j, i in enumerate(i for i in range(n) if i not in dropped):
        t_arr = sent[i] + latency_of(i)
        received.append((pts, t_arr))
        truth[i] = t_arr - sent[i]
        t_recv = sent[i] + 0.005
        telemetry.append({"frame_id": j, "input_id": i, "out_pts": pts,
                          "stages": {"receive": [t_recv, t_recv + 0.001],
                                     "model": [t_recv + 0.002, t_recv + 0.012]},
                          "drops": {"mailbox": sum(1 for d in dropped if d < i)}})
        pts += 3000
        if repeat_every and j % repeat_every == 0:      # pacer repeats: new pts, no record
            received.append((pts, t_arr + 0.016))
            pts += 3000
    return sent, received, telemetry, truth


def _match(sent, received, telemetry):
    samples: list[Sample] = []
    counts = feed_result(FrameMatcher(samples.append), sent, received, telemetry)
    return samples, counts


def test_shuffled_arrivals_still_pair_each_output_with_its_own_input() -> None:
    sent, received, telemetry, truth = _run()
    rng = random.Random(0)
    rng.shuffle(received)
    rng.shuffle(telemetry)
    samples, counts = _match(dict(rng.sample(sorted(sent.items()), len(sent))), received,
                             telemetry)
    assert counts.matched_outputs == len(truth)
    for s in samples:
        assert s.e2e_ms == pytest.approx(truth[s.input_id] * 1e3)
    # emitted in arrival order whatever order the events came in
    arrivals = [s.t_arrival for s in samples]
    assert arrivals == sorted(arrivals)


def test_matching_uses_ids_not_positions() -> None:
    # Outputs arrive in the reverse order of their inputs (a pipeline that reorders):
    # order-based pairing would give every frame the wrong latency.
    sent, received, telemetry, _ = _run(n=10)
    arrivals = sorted(t for _, t in received)
    received = [(pts, t) for (pts, _), t in zip(received, reversed(arrivals), strict=True)]
    samples, _ = _match(sent, received, telemetry)
    by_pts = dict(received)
    for s in samples:
        rec = next(r for r in telemetry if r["input_id"] == s.input_id)
        assert s.t_arrival == by_pts[rec["out_pts"]]
        assert s.t_capture == sent[s.input_id]


def test_a_dropped_frame_is_counted_not_mismatched() -> None:
    sent, received, telemetry, truth = _run(n=30, dropped={5, 6, 17})
    samples, counts = _match(sent, received, telemetry)
    assert counts.dropped == 3
    assert counts.matched_inputs == 27
    assert {s.input_id for s in samples}.isdisjoint({5, 6, 17})
    for s in samples:                       # neighbours of the gap keep their own latency
        assert s.e2e_ms == pytest.approx(truth[s.input_id] * 1e3)


def test_a_generated_frame_that_never_arrives_is_lost_not_dropped() -> None:
    sent, received, telemetry, _ = _run(n=30)
    missing = telemetry[10]["out_pts"]
    samples, counts = _match(sent, [x for x in received if x[0] != missing], telemetry)
    assert counts.lost_outputs == 1 and counts.lost_inputs == 1 and counts.dropped == 0
    assert 10 not in {s.input_id for s in samples}
    assert counts.sent == counts.matched_inputs + counts.lost_inputs


def test_frames_still_in_flight_at_the_end_are_not_drops() -> None:
    sent, received, telemetry, _ = _run(n=30)
    cut = [r for r in telemetry if r["input_id"] < 27]
    pts_kept = {r["out_pts"] for r in cut}
    samples, counts = _match(sent, [x for x in received if x[0] in pts_kept], cut)
    assert counts.dropped == 0 and counts.in_flight == 3


def test_repeated_outputs_count_once_at_first_arrival() -> None:
    sent, received, telemetry, truth = _run(n=20, repeat_every=2)
    first = dict(received)
    dup = [(pts, t + 0.5) for pts, t in received[:5]]      # the same pts again, later
    samples, counts = _match(sent, received + dup, telemetry + telemetry[:3])
    assert counts.matched_outputs == 20
    assert counts.duplicate_arrivals == 5 and counts.duplicate_telemetry == 3
    assert counts.repeats == 10                             # pacer frames no record names
    for s in samples:
        rec = next(r for r in telemetry if r["input_id"] == s.input_id)
        assert s.t_arrival == first[rec["out_pts"]]


def test_unreadable_input_ids_are_counted_separately() -> None:
    sent, received, telemetry, _ = _run(n=10)
    telemetry[3] = {**telemetry[3], "input_id": None}
    _, counts = _match(sent, received, telemetry)
    assert counts.unidentified == 1 and counts.matched_outputs == 9


def test_live_expiry_bounds_memory_and_settles_drops() -> None:
    samples: list[Sample] = []
    m = FrameMatcher(samples.append, horizon_s=2.0, reorder_s=0.5)
    sent, received, telemetry, _ = _run(n=3000, dropped=set(range(5, 3000, 10)))
    recv = dict(received)
    for i, t in sent.items():                       # events in live order
        m.on_sent(i, t)
        for rec in [r for r in telemetry if r["input_id"] == i]:
            m.on_telemetry(rec, now=t + 0.02)
            m.on_received(rec["out_pts"], recv[rec["out_pts"]])
        if i % 30 == 0:
            m.expire(t)
            assert len(m._sent) < 2.5 * 30 and len(m._arrivals) < 2.5 * 30
    counts = m.finish()
    assert counts.dropped == 300 and counts.matched_outputs == 2700
    assert len(samples) == 2700


def test_stage_parts_add_up_to_e2e() -> None:
    parts = stage_parts(10.0, 10.1, {"receive": [10.02, 10.021], "model": [10.03, 10.06],
                                     "decode_ae": [10.06, 10.07], "encode": [10.07, 10.075]})
    assert parts["network_up"] == pytest.approx(20)
    assert parts["model"] == pytest.approx(30) and parts["ae_decode"] == pytest.approx(10)
    assert parts["network_down"] == pytest.approx(25)
    assert sum(parts.values()) == pytest.approx(100)


@pytest.mark.parametrize("origin", [0, 6000, 4_000_000_000])    # 0, lost first frames, RTP
def test_pts_offset_is_recovered_despite_repeats_and_losses(origin: int) -> None:
    # a slow model: one generated frame per 100 ms, the pacer repeating it twice
    sent, arrivals = [], []
    for j in range(100):
        t, pts = j / 10, 9000 * j
        sent.append((t, pts))
        if j % 9 == 4:
            continue                                     # this frame never arrives
        for rep in range(3):                             # itself, then two repeats
            arrivals.append(((origin + pts + 3000 * rep) % 2**32, t + 0.002 + rep / 30))
    assert estimate_pts_offset(arrivals, sent) == origin


def test_stage_names_follow_the_telemetry_schema() -> None:
    parts = stage_parts(0.0, 0.2, {"video_decode": [0.004, 0.005], "receive": [0.005, 0.006],
                                   "handoff": [0.01, 0.05], "model": [0.05, 0.1],
                                   "decode": [0.1, 0.12], "encode": [0.15, 0.16],
                                   "newstage": [0.16, 0.17]})
    assert parts["video_decode"] == pytest.approx(1) and parts["handoff"] == pytest.approx(40)
    assert parts["ae_decode"] == pytest.approx(20)
    assert parts["newstage"] == pytest.approx(10)          # unknown names are kept
    assert sum(parts.values()) == pytest.approx(200)
