"""Bounded-memory statistics for the latency harness.

A 30-minute soak at 30 fps yields 54,000 samples per series and a dozen series; the
harness must hold the same memory at minute 30 as at minute 1. Everything here is
fixed-size or bounded by a time window:

- `Quantiles`: exact percentiles while the count fits a preallocated buffer, then a
  log-spaced histogram (relative bin width 0.5 %, like HdrHistogram's fixed relative
  precision) so percentiles stay within 0.5 % of the truth for any run length.
- `RunningStats`: count, mean, standard deviation (Welford's update) plus min/max.
- `SecondSeries`: per-second aggregates (count, median, p95, max) for the
  latency-over-time plot; when it reaches its capacity adjacent buckets merge.
- `TimeWindow`: the samples of the last N seconds (the "last minute" of a run).
- `BoundedSeries`: (t, value) points, decimated by 2 whenever capacity is reached.
- `PartSeries`: per-interval medians of several named values (the pipeline's stages)
  sampled together, for the stages-over-time plot of a soak.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


class RunningStats:
    """Count, mean, std (Welford 1962), min, max of a stream, in O(1) memory."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: float) -> None:
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self._m2 += d * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)

    @property
    def std(self) -> float:
        """Population standard deviation; 0 for fewer than two samples."""
        return math.sqrt(self._m2 / self.count) if self.count > 1 else 0.0


class Quantiles:
    """Percentiles of a stream of positive values (milliseconds) in bounded memory.

    Up to `exact_capacity` samples the percentiles are exact (numpy's linear
    interpolation, the same definition as `numpy.percentile`). Beyond it they come
    from a log-spaced histogram over [lo, hi] whose bins are `rel` wide relative to
    their value; values outside the range are clamped into the end bins.
    """

    def __init__(self, exact_capacity: int = 8192, lo: float = 0.01, hi: float = 1e6,
                 rel: float = 0.005) -> None:
        self._buf = np.empty(exact_capacity, np.float64)
        self._lo = lo
        self._log_step = math.log1p(rel)
        self._n_bins = int(math.ceil(math.log(hi / lo) / self._log_step)) + 1
        self._hist = np.zeros(self._n_bins, np.int64)
        self.stats = RunningStats()

    @property
    def count(self) -> int:
        return self.stats.count

    @property
    def exact(self) -> bool:
        """True while every sample is still held, so percentiles are exact."""
        return self.count <= len(self._buf)

    def _bin(self, x: float) -> int:
        if x <= self._lo:
            return 0
        return min(int(math.log(x / self._lo) / self._log_step), self._n_bins - 1)

    def add(self, x: float) -> None:
        n = self.count
        if n < len(self._buf):
            self._buf[n] = x
        self._hist[self._bin(x)] += 1
        self.stats.add(x)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 <= q <= 100); NaN when empty."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        n = self.count
        if n == 0:
            return math.nan
        if self.exact:
            return float(np.percentile(self._buf[:n], q))
        # The sample of rank q/100 * (n - 1) lies in the first bin whose cumulative
        # count exceeds that rank; report the bin's geometric centre.
        rank = q / 100 * (n - 1)
        i = int(np.searchsorted(np.cumsum(self._hist), rank, side="right"))
        i = min(i, self._n_bins - 1)
        centre = self._lo * math.exp((i + 0.5) * self._log_step)
        return float(min(max(centre, self.stats.min), self.stats.max))

    def summary(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
        """{'p50': .., 'p95': .., 'p99': ..} (keys follow `qs`)."""
        return {f"p{q:g}": self.percentile(q) for q in qs}


@dataclass
class Bucket:
    """Aggregate of the samples that arrived in [t0, t0 + width) seconds."""

    t0: float
    width: float
    count: int
    mean: float
    p50: float
    p95: float
    max: float


class SecondSeries:
    """Per-interval aggregates of (t, value) samples fed in non-decreasing t.

    Holds at most `capacity` buckets plus the open one. When full, adjacent pairs
    merge and the interval doubles; a merged bucket's p50/p95 are the count-weighted
    means of its halves' (an approximation only runs longer than `capacity` seconds
    ever see).
    """

    def __init__(self, width: float = 1.0, capacity: int = 3600) -> None:
        self.width = width
        self.capacity = capacity
        self.buckets: list[Bucket] = []
        self._open_t0: float | None = None
        self._open: list[float] = []

    def add(self, t: float, value: float) -> None:
        t0 = math.floor(t / self.width) * self.width
        if self._open_t0 is not None and t0 < self._open_t0:
            t0 = self._open_t0                  # late sample: fold into the open bucket
        if self._open_t0 is not None and t0 != self._open_t0:
            self._close()
        if self._open_t0 is None:
            self._open_t0 = t0
        self._open.append(value)

    def _close(self) -> None:
        if self._open_t0 is None or not self._open:
            return
        v = np.asarray(self._open)
        self.buckets.append(Bucket(self._open_t0, self.width, len(v), float(v.mean()),
                                   float(np.percentile(v, 50)), float(np.percentile(v, 95)),
                                   float(v.max())))
        self._open_t0, self._open = None, []
        if len(self.buckets) >= self.capacity:
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        self.width *= 2
        merged: list[Bucket] = []
        for b in self.buckets:
            t0 = math.floor(b.t0 / self.width) * self.width
            if merged and merged[-1].t0 == t0:
                a = merged[-1]
                n = a.count + b.count
                merged[-1] = Bucket(t0, self.width, n, (a.mean * a.count + b.mean * b.count) / n,
                                    (a.p50 * a.count + b.p50 * b.count) / n,
                                    (a.p95 * a.count + b.p95 * b.count) / n, max(a.max, b.max))
            else:
                merged.append(Bucket(t0, self.width, b.count, b.mean, b.p50, b.p95, b.max))
        self.buckets = merged

    def finish(self) -> list[Bucket]:
        """Close the open bucket and return all buckets."""
        self._close()
        return self.buckets


class TimeWindow:
    """The (t, value) samples of the last `seconds`, fed in non-decreasing t."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self._items.append((t, value))
        while self._items and self._items[0][0] < t - self.seconds:
            self._items.popleft()

    def values(self) -> np.ndarray:
        return np.asarray([v for _, v in self._items], np.float64)

    def __len__(self) -> int:
        return len(self._items)


class BoundedSeries:
    """(t, value) points; every other point is dropped whenever `capacity` is hit,
    so a run of any length keeps an evenly thinned, bounded record."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self.points: list[tuple[float, float]] = []
        self._stride = 1
        self._seen = 0

    def add(self, t: float, value: float) -> None:
        if self._seen % self._stride == 0:
            self.points.append((t, value))
            if len(self.points) >= self.capacity:
                self.points = self.points[::2]
                self._stride *= 2
        self._seen += 1


class PartSeries:
    """Per-interval medians of named parts fed together in non-decreasing t.

    Each interval of `width` seconds keeps, for every part seen in it, the median of its
    values; parts absent from an interval are NaN there. At `capacity` intervals
    adjacent pairs merge (count-weighted means of the medians) and the width doubles,
    so a run of any length keeps a bounded record, like `SecondSeries`.
    """

    def __init__(self, width: float = 10.0, capacity: int = 720) -> None:
        self.width = width
        self.capacity = capacity
        self.t0: list[float] = []
        self.count: list[int] = []
        self.p50: dict[str, list[float]] = {}
        self._open_t0: float | None = None
        self._open: dict[str, list[float]] = {}
        self._open_n = 0

    def add(self, t: float, parts: dict[str, float]) -> None:
        t0 = math.floor(t / self.width) * self.width
        if self._open_t0 is not None and t0 > self._open_t0:
            self._close()
        if self._open_t0 is None:
            self._open_t0 = t0
        self._open_n += 1
        for name, v in parts.items():
            if math.isfinite(v):
                self._open.setdefault(name, []).append(v)

    def _close(self) -> None:
        if self._open_t0 is None:
            return
        n = len(self.t0)
        self.t0.append(self._open_t0)
        self.count.append(self._open_n)
        for name in set(self.p50) | set(self._open):
            col = self.p50.setdefault(name, [math.nan] * n)
            vals = self._open.get(name)
            col.append(float(np.median(vals)) if vals else math.nan)
        self._open_t0, self._open, self._open_n = None, {}, 0
        if len(self.t0) >= self.capacity:
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        self.width *= 2
        t0: list[float] = []
        count: list[int] = []
        groups: list[list[int]] = []
        for i, t in enumerate(self.t0):
            start = math.floor(t / self.width) * self.width
            if t0 and t0[-1] == start:
                groups[-1].append(i)
                count[-1] += self.count[i]
            else:
                t0.append(start)
                count.append(self.count[i])
                groups.append([i])
        merged: dict[str, list[float]] = {}
        for name, col in self.p50.items():
            out = []
            for g in groups:
                pairs = [(col[i], self.count[i]) for i in g if math.isfinite(col[i])]
                w = sum(c for _, c in pairs)
                out.append(sum(v * c for v, c in pairs) / w if w else math.nan)
            merged[name] = out
        self.t0, self.count, self.p50 = t0, count, merged

    def finish(self) -> dict[str, object]:
        """Close the open interval; {'width_s', 't_s', 'count', 'p50_ms': {part: [...]}}."""
        self._close()
        return {"width_s": self.width, "t_s": list(self.t0), "count": list(self.count),
                "p50_ms": {k: list(v) for k, v in self.p50.items()}}
