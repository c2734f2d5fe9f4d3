"""The face warp: an expression drawn onto a face by moving its pixels.

The way a 2D rig moves a drawn face: each eye opened or closed about its centre and
its iris moved with the gaze, each brow lifted, the mouth widened and stretched open
below its line (the line, stretched, becomes the open mouth's dark band), the chin
carried down with it. It is placed by eight points (each eye's inner corner, centre
and outer corner, the mouth's corners; `realtime.motion.types`' order of the pose's
face landmarks) and driven by the face vector, so it needs nothing of the character
but where its face is, and it turns with the head. Warping a portrait by its face
landmarks is how portraits were animated before learned renderers (Averbuch-Elor et
al., "Bringing Portraits to Life", SIGGRAPH Asia 2017).

It moves the face from one expression (`src`) to another (`dst`). Stop 49 (the
default checkpoint's `history/EXPERIMENTS.md`) measured it on decoded frames: on the
ground truth of unseen characters it carries the expression (gain 0.17, cos 0.40),
on the models' frames nothing, their faces of unseen characters being a blur. So it
moves a face that is drawn sharply: the reference's, in the face paste
(`realtime.model.face_paste`), with the settings stop 49 fitted
(`face_paste.FITTED_WARP`). Only the box round the faces is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from realtime.motion.types import FACE_FEATURES

_F = {name: i for i, name in enumerate(FACE_FEATURES)}


@dataclass
class FaceWarpConfig:
    """Gains (how far a unit of a face feature moves the pixels) and window sizes
    (Gaussian radii), in units of the eye's width or the eye-to-mouth span."""

    eye: float = 1.0            # openness scale: 1 = the eye's height times (1 + eye_open)
    eye_across: float = 0.8     # eye window radius across, eye widths
    eye_along: float = 0.7      # eye window radius up-down, eye widths
    gaze: float = 0.5           # iris shift per unit gaze, eye widths
    brow: float = 0.3           # lift per unit brow, spans
    brow_at: float = 0.45       # brow height above the eye centre, spans
    mouth: float = 0.5          # opening per unit of (mouth_open + 0.6 jaw), spans
    mouth_across: float = 0.6   # mouth window radius across, spans
    chin: float = 0.5           # how far below the opening the face still moves, spans
    width: float = 0.35         # mouth width scale per unit mouth_width
    # the open mouth's inside, drawn (`draw_mouths`): no warp can draw it, since the
    # closed face it moves has none. Its depth per unit of opening (mouth_open + 0.6
    # jaw), mouth half-widths (0: none drawn); how far its top arches above the line,
    # a share of the depth; its width per unit mouth_width; its colour (RGB in [0, 1])
    # and opacity
    mouth_depth: float = 0.0
    mouth_upper: float = 0.3
    mouth_smile: float = 0.35
    mouth_colour: tuple[float, float, float] = (0.33, 0.12, 0.16)
    mouth_alpha: float = 1.0


# windows end at 2.5 radii (where a Gaussian is 0.2 % of its peak): beyond, no pixel
# moves at all, however far an eye is closed
_REACH2 = 2.5 ** 2


def _window(q: torch.Tensor) -> torch.Tensor:
    """exp(-q) for q = squared distance in radii, zero past the reach."""
    return torch.where(q < _REACH2, torch.exp(-q), torch.zeros_like(q))


def _gauss(a: torch.Tensor, b: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor
           ) -> torch.Tensor:
    return _window((a / ra) ** 2 + (b / rb) ** 2)


@dataclass
class _Face:
    """Where each frame's face is, in canvas units."""

    ok: torch.Tensor            # (N,) a whole face to warp
    eyes: torch.Tensor          # (N, 2, 2) centres
    widths: torch.Tensor        # (N, 2)
    mouth: torch.Tensor         # (N, 2) centre
    half: torch.Tensor          # (N,) half the mouth's width
    span: torch.Tensor          # (N,) eyes to mouth
    down: torch.Tensor          # (N, 2) unit, eyes to mouth
    across: torch.Tensor        # (N, 2) unit, image right when upright


def _face(points: torch.Tensor) -> _Face:
    pts = points.float()
    ok = torch.isfinite(pts).all(dim=(1, 2))                               # (N,)
    pts = torch.where(ok[:, None, None], pts, torch.full_like(pts, 0.5))
    eyes = pts[:, [1, 4]]
    widths = (pts[:, [2, 5]] - pts[:, [0, 3]]).norm(dim=-1).clamp_min(1e-4)
    mouth = 0.5 * (pts[:, 6] + pts[:, 7])
    down = mouth - eyes.mean(1)
    span = down.norm(dim=-1).clamp_min(1e-4)
    down = down / span[:, None]
    return _Face(ok & (span > 1e-3), eyes, widths, mouth,
                 0.5 * (pts[:, 6] - pts[:, 7]).norm(dim=-1).clamp_min(1e-4), span, down,
                 torch.stack((down[:, 1], -down[:, 0]), -1))


def _box(face: _Face, cfg: FaceWarpConfig, size: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) pixels holding every window of every frame (each bounded by a
    circle of 2.5 radii about its centre), or None when no frame has a face."""
    if not bool(face.ok.any()):
        return None
    f = face.ok
    span, w, half = face.span[f], face.widths[f], face.half[f]
    eyes, up = face.eyes[f], -(cfg.brow_at * span)[:, None, None] * face.down[f][:, None]
    mouth_r = torch.maximum(2.5 * (cfg.mouth_across * span + half),
                            (2.6 * abs(cfg.mouth) + 2.5 * cfg.chin) * span)
    centres = torch.cat((eyes, eyes + up, face.mouth[f][:, None]), 1)     # (n, 5, 2)
    radii = torch.cat((2.5 * max(cfg.eye_across, cfg.eye_along) * w,
                       2.5 * torch.maximum(1.2 * w, 0.35 * span[:, None]),
                       mouth_r[:, None]), 1)                               # (n, 5)
    lo = ((centres - radii[..., None]).flatten(0, 1).amin(0) * size).floor().clamp(0, size)
    hi = ((centres + radii[..., None]).flatten(0, 1).amax(0) * size).ceil().clamp(0, size)
    x0, y0, x1, y1 = (int(v) for v in (*lo.tolist(), *hi.tolist()))
    return None if x1 <= x0 or y1 <= y0 else (y0, y1, x0, x1)


def _opening(e: torch.Tensor) -> torch.Tensor:
    """(N,) how far each expression (N, FACE_DIM) opens the mouth: mouth_open + 0.6 jaw."""
    return (e[:, _F["mouth_open"]].clamp(-0.5, 2.0)
            + 0.6 * e[:, _F["jaw"]].clamp_min(0.0)).clamp_min(0.0)


def warp_field(points: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, size: int,
               cfg: FaceWarpConfig, box: tuple[int, int, int, int] | None = None,
               ) -> torch.Tensor:
    """(N, h, w, 2) grid_sample grid (x, y in [-1, 1] of the whole size x size frame)
    for the pixels of `box` (y0, y1, x0, x1; default the whole frame) that moves each
    frame's face from expression `src` (N, FACE_DIM) to `dst`. points (N, 8, 2) canvas
    coordinates; a frame with a non-finite point is left as it is."""
    n, dev, dt = points.shape[0], points.device, torch.float32
    face = _face(points)
    y0, y1, x0, x1 = box or (0, size, 0, size)
    src, dst = src.to(dt), dst.to(dt)
    # pixel centres in canvas units (grid_sample, align_corners=False: u = 2p - 1)
    gy, gx = torch.meshgrid((torch.arange(y0, y1, device=dev, dtype=dt) + 0.5) / size,
                            (torch.arange(x0, x1, device=dev, dtype=dt) + 0.5) / size,
                            indexing="ij")
    grid = torch.stack((gx, gy), -1)[None].expand(n, y1 - y0, x1 - x0, 2)  # (N, h, w, 2)
    across, down = face.across[:, None, None], face.down[:, None, None]   # (N, 1, 1, 2)
    sp = face.span[:, None, None]                                          # (N, 1, 1)

    def local(centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = grid - centre[:, None, None]
        return (r * across).sum(-1), (r * down).sum(-1)

    move_a = torch.zeros_like(gx).expand(n, -1, -1)   # source = pixel + move
    move_d = torch.zeros_like(move_a)

    for k, side in enumerate(("l", "r")):
        w = face.widths[:, k, None, None]
        ra, rd = local(face.eyes[:, k])
        wgt = _gauss(ra, rd, cfg.eye_across * w, cfg.eye_along * w)
        f = _F[f"eye_open_{side}"]
        # the eye's height goes with its openness, clip(1 + eye_open, 0, 1.6) (as drawn)
        open_s = (1 + cfg.eye * src[:, f]).clamp(0.08, 1.6)
        open_d = (1 + cfg.eye * dst[:, f]).clamp(0.08, 1.6)
        scale = (open_s / open_d)[:, None, None]       # > 1 closes: reads from further out
        move_d = move_d + rd * (scale.pow(wgt) - 1)
        look_a = (dst[:, _F["gaze_x"]] - src[:, _F["gaze_x"]])[:, None, None]
        look_d = (dst[:, _F["gaze_y"]] - src[:, _F["gaze_y"]])[:, None, None]
        tight = wgt * wgt                                # the iris, not the whole eye
        move_a = move_a - cfg.gaze * w * look_a * tight
        move_d = move_d - cfg.gaze * w * look_d * tight
        ba, bd = local(face.eyes[:, k] - cfg.brow_at * face.span[:, None] * face.down)
        lift = (dst[:, _F[f"brow_{side}"]] - src[:, _F[f"brow_{side}"]])[:, None, None]
        move_d = move_d + cfg.brow * sp * lift * _gauss(ba, bd, 1.2 * w, 0.35 * sp)

    ma, md = local(face.mouth)
    half = face.half[:, None, None]
    across_w = _window((ma / (cfg.mouth_across * sp + half)) ** 2)

    g = (cfg.mouth * (_opening(dst) - _opening(src)))[:, None, None] * sp   # signed opening
    # below the line: the first |g| reads the line itself (the band), what lies
    # further down moves down by g, fading out over the chin
    mag = g.abs().clamp_min(1e-6)
    below = md.clamp_min(0.0)
    ramp = torch.where(below < mag, below / mag,
                       _window(((below - mag) / (cfg.chin * sp)) ** 2))
    move_d = move_d - g * ramp * across_w * (md > 0)
    ws = (1 + cfg.width * dst[:, _F["mouth_width"]].clamp(-1, 1.5)) \
        / (1 + cfg.width * src[:, _F["mouth_width"]].clamp(-1, 1.5))
    wgt = _gauss(ma, md, cfg.mouth_across * sp + half, 0.4 * sp)
    move_a = move_a + ma * (ws[:, None, None].clamp_min(0.2).pow(-wgt) - 1)

    keep = face.ok[:, None, None].to(dt)
    move = move_a[..., None] * across + move_d[..., None] * down
    return (grid + move * keep[..., None]) * 2 - 1


def warp_faces(images: torch.Tensor, points: torch.Tensor, src: torch.Tensor,
               dst: torch.Tensor, cfg: FaceWarpConfig) -> torch.Tensor:
    """images (N, 3, S, S) moved from expression `src` to `dst` (N, FACE_DIM) by the
    face points (N, 8, 2); frames without a whole face come back unchanged.
    Only the box round the faces is computed (`_box`): a face a tenth of the frame
    across costs a tenth of a portrait's."""
    size = images.shape[-1]
    if images.shape[-2] != size:
        raise ValueError(f"the face warp takes square frames, got {tuple(images.shape)}")
    box = _box(_face(points), cfg, size)
    if box is None:
        return images
    y0, y1, x0, x1 = box
    grid = warp_field(points, src, dst, size, cfg, box).to(images.dtype)
    out = images.clone()
    out[..., y0:y1, x0:x1] = F.grid_sample(images, grid, mode="bilinear",
                                           padding_mode="border", align_corners=False)
    return draw_mouths(out, points, dst, cfg) if cfg.mouth_depth > 0 else out


def draw_mouths(images: torch.Tensor, points: torch.Tensor, dst: torch.Tensor,
                cfg: FaceWarpConfig) -> torch.Tensor:
    """images (N, 3, S, S) in [-1, 1] with each face's open mouth drawn in: the
    inside a mouth shows when it opens, which the warp, moving the pixels of a closed
    face, cannot draw. As a 2D rig draws it: a shape hung from the mouth's line, its
    bottom a parabola `mouth_depth` half-widths deep per unit of opening at the middle
    and its top arching above the line by `mouth_upper` of that, as wide as the mouth
    (widened with mouth_width), in one colour. Placed by the face points (N, 8, 2), so
    it turns with the head; anti-aliased over a pixel, and an opening thinner than a
    pixel drawn as faint as it is thin. Closed mouths are left as they are."""
    size = images.shape[-1]
    face = _face(points)
    depth = cfg.mouth_depth * _opening(dst.float()) * face.half          # canvas units
    draw = face.ok & (depth * size > 1e-3)
    if not bool(draw.any()):
        return images
    half = face.half * (1 + cfg.mouth_smile * dst[:, _F["mouth_width"]].float()
                        .clamp(-1, 1.5)).clamp_min(0.2)
    # the box holding every drawn mouth, one pixel of softening round it
    reach = torch.maximum(half, (1 + cfg.mouth_upper) * depth)[draw] + 1.0 / size
    centres = face.mouth[draw]
    lo = ((centres - reach[:, None]).amin(0) * size).floor().clamp(0, size)
    hi = ((centres + reach[:, None]).amax(0) * size).ceil().clamp(0, size)
    x0, y0, x1, y1 = (int(v) for v in (*lo.tolist(), *hi.tolist()))
    if x1 <= x0 or y1 <= y0:
        return images
    gy, gx = torch.meshgrid(
        (torch.arange(y0, y1, device=images.device, dtype=torch.float32) + 0.5) / size,
        (torch.arange(x0, x1, device=images.device, dtype=torch.float32) + 0.5) / size,
        indexing="ij")
    r = torch.stack((gx, gy), -1)[None] - face.mouth[:, None, None]      # (N, h, w, 2)
    along = (r * face.across[:, None, None]).sum(-1)
    below = (r * face.down[:, None, None]).sum(-1)
    hw, dp = half[:, None, None], depth[:, None, None]
    bow = 1 - (along / hw).clamp(-1, 1) ** 2
    # coverage: inside the bottom, the top and the corners, each edge over a pixel
    cover = (((dp * bow - below) * size + 0.5).clamp(0, 1)
             * ((below + cfg.mouth_upper * dp * bow) * size + 0.5).clamp(0, 1)
             * ((hw - along.abs()) * size + 0.5).clamp(0, 1))
    # a shape thinner than a pixel covers it by its thickness: an opening fades in
    thick = ((1 + cfg.mouth_upper) * dp * size).clamp(max=1.0)
    cover = (cover * thick * draw[:, None, None] * cfg.mouth_alpha)[:, None].to(images.dtype)
    colour = (torch.tensor(cfg.mouth_colour, device=images.device) * 2 - 1)
    out = images.clone()
    out[..., y0:y1, x0:x1] = (images[..., y0:y1, x0:x1] * (1 - cover)
                              + colour.to(images.dtype)[None, :, None, None] * cover)
    return out
