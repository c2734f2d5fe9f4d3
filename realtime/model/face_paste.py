"""The face paste: a built-in character's own face, from its reference, on each frame.

The DiT draws a character's figure where the pose is, but on characters it did not
train on it draws the face as a blur: no eyes, no mouth (the default checkpoint's
`history/EXPERIMENTS.md`, stop 49). The reference holds that face, sharp. This stage
takes it from there: moves the reference's face to the performer's expression with the
face warp (`realtime.model.face_warp`), places it where the frame's head is, turned as
the head turns, and blends it over the decoded frame inside a feathered ellipse round
the eyes and mouth, except where the condition maps put an arm or a hand. The cache is
written before it, so what the DiT sees of its own past is unchanged and nothing can
compound through it.

Where the face goes comes from the built-in character's head, an ellipsoid as the
avatar studio draws it (`realtime.avatars.head`): its centre by the ears, its size
the character's, turned by the face vector's yaw, pitch and roll, the eyes, nose and
mouth at the studio's places on it. `HeadShape` holds it for the reference's shot; each
frame gives the pose's ears and torso length (`MotionCondition.head`), from which the
same features are placed, and the similarity between the two sets of points moves the
reference's face onto the frame.

An uploaded picture has no studio head. `HeadShape.of_upload` fits one to the eyes,
nose and mouth Face Mesh finds in it, on the figure measured there
(`realtime.motion.reference`). It finds the skin for the hand paste; the face paste it
would place is not drawn on uploads (`StreamingEngine.set_reference(paste_face=False)`):
on studio characters shot as uploads it cost 0.20 to 0.30 dB in the face boxes, the
measured figure's head moving elsewhere than the true one's (the default checkpoint's
`history/EXPERIMENTS.md`, stop 50).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.face_warp import FaceWarpConfig, warp_faces
from realtime.motion.types import POSE_CHANNELS

# the face warp's settings fitted by stop 49 on the ground truth of stop 26's dataset's
# training characters (`marionette train warp`, commit ba4b500): on its 19 unseen
# characters, warped truth came 0.73 dB closer to the expression's (gain 0.17, cos 0.40).
# The drawn mouth's (`mouth_*`) fitted by stop 51 on 16 clips of the card dataset's
# training characters: the reference's face pasted where the clean motion puts it,
# closest to the truth in the face boxes (the default checkpoint's
# `history/EXPERIMENTS.md`, stop 51)
FITTED_WARP = FaceWarpConfig(eye=0.374, eye_across=0.941, eye_along=0.931, gaze=0.249,
                             brow=0.0, brow_at=0.45, mouth=0.5, mouth_across=0.796,
                             chin=0.442, width=0.0, mouth_depth=1.0, mouth_upper=0.3,
                             mouth_smile=0.35, mouth_colour=(0.33, 0.12, 0.16),
                             mouth_alpha=1.0)
# the condition maps' arms and fingers: what can be in front of the face
LIMB_CHANNELS = tuple(i for i, name in enumerate(POSE_CHANNELS)
                      if name.startswith("arm_") or name.split("_")[0] in
                      ("thumb", "index", "middle", "ring", "pinky"))
# the blend: a feathered ellipse round the eyes and mouth
ACROSS = 0.9                # half width, eye distances
ALONG = 1.2                 # half height, eyes-to-mouth spans
FEATHER = 0.3               # share of the ellipse over which it fades out
# an upload's head (`HeadShape.fit`) is refused where it misses one of the picture's
# eyes, nose or mouth by more than this share of the eye span
MAX_MISS = 0.2


@dataclass(frozen=True)
class HeadShape:
    """A built-in character's head as its reference shows it, in canvas units of the
    reference's frame."""

    rx: float                   # half width
    ry: float                   # half height
    eye_v: float                # how far down the eyes sit (`head.eye_drop`)
    ears: tuple[float, float]   # the ears' middle
    torso: float                # shoulders' middle to hips' middle
    # the face's centre from where the studio puts it by the ears, in the head's own
    # axes: zero for a built-in character, fitted for an upload (`fit`)
    offset: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def of(cls, character: Any, framing: Any) -> HeadShape:
        """The head of `character` (`realtime.avatars.Character`) at rest through
        `framing` (`realtime.avatars.render.Framing`), as `render_reference` draws it."""
        from realtime.avatars.head import eye_drop
        from realtime.avatars.render import rest_pose

        body = rest_pose(character).body[:, :2]
        z = float(framing.zoom)

        def shot(p: np.ndarray) -> np.ndarray:
            return (p - np.asarray(framing.center)) * z + 0.5

        ears = shot((body[7] + body[8]) / 2)
        torso = float(np.linalg.norm((body[11] + body[12]) / 2 - (body[23] + body[24]) / 2)) * z
        return cls(rx=float(character.head_w) / 2 * z, ry=float(character.head_h) / 2 * z,
                   eye_v=eye_drop(character.build), ears=(float(ears[0]), float(ears[1])),
                   torso=torso)

    def points(self, face: np.ndarray | None = None, ears: np.ndarray | None = None,
               torso: float | None = None) -> np.ndarray:
        """(4, 2) canvas coordinates of the left eye, right eye, nose and mouth (the
        performer's left eye on the image's right): at rest (no arguments), or with the
        head turned by `face` (FACE_DIM,) at the pose's `ears` (2,), scaled by the
        pose's torso length against the rest one."""
        from realtime.avatars.head import (
            HeadGeometry,
            eye_direction,
            head_rotation,
            mouth_direction,
            nose_direction,
        )

        f = np.zeros(3) if face is None else np.nan_to_num(np.asarray(face, np.float64)[:3])
        rot = head_rotation(float(f[0]), float(f[1]), float(f[2]))
        s = 1.0 if torso is None else float(torso) / max(self.torso, 1e-6)
        at = np.asarray(self.ears if ears is None else ears, np.float64)
        # as `render._head_geometry`: the centre 0.05 head heights above the ears
        centre = at + (rot @ np.array([self.offset[0] * s,
                                       (self.offset[1] - 0.1 * self.ry) * s, 0.0]))[:2]
        g = HeadGeometry(centre, self.rx * s, self.ry * s, rot, np.zeros(3))
        return np.stack([g.surface(d)[0] for d in (
            eye_direction(1.0, self.eye_v), eye_direction(-1.0, self.eye_v),
            nose_direction(self.eye_v), mouth_direction(self.eye_v))])

    @classmethod
    def fit(cls, features: np.ndarray, ears: np.ndarray, torso: float,
            miss: float = MAX_MISS) -> HeadShape | None:
        """The head whose eyes, nose and mouth at rest best match `features` (4, 2)
        (canvas units, `points()`' order) measured in a picture, for a figure whose
        ears' middle and torso length at rest are `ears` and `torso`: least squares
        over the half width, the half height and the offset (at rest every point is
        linear in them), for the eye drop of a big head and of any other, whichever
        fits better. None where the best misses a point by more than `miss` of the eye
        span, or the head comes out inside out or flatter than twice as wide as high."""
        from realtime.avatars.head import (
            eye_direction,
            mouth_direction,
            nose_direction,
        )

        f = np.asarray(features, np.float64)
        span = float(np.linalg.norm(f[0] - f[1]))
        if not np.isfinite(f).all() or span <= 0 or torso <= 0:
            return None
        best: tuple[float, HeadShape] | None = None
        for eye_v in (0.0, 0.12):
            dirs = [np.asarray(d) / np.linalg.norm(d) for d in (
                eye_direction(1.0, eye_v), eye_direction(-1.0, eye_v),
                nose_direction(eye_v), mouth_direction(eye_v))]
            # unknowns (rx, ry, ox, oy): x = ears_x + ox + nx rx, y = ears_y + oy + (ny - 0.1) ry
            a = np.zeros((8, 4))
            b = (f - np.asarray(ears, np.float64)).reshape(-1)
            for i, n in enumerate(dirs):
                a[2 * i] = (n[0], 0.0, 1.0, 0.0)
                a[2 * i + 1] = (0.0, n[1] - 0.1, 0.0, 1.0)
            (rx, ry, ox, oy), *_ = np.linalg.lstsq(a, b, rcond=None)
            worst = float(np.abs(a @ (rx, ry, ox, oy) - b).reshape(4, 2).max()) / span
            if rx <= 0 or not 0.5 <= ry / rx <= 2.5 or worst > miss:
                continue
            if best is None or worst < best[0]:
                best = (worst, cls(rx=float(rx), ry=float(ry), eye_v=eye_v,
                                   ears=(float(ears[0]), float(ears[1])), torso=float(torso),
                                   offset=(float(ox), float(oy))))
        return None if best is None else best[1]

    @classmethod
    def of_upload(cls, features: np.ndarray, skeleton: Any) -> HeadShape | None:
        """An uploaded picture's head: `fit` to the face's `features` (4, 2) measured
        in it (`motion.reference.face_features`), for the figure `skeleton`
        (`motion.types.Skeleton`) measured there too, at rest as a session retargets
        onto it. None where it does not fit."""
        from realtime.motion.condition import head_place
        from realtime.motion.retarget import rest_body_dirs, retarget
        from realtime.motion.types import FACE_DIM, N_PARTS, NormalizedMotion

        rest = NormalizedMotion(frame_id=0, t_capture=0.0, root=np.zeros(3), scale=1.0,
                                body_dirs=rest_body_dirs(), left_hand_dirs=None,
                                right_hand_dirs=None, face=np.zeros(FACE_DIM, np.float32),
                                presence=np.ones(N_PARTS, np.float32))
        place = head_place(retarget(rest, skeleton))
        if not np.isfinite(place).all():
            return None
        return cls.fit(features, place[:2], float(place[2]))

    @cached_property
    def rest(self) -> np.ndarray:
        """`points()` at rest, where the reference shows them."""
        return self.points()

    @cached_property
    def warp_points(self) -> np.ndarray:
        """(8, 2) float32: the face warp's points on the reference (each eye's inner
        corner, centre, outer corner, the mouth's corners; `FACE_POINTS`' order),
        from the placed centres and the studio's eye and mouth widths."""
        left, right, _, mouth = self.rest
        a = (left - right) / max(float(np.linalg.norm(left - right)), 1e-9)
        return np.stack([left - 0.2 * self.rx * a, left, left + 0.2 * self.rx * a,
                         right + 0.2 * self.rx * a, right, right - 0.2 * self.rx * a,
                         mouth + 0.24 * self.rx * a,
                         mouth - 0.24 * self.rx * a]).astype(np.float32)


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) the similarity (scale, rotation, shift) taking points a (n, 2) closest to
    b (n, 2), least squares (Umeyama 1991)."""
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, sv, vt = np.linalg.svd(b0.T @ a0)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    r = u @ np.diag([1.0, d]) @ vt
    scale = float((sv * [1.0, d]).sum() / max((a0 ** 2).sum(), 1e-12))
    return np.concatenate([scale * r, (mb - scale * r @ ma)[:, None]], 1)


def _limbs(pose: torch.Tensor, span: float, box: tuple[int, int, int, int],
           size: int) -> torch.Tensor:
    """(h, w) in [0, 1] over the frame's pixels `box` (x0, y0, x1, y1) of an S=`size`
    frame: where the arms and fingers of one frame's condition maps (1, >=16, P, P)
    lie, read at the frame's resolution (bilinear), grown by a third of the face's
    eye-to-mouth `span` (canvas units; the maps draw bones, the frame draws limbs round
    them). Stop 49 grew them on the maps, by at least one map pixel: round a full-body
    shot's small face that masked most of it whenever an arm was near."""
    x0, y0, x1, y1 = box
    grow = math.ceil(span * size / 3) + 1               # one more: the softening takes it
    ex0, ey0 = max(0, x0 - grow), max(0, y0 - grow)     # limbs just outside reach in
    ex1, ey1 = min(size, x1 + grow), min(size, y1 + grow)
    gy, gx = torch.meshgrid(
        (torch.arange(ey0, ey1, device=pose.device, dtype=torch.float32) + 0.5) / size,
        (torch.arange(ex0, ex1, device=pose.device, dtype=torch.float32) + 0.5) / size,
        indexing="ij")
    maps = pose[:, list(LIMB_CHANNELS)].float().amax(1, keepdim=True)
    seen = F.grid_sample(maps, (torch.stack((gx, gy), -1) * 2 - 1)[None], mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    mask = F.max_pool2d((seen > 0.05).float(), 2 * grow + 1, stride=1, padding=grow)
    mask = F.avg_pool2d(mask, 3, stride=1, padding=1, count_include_pad=False)
    return mask[0, 0, y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]


def paste_faces(frames: torch.Tensor, reference: torch.Tensor, shape: HeadShape,
                face: torch.Tensor, head: torch.Tensor, pose: torch.Tensor | None = None,
                warp: FaceWarpConfig = FITTED_WARP) -> torch.Tensor:
    """frames (N, 3, S, S) with the reference's (3, S, S) face pasted where each frame's
    head is: `head` (N, 3) the pose's ears' middle (x, y) and torso length, canvas
    units (a frame with a non-finite one is left as it is), `face` (N, FACE_DIM) the
    expression and head turn, `pose` the condition maps (N, >=16, P, P), whose arms
    and hands stay in front of the pasted face. Only the ellipse's box is computed."""
    n, _, size, _ = frames.shape
    out = frames.clone()
    heads = head.detach().float().cpu().numpy()
    faces = face.detach().float().cpu().numpy()
    dt = frames.dtype
    # the reference's face moved to each frame's expression, in the reference's frame
    posed = warp_faces(reference[None].expand(n, -1, -1, -1).to(dt),
                       torch.from_numpy(shape.warp_points)[None].expand(n, -1, -1),
                       torch.zeros_like(face, dtype=torch.float32), face.float(), warp)
    for i in range(n):
        if not np.isfinite(heads[i]).all() or heads[i, 2] <= 0:
            continue
        at = shape.points(faces[i], heads[i, :2], float(heads[i, 2]))      # (4, 2)
        eyes, mouth = at[:2].mean(0), at[3]
        span, spread = float(np.linalg.norm(mouth - eyes)), float(np.linalg.norm(at[0] - at[1]))
        if span < 1e-4 or spread < 1e-4:
            continue
        # the ellipse and its box, in pixels of the frame
        down = (mouth - eyes) / span
        across = np.array([down[1], -down[0]])
        c = eyes + 0.35 * span * down
        reach = max(ACROSS * spread, ALONG * span)
        x0, y0 = (int(max(0, math.floor((v - reach) * size))) for v in c)
        x1, y1 = (int(min(size, math.ceil((v + reach) * size))) for v in c)
        if x1 <= x0 or y1 <= y0:
            continue
        gy, gx = torch.meshgrid(
            (torch.arange(y0, y1, device=frames.device, dtype=torch.float32) + 0.5) / size,
            (torch.arange(x0, x1, device=frames.device, dtype=torch.float32) + 0.5) / size,
            indexing="ij")
        # a frame's canvas point p reads the reference at inverse(M) p, M the
        # similarity from the reference's features to the frame's
        inv = np.linalg.inv(np.vstack([_similarity(shape.rest, at), [0.0, 0.0, 1.0]]))
        src = torch.stack((inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2],
                           inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]), -1)  # (h, w, 2)
        moved = F.grid_sample(posed[i:i + 1], (src * 2 - 1)[None].to(dt), mode="bilinear",
                              padding_mode="border", align_corners=False)[0]
        qa = ((gx - c[0]) * across[0] + (gy - c[1]) * across[1]) / (ACROSS * spread)
        qd = ((gx - c[0]) * down[0] + (gy - c[1]) * down[1]) / (ALONG * span)
        mask = ((1 - torch.sqrt(qa ** 2 + qd ** 2)) / FEATHER).clamp(0, 1)
        if pose is not None:
            mask = mask * (1 - _limbs(pose[i:i + 1], span, (x0, y0, x1, y1), size))
        mask = mask.to(dt)[None]
        out[i, :, y0:y1, x0:x1] = mask * moved + (1 - mask) * frames[i, :, y0:y1, x0:x1]
    return out
