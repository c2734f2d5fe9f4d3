"""A soak run's bookkeeping stays bounded: 6 minutes cost what 2 minutes do."""

from __future__ import annotations

import tracemalloc

from bench.latency_match import FrameMatcher
from bench.latency_summary import RunRecorder

FPS = 30


def _simulate(matcher: FrameMatcher, recorder: RunRecorder, start: int, stop: int) -> None:
    """Live-ordered events for inputs start..stop-1: every 4th dropped, 45 ms latency,
    a telemetry record with a dozen stage stamps per generated frame."""
    for i in range(start, stop):
        t = 100.0 + i / FPS
        matcher.on_sent(i, t)
        if i % 4 == 3:
            continue
        stages = {f"s{k}": [t + 0.002 * k, t + 0.002 * k + 0.001] for k in range(12)}
        matcher.on_telemetry({"frame_id": i, "input_id": i, "out_pts": 3000 * i,
                              "t_sent": t + 0.03, "stages": stages,
                              "drops": {"mailbox": i // 4}}, now=t + 0.03)
        matcher.on_received(3000 * i, t + 0.045)
        if i % FPS == 0:
            matcher.expire(t)
            recorder.add_rss(t, 100.0, 200.0)


def test_memory_after_6_minutes_is_that_after_2() -> None:
    recorder = RunRecorder(100.0, warmup_s=2.0, window_s=60.0)
    matcher = FrameMatcher(recorder.add, horizon_s=10.0, reorder_s=1.0)
    tracemalloc.start()
    try:
        _simulate(matcher, recorder, 0, 120 * FPS)
        at_2_min, _ = tracemalloc.get_traced_memory()
        _simulate(matcher, recorder, 120 * FPS, 360 * FPS)
        at_6_min, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 7,200 more frames: keeping their telemetry records alone would take ~10 MB; what
    # grows is one per-second bucket and one memory sample per second
    assert at_6_min - at_2_min < 300_000
    counts = matcher.finish()
    assert counts.matched_outputs == 360 * FPS * 3 // 4
    assert counts.dropped + counts.in_flight == 360 * FPS // 4
