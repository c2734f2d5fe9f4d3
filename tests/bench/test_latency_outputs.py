"""The run summary, JSON, plot and Markdown report, from a synthetic matched run."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from bench.latency_match import FrameMatcher, feed_result
from bench.latency_plot import write_plot
from bench.latency_report import build_document, markdown, stage_drift, write_json, write_markdown
from bench.latency_summary import RunRecorder
from bench.machine import HostCanary, cpu_times, cpu_use_between


def _synthetic_run(engine: str, seconds: float = 30, fps: float = 30, base_ms: float = 60,
                   drop_every: int = 0, creep_ms_per_s: float = 0.0) -> dict:
    t0 = 1000.0
    n = int(seconds * fps)
    rng = np.random.default_rng(3)
    sent, received, telemetry = {}, [], []
    pts = 0
    for i in range(n):
        t_cap = t0 + 0.5 + i / fps
        sent[i] = t_cap
        if drop_every and i % drop_every == drop_every - 1:
            continue
        lat = (base_ms + creep_ms_per_s * i / fps + rng.uniform(0, 10)) / 1e3
        t_in = t_cap + 0.01
        telemetry.append({"type": "frame", "frame_id": i, "input_id": i, "out_pts": pts,
                          "stages": {"video_decode": [t_in - 0.002, t_in],
                                     "receive": [t_in, t_in],
                                     "model": [t_in + 0.001, t_cap + lat - 0.01]},
                          "drops": {"mailbox": i // drop_every if drop_every else 0},
                          # the model stage works 20 ms of its wall time, the rest it waits
                          "cpu_ms": {"model": 20.0}})
        received.append((pts, t_cap + lat))
        pts += 3000
    rec = RunRecorder(t0, warmup_s=2.0, window_s=seconds / 3)
    m = FrameMatcher(rec.add)
    counts = feed_result(m, sent, received, telemetry)
    for k in range(int(seconds)):
        rec.add_rss(t0 + k, 200.0, 300.0)
        if k % 5 == 0:
            rec.add_host_work(t0 + k, 3.0 + (k >= seconds / 2))   # the host slows halfway
    run = rec.summary(counts, m.drops_by_stage, t_send_start=min(sent.values()),
                      t_send_end=max(sent.values()))
    return {"engine": engine, "client": "python", "codec": "H264", "preset": "cpu",
            "resolution": {"input": [640, 480], "output": [128, 128]}, **run}


def test_summary_reports_the_run_it_was_fed() -> None:
    run = _synthetic_run("echo", drop_every=10)
    assert 60 <= run["e2e_ms"]["p50"] <= 70 and run["e2e_ms"]["p99"] <= 70
    assert run["fps_in"] == pytest.approx(30, rel=0.01)
    assert run["fps_out"] == pytest.approx(27, rel=0.05)      # one in ten dropped
    # the last input (899) is dropped too, but nothing later got through: in flight
    assert run["dropped"]["total"] == 89 and run["dropped"]["in_flight_at_end"] == 1
    assert run["dropped"]["by_stage"]["mailbox"] == 89
    assert run["first_frame_ms"] == pytest.approx(500 + 60, abs=11)
    assert run["stages_ms"]["network_up"] == pytest.approx(8, abs=0.01)
    assert run["stages_ms"]["video_decode"] == pytest.approx(2, abs=0.01)
    assert abs(run["drift"]["change_pct"]) < 10


def test_creeping_latency_shows_in_the_drift_figure() -> None:
    run = _synthetic_run("model", creep_ms_per_s=2.0)
    assert run["drift"]["change_pct"] > 10
    p50s = run["series"]["p50_ms"]
    assert p50s[-1] > p50s[1] + 40


def test_the_drift_names_the_stage_it_comes_from() -> None:
    run = _synthetic_run("model", creep_ms_per_s=2.0)
    by_stage = run["drift"]["by_stage"]
    model = by_stage["model"]["last_p50_ms"] - by_stage["model"]["first_p50_ms"]
    e2e = run["drift"]["last_p50_ms"] - run["drift"]["first_p50_ms"]
    assert model == pytest.approx(e2e, abs=3) and model > 30
    decode = by_stage["video_decode"]
    assert decode["last_p50_ms"] == pytest.approx(decode["first_p50_ms"], abs=0.01)
    assert stage_drift(run).startswith("model +")
    # over time: the model stage's 10 s medians climb, the decode's stay put
    ser = run["stage_series"]
    assert ser["width_s"] == 10 and len(ser["t_s"]) >= 3
    assert ser["p50_ms"]["model"][-1] > ser["p50_ms"]["model"][0] + 30
    assert max(ser["p50_ms"]["video_decode"]) == pytest.approx(2, abs=0.01)


def test_json_plot_and_report_are_written(tmp_path) -> None:
    doc = build_document([_synthetic_run("echo"), _synthetic_run("model", base_ms=200)],
                         {"command": "marionette bench latency --engine both", "fps": 30,
                          "seconds": 30, "client": "python", "source": "synthetic",
                          "warmup_s": 2.0}, notes="test run")
    doc["runs"][0]["e2e_ms"]["p99"] = math.nan                 # NaN must not break JSON
    write_json(doc, tmp_path / "r.json")
    write_plot(doc, tmp_path / "r.png")
    write_markdown(doc, tmp_path / "r.md", "r.png")

    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["runs"][0]["e2e_ms"]["p99"] is None
    for key in ("schema", "date", "commit", "machine", "config", "runs"):
        assert key in loaded
    assert loaded["machine"]["cores"] >= 1 and loaded["machine"]["cpu"]
    for r in loaded["runs"]:
        for key in ("e2e_ms", "first_frame_ms", "fps_in", "fps_out", "dropped", "stages_ms",
                    "jitter_ms", "codec", "preset", "resolution", "engine"):
            assert key in r, key

    png = (tmp_path / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    md = (tmp_path / "r.md").read_text()
    assert "| echo |" in md and "| model |" in md and "![latency](r.png)" in md
    assert "Where the drift comes from" in md
    goals = {line.split(":")[0]: line for line in md.splitlines() if line.startswith("- ")}
    assert "p95 " in goals["- echo"] and "NOT met" not in goals["- echo"]
    assert "(NOT met)" in goals["- model"]                     # p95 > 150 ms
    assert md == markdown(json.loads((tmp_path / "r.json").read_text()), "r.png")


def test_cpu_use_reads_busy_and_stolen_shares_and_the_report_says_them() -> None:
    # user nice system idle iowait irq softirq steal: 100 ticks, 20 busy, 10 stolen
    before = [1000, 0, 500, 8000, 100, 0, 0, 50]
    after = [1015, 0, 505, 8070, 100, 0, 0, 60]
    use = cpu_use_between(before, after)
    assert use == {"busy": 20.0, "steal": 10.0}
    assert cpu_use_between(before, before) is None and cpu_use_between(None, after) is None
    doc = build_document([_synthetic_run("echo")],
                         {"command": "x", "fps": 30, "seconds": 30, "client": "python",
                          "source": "synthetic", "warmup_s": 2.0, "cpu_use_pct": use})
    assert "20.0 % busy, 10.0 % stolen" in markdown(doc)
    doc["commit"] = "0123456789abcdef-dirty"                    # uncommitted changes show
    assert "commit `0123456789ab-dirty`" in markdown(doc)
    if Path("/proc/stat").exists():                            # Linux: the real counters
        times = cpu_times()
        assert times is not None and len(times) >= 8 and sum(times) > 0


def test_a_stages_cpu_time_is_reported_beside_its_wall_time() -> None:
    run = _synthetic_run("model", creep_ms_per_s=2.0)
    assert run["stages_cpu_ms"] == {"model": 20.0}
    model = run["drift"]["by_stage"]["model"]
    assert model["cpu_first_p50_ms"] == model["cpu_last_p50_ms"] == 20.0
    # the creep is waiting, not working: the drift line says the CPU time did not move
    assert stage_drift(run).startswith("model +") and "(CPU +0.0 ms)" in stage_drift(run)
    doc = build_document([run], {"command": "x", "fps": 30, "seconds": 30, "client": "python",
                                 "source": "synthetic", "warmup_s": 2.0})
    wall = run["stages_ms"]["model"]
    assert f"model: model 20.0 of {wall:.1f} ms" in markdown(doc)


def test_the_host_canary_is_reported_and_samples_until_stopped() -> None:
    run = _synthetic_run("model", seconds=30)
    assert [p[1] for p in run["host_work_ms"]] == [3.0, 3.0, 3.0, 4.0, 4.0, 4.0]
    doc = build_document([run], {"command": "x", "fps": 30, "seconds": 30, "client": "python",
                                 "source": "synthetic", "warmup_s": 2.0})
    assert "model: 4.0 ms (3.0–4.0)" in markdown(doc)

    with HostCanary(period=0.05) as canary:
        time.sleep(0.5)
    n = len(canary.samples)
    time.sleep(0.2)
    assert 3 <= n <= 11 and len(canary.samples) == n              # nothing after exit
    assert all(ms > 0 for _, ms in canary.samples)
    times = [t for t, _ in canary.samples]
    assert times == sorted(times)
