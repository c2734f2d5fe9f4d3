"""Microbenchmarks: the avatar studio's renderer and data engine, on the CPU.

    pytest bench/test_avatars.py --benchmark-only --benchmark-json=raw.json
    python bench/test_avatars.py raw.json bench/results/avatars-cpu.json "notes"

What one call includes:
- render: one frame of a character in a retargeted pose -> (H, W, 4) uint8 RGBA,
  background and all (skia drawing + the numpy wrap), at 128² and 256², for a flat
  outlined character and a soft-shaded patterned one; poses cycle through 60 frames
  of procedural motion (waves, claps, counting, dance ...), retargeted beforehand.
- motion: one NormalizedMotion frame from the procedural generator.
- clip: one whole dataset sample (16 frames at 128²: motion, augmentation,
  retargeting, 16 ground-truth frames, 2 reference images), i.e. what a data-loader
  worker does per training clip.
Warm-up rounds are on; pytest-benchmark reports min/median/IQR. The conversion step
(`python bench/test_avatars.py ...`) writes the committed JSON (device, commit,
date, frames/s from the medians) and prints it as one JSON line.
"""

from __future__ import annotations

import itertools
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from realtime.avatars import gallery
from realtime.avatars.dataset import DatasetConfig, _Tracks, make_sample, plan
from realtime.avatars.motion import ProceduralMotion, to_pose
from realtime.avatars.render import render

CHARACTERS = {"flat": "stilt", "soft": "rook"}   # flat+outline+stripes / soft+check+scarf


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("style", list(CHARACTERS))
def test_render(benchmark, size: int, style: str) -> None:
    char = gallery.get(CHARACTERS[style])
    gen = ProceduralMotion(3)
    poses = [to_pose(gen.frame(i * 5), char.skeleton) for i in range(60)]
    cycle = itertools.cycle(poses)
    out = benchmark.pedantic(lambda: render(char, next(cycle), size, "gradient", "upper"),
                             rounds=200, iterations=1, warmup_rounds=20)
    assert out.shape == (size, size, 4)


def test_motion_frame(benchmark) -> None:
    gen = ProceduralMotion(5)
    counter = itertools.count()
    benchmark.pedantic(lambda: gen.frame(next(counter)), rounds=300, iterations=1,
                       warmup_rounds=30)


def test_dataset_clip(benchmark) -> None:
    cfg = DatasetConfig(characters=8, clips=64, resolution=128, frames=16)
    clips = itertools.cycle(plan(cfg, []))
    tracks = _Tracks(None)
    benchmark.pedantic(lambda: make_sample(next(clips), cfg, tracks), rounds=8, iterations=1,
                       warmup_rounds=1)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def summarise(raw: Path, out: Path, notes: str) -> dict:
    """pytest-benchmark JSON -> the committed results file."""
    data = json.loads(raw.read_text())
    rows = {}
    for b in data["benchmarks"]:
        s = b["stats"]
        rows[b["name"]] = {
            "median_ms": round(s["median"] * 1e3, 3), "min_ms": round(s["min"] * 1e3, 3),
            "iqr_ms": round(s["iqr"] * 1e3, 3), "rounds": s["rounds"],
            "per_s": round(1.0 / s["median"], 1),
        }
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    import os

    import skia

    result = {
        "bench": "avatars",
        "device": {"cpu": _cpu(), "cores": os.cpu_count(), "gpu": None},
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "skia_python": skia.__version__,
        "notes": notes,
        "results": rows,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    summary = summarise(Path(sys.argv[1]), Path(sys.argv[2]),
                        sys.argv[3] if len(sys.argv) > 3 else "")
    print(json.dumps(summary))
