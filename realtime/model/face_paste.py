"""The face paste: a built-in character's own face, from its reference, on each frame.

The DiT draws a character's figure where the pose is, but on characters it did not
train on it draws the face as a blur: no eyes, no mouth (the default checkpoint's
`history/EXPERIMENTS.md`, stop 49). The reference holds that face, sharp. This stage
takes it from there, places it where the frame's head is and turns it as the head
turns, moves it to the performer's expression with the face warp
(`realtime.model.face_warp`), and blends it over the decoded frame inside a feathered
ellipse round the eyes and mouth. The cache is written before it, so what the DiT
sees of its own past is unchanged and nothing can compound through it.

Where the face goes comes from the built-in character's head, an ellipsoid as the
avatar studio draws it (`realtime.avatars.head`): its centre below the ears, its
size the character's, turned by the face vector's yaw, pitch and roll, the features
at the studio's places on it. `HeadShape` holds it for the reference's shot; each
frame gives the pose's ears and torso length (`MotionCondition.head`), from which the
same features are placed, and the similarity between the two sets of points moves the
reference's face onto the frame. An uploaded picture has no such head, so it gets no
paste.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.face_warp import FaceWarpConfig, warp_faces

# the face warp's settings fitted by stop 49 on the ground truth of stop 26's dataset's
# training characters (`marionette train warp`, commit ba4b500): on its 19 unseen
# characters, warped truth came 0.73 dB closer to the expression's (gain 0.17, cos 0.40)
FITTED_WARP = FaceWarpConfig(eye=0.374, eye_across=0.941, eye_along=0.931, gaze=0.249,
                             brow=0.0, brow_at=0.45, mouth=0.5, mouth_across=0.796,
                             chin=0.442, width=0.0)


def _features(eye_v: float) -> np.ndarray:
    """(6, 3) unit directions on the studio's head of the left and right eye, the nose,
    the mouth and the brows (`realtime.avatars.head._features` draws them there)."""
    d = np.array([(0.42, eye_v, -0.9), (-0.42, eye_v, -0.9), (0.0, 0.3 + 0.6 * eye_v, -1.0),
                  (0.0, 0.56 + 0.5 * eye_v, -0.85), (0.3, eye_v - 0.35, -0.9),
                  (-0.3, eye_v - 0.35, -0.9)])
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@dataclass(frozen=True)
class HeadShape:
    """A built-in character's head as its reference shows it, in canvas units of the
    reference's frame."""

    rx: float                   # half width
    ry: float                   # half height
    eye_v: float                # how far down the eyes sit (chibi builds)
    ears: tuple[float, float]   # the ears' middle
    torso: float                # shoulders' middle to hips' middle

    @classmethod
    def of(cls, character: Any, framing: Any) -> HeadShape:
        """The head of `character` (`realtime.avatars.Character`) at rest through
        `framing` (`realtime.avatars.render.Framing`), as `render_reference` draws it."""
        from realtime.avatars.render import rest_pose

        body = rest_pose(character).body[:, :2]
        cx, cy = framing.center
        z = float(framing.zoom)

        def shot(p: np.ndarray) -> np.ndarray:
            return (p - np.array([cx, cy])) * z + 0.5

        ears = shot((body[7] + body[8]) / 2)
        torso = float(np.linalg.norm((body[11] + body[12]) / 2 - (body[23] + body[24]) / 2)) * z
        return cls(rx=float(character.head_w) / 2 * z, ry=float(character.head_h) / 2 * z,
                   eye_v=0.12 if character.build == "chibi" else 0.0,
                   ears=(float(ears[0]), float(ears[1])), torso=torso)

    def points(self, face: np.ndarray | None = None, ears: np.ndarray | None = None,
               torso: float | None = None) -> np.ndarray:
        """(6, 2) canvas coordinates of the eyes, nose, mouth and brows: at rest (no
        arguments), or with the head turned by `face` (FACE_DIM,) at the pose's
        `ears` (2,), scaled by the pose's torso length against the rest one."""
        from realtime.avatars.head import head_rotation

        f = np.zeros(3) if face is None else np.nan_to_num(np.asarray(face, np.float64)[:3])
        rot = head_rotation(float(f[0]), float(f[1]), float(f[2]))
        s = 1.0 if torso is None else float(torso) / max(self.torso, 1e-6)
        at = np.asarray(self.ears if ears is None else ears, np.float64)
        # the studio puts the head's centre 0.05 head heights above the ears' middle
        centre = at - (rot @ np.array([0.0, 0.1 * self.ry * s, 0.0]))[:2]
        radii = np.array([self.rx, self.ry, self.rx]) * s
        return centre + (_features(self.eye_v) * radii @ rot.T)[:, :2]


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


@dataclass
class FacePasteConfig:
    across: float = 0.9         # ellipse half width, eye distances
    along: float = 1.2          # ellipse half height, eyes-to-mouth spans
    feather: float = 0.3        # share of the ellipse over which it fades out
    warp: FaceWarpConfig | None = None   # None: FITTED_WARP


def paste_faces(frames: torch.Tensor, reference: torch.Tensor, shape: HeadShape,
                face: torch.Tensor, head: torch.Tensor, pose: torch.Tensor | None = None,
                cfg: FacePasteConfig | None = None) -> torch.Tensor:
    """frames (N, 3, S, S) with the reference's (3, S, S) face pasted where each frame's
    head is: `head` (N, 3) the pose's ears' middle (x, y) and torso length, canvas
    units (a frame with a non-finite one is left as it is), `face` (N, FACE_DIM) the
    expression and head turn, `pose` the condition maps (hands before the face are
    not warped)."""
    cfg = cfg or FacePasteConfig()
    n, _, size, _ = frames.shape
    rest = shape.points()
    out = frames.clone()
    heads = head.detach().float().cpu().numpy()
    faces = face.detach().float().cpu().numpy()
    pixel = (torch.arange(size, device=frames.device, dtype=torch.float32) + 0.5) / size
    gy, gx = torch.meshgrid(pixel, pixel, indexing="ij")
    for i in range(n):
        if not np.isfinite(heads[i]).all() or heads[i, 2] <= 0:
            continue
        at = shape.points(faces[i], heads[i, :2], float(heads[i, 2]))       # (6, 2)
        # the frame's canvas point p reads the reference at inverse(M) p
        m = np.vstack([_similarity(rest, at), [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(m)[:2]
        # affine_grid works in [-1, 1] units: u = 2 p - 1 both ways
        theta = inv.copy()
        theta[:, 2] = 2 * inv[:, 2] + inv[:, :2].sum(1) - 1
        grid = F.affine_grid(torch.tensor(theta, dtype=frames.dtype)[None],
                             [1, 3, size, size], align_corners=False).to(frames.device)
        moved = F.grid_sample(reference[None].to(frames.dtype), grid, mode="bilinear",
                              padding_mode="border", align_corners=False)
        moved = warp_faces(moved, torch.from_numpy(_warp_points(at, shape, heads[i, 2]))[None],
                           torch.zeros_like(face[i:i + 1]).float(), face[i:i + 1].float(),
                           cfg.warp or FITTED_WARP,
                           None if pose is None else pose[i:i + 1])
        eyes, mouth = at[:2].mean(0), at[3]
        span = float(np.linalg.norm(mouth - eyes))
        spread = float(np.linalg.norm(at[0] - at[1]))
        if span < 1e-4 or spread < 1e-4:
            continue
        down = (mouth - eyes) / span
        across = np.array([down[1], -down[0]])
        c = eyes + 0.35 * span * down
        qa = ((gx - c[0]) * across[0] + (gy - c[1]) * across[1]) / (cfg.across * spread)
        qd = ((gx - c[0]) * down[0] + (gy - c[1]) * down[1]) / (cfg.along * span)
        mask = ((1 - torch.sqrt(qa ** 2 + qd ** 2)) / cfg.feather).clamp(0, 1)
        mask = mask.to(frames.dtype)[None]
        out[i] = mask * moved[0] + (1 - mask) * frames[i]
    return out


def _warp_points(at: np.ndarray, shape: HeadShape, torso: float) -> np.ndarray:
    """(8, 2) float32: the face warp's points (each eye's inner corner, centre, outer
    corner, the mouth's corners; `realtime.motion.types.FACE_POINTS`' order) where the
    paste puts the features, from their placed centres."""
    rx = shape.rx * torso / max(shape.torso, 1e-6)
    a = at[0] - at[1]
    a = a / max(float(np.linalg.norm(a)), 1e-9)
    left, right, mouth = at[0], at[1], at[3]
    return np.stack([left - 0.2 * rx * a, left, left + 0.2 * rx * a,
                     right + 0.2 * rx * a, right, right - 0.2 * rx * a,
                     mouth + 0.24 * rx * a, mouth - 0.24 * rx * a]).astype(np.float32)
