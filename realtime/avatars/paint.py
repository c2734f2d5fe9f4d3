"""Skia paint helpers shared by the body and head drawers: colours, outlines, shading.

Everything is drawn in pixels with antialiasing on. "Soft" shading is a linear
gradient across a shape, lit from the upper left; the character's `shading` in
[0, 1] sets its contrast, so 0 is a flat cartoon fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import skia

from realtime.avatars.character import RGB, Character

Point = Sequence[float]
LIGHT = np.array([-0.6, -0.8])  # light direction in the image (from the upper left)


def color(rgb: RGB, alpha: int = 255) -> int:
    return skia.ColorSetARGB(alpha, int(rgb[0]), int(rgb[1]), int(rgb[2]))


@lru_cache(maxsize=4096)
def shade(rgb: RGB, amount: float) -> RGB:
    """Lighten (amount > 0) towards white or darken (< 0) towards black."""
    if amount > 0:
        r, g, b = (v + (255.0 - v) * amount for v in rgb)
    else:
        r, g, b = (v * (1.0 + amount) for v in rgb)
    return (min(max(round(r), 0), 255), min(max(round(g), 0), 255), min(max(round(b), 0), 255))


@lru_cache(maxsize=4096)
def _ramp(rgb: RGB, k: float) -> tuple[int, int, int]:
    """Highlight, base and shadow colours of a soft-shaded fill."""
    return color(shade(rgb, 0.25 * k)), color(rgb), color(shade(rgb, -0.35 * k))


def fill(rgb: RGB, alpha: int = 255) -> skia.Paint:
    return skia.Paint(AntiAlias=True, Color=color(rgb, alpha), Style=skia.Paint.kFill_Style)


def stroke(rgb: RGB, width: float, round_cap: bool = True) -> skia.Paint:
    return skia.Paint(
        AntiAlias=True,
        Color=color(rgb),
        Style=skia.Paint.kStroke_Style,
        StrokeWidth=float(width),
        StrokeCap=skia.Paint.kRound_Cap if round_cap else skia.Paint.kButt_Cap,
        StrokeJoin=skia.Paint.kRound_Join,
    )


class Painter:
    """Draws outlined, optionally shaded shapes in one character's style."""

    def __init__(self, canvas: skia.Canvas, character: Character, unit: float) -> None:
        self.canvas = canvas
        self.c = character
        self.unit = unit                                  # pixels per canvas unit
        self.outline = character.outline * character.head_h * unit
        self.line = character.outline_color

    def shaded(self, paint: skia.Paint, rgb: RGB, center: Point, radius: float) -> skia.Paint:
        """Give `paint` a light-to-shadow gradient across a shape of `radius` pixels."""
        k = self.c.shading
        if k <= 0.0 or radius <= 0.5:
            return paint
        cx, cy = float(center[0]), float(center[1])
        p0 = skia.Point(cx + LIGHT[0] * radius, cy + LIGHT[1] * radius)
        p1 = skia.Point(cx - LIGHT[0] * radius, cy - LIGHT[1] * radius)
        paint.setShader(skia.GradientShader.MakeLinear([p0, p1], list(_ramp(rgb, k))))
        return paint

    def limb(self, points: np.ndarray, width: float, rgb: RGB) -> None:
        """A thick round-capped polyline through (N, 2) pixel points, outlined."""
        path = skia.Path()
        path.moveTo(float(points[0, 0]), float(points[0, 1]))
        for x, y in points[1:]:
            path.lineTo(float(x), float(y))
        if self.outline > 0:
            self.canvas.drawPath(path, stroke(self.line, width + 2 * self.outline))
        paint = stroke(rgb, width)
        mid = ((points[0, 0] + points[-1, 0]) * 0.5, (points[0, 1] + points[-1, 1]) * 0.5)
        self.canvas.drawPath(path, self.shaded(paint, rgb, mid, width * 0.5 + 1))

    def shape(
        self, path: skia.Path, rgb: RGB, center: Point, radius: float, scale: float = 1.0
    ) -> None:
        """A filled path with the character's outline and shading; `scale` is the
        pixels per unit of the canvas's current transform (outlines stay in pixels)."""
        if self.outline > 0:
            self.canvas.drawPath(path, stroke(self.line, 2 * self.outline / scale))
        self.canvas.drawPath(path, self.shaded(fill(rgb), rgb, center, radius))

    def polygon(self, points: np.ndarray, rgb: RGB, rounded: float = 0.0) -> None:
        path = skia.Path()
        path.addPoly([skia.Point(float(x), float(y)) for x, y in points], True)
        if rounded > 0:
            # round the corners by stroking the same colour around the fill
            self.canvas.drawPath(path, stroke(self.line, 2 * self.outline + 2 * rounded))
            self.canvas.drawPath(path, stroke(rgb, 2 * rounded))
            self.canvas.drawPath(path, fill(rgb))
            return
        center = points.mean(axis=0)
        radius = float(np.linalg.norm(points - center, axis=1).max())
        self.shape(path, rgb, center, radius)
