"""The head: silhouette, hair, ears, the expressive face features, and head accessories.

The head is an ellipsoid. Each face feature (eye, brow, nose, mouth) sits at a point
on it with a local tangent frame; the head rotation (yaw, pitch, roll from the face
feature vector) rotates that frame and its orthographic projection becomes a skia
affine matrix, so a feature moves across the face and foreshortens as the head
turns. Features are clipped to the head silhouette, so they slide out of view
round its side.

Head-local axes: x to the image right, y down, z away from the camera (the nose
points to -z). yaw > 0 turns the nose towards the performer's left (image +x),
pitch > 0 lifts the chin (the motion module's convention), roll > 0 tilts the
head clockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import skia

from realtime.avatars.paint import Painter, fill, shade, stroke
from realtime.motion.types import FACE_FEATURES

F = {name: i for i, name in enumerate(FACE_FEATURES)}


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation Rz(roll) @ Rx(-pitch) @ Ry(yaw) in head-local axes (y is down,
    so a positive pitch, chin up, is a negative turn about x)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(-pitch), np.sin(-pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def eye_drop(build: str) -> float:
    """How far down the eyes sit, in head half-heights (chibi builds lower them)."""
    return 0.12 if build == "chibi" else 0.0


def eye_direction(side: float, eye_v: float) -> tuple[float, float, float]:
    """Where an eye sits on the head (side +1: the image's right), for `surface`."""
    return (0.42 * side, eye_v, -0.9)


def nose_direction(eye_v: float) -> tuple[float, float, float]:
    return (0.0, 0.3 + eye_v * 0.6, -1.0)


def mouth_direction(eye_v: float, jaw: float = 0.0) -> tuple[float, float, float]:
    """Where the mouth sits; the jaw drops it."""
    return (0.0, 0.56 + eye_v * 0.5 + 0.08 * max(jaw, 0.0), -0.85)


@dataclass
class HeadGeometry:
    center: np.ndarray      # (2,) pixels
    rx: float               # half width, pixels
    ry: float               # half height, pixels
    rot: np.ndarray         # (3, 3)
    face: np.ndarray        # (FACE_DIM,)

    def surface(self, d: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, float]:
        """Point on the head for unit-sphere direction d: (pixel xy, 2x2 affine for a
        feature drawn in units of rx, facing = -z of its normal, 1 head-on)."""
        n = np.asarray(d, np.float64)
        n = n / np.sqrt(n @ n)
        p = self.rot @ (n * (self.rx, self.ry, self.rx))
        t1 = np.array([1.0, 0.0, 0.0]) - n * n[0]
        t1 /= np.sqrt(t1 @ t1)
        t2 = np.array([t1[1] * n[2] - t1[2] * n[1], t1[2] * n[0] - t1[0] * n[2],
                       t1[0] * n[1] - t1[1] * n[0]])          # t1 x n
        a = np.stack([(self.rot @ t1)[:2], (self.rot @ t2)[:2]], axis=1) * self.rx
        return self.center + p[:2], a, float(-(self.rot @ n)[2])


def _local(canvas: skia.Canvas, xy: np.ndarray, a: np.ndarray) -> None:
    """Make (0, 0) the feature point and (1, 0) / (0, 1) its tangent axes."""
    canvas.concat(skia.Matrix.MakeAll(
        float(a[0, 0]), float(a[0, 1]), float(xy[0]),
        float(a[1, 0]), float(a[1, 1]), float(xy[1]), 0.0, 0.0, 1.0))


def _silhouette(g: HeadGeometry, shape: str) -> skia.Path:
    """Head outline, centred at the origin before the roll/translate transform."""
    rx, ry = g.rx, g.ry
    jaw = max(0.0, float(g.face[F["jaw"]])) * 0.12 * ry   # the chin drops with the jaw
    path = skia.Path()
    if shape == "square":
        path.addRRect(skia.RRect.MakeRectXY(
            skia.Rect.MakeLTRB(-rx, -ry, rx, ry + jaw), rx * 0.45, ry * 0.45))
    elif shape == "heart":
        path.moveTo(0, -ry)
        path.cubicTo(rx * 1.15, -ry, rx * 1.1, ry * 0.2, 0, ry + jaw)
        path.cubicTo(-rx * 1.1, ry * 0.2, -rx * 1.15, -ry, 0, -ry)
        path.close()
    else:
        k = 1.0 if shape == "round" else 0.92
        path.addOval(skia.Rect.MakeLTRB(-rx * k, -ry, rx * k, ry + jaw))
    return path


def draw_back_hair(p: Painter, g: HeadGeometry) -> None:
    """Long hair and buns behind the head: drawn as its own item, behind the torso."""
    c, canvas = p.c, p.canvas
    yaw, roll = float(g.face[F["yaw"]]), float(g.face[F["roll"]])
    hair = c.hair
    if c.hair_style not in ("long", "bob", "bun"):
        return
    canvas.save()
    canvas.translate(float(g.center[0]), float(g.center[1]))
    canvas.rotate(float(np.degrees(roll)))
    if c.hair_style in ("long", "bob"):
        drop = g.ry * (1.9 if c.hair_style == "long" else 1.05)
        back = skia.Path()
        box = skia.Rect.MakeLTRB(-g.rx * 1.12, -g.ry * 1.02, g.rx * 1.12, drop)
        back.addRRect(skia.RRect.MakeRectXY(box, g.rx * 0.8, g.rx * 0.6))
        p.shape(back, shade(hair, -0.15), (0, 0), g.ry)
    if c.hair_style == "bun":
        bun = skia.Path()
        bun.addCircle(-np.sin(yaw) * g.rx * 0.3, -g.ry * 1.05, g.rx * 0.45)
        p.shape(bun, hair, (0, -g.ry), g.rx * 0.45)
    canvas.restore()


def draw_head(p: Painter, g: HeadGeometry) -> None:
    """Ears, the face with its features, front hair, brows and head accessories."""
    c, canvas = p.c, p.canvas
    yaw, pitch, roll = (float(g.face[F[k]]) for k in ("yaw", "pitch", "roll"))

    # ears, peeking out at the sides
    for sgn in (1.0, -1.0):
        xy, a, facing = g.surface((sgn, 0.05, 0.0))
        if facing > -0.35:
            canvas.save()
            _local(canvas, xy, a)
            ear = skia.Path()
            ear.addOval(skia.Rect.MakeLTRB(-0.18, -0.28, 0.18, 0.28))
            p.shape(ear, shade(c.skin, -0.08), (0, 0), 0.2, scale=g.rx)
            if "earrings" in c.accessories:
                canvas.drawCircle(0, 0.36, 0.09, fill(c.accent))
            canvas.restore()

    # the face
    canvas.save()
    canvas.translate(float(g.center[0]), float(g.center[1]))
    canvas.rotate(float(np.degrees(roll)))
    sil = _silhouette(g, c.head_shape)
    p.shape(sil, c.skin, (0, 0), max(g.rx, g.ry))
    canvas.clipPath(sil, doAntiAlias=True)
    canvas.rotate(-float(np.degrees(roll)))
    canvas.translate(-float(g.center[0]), -float(g.center[1]))
    _features(p, g)
    canvas.restore()

    _front_hair(p, g, yaw, pitch, roll)
    _brows(p, g)      # over the fringe, as cartoons do, so they always read
    _head_accessories(p, g)


def _brows(p: Painter, g: HeadGeometry) -> None:
    c, canvas, f = p.c, p.canvas, g.face
    eye_v = eye_drop(c.build)
    big = {"big": 1.45, "round": 1.0, "almond": 1.0}[c.eye_style]
    tall = {"big": 1.2, "round": 1.0, "almond": 0.6}[c.eye_style]
    w = 0.2 * big
    for sgn, side in ((1.0, "l"), (-1.0, "r")):
        xy, a, facing = g.surface(eye_direction(sgn, eye_v))
        if facing < 0.05:
            continue
        canvas.save()
        _local(canvas, xy, a)
        brow = float(f[F[f"brow_{side}"]])
        by = -0.3 * big * tall - 0.05 - 0.16 * brow
        b = skia.Path()
        inner = -sgn * 0.05 * brow          # raised brows arch at the inner end too
        b.moveTo(-sgn * w * 1.05, by + 0.03 + inner)
        b.quadTo(0.0, by - 0.07, sgn * w * 1.05, by + 0.04)
        canvas.drawPath(b, stroke(shade(c.hair, -0.3), 0.065))
        canvas.restore()


def _features(p: Painter, g: HeadGeometry) -> None:
    c, canvas, f = p.c, p.canvas, g.face
    line = c.outline_color
    eye_v = eye_drop(c.build)
    big = {"big": 1.45, "round": 1.0, "almond": 1.0}[c.eye_style]
    tall = {"big": 1.2, "round": 1.0, "almond": 0.6}[c.eye_style]
    jaw = float(f[F["jaw"]])
    # eyes and brows; "_l" is the performer's left, on the image's right (+x)
    for sgn, side in ((1.0, "l"), (-1.0, "r")):
        xy, a, facing = g.surface(eye_direction(sgn, eye_v))
        if facing < 0.05:
            continue
        canvas.save()
        _local(canvas, xy, a)
        openness = float(np.clip(1.0 + f[F[f"eye_open_{side}"]], 0.0, 1.6))
        w, h = 0.2 * big, 0.17 * big * tall * openness
        if openness < 0.18:
            lid = skia.Path()
            lid.moveTo(-w, 0.0)
            lid.quadTo(0.0, 0.09 * big, w, 0.0)
            canvas.drawPath(lid, stroke(line, 0.05))
        else:
            white = skia.Rect.MakeLTRB(-w, -h, w, h)
            canvas.drawOval(white, fill((250, 250, 250)))
            canvas.save()
            clip = skia.Path()
            clip.addOval(white)
            canvas.clipPath(clip, doAntiAlias=True)
            gx = float(np.clip(f[F["gaze_x"]], -1, 1)) * 0.1 * big
            gy = float(np.clip(f[F["gaze_y"]], -1, 1)) * 0.07 * big
            r_iris = 0.12 * big * min(tall, 1.0) + 0.02
            canvas.drawCircle(gx, gy, r_iris, fill(c.eyes))
            canvas.drawCircle(gx, gy, r_iris * 0.5, fill((15, 15, 20)))
            canvas.drawCircle(gx - r_iris * 0.35, gy - r_iris * 0.4, r_iris * 0.25,
                              fill((255, 255, 255)))
            canvas.restore()
            upper = skia.Path()
            upper.moveTo(-w * 1.1, 0.0)
            upper.cubicTo(-w * 0.6, -h * 1.35, w * 0.6, -h * 1.35, w * 1.1, 0.0)
            canvas.drawPath(upper, stroke(line, 0.05))
        if "glasses" in c.accessories:
            canvas.drawCircle(0.0, 0.0, 0.3 * max(big, 1.0), stroke((35, 35, 45), 0.05))
        canvas.restore()
    if "glasses" in c.accessories:
        l_xy, _, fl = g.surface((0.16, eye_v, -1.0))
        r_xy, _, fr = g.surface((-0.16, eye_v, -1.0))
        if min(fl, fr) > 0.05:
            canvas.drawLine(float(l_xy[0]), float(l_xy[1]), float(r_xy[0]), float(r_xy[1]),
                            stroke((35, 35, 45), 0.05 * g.rx))
    # nose
    xy, a, facing = g.surface(nose_direction(eye_v))
    if facing > 0.05:
        canvas.save()
        _local(canvas, xy, a)
        nose = skia.Path()
        nose.moveTo(-0.06, 0.0)
        nose.quadTo(0.0, 0.06, 0.06, 0.0)
        canvas.drawPath(nose, stroke(shade(c.skin, -0.35), 0.045))
        if c.shading > 0:
            canvas.drawOval(skia.Rect.MakeLTRB(-0.55, -0.05, -0.3, 0.1),
                            fill((255, 120, 120), int(60 * c.shading)))
            canvas.drawOval(skia.Rect.MakeLTRB(0.3, -0.05, 0.55, 0.1),
                            fill((255, 120, 120), int(60 * c.shading)))
        canvas.restore()
    # mouth: width/smile from mouth_width, opening from mouth_open and the jaw
    xy, a, facing = g.surface(mouth_direction(eye_v, jaw))
    if facing > 0.05:
        canvas.save()
        _local(canvas, xy, a)
        smile = float(np.clip(f[F["mouth_width"]], -1, 1.5))
        w = 0.24 * (1.0 + 0.35 * smile) * (0.8 if c.build == "chibi" else 1.0)
        curve = 0.1 * smile
        gap = 0.5 * float(np.clip(f[F["mouth_open"]], -0.5, 2.0)) + 0.3 * max(jaw, 0.0)
        if gap > 0.02:
            m = skia.Path()
            m.moveTo(-w, -curve)
            m.quadTo(0.0, curve * 0.6 - gap * 0.15, w, -curve)
            m.quadTo(0.0, curve + gap * 1.6, -w, -curve)
            m.close()
            canvas.drawPath(m, fill((110, 30, 40)))
            canvas.save()
            canvas.clipPath(m, doAntiAlias=True)
            canvas.drawOval(skia.Rect.MakeLTRB(-w * 0.5, gap * 0.55, w * 0.5, gap * 1.5),
                            fill((220, 100, 110)))
            canvas.restore()
            canvas.drawPath(m, stroke(line, 0.04))
        else:
            m = skia.Path()
            m.moveTo(-w, -curve)
            m.quadTo(0.0, curve * 1.6, w, -curve)
            canvas.drawPath(m, stroke(shade(c.skin, -0.5), 0.05))
        canvas.restore()


def _front_hair(p: Painter, g: HeadGeometry, yaw: float, pitch: float, roll: float) -> None:
    c, canvas = p.c, p.canvas
    if c.hair_style == "bald":
        return
    canvas.save()
    canvas.translate(float(g.center[0]), float(g.center[1]))
    canvas.rotate(float(np.degrees(roll)))
    rx, ry = g.rx, g.ry
    shift = -np.sin(yaw) * rx * 0.12           # the parting drifts as the head turns
    lift = -np.sin(pitch) * ry * 0.25         # chin down: the hairline comes down
    cap = skia.Path()
    cap.moveTo(-rx * 1.08, ry * 0.05)
    cap.cubicTo(-rx * 1.2, -ry * 1.4, rx * 1.2, -ry * 1.4, rx * 1.08, ry * 0.05)
    fringe = -ry * 0.35 + lift
    if c.hair_style == "spiky":
        n = 5
        for i in range(n, -1, -1):
            x = -rx + 2 * rx * i / n
            cap.lineTo(x + shift, fringe + (0.0 if i % 2 else ry * 0.2))
    else:
        cap.cubicTo(rx * 0.7, fringe + ry * 0.15, rx * 0.2 + shift, fringe - ry * 0.15,
                    shift, fringe)
        cap.cubicTo(-rx * 0.3 + shift, fringe + ry * 0.1, -rx * 0.9, fringe + ry * 0.2,
                    -rx * 1.08, ry * 0.05)
    cap.close()
    p.shape(cap, c.hair, (0.0, -ry * 0.5), ry)
    if c.hair_style == "spiky":
        crown = skia.Path()
        for i in range(5):
            x0 = -rx * 0.9 + i * rx * 0.45
            crown.moveTo(x0, -ry * 0.75)
            crown.lineTo(x0 + rx * 0.22 + shift, -ry * 1.3)
            crown.lineTo(x0 + rx * 0.45, -ry * 0.75)
        crown.close()
        p.shape(crown, c.hair, (0.0, -ry), ry)
    canvas.restore()


def _head_accessories(p: Painter, g: HeadGeometry) -> None:
    c, canvas = p.c, p.canvas
    if not {"hat", "headband", "bow"} & set(c.accessories):
        return
    canvas.save()
    canvas.translate(float(g.center[0]), float(g.center[1]))
    canvas.rotate(float(np.degrees(float(g.face[F["roll"]]))))
    rx, ry = g.rx, g.ry
    if "headband" in c.accessories:
        band = skia.Path()
        band.moveTo(-rx * 1.02, -ry * 0.35)
        band.cubicTo(-rx * 0.9, -ry * 1.2, rx * 0.9, -ry * 1.2, rx * 1.02, -ry * 0.35)
        canvas.drawPath(band, stroke(c.accent, ry * 0.12))
    if "bow" in c.accessories:
        bx, by = rx * 0.75, -ry * 0.8
        bow = skia.Path()
        bow.moveTo(bx, by)
        bow.lineTo(bx + rx * 0.35, by - ry * 0.2)
        bow.lineTo(bx + rx * 0.35, by + ry * 0.2)
        bow.lineTo(bx - rx * 0.35, by - ry * 0.2)
        bow.lineTo(bx - rx * 0.35, by + ry * 0.2)
        bow.close()
        p.shape(bow, c.accent, (bx, by), rx * 0.35)
    if "hat" in c.accessories:
        brim = skia.Path()
        brim.addOval(skia.Rect.MakeLTRB(-rx * 1.45, -ry * 0.95, rx * 1.45, -ry * 0.62))
        crown = skia.Path()
        crown.addRRect(skia.RRect.MakeRectXY(
            skia.Rect.MakeLTRB(-rx * 0.8, -ry * 1.65, rx * 0.8, -ry * 0.78), rx * 0.2, rx * 0.2))
        p.shape(brim, shade(c.accent, -0.2), (0, -ry * 0.8), rx * 1.4)
        p.shape(crown, c.accent, (0, -ry * 1.2), rx)
        canvas.drawRect(skia.Rect.MakeLTRB(-rx * 0.8, -ry * 0.98, rx * 0.8, -ry * 0.84),
                        fill(shade(c.accent, 0.5)))
    canvas.restore()
