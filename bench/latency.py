"""`marionette bench latency`: glass-to-glass latency through a real WebRTC connection.

Starts `marionette serve` on 127.0.0.1 in a subprocess (its own interpreter, so the
server's GIL is not the client's; or targets `--server URL`), streams a synthetic or
file source to it with the Python aiortc client or headless Chromium, and pairs every
generated frame with the input it was made from (by the id in the input's barcode,
see bench/latency_match.py). Reports e2e percentiles, first-frame latency, fps in and
out, drops per stage, jitter, per-stage medians and latency over time; writes JSON,
PNG and Markdown. The method and the JSON schema are in bench/README.md.

    marionette bench latency --synthetic --engine both --seconds 20 \\
        --json bench/results/latency.json --plot bench/results/latency.png \\
        --report bench/results/latency.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--video", metavar="FILE", help="stream this video file (looped)")
    src.add_argument("--synthetic", action="store_true",
                     help="stream a generated moving pattern (the default source)")
    parser.add_argument("--client", choices=("python", "browser"), default="python",
                        help="aiortc client in this process, or headless Chromium (default python)")
    parser.add_argument("--seconds", type=float, default=10.0, help="streaming time per engine")
    parser.add_argument("--fps", type=float, default=30.0, help="input frame rate")
    parser.add_argument("--size", default="640x480", help="input WxH (default 640x480)")
    parser.add_argument("--preset", default=None, help="model preset (default: the server's)")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint for --engine model")
    parser.add_argument("--engine", choices=("model", "echo", "both"), default="model",
                        help="'echo' replaces the model with a pass-through to isolate the "
                             "transport; 'both' runs echo then model into one report")
    parser.add_argument("--server", metavar="URL", default=None,
                        help="use a running server instead of starting one")
    parser.add_argument("--transport", choices=("tuned", "stock"), default="tuned",
                        help="server transport: tuned, or aiortc's defaults (before/after)")
    parser.add_argument("--codec-order", default=None,
                        help="server codec preference, e.g. 'VP8,H264' (default: the server's)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the spawned `marionette serve` (repeatable), "
                             "e.g. --serve-arg=--no-overlap")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds after the first generated frame left out of percentiles")
    parser.add_argument("--json", dest="json_out", metavar="OUT.json", default=None)
    parser.add_argument("--plot", metavar="OUT.png", default=None)
    parser.add_argument("--report", metavar="OUT.md", default=None)
    parser.add_argument("--notes", default="", help="free text carried into JSON and Markdown")


# --- server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`marionette serve` on 127.0.0.1 in a subprocess, up until `stop()`."""

    def __init__(self, engine: str, args: argparse.Namespace) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "realtime.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--engine", engine, "--fps", str(args.fps),
               "--transport", args.transport]
        if args.preset:
            cmd += ["--preset", args.preset]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.codec_order:
            cmd += ["--codec-order", args.codec_order]
        cmd += list(args.serve_arg)
        self._log = tempfile.NamedTemporaryFile("w+", prefix=f"marionette-serve-{engine}-",
                                                suffix=".log", delete=False)
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        self.cmd = cmd

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        self._log.flush()
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def rss_mb(pid: int | None = None) -> float | None:
    """Resident set size of `pid` (default: this process) in MB, from /proc."""
    try:
        pages = int(Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- one run -----------------------------------------------------------------------


def _parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _progress() -> Any:
    """A rich progress bar on stderr (stdout ends with the JSON line)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


def measure_python(url: str, engine: str, args: argparse.Namespace,
                   server_pid: int | None) -> dict[str, Any]:
    """One engine's run with the Python client; returns its `runs[]` entry."""
    import asyncio

    from bench.latency_live import stream_live
    from bench.latency_match import FrameMatcher
    from bench.latency_summary import RunRecorder
    from bench.machine import HostCanary

    recorder = RunRecorder(time.monotonic(), warmup_s=args.warmup,
                           window_s=min(60.0, args.seconds / 3))
    matcher = FrameMatcher(recorder.add, horizon_s=10.0, reorder_s=1.0)

    def set_start(t: float) -> None:
        recorder.t0 = t                     # times are relative to the connection start

    progress = _progress()
    task = progress.add_task(f"{engine}: connecting", total=args.seconds)
    t_streaming: list[float] = []

    def tick(now: float) -> None:
        recorder.add_rss(now, rss_mb() or 0.0, rss_mb(server_pid) if server_pid else None)
        t_streaming.append(now)
        p50 = recorder.e2e.percentile(50) if recorder.e2e.count else float("nan")
        progress.update(task, completed=min(now - t_streaming[0] + 1, args.seconds),
                        description=f"{engine}: {recorder.count} frames, e2e p50 {p50:.0f} ms")

    order = tuple(c.strip().upper() for c in args.codec_order.split(",")) \
        if args.codec_order else None
    with progress, HostCanary() as canary:
        live = asyncio.run(stream_live(url, matcher, seconds=args.seconds, fps=args.fps,
                                       size=_parse_size(args.size), video=args.video,
                                       codec_order=order, on_start=set_start, on_tick=tick))
    for t, ms in canary.samples:
        recorder.add_host_work(t, ms)
    counts = matcher.finish()
    if live.t_send_start is None or live.t_send_end is None:
        raise RuntimeError("the client sent no frames")
    summary = recorder.summary(counts, matcher.drops_by_stage, t_send_start=live.t_send_start,
                               t_send_end=live.t_send_end)
    return {"engine": engine, "client": "python", "codec": live.codec,
            "preset": (args.preset or live.hello.get("preset")) if engine == "model" else None,
            "resolution": {"input": list(_parse_size(args.size)),
                           "output": live.hello.get("resolution")},
            "pts_offset": live.pts_offset, **summary}


def measure(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a server for `engine` (unless --server), run the chosen client, stop it."""
    server = None
    url = args.server
    if url is None:
        server = ServerProcess(engine, args)
        server.wait_ready()
        url = server.url
    try:
        if args.client == "browser":
            from bench.latency_browser import measure_browser

            return measure_browser(url, engine, args, server.pid if server else None)
        return measure_python(url, engine, args, server.pid if server else None)
    except Exception as exc:            # re-raised with the server's last words attached
        if server is not None:
            raise RuntimeError(f"{exc}\n--- server log ---\n{server.log_tail()}") from exc
        raise
    finally:
        if server is not None:
            server.stop()


def _missing_requirements(client: str) -> str | None:
    """What this machine lacks for the chosen client, in words; None when complete."""
    import importlib.util
    import shutil

    need = ["aiortc", "aiohttp", "av"] + (["playwright"] if client == "browser" else [])
    absent = [m for m in need if importlib.util.find_spec(m) is None]
    if absent:
        return "the Python packages " + ", ".join(absent) + " (pip install " + \
            " ".join(absent) + ")"
    if client == "browser":
        from bench.latency_browser import CHROMIUM

        if not shutil.which(CHROMIUM):
            return f"Debian's Chromium at {CHROMIUM} (make browser-deps)"
    return None


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed, or rebuilt from `args` when called from Python."""
    if sys.argv[1:3] == ["bench", "latency"]:
        return "marionette " + shlex.join(sys.argv[1:])
    names = {"json_out": "json"}
    flags = [f"--{names.get(k, k).replace('_', '-')} {v}" for k, v in vars(args).items()
             if v not in (None, False, "") and not k.startswith("_")
             and k not in ("bench", "command")]
    return "marionette bench latency " + " ".join(f.removesuffix(" True") for f in flags)


def run(args: argparse.Namespace) -> int:
    from bench.latency_plot import write_plot
    from bench.latency_report import build_document, headline, write_json, write_markdown
    from bench.machine import cpu_times, cpu_use_between

    missing = _missing_requirements(args.client)
    if missing:
        print(f"marionette bench latency --client {args.client} needs {missing}",
              file=sys.stderr)
        return 2
    engines = ["echo", "model"] if args.engine == "both" else [args.engine]
    if args.server and len(engines) > 1:
        print("--engine both needs a server per engine; drop --server", file=sys.stderr)
        return 2
    load_before = [round(x, 2) for x in os.getloadavg()]
    cpu_before = cpu_times()
    runs = [measure(engine, args) for engine in engines]
    cpu_use = cpu_use_between(cpu_before, cpu_times())
    config = {"command": _command_line(args),
              "source": f"file {args.video}" if args.video else "synthetic",
              "client": args.client, "seconds": args.seconds, "fps": args.fps,
              "size": args.size, "preset": args.preset, "checkpoint": args.checkpoint,
              "warmup_s": args.warmup, "transport": args.transport,
              # other work on the machine: 1/5/15-min load average before and after
              "load_average_before": load_before,
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              # the whole machine's CPU over the run(s), %: busy (this run included) and
              # stolen by the hypervisor for other guests (a slower host, not our code)
              "cpu_use_pct": cpu_use,
              "codec_order": args.codec_order, "serve_args": list(args.serve_arg),
              "server": args.server or "spawned on 127.0.0.1"}
    doc = build_document(runs, config, notes=args.notes)
    if args.json_out:
        write_json(doc, args.json_out)
    if args.plot:
        write_plot(doc, args.plot)
    if args.report:
        plot_name = os.path.relpath(args.plot, Path(args.report).parent) if args.plot else None
        write_markdown(doc, args.report, plot_name)
    print(json.dumps({"bench": "latency", "runs": [headline(r) for r in runs]}))
    return 0
