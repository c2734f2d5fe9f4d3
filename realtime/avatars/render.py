"""Draw a character in a pose: skia (antialiased vector drawing) into an RGBA array.

    render(character, pose, size, background, framing) -> (H, W, 4) uint8 RGBA

The pose is in canvas coordinates (x, y in [0, 1] of the rest framing, z depth,
smaller nearer); the framing is a static camera on top of it, from a face close-up
to the full body. Body parts are drawn back to front by landmark depth, so an arm
reaching towards the camera passes in front of the torso and a hand covering the
face hides it. RGB is straight (not premultiplied) alpha; on the opaque backgrounds
alpha is 255 everywhere, on 'transparent' it is the character's coverage, and
'chroma' is that same coverage composited over pure green (OBS chroma key) with the
alpha channel kept.

Library choice (measured on this 2-core CPU, a 60-shape scene of paths, strokes
and ovals, median of 200): skia-python 1.38 ms at 128², 1.51 ms at 256²; pycairo
1.04 ms at 128², 2.26 ms at 256². Skia wins at the training resolution (256²) and
installs from a self-contained wheel, while pycairo has no Linux wheel and needs
libcairo's headers and a compiler; hence skia.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import skia

from realtime.avatars.character import Character
from realtime.avatars.head import F, HeadGeometry, draw_back_hair, draw_head, head_rotation
from realtime.avatars.paint import Painter, fill, shade
from realtime.motion.types import (
    FACE_DIM,
    FINGERS,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    N_BODY,
    N_PARTS,
    PARTS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    Pose,
)

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "textured", "transparent", "chroma")
CHROMA_GREEN = (0, 255, 0)


@dataclass(frozen=True)
class Framing:
    """A static camera: the canvas point shown at the image centre, and the zoom
    (1 = the full-body rest framing)."""

    center: tuple[float, float] = (0.5, 0.5)
    zoom: float = 1.0


FRAMINGS: tuple[str, ...] = ("full", "upper", "face")


def framing_for(character: Character, framing: str | Framing | None) -> Framing:
    """Resolve a named framing against the character's rest proportions."""
    if isinstance(framing, Framing):
        return framing
    name = framing or "full"
    body = character.rest_body
    top = 0.5 - character.height / 2 + 0.01
    if name == "full":
        return Framing((0.5, 0.5), 1.0)
    if name == "upper":
        hips = float(body[L_HIP, 1]) + 0.25 * character.head_h
        span = hips - top + 0.1 * character.head_h
        return Framing((0.5, (top + hips) / 2), float(min(0.95 / span, 3.5)))
    if name == "face":
        cy = top + character.head_h * 0.55
        return Framing((0.5, cy), 0.5 / character.head_h)
    raise ValueError(f"framing={name!r}; expected one of {FRAMINGS} or a Framing")


def rest_pose(character: Character) -> Pose:
    """The character standing at rest, facing the camera, neutral face, all present."""
    return Pose(
        body=character.rest_body[:N_BODY].copy(),
        left_hand=character.rest_hand("left"),
        right_hand=character.rest_hand("right"),
        face=np.zeros(FACE_DIM),
        presence=np.ones(N_PARTS),
    )


def render_reference(character: Character, size: int, background: str = "plain",
                     bg_seed: int = 0, framing: str | Framing = "full") -> np.ndarray:
    """(size, size, 3) uint8 RGB: the rest pose, on the character's own plain background
    (or the given one), through `framing` (full body by default) — the identity image
    the model is conditioned on, shot as the stream it conditions will be."""
    return render(character, rest_pose(character), size, background, framing, bg_seed)[..., :3]


def render(
    character: Character,
    pose: Pose,
    size: int | tuple[int, int],
    background: str = "plain",
    framing: str | Framing | None = None,
    bg_seed: int = 0,
) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of `character` in `pose`. `size` is N (square) or (W, H);
    `bg_seed` varies the gradient/texture colours. Deterministic in its arguments."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r}; expected one of {BACKGROUNDS}")
    w, h = (size, size) if isinstance(size, int) else size
    cam = framing_for(character, framing)
    img = np.zeros((h, w, 4), np.uint8)
    surface = skia.Surface(img, colorType=skia.kRGBA_8888_ColorType,
                           alphaType=skia.kPremul_AlphaType)
    with surface as canvas:
        if background in ("plain", "gradient", "textured"):
            _background(canvas, character, background, w, h, bg_seed)
        unit = cam.zoom * h                        # pixels per canvas unit

        def to_px(p: np.ndarray) -> np.ndarray:
            # x is a fraction of the width of a square rest canvas: keep the aspect
            out = np.empty((p.shape[0], 3))
            out[:, 0] = (p[:, 0] - cam.center[0]) * unit + w / 2
            out[:, 1] = (p[:, 1] - cam.center[1]) * unit + h / 2
            out[:, 2] = p[:, 2]
            return out

        _draw_figure(Painter(canvas, character, unit), pose, to_px)
    if background in ("transparent", "chroma"):
        img = _straight_alpha(img, CHROMA_GREEN if background == "chroma" else None)
    return img


def _straight_alpha(premul: np.ndarray, key: tuple[int, int, int] | None) -> np.ndarray:
    """Skia draws premultiplied; return straight alpha, or the composite over `key`."""
    a = premul[..., 3:4].astype(np.float32)
    rgb = premul[..., :3].astype(np.float32)
    if key is None:
        out = np.where(a > 0, rgb * 255.0 / np.maximum(a, 1.0), 0.0)
    else:
        out = rgb + np.asarray(key, np.float32) * (1.0 - a / 255.0)
    return np.concatenate([np.clip(np.round(out), 0, 255), a], axis=-1).astype(np.uint8)


def _background(canvas: skia.Canvas, c: Character, kind: str, w: int, h: int, seed: int) -> None:
    rng = np.random.default_rng([c.seed, seed])
    base = c.background if seed == 0 else tuple(int(v) for v in rng.integers(150, 250, 3))
    canvas.clear(skia.ColorSetARGB(255, *base))
    if kind == "gradient":
        other = tuple(int(v) for v in rng.integers(60, 230, 3))
        shader = skia.GradientShader.MakeLinear(
            [skia.Point(0, 0), skia.Point(w * float(rng.uniform(0, 0.5)), h)],
            [skia.ColorSetARGB(255, *base), skia.ColorSetARGB(255, *other)])
        canvas.drawPaint(skia.Paint(Shader=shader))
    elif kind == "textured":
        # fractal noise at a fixed number of cycles per frame, so it scales with size
        freq = float(rng.uniform(4, 12)) / h
        noise = skia.PerlinNoiseShader.MakeFractalNoise(freq, freq, 3, float(rng.integers(1000)))
        paint = skia.Paint(Shader=noise, Alphaf=0.35, BlendMode=skia.BlendMode.kMultiply)
        canvas.drawPaint(paint)


# --- the figure -----------------------------------------------------------------


def _pose_scale(c: Character, body: np.ndarray) -> float:
    """How much larger than at rest the pose draws the character (it moves closer)."""
    hips = (body[L_HIP] + body[R_HIP]) / 2
    shoulders = (body[L_SHOULDER] + body[R_SHOULDER]) / 2
    rest = c.rest_body
    rest_len = float(np.linalg.norm((rest[L_SHOULDER] + rest[R_SHOULDER]) / 2
                                    - (rest[L_HIP] + rest[R_HIP]) / 2))
    s = float(np.linalg.norm(shoulders - hips)) / max(rest_len, 1e-6)
    return s if np.isfinite(s) and s > 0.05 else 1.0


def _draw_figure(p: Painter, pose: Pose, to_px: Callable[[np.ndarray], np.ndarray]) -> None:
    c = p.c
    s = _pose_scale(c, pose.body)
    b = to_px(pose.body)                            # (33, 3) pixels + depth
    u = p.unit * s                                  # pixels per canvas unit, at this pose
    arm_w = c.limb_width * u
    leg_w = arm_w * (1.25 if c.build != "chibi" else 1.1)
    items: list[tuple[float, int, Callable[[], None]]] = []

    def add(z: float, fn: Callable[[], None]) -> None:
        items.append((z, len(items), fn))

    hip_z = float((b[L_HIP, 2] + b[R_HIP, 2]) / 2)
    sh_z = float((b[L_SHOULDER, 2] + b[R_SHOULDER, 2]) / 2)
    torso_z = (hip_z + sh_z) / 2 + 0.02 * c.height   # limbs at the torso's depth win
    bottom = c.bottom
    lower_leg = bottom if c.legwear == "trousers" else c.skin
    for hip, knee, ankle, heel, toe in ((L_HIP, L_KNEE, L_ANKLE, 29, 31),
                                        (R_HIP, R_KNEE, R_ANKLE, 30, 32)):
        add(float(b[[hip, knee], 2].mean()) + 0.01,
            partial(p.limb, b[[hip, knee], :2], leg_w, bottom))
        add(float(b[[knee, ankle], 2].mean()) + 0.01,
            partial(p.limb, b[[knee, ankle], :2], leg_w * 0.85, lower_leg))
        add(float(b[[ankle, toe], 2].mean()),
            partial(p.limb, b[[heel, toe], :2], leg_w * 0.8, c.shoes))
    head_z = float((b[7, 2] + b[8, 2]) / 2) - 0.01
    # the neck behind both the torso and the head, whichever is nearer
    add(max(torso_z, head_z) + 1e-3, partial(_neck, p, b, u))
    add(torso_z, partial(_torso, p, b, u))
    upper_rgb = c.top
    fore_rgb = c.top if c.long_sleeves else c.skin
    for sh, el, wr, hand, side in ((L_SHOULDER, L_ELBOW, L_WRIST, pose.left_hand, 2),
                                   (R_SHOULDER, R_ELBOW, R_WRIST, pose.right_hand, 3)):
        add(float(b[[sh, el], 2].mean()), partial(p.limb, b[[sh, el], :2], arm_w, upper_rgb))
        add(float(b[[el, wr], 2].mean()),
            partial(p.limb, b[[el, wr], :2], arm_w * 0.85, fore_rgb))
        present = hand is not None and pose.presence[side] > 0.05
        if present:
            assert hand is not None
            hp = to_px(hand)
            # hand depth relative to its wrist, placed at the body wrist's depth
            hz = float(b[wr, 2] + (hand[:, 2] - hand[0, 2]).mean()) - 0.005
            add(hz, partial(_hand, p, hp, u))
        else:
            add(float(b[wr, 2]) - 0.005, partial(_mitten, p, b, wr, u))
    face = pose.face if pose.presence[PARTS.index("face")] > 0.05 else np.zeros(FACE_DIM)
    head = _head_geometry(p, b, face, s)
    add(head_z, partial(draw_head, p, head))
    add(torso_z + 0.05, partial(draw_back_hair, p, head))   # long hair falls behind
    for _, _, fn in sorted(items, key=lambda t: (-t[0], t[1])):
        fn()


def _torso_corners(p: Painter, b: np.ndarray, u: float,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left and right shoulder, left and right hip, in pixels: a body turned side-on
    still has depth, so the torso is kept at least ~half as wide as it is seen from
    the front."""
    ls, rs, lh, rh = b[L_SHOULDER, :2], b[R_SHOULDER, :2], b[L_HIP, :2], b[R_HIP, :2]
    rest = p.c.rest_body
    spine = (lh + rh) / 2 - (ls + rs) / 2
    ls, rs = _min_width(ls, rs, spine, 0.5 * abs(rest[L_SHOULDER, 0] - rest[R_SHOULDER, 0]) * u)
    lh, rh = _min_width(lh, rh, spine, 0.6 * abs(rest[L_HIP, 0] - rest[R_HIP, 0]) * u)
    return ls, rs, lh, rh


def _neck_width(c: Character, u: float) -> float:
    return c.head_w * u * (0.35 if c.build != "chibi" else 0.3)


def _neck(p: Painter, b: np.ndarray, u: float) -> None:
    """From the shoulders' middle 60 % of the way to the head's centre. Drawn before the
    torso and the head whatever their depths (`_draw_figure`): a neck drawn with the
    torso, when the torso was nearer the camera than the head, covered the mouth."""
    ls, rs, _, _ = _torso_corners(p, b, u)
    neck_base = (ls + rs) / 2
    head = (b[7, :2] + b[8, :2]) / 2
    p.limb(np.stack([neck_base, neck_base + (head - neck_base) * 0.6]), _neck_width(p.c, u),
           p.c.skin)


def _torso(p: Painter, b: np.ndarray, u: float) -> None:
    c = p.c
    ls, rs, lh, rh = _torso_corners(p, b, u)
    neck_base = (ls + rs) / 2
    neck_w = _neck_width(c, u)
    # widen the hips a little and pad the shoulders so the torso reads as a body
    across = ls - rs
    pad = across * 0.08
    hip_out = (lh - rh) * 0.25
    waist = np.stack([ls + pad, lh + hip_out, rh - hip_out, rs - pad])
    if c.legwear == "skirt":
        down = (lh + rh) / 2 - neck_base
        flare = np.stack([lh + hip_out * 1.3, lh + hip_out * 2.2 + down * 0.45,
                          rh - hip_out * 2.2 + down * 0.45, rh - hip_out * 1.3])
        p.polygon(flare, c.bottom)
    p.polygon(waist, c.top)
    if c.top_pattern != "plain":
        _pattern(p, waist, u)
    if "scarf" in c.accessories:
        p.limb(np.stack([ls * 0.7 + rs * 0.3, rs * 0.7 + ls * 0.3]), neck_w * 1.1, c.accent)
        p.limb(np.stack([rs * 0.6 + ls * 0.4, rs * 0.6 + ls * 0.4 + (lh - ls) * 0.35]),
               neck_w * 0.6, c.accent)


def _min_width(
    left: np.ndarray, right: np.ndarray, spine: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray]:
    """Spread a (left, right) joint pair about its middle to at least `width` pixels,
    across the spine when the pair is seen end-on."""
    mid, across = (left + right) / 2, left - right
    n = float(np.hypot(*across))
    if n >= width:
        return left, right
    if n > 1e-3:
        d = across / n
    else:
        s = float(np.hypot(*spine)) or 1.0
        d = np.array([-spine[1], spine[0]]) / s
    return mid + d * width / 2, mid - d * width / 2


def _pattern(p: Painter, quad: np.ndarray, u: float) -> None:
    c, canvas = p.c, p.canvas
    path = skia.Path()
    path.addPoly([skia.Point(float(x), float(y)) for x, y in quad], True)
    canvas.save()
    canvas.clipPath(path, doAntiAlias=True)
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    step = max(c.head_w * u * 0.28, 2.0)
    paint = fill(c.pattern_color)
    if c.top_pattern == "stripes":
        for y in np.arange(lo[1] + step * 0.5, hi[1], step):
            canvas.drawRect(skia.Rect.MakeLTRB(float(lo[0]), float(y), float(hi[0]),
                                               float(y + step * 0.4)), paint)
    elif c.top_pattern == "dots":
        for y in np.arange(lo[1] + step * 0.5, hi[1], step):
            for x in np.arange(lo[0] + step * 0.5, hi[0], step):
                canvas.drawCircle(float(x), float(y), float(step * 0.18), paint)
    else:  # check
        tint = fill(c.pattern_color, 110)
        for y in np.arange(lo[1], hi[1], step):
            canvas.drawRect(skia.Rect.MakeLTRB(float(lo[0]), float(y), float(hi[0]),
                                               float(y + step * 0.5)), tint)
        for x in np.arange(lo[0], hi[0], step):
            canvas.drawRect(skia.Rect.MakeLTRB(float(x), float(lo[1]), float(x + step * 0.5),
                                               float(hi[1])), tint)
    canvas.restore()


def _hand(p: Painter, hp: np.ndarray, u: float) -> None:
    """Palm plus five jointed fingers through the 21 landmarks, where the landmarks
    are (retargeting hangs them on the wrist; a hand close-up places them itself).
    Fingers behind the palm (curled away from the camera) are drawn first."""
    c = p.c
    finger_w = max(c.hand_len * u * 0.14, 1.0)
    palm_idx = [0, 1, 5, 9, 13, 17]
    palm_z = float(hp[palm_idx, 2].mean())
    skin = c.skin
    knuckle = shade(skin, -0.06)
    order = sorted(FINGERS.items(), key=lambda kv: -float(hp[list(kv[1]), 2].mean()))
    behind = [(n, ch) for n, ch in order if hp[list(ch), 2].mean() > palm_z + 1e-4]
    front = [(n, ch) for n, ch in order if hp[list(ch), 2].mean() <= palm_z + 1e-4]
    for name, chain in behind:
        p.limb(hp[[chain[0], *chain[1:]], :2], finger_w * (1.15 if name == "thumb" else 1.0),
               knuckle)
    p.polygon(hp[palm_idx, :2], skin, rounded=finger_w * 0.5)
    for name, chain in front:
        p.limb(hp[[chain[0], *chain[1:]], :2], finger_w * (1.15 if name == "thumb" else 1.0),
               skin)


def _mitten(p: Painter, b: np.ndarray, wrist: int, u: float) -> None:
    """A hand with no landmarks: a rounded blob over the pose model's hand points."""
    pts = b[[wrist, wrist + 2, wrist + 4, wrist + 6], :2]
    center = pts.mean(axis=0)
    r = max(p.c.hand_len * u * 0.32, 1.0)
    path = skia.Path()
    path.addCircle(float(center[0]), float(center[1]), float(r))
    p.shape(path, p.c.skin, center, r)


def _head_geometry(p: Painter, b: np.ndarray, face: np.ndarray, s: float) -> HeadGeometry:
    c = p.c
    yaw, pitch, roll = (float(face[F[k]]) for k in ("yaw", "pitch", "roll"))
    rot = head_rotation(yaw, pitch, roll)
    rx = c.head_w / 2 * p.unit * s
    ry = c.head_h / 2 * p.unit * s
    ears = (b[7, :2] + b[8, :2]) / 2
    # at rest the ears sit 0.05 head heights below the head centre
    offset = rot @ np.array([0.0, 0.05 * c.head_h * p.unit * s, 0.0])
    return HeadGeometry(center=ears - offset[:2], rx=rx, ry=ry, rot=rot, face=face)
