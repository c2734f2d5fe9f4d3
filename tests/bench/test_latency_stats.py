"""Percentiles and bounded series of the latency harness, against known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.latency_stats import (
    BoundedSeries,
    PartSeries,
    Quantiles,
    RunningStats,
    SecondSeries,
    TimeWindow,
)


def test_percentiles_of_1_to_100_are_the_textbook_values() -> None:
    q = Quantiles()
    for x in np.random.default_rng(0).permutation(np.arange(1, 101)):
        q.add(float(x))
    # linear interpolation between order statistics: rank q/100 * (n - 1)
    assert q.percentile(50) == pytest.approx(50.5)
    assert q.percentile(95) == pytest.approx(95.05)
    assert q.percentile(99) == pytest.approx(99.01)
    assert q.percentile(0) == 1 and q.percentile(100) == 100
    assert q.exact


def test_percentiles_stay_within_half_a_percent_past_the_exact_buffer() -> None:
    values = np.random.default_rng(1).lognormal(mean=4.0, sigma=0.6, size=20_000)
    q = Quantiles(exact_capacity=1000)
    for v in values:
        q.add(float(v))
    assert not q.exact
    for p in (1, 50, 95, 99, 99.9):
        assert q.percentile(p) == pytest.approx(np.percentile(values, p), rel=0.006)
    assert q.stats.mean == pytest.approx(values.mean())


def test_empty_quantiles_report_nan_and_reject_bad_percentiles() -> None:
    q = Quantiles()
    assert math.isnan(q.percentile(50))
    with pytest.raises(ValueError):
        q.percentile(101)


def test_running_stats_match_numpy() -> None:
    values = np.random.default_rng(2).normal(33.3, 4.0, size=500)
    s = RunningStats()
    for v in values:
        s.add(float(v))
    assert s.mean == pytest.approx(values.mean())
    assert s.std == pytest.approx(values.std())
    assert (s.min, s.max) == (values.min(), values.max())


def test_second_series_aggregates_each_second() -> None:
    ser = SecondSeries()
    for t, v in [(0.1, 10), (0.5, 30), (0.9, 20), (1.2, 100), (3.7, 7)]:
        ser.add(t, v)
    b = ser.finish()
    assert [x.t0 for x in b] == [0, 1, 3]
    assert [x.count for x in b] == [3, 1, 1]
    assert b[0].p50 == 20 and b[0].max == 30 and b[0].mean == pytest.approx(20)


def test_second_series_stays_bounded_and_keeps_every_sample_counted() -> None:
    ser = SecondSeries(capacity=64)
    for i in range(30 * 1000):                 # 1000 s at 30 fps
        ser.add(i / 30, 50.0)
    b = ser.finish()
    assert len(b) <= 64
    assert sum(x.count for x in b) == 30 * 1000
    assert all(x.p50 == 50.0 for x in b)


def test_time_window_keeps_only_the_last_seconds() -> None:
    w = TimeWindow(10.0)
    for i in range(100):
        w.add(float(i), float(i))
    assert w.values().min() == 89 and len(w) == 11


def test_bounded_series_thins_evenly() -> None:
    s = BoundedSeries(capacity=100)
    for i in range(10_000):
        s.add(float(i), 1.0)
    ts = [p[0] for p in s.points]
    assert len(ts) < 100
    assert ts[0] == 0 and ts[-1] > 9000
    steps = np.diff(ts)
    assert steps.min() == steps.max()          # evenly spaced


def p50_ms(out: dict[str, object]) -> dict[str, list[float]]:
    """PartSeries.finish()'s 'p50_ms': {part: [median per interval]}."""
    p50 = out["p50_ms"]
    assert isinstance(p50, dict)
    return p50


def test_part_series_keeps_each_parts_median_per_interval() -> None:
    ser = PartSeries(width=10.0)
    for i in range(300):                               # 30 s at 10 per second
        t = i / 10
        parts = {"model": 50.0 + 10 * (t // 10)}
        if t >= 10:
            parts["extraction"] = 20.0                 # a stage that starts later
        ser.add(t, parts)
    out = ser.finish()
    assert out["t_s"] == [0.0, 10.0, 20.0] and out["count"] == [100, 100, 100]
    p50 = p50_ms(out)
    assert p50["model"] == [50.0, 60.0, 70.0]
    assert math.isnan(p50["extraction"][0])
    assert p50["extraction"][1:] == [20.0, 20.0]


def test_part_series_stays_bounded_and_keeps_every_sample_counted() -> None:
    ser = PartSeries(width=1.0, capacity=16)
    for i in range(1000):
        ser.add(i / 10, {"model": float(i // 10)})
    out = ser.finish()
    t_s, count, width_s = out["t_s"], out["count"], out["width_s"]
    assert isinstance(t_s, list) and isinstance(count, list)
    assert isinstance(width_s, int | float)
    assert len(t_s) <= 16 and sum(count) == 1000
    assert width_s >= 100 / 16
    # merged medians still rise with time as the values did
    assert p50_ms(out)["model"] == sorted(p50_ms(out)["model"])
