"""Microbenchmarks: the avatar studio's renderer and data engine, on the CPU.

    pytest bench/test_avatars.py --benchmark-only --benchmark-json=raw.json
    python bench/test_avatars.py raw.json bench/results/avatars-cpu.json "notes"

What one call includes:
- render: one frame of a character in a retargeted pose -> (H, W, 4) uint8 RGBA,
  background and all (skia drawing + the numpy wrap), at 128² and 256², for a flat
  outlined character and a soft-shaded patterned one; poses cycle through 60 frames
  of procedural motion (waves, claps, counting, dance ...), retargeted beforehand.
- motion: one NormalizedMotion frame from the procedural generator.
- library: the same 60-shape scene (cubic paths, round-capped strokes, ovals, alpha
  colours) drawn by skia-python and by pycairo into a numpy RGBA array, the measurement
  behind the choice of skia (pycairo is not a dependency: `pip install pycairo`, which
  needs libcairo2-dev, to run its half; it is skipped otherwise).
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
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.machine import summarise_pytest_benchmark
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


def _scene() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.random(8), rng.integers(0, 255, 4)) for _ in range(60)]


def _draw_skia(n: int, shapes: list) -> np.ndarray:
    import skia

    arr = np.zeros((n, n, 4), np.uint8)
    surface = skia.Surface(arr, colorType=skia.kRGBA_8888_ColorType,
                           alphaType=skia.kPremul_AlphaType)
    with surface as c:
        c.clear(skia.ColorWHITE)
        p = skia.Paint(AntiAlias=True)
        for i, (v, col) in enumerate(shapes):
            p.setColor(skia.Color(*[int(x) for x in col]))
            if i % 3 == 0:
                path = skia.Path()
                path.moveTo(v[0] * n, v[1] * n)
                path.cubicTo(v[2] * n, v[3] * n, v[4] * n, v[5] * n, v[6] * n, v[7] * n)
                path.close()
                p.setStyle(skia.Paint.kFill_Style)
                c.drawPath(path, p)
            elif i % 3 == 1:
                p.setStyle(skia.Paint.kStroke_Style)
                p.setStrokeWidth(v[6] * n * 0.1)
                p.setStrokeCap(skia.Paint.kRound_Cap)
                c.drawLine(v[0] * n, v[1] * n, v[2] * n, v[3] * n, p)
            else:
                p.setStyle(skia.Paint.kFill_Style)
                c.drawOval(skia.Rect.MakeXYWH(v[0] * n, v[1] * n, v[2] * n * 0.3,
                                              v[3] * n * 0.3), p)
    return arr


def _draw_cairo(n: int, shapes: list) -> np.ndarray:
    import cairo

    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, n, n)
    c = cairo.Context(surface)
    c.set_source_rgb(1, 1, 1)
    c.paint()
    for i, (v, col) in enumerate(shapes):
        c.set_source_rgba(*(col / 255.0))
        if i % 3 == 0:
            c.move_to(v[0] * n, v[1] * n)
            c.curve_to(v[2] * n, v[3] * n, v[4] * n, v[5] * n, v[6] * n, v[7] * n)
            c.close_path()
            c.fill()
        elif i % 3 == 1:
            c.set_line_width(v[6] * n * 0.1)
            c.set_line_cap(cairo.LINE_CAP_ROUND)
            c.move_to(v[0] * n, v[1] * n)
            c.line_to(v[2] * n, v[3] * n)
            c.stroke()
        else:
            c.save()
            c.translate(v[0] * n + v[2] * n * 0.15, v[1] * n + v[3] * n * 0.15)
            c.scale(v[2] * n * 0.15, v[3] * n * 0.15)
            c.arc(0, 0, 1, 0, 2 * np.pi)
            c.restore()
            c.fill()
    surface.flush()
    bgra: np.ndarray = np.ndarray((n, n, 4), np.uint8, surface.get_data()).copy()
    return bgra[..., [2, 1, 0, 3]]


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("library", ["skia", "cairo"])
def test_library(benchmark, library: str, size: int) -> None:
    if library == "cairo":
        pytest.importorskip("cairo")
    draw = _draw_skia if library == "skia" else _draw_cairo
    shapes = _scene()
    out = benchmark.pedantic(lambda: draw(size, shapes), rounds=200, iterations=1,
                             warmup_rounds=20)
    assert out.shape == (size, size, 4) and out[..., 3].min() == 255


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


def summarise(raw: Path, out: Path, notes: str) -> dict:
    """pytest-benchmark JSON -> the committed results file (bench/machine.py)."""
    import skia

    versions = {"skia_python": skia.__version__}
    return summarise_pytest_benchmark(raw, out, "avatars", notes, versions)


if __name__ == "__main__":
    summary = summarise(Path(sys.argv[1]), Path(sys.argv[2]),
                        sys.argv[3] if len(sys.argv) > 3 else "")
    print(json.dumps(summary))
