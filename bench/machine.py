"""Provenance for every committed benchmark result: the machine, the commit, the date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            return out.splitlines()[0] if out else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def cpu_times() -> list[int] | None:
    """The machine-wide CPU time counters of /proc/stat (user, nice, system, idle, iowait,
    irq, softirq, steal, ...), in clock ticks; None where there is no /proc."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return [int(x) for x in first[1:]] if first and first[0] == "cpu" else None


def cpu_use_between(before: list[int] | None, after: list[int] | None) -> dict[str, float] | None:
    """Busy and stolen shares (%) of all CPU time between two `cpu_times()` readings.
    Steal is time the hypervisor gave to other guests: a host slowing this run down
    that the run itself cannot see otherwise."""
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return None
    d = [a - b for a, b in zip(after[:8], before[:8], strict=True)]
    total = sum(d)
    if total <= 0:
        return None
    idle = d[3] + d[4]
    return {"busy": round(100 * (total - idle - d[7]) / total, 1),
            "steal": round(100 * d[7] / total, 1)}


class HostCanary:
    """How fast the host runs a fixed piece of work, sampled through a run.

    Every `period` seconds a daemon thread times the same single-threaded numpy work
    (about 5 ms on the 2-core machines) by its own thread's CPU time, so waiting for a
    core does not count: the figure moves only when the core itself is slower
    (frequency, another guest on the same physical core, cache pressure). A soak whose
    stages all slow down together while this rises is seeing the host, not itself.
    """

    def __init__(self, period: float = 5.0, size: int = 1 << 16, repeats: int = 8) -> None:
        import numpy as np

        self.period = period
        self.samples: list[tuple[float, float]] = []      # (time.monotonic(), ms)
        self._x = np.linspace(0.0, 1.0, size)
        self._repeats = repeats
        self.checksum = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-canary", daemon=True)

    def work_ms(self) -> float:
        """CPU milliseconds of this thread for one fixed piece of work."""
        import numpy as np

        t0 = time.thread_time_ns()
        acc = 0.0
        for _ in range(self._repeats):
            acc += float(np.sin(self._x).sum())
        self.checksum = acc
        return (time.thread_time_ns() - t0) / 1e6

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append((time.monotonic(), self.work_ms()))

    def __enter__(self) -> HostCanary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (None without one), OS and library versions."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("aiortc", "av", "torch", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": memory_gb(),
            "gpu": gpu_name(), "os": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def git_commit(repo: Path = REPO) -> str:
    """HEAD's sha, with '-dirty' when tracked files differ from it; 'unknown' outside git.
    MARIONETTE_COMMIT overrides it (a copy of the tree without .git, e.g. on a GPU host)."""
    if os.environ.get("MARIONETTE_COMMIT"):
        return os.environ["MARIONETTE_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo,
                               timeout=10).returncode != 0
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise_pytest_benchmark(raw: Path, out: Path, bench: str, notes: str = "",
                               versions: dict[str, str] | None = None) -> dict[str, Any]:
    """A pytest-benchmark JSON -> the committed results file: per benchmark the median
    (p50, the quoted statistic), p95, IQR, fastest round and rate, with the machine,
    commit, date and load average."""
    import json

    import numpy as np

    rows = {}
    for b in json.loads(Path(raw).read_text())["benchmarks"]:
        s = b["stats"]
        times = np.asarray(s.get("data") or [s["median"]])
        rows[b["name"]] = {
            "p50_ms": round(s["median"] * 1e3, 3),
            "p95_ms": round(float(np.percentile(times, 95)) * 1e3, 3),
            "iqr_ms": round(s["iqr"] * 1e3, 3),
            "min_ms": round(s["min"] * 1e3, 3),
            "per_s": round(1.0 / s["median"], 1),
            "per_s_best": round(1.0 / s["min"], 1),
            "rounds": s["rounds"],
            **b.get("extra_info", {}),
        }
    result = {"bench": bench, "machine": machine_info(), "commit": git_commit(),
              "date": utc_now(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
              "versions": versions or {}, "notes": notes, "results": rows}
    Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result
