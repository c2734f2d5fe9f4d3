"""`--client browser`: the latency run with Debian's headless Chromium as the client.

Chromium (driven by the `playwright` PyPI package, `executable_path=/usr/bin/chromium`,
never a downloaded browser) opens clients/web/bench.html from the server. Its camera
is Chromium's fake device reading a generated `.y4m` whose frames carry their index
as a barcode (streaming/barcode.py). The page records capture and display times on
its own clock; this module maps them once onto the server's time.monotonic() (see
bench/README.md, "Browser client"), turns the looping barcode index into a run-wide
frame id, aligns the RTP timestamps of displayed frames with the telemetry's
`out_pts`, and hands everything to the same matcher as the Python client.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
LOOP_SECONDS = 4.0          # y4m length: the barcode index wraps every LOOP_SECONDS * fps


def chromium_flags(y4m: Path) -> list[str]:
    """The flags WEBRTC-NOTES.md found to work for a loopback session with a fake camera."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


def write_y4m(path: Path, size: tuple[int, int], fps: float, n_frames: int,
              video: str | None = None) -> None:
    """A `.y4m` (yuv420p) of `n_frames` frames, frame k carrying barcode k."""
    import av

    from clients.sources import file_frames, synthetic_frames
    from streaming import barcode

    width, height = size
    frames = file_frames(video, size) if video else synthetic_frames(size, fps)
    num, den = (int(round(fps * 1000)), 1000)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{num}:{den} Ip A1:1 C420jpeg\n".encode())
        for k in range(n_frames):
            image = barcode.encode(next(frames).copy(), k)
            yuv = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            f.write(b"FRAME\n")
            f.write(yuv.to_ndarray().tobytes())      # (H * 3/2, W): Y, then U, then V


def clock_offset(page: Any, trials: int = 20) -> tuple[float, float]:
    """(offset, uncertainty) in seconds: monotonic = performance.now()/1000 + offset.

    Read time.monotonic(), the page's performance.now(), time.monotonic() again; the
    trial with the shortest round trip bounds the page's reading best (NTP's rule)."""
    best: tuple[float, float] | None = None
    for _ in range(trials):
        m0 = time.monotonic()
        now_ms = float(page.evaluate("performance.now()"))
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[1] * 2:
            best = ((m0 + m1) / 2 - now_ms / 1e3, (m1 - m0) / 2)
    assert best is not None
    return best


def unwrap_captures(captures: list[tuple[int, float]], period: int) -> list[tuple[int, float]]:
    """(barcode k, t) in capture order -> (run-wide id, t): the y4m loops every `period`
    frames, so k restarts at 0; a backward jump of more than half a period is a wrap."""
    out, loop, last = [], 0, None
    for k, t in captures:
        if last is not None and k < last - period // 2:
            loop += 1
        last = k
        out.append((loop * period + k, t))
    return out


def captures_by_barcode(captures: list[tuple[int, float]],
                        period: int) -> dict[int, list[tuple[float, int]]]:
    """Run-wide (id, t) captures -> barcode k -> [(t, id)] in time order."""
    by_k: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for g, t in sorted(captures, key=lambda c: c[1]):
        by_k[g % period].append((t, g))
    return by_k


def resolve_barcode(by_k: dict[int, list[tuple[float, int]]], k: int | None,
                    before: float, max_age: float = LOOP_SECONDS / 2) -> int | None:
    """The run-wide id of the capture of barcode k that happened last before `before`,
    if that was less than `max_age` seconds earlier: when the page missed this loop's
    capture of k, the previous loop's must not stand in for it (a whole-loop error)."""
    if k is None:
        return None
    seen = by_k.get(int(k), [])
    i = bisect.bisect_right(seen, (before, float("inf"))) - 1
    if i < 0 or before - seen[i][0] > max_age:
        return None
    return seen[i][1]


def measure_browser(url: str, engine: str, args: argparse.Namespace,
                    server_pid: int | None) -> dict[str, Any]:
    """One engine's run with headless Chromium; returns its `runs[]` entry."""
    from playwright.sync_api import sync_playwright

    from bench.latency import _parse_size, _progress, rss_mb
    from bench.latency_live import split_token
    from bench.latency_match import FrameMatcher, estimate_pts_offset, feed_result
    from bench.latency_summary import RunRecorder
    from bench.machine import HostCanary

    size = _parse_size(args.size)
    period = max(2, int(round(LOOP_SECONDS * args.fps)))
    events: dict[str, list[Any]] = {"captures": [], "displays": [], "telemetry": [],
                                    "control": []}
    rss: list[tuple[float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="marionette-bench-") as tmp:
        y4m = Path(tmp) / "camera.y4m"
        write_y4m(y4m, size, args.fps, period, args.video)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_flags(y4m))
            try:
                page = browser.new_page()
                base, token = split_token(url)
                page.goto(base + "/bench.html" + (f"?token={token}" if token else ""))
                page.wait_for_function("window.bench !== undefined")
                offset, uncertainty = clock_offset(page)
                page.evaluate("o => bench.start(o)", {"width": size[0], "height": size[1],
                                                      "fps": args.fps, "token": token})
                end = time.monotonic() + args.seconds
                with _progress() as progress, HostCanary() as canary:
                    task = progress.add_task(f"{engine} (browser)", total=args.seconds)
                    while time.monotonic() < end:
                        page.wait_for_timeout(1000)
                        for key, items in page.evaluate("bench.drain()").items():
                            events[key] += items
                        rss.append((time.monotonic(),
                                    rss_mb(server_pid) if server_pid else None))
                        progress.update(task, completed=args.seconds - (end - time.monotonic()),
                                        description=f"{engine} (browser): "
                                        f"{len(events['displays'])} frames shown")
                page.wait_for_timeout(300)           # frames in flight
                for key, items in page.evaluate("bench.drain()").items():
                    events[key] += items
                info = page.evaluate("bench.info")
                page.evaluate("bench.stop()")
            finally:
                browser.close()

    def mono(t_ms: float) -> float:
        return t_ms / 1e3 + offset

    t0 = mono(info["tConnectStart"])
    captures = unwrap_captures([(c["k"], mono(c["t"])) for c in events["captures"]], period)
    by_k = captures_by_barcode(captures, period)

    telemetry = []
    for r in events["telemetry"]:
        first = min((s for s, _ in r.get("stages", {}).values()), default=r.get("t_capture"))
        telemetry.append({**r, "input_id": resolve_barcode(by_k, r.get("input_id"), first)})
    displays = [d for d in events["displays"] if d.get("rtp") is not None]
    sent = sorted((float(r["t_sent"]), int(r["out_pts"])) for r in telemetry if "t_sent" in r)
    # displays carry raw RTP timestamps: subtract the sender's random origin once
    shift = estimate_pts_offset([(int(d["rtp"]), mono(d["t"])) for d in displays], sent) or 0
    received = [((int(d["rtp"]) - shift) % 2**32, mono(d["t"])) for d in displays]

    recorder = RunRecorder(t0, warmup_s=args.warmup, window_s=min(60.0, args.seconds / 3))
    matcher = FrameMatcher(recorder.add)
    counts = feed_result(matcher, dict(captures), received, telemetry)
    for t, server in rss:
        recorder.add_rss(t, rss_mb() or 0.0, server)
    for t, ms in canary.samples:
        recorder.add_host_work(t, ms)
    hello: dict[str, Any] = next(
        (c for c in events["control"] if c.get("type") == "hello"), {})
    summary = recorder.summary(counts, matcher.drops_by_stage,
                               t_send_start=captures[0][1] if captures else t0,
                               t_send_end=captures[-1][1] if captures else t0)
    return {"engine": engine, "client": "browser", "codec": info.get("codec"),
            "preset": args.preset if engine == "model" else None,
            "resolution": {"input": list(size), "output": hello.get("resolution")},
            "browser": {"clock_offset_uncertainty_ms": uncertainty * 1e3,
                        "capture_time_from_metadata": bool(info.get("captureTimeSeen")),
                        "barcode_period_frames": period, "rtp_origin": shift},
            **summary}
