"""From matched samples to the figures a latency run reports, in bounded memory.

`RunRecorder` consumes `Sample`s in arrival order (what `FrameMatcher` emits) and
keeps only fixed-size statistics; `summary()` turns them, with the matcher's counts
and the run's timing, into the `runs[]` entry of the JSON documented in
bench/README.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.latency_match import MatchCounts, Sample
from bench.latency_stats import (
    BoundedSeries,
    PartSeries,
    Quantiles,
    RunningStats,
    SecondSeries,
    TimeWindow,
)

# The order parts are reported (and stacked in the plot); others follow.
PART_ORDER = ("network_up", "video_decode", "receive", "mailbox", "convert", "extraction",
              "motion", "condition", "handoff", "cache_write", "model", "ae_decode", "output",
              "encode", "send", "queue", "network_down")


class StageStats:
    """One stage's milliseconds after warm-up: over the whole run (p50/p95) and over the
    first and last drift windows, so a creep names the stage it comes from."""

    def __init__(self, window_s: float) -> None:
        self.run = Quantiles(exact_capacity=2048)
        self.first = Quantiles(exact_capacity=4096)
        self.last = TimeWindow(window_s)
        self.window_s = window_s

    def add(self, t_steady: float, ms: float) -> None:
        self.run.add(ms)
        if t_steady < self.window_s:
            self.first.add(ms)
        self.last.add(t_steady, ms)

    def windows(self) -> tuple[float, float]:
        """(median of the first window, median of the last window); NaN where empty."""
        last = self.last.values()
        return self.first.percentile(50), float(np.median(last)) if len(last) else math.nan


class RunRecorder:
    """Statistics of one run.

    t0          the connection start (client clock): first-frame latency and the
                time axis are relative to it
    warmup_s    samples arriving in the first `warmup_s` after the first generated
                frame are plotted but left out of the percentiles (bitrate ramp-up,
                encoder start, first-chunk effects)
    window_s    length of the first/last windows compared for latency creep
    """

    def __init__(self, t0: float, *, warmup_s: float = 2.0, window_s: float = 60.0) -> None:
        self.t0 = t0
        self.warmup_s = warmup_s
        self.window_s = window_s
        self.e2e = Quantiles()
        self.parts: dict[str, StageStats] = {}
        self.cpu: dict[str, StageStats] = {}       # CPU time of the stages that report it
        self.series = SecondSeries()
        self.first_window = Quantiles(exact_capacity=4096)
        self.last_window = TimeWindow(window_s)
        self.part_series = PartSeries()
        self.interarrival = RunningStats()
        self.rss_client_mb = BoundedSeries()
        self.rss_server_mb = BoundedSeries()
        self.host_work_ms = BoundedSeries()
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.first_steady: float | None = None      # first arrival after warm-up
        self.count = 0

    def add(self, s: Sample) -> None:
        """One matched generated frame; call in non-decreasing `t_arrival`."""
        if self.first_arrival is None:
            self.first_arrival = s.t_arrival
        if self.last_arrival is not None:
            self.interarrival.add((s.t_arrival - self.last_arrival) * 1e3)
        self.last_arrival = s.t_arrival
        self.count += 1
        t = s.t_arrival - self.t0
        e2e = s.e2e_ms
        self.series.add(t, e2e)
        self.part_series.add(t, s.parts_ms)
        if s.t_arrival - self.first_arrival < self.warmup_s:
            return
        if self.first_steady is None:
            self.first_steady = s.t_arrival
        self.e2e.add(e2e)
        t_steady = s.t_arrival - self.first_arrival - self.warmup_s
        if t_steady < self.window_s:
            self.first_window.add(e2e)
        self.last_window.add(t_steady, e2e)
        for stats, values in ((self.parts, s.parts_ms), (self.cpu, s.cpu_ms)):
            for name, ms in values.items():
                if math.isfinite(ms):
                    if name not in stats:
                        stats[name] = StageStats(self.window_s)
                    stats[name].add(t_steady, ms)

    def add_rss(self, t: float, client_mb: float, server_mb: float | None) -> None:
        """Resident memory at time `t` (same clock as t0), for the soak plot."""
        self.rss_client_mb.add(t - self.t0, client_mb)
        if server_mb is not None:
            self.rss_server_mb.add(t - self.t0, server_mb)

    def add_host_work(self, t: float, ms: float) -> None:
        """CPU time of the host canary's fixed work at time `t` (same clock as t0)."""
        self.host_work_ms.add(t - self.t0, ms)

    def summary(self, counts: MatchCounts, drops_by_stage: dict[str, int], *,
                t_send_start: float, t_send_end: float) -> dict[str, Any]:
        """The measured half of a `runs[]` entry (bench/README.md has the schema)."""
        send_s = max(t_send_end - t_send_start, 1e-9)
        recv_s = ((self.last_arrival - self.first_steady)
                  if self.first_steady is not None and self.last_arrival is not None else 0.0)
        first_p50 = self.first_window.percentile(50)
        last_vals = self.last_window.values()
        last_p50 = float(np.median(last_vals)) if len(last_vals) else math.nan
        ordered = [p for p in PART_ORDER if p in self.parts]
        ordered += sorted(set(self.parts) - set(PART_ORDER))
        by_stage: dict[str, dict[str, float]] = {}
        for p in ordered:
            first, last = self.parts[p].windows()
            by_stage[p] = {"first_p50_ms": first, "last_p50_ms": last}
            if p in self.cpu:
                first, last = self.cpu[p].windows()
                by_stage[p].update(cpu_first_p50_ms=first, cpu_last_p50_ms=last)
        return {
            "e2e_ms": {**self.e2e.summary(), "mean": self.e2e.stats.mean,
                       "min": self.e2e.stats.min if self.e2e.count else math.nan,
                       "max": self.e2e.stats.max if self.e2e.count else math.nan,
                       "exact": self.e2e.exact},
            "samples": self.e2e.count,
            "first_frame_ms": ((self.first_arrival - self.t0) * 1e3
                               if self.first_arrival is not None else math.nan),
            "fps_in": (counts.sent - 1) / send_s if counts.sent > 1 else math.nan,
            # distinct generated frames per second after warm-up
            "fps_out": (self.e2e.count - 1) / recv_s if recv_s > 0 else math.nan,
            "jitter_ms": self.interarrival.std,
            "interarrival_ms": {"mean": self.interarrival.mean, "std": self.interarrival.std},
            "dropped": {"total": counts.dropped, "in_flight_at_end": counts.in_flight,
                        # drops the server never counted: the client's encoder skipped
                        # the frame, the network lost it, or aiortc's decoder did
                        "before_server": max(0, counts.dropped - sum(drops_by_stage.values())),
                        "by_stage": dict(sorted(drops_by_stage.items())),
                        "lost_outputs": counts.lost_outputs,
                        "lost_inputs": counts.lost_inputs,
                        "unidentified": counts.unidentified},
            "counts": asdict(counts),
            "stages_ms": {p: self.parts[p].run.percentile(50) for p in ordered},
            "stages_p95_ms": {p: self.parts[p].run.percentile(95) for p in ordered},
            # CPU time of the stages that measure it (the model's thread): the stage's
            # wall time minus this is waiting for a core, the GIL or the device
            "stages_cpu_ms": {p: self.cpu[p].run.percentile(50) for p in self.cpu},
            "drift": {"window_s": self.window_s, "first_p50_ms": first_p50,
                      "last_p50_ms": last_p50,
                      "change_pct": (100 * (last_p50 - first_p50) / first_p50
                                     if first_p50 and math.isfinite(first_p50) else math.nan),
                      "by_stage": by_stage},
            "series": {
                "width_s": self.series.width,
                "warmup_end_s": (self.first_steady - self.t0
                                 if self.first_steady is not None else None),
                "t_s": [b.t0 for b in self.series.finish()],
                "count": [b.count for b in self.series.buckets],
                "p50_ms": [b.p50 for b in self.series.buckets],
                "p95_ms": [b.p95 for b in self.series.buckets],
                "max_ms": [b.max for b in self.series.buckets],
            },
            "stage_series": self.part_series.finish(),
            "cdf_ms": [self.e2e.percentile(q) for q in range(0, 101)] if self.e2e.count else [],
            "rss_mb": {"client": self.rss_client_mb.points, "server": self.rss_server_mb.points},
            "host_work_ms": self.host_work_ms.points,
        }
