"""Prometheus text exposition for `/metrics`, without a client library.

Counters, gauges and fixed-bucket histograms with at most one label, all
updated on the event loop (the worker threads report through it), rendered in
text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).

`dropped_frames_total` is labelled by the stage that dropped the frame: receive,
mailbox, handoff (motion -> model threads), output; see streaming/telemetry.py.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

# seconds; stage latencies of interest run from sub-millisecond to a few seconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.n += 1


class Metrics:
    """The server's metrics. Names are prefixed `marionette_`."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, float] = {}
        self.histograms: dict[str, dict[str, Histogram]] = defaultdict(dict)
        self.help: dict[str, str] = {}

    def inc(self, name: str, value: float = 1.0, label: str = "", help: str = "") -> None:
        self.counters[name][label] += value
        self.help.setdefault(name, help)

    def set(self, name: str, value: float, help: str = "") -> None:
        self.gauges[name] = value
        self.help.setdefault(name, help)

    def observe(self, name: str, label: str, value: float, help: str = "") -> None:
        hist = self.histograms[name].get(label)
        if hist is None:
            hist = self.histograms[name][label] = Histogram()
        hist.observe(value)
        self.help.setdefault(name, help)

    def render(self, label_name: str = "stage") -> str:
        lines: list[str] = []

        def head(name: str, kind: str) -> None:
            if self.help.get(name):
                lines.append(f"# HELP marionette_{name} {self.help[name]}")
            lines.append(f"# TYPE marionette_{name} {kind}")

        def lab(label: str, extra: str = "") -> str:
            parts = [p for p in (f'{label_name}="{label}"' if label else "", extra) if p]
            return "{" + ",".join(parts) + "}" if parts else ""

        for name, value in sorted(self.gauges.items()):
            head(name, "gauge")
            lines.append(f"marionette_{name} {value:g}")
        for name, by_label in sorted(self.counters.items()):
            head(name, "counter")
            for label, value in sorted(by_label.items()):
                lines.append(f"marionette_{name}{lab(label)} {value:g}")
        for name, hists in sorted(self.histograms.items()):
            head(name, "histogram")
            for label, hist in sorted(hists.items()):
                cumulative = 0
                for bound, count in zip(hist.buckets, hist.counts, strict=True):
                    cumulative += count
                    le = f'le="{bound:g}"'
                    lines.append(f"marionette_{name}_bucket{lab(label, le)} {cumulative}")
                inf = 'le="+Inf"'
                lines.append(f"marionette_{name}_bucket{lab(label, inf)} {hist.n}")
                lines.append(f"marionette_{name}_sum{lab(label)} {hist.total:.6f}")
                lines.append(f"marionette_{name}_count{lab(label)} {hist.n}")
        return "\n".join(lines) + "\n"
