"""The hand paste: a built-in character's hands drawn where the pose puts the fingers.

The DiT places a character's arms and a hand-sized blob at each wrist, but on
characters it did not train on it draws no fingers: its hands score no better with the
fingers' motion than with it taken away (`hand_follow_db` in the default checkpoint's
`history/eval-stop49-no-hand-paste.json`). The pose has the fingers, 21 points a hand,
the ones the condition maps draw. This stage draws them on the decoded frame, after
the face paste, the way the avatar studio draws a hand (`realtime.avatars.render._hand`):
a palm through the wrist and the knuckles, and five jointed fingers through their
joints, each as wide as the studio's (0.14 of the hand's length, so 0.297 of the
wrist-to-middle-knuckle distance, measured in 3D so a turned hand keeps its width),
round-capped and antialiased, at half opacity over the decoded hand (`OPACITY`). Its
colour is the skin the reference shows on the character's cheeks, found through its
head (`face_paste.HeadShape`): a built-in character's own, or for an uploaded picture
one fitted to the face found in it (`HeadShape.of_upload`); a picture with no face
found gets no paste. The cache is written before it, as for the face paste: nothing
drawn here reaches the DiT.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.face_paste import HeadShape
from realtime.motion.types import FINGERS, PARTS

# the studio's finger width (0.14 hand lengths) over its wrist-to-middle-knuckle length
# ((-0.04, 0.47) hand lengths, `avatars.character.hand_template`)
FINGER_WIDTH = 0.14 / math.hypot(0.04, 0.47)
THUMB_WIDTH = 1.15                          # the thumb, as the studio draws it
PALM = (0, 1, 5, 9, 13, 17)                 # the palm's outline: wrist, knuckles
MIN_PRESENCE = 0.05                         # below it the studio draws a mitten
# how much of the drawn hand covers the decoded one. The driving hands are a tracker's
# (the studio's augmented motion), about a finger's width from where the truth draws
# them (0.24 wrist-to-knuckle lengths, median), so a crisp finger in the wrong place
# costs twice; half the hand over the DiT's own blur keeps the fingers' shape and
# following and costs less where they miss. Fitted by stop 50 on stop 26's dataset's
# unseen characters (`history/EXPERIMENTS.md`): opacity 0.4 to 0.6 score within 0.04 dB
# of each other on the hands, 1.0 0.26 dB lower; of the three, 0.5's finger response
# points most nearly the truth's way (cos 0.099)
OPACITY = 0.5
HANDS = (PARTS.index("left_hand"), PARTS.index("right_hand"))


def skin_colour(reference: torch.Tensor, shape: HeadShape) -> torch.Tensor:
    """(3,) the reference's (3, S, S) skin, in its values: the median of eight points
    on the two cheeks (below each eye, three quarters to nine tenths of the way down
    to the mouth's height, and to either side), below even a chibi's eyes and inside
    even a narrow face's hair."""
    left, right, _, mouth = shape.rest
    eyes = (left + right) / 2
    across = (left - right) / 2
    down = mouth - eyes
    pts = [eye + f * down + g * across * side
           for eye, side in ((left, 1.0), (right, -1.0))
           for f, g in ((0.75, 0.0), (0.9, 0.0), (0.8, 0.25), (0.8, -0.2))]
    grid = torch.tensor(np.stack(pts), dtype=torch.float32) * 2 - 1
    got = F.grid_sample(reference[None].float(), grid[None, None].to(reference.device),
                        mode="bilinear", padding_mode="border", align_corners=False)
    return got[0, :, 0].median(dim=1).values.to(reference.dtype)


def _segment_distance(gx: torch.Tensor, gy: torch.Tensor, a: np.ndarray,
                      b: np.ndarray) -> torch.Tensor:
    """Distance of each pixel (gx, gy) to the segment a-b (pixels)."""
    d = b - a
    dd = float(d @ d)
    if dd < 1e-12:
        return torch.hypot(gx - float(a[0]), gy - float(a[1]))
    t = (((gx - float(a[0])) * float(d[0]) + (gy - float(a[1])) * float(d[1])) / dd).clamp(0, 1)
    return torch.hypot(gx - float(a[0]) - t * float(d[0]), gy - float(a[1]) - t * float(d[1]))


def _polygon_distance(gx: torch.Tensor, gy: torch.Tensor, pts: np.ndarray) -> torch.Tensor:
    """Signed distance (negative inside) of each pixel to the convex hull of `pts`
    (k, 2), as the largest distance past one of its edges (exact along the edges,
    short of the true distance off the corners, which the rounding covers)."""
    import cv2

    hull = cv2.convexHull(np.asarray(pts, np.float32))[:, 0].astype(np.float64)
    if len(hull) < 3:
        return torch.full_like(gx, float("inf"))
    centre = hull.mean(0)
    out = torch.full_like(gx, -float("inf"))
    for a, b in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        e = b - a
        n = np.array([-e[1], e[0]]) / max(float(np.linalg.norm(e)), 1e-9)
        if (centre - a) @ n > 0:                        # outward, whichever way it turns
            n = -n
        out = torch.maximum(out, (gx - float(a[0])) * float(n[0])
                            + (gy - float(a[1])) * float(n[1]))
    return out


def paste_hands(frames: torch.Tensor, skin: torch.Tensor, hands: torch.Tensor,
                presence: torch.Tensor, opacity: float = OPACITY) -> torch.Tensor:
    """frames (N, 3, S, S) with each present hand drawn in `skin` (3,) at `opacity`:
    `hands` (N, 2, 21, 3) the pose's left and right hand points, canvas units (a hand
    with a non-finite point is left out), `presence` (N, N_PARTS). Only each hand's box
    is computed."""
    n, _, size, _ = frames.shape
    out = frames.clone()
    pts = hands.detach().float().cpu().numpy()
    seen = presence.detach().float().cpu().numpy()[:, list(HANDS)] > MIN_PRESENCE
    colour = skin.to(frames.dtype).view(3, 1, 1)
    for i in range(n):
        for k in range(2):
            hand = pts[i, k]
            if not seen[i, k] or not np.isfinite(hand).all():
                continue
            width = max(FINGER_WIDTH * float(np.linalg.norm(hand[9] - hand[0])) * size, 1.0)
            xy = hand[:, :2] * size                             # pixels, centres at +0.5
            reach = 0.6 * THUMB_WIDTH * width + 1
            x0, y0 = (max(0, math.floor(v - reach)) for v in xy.min(0))
            x1, y1 = (min(size, math.ceil(v + reach)) for v in xy.max(0))
            if x1 <= x0 or y1 <= y0:
                continue
            gy, gx = torch.meshgrid(
                torch.arange(y0, y1, device=frames.device, dtype=torch.float32) + 0.5,
                torch.arange(x0, x1, device=frames.device, dtype=torch.float32) + 0.5,
                indexing="ij")
            # how far inside the hand each pixel is: the palm rounded by half a finger,
            # each finger a round-capped polyline
            inside = width / 2 - _polygon_distance(gx, gy, xy[list(PALM)])
            for name, chain in FINGERS.items():
                half = width / 2 * (THUMB_WIDTH if name == "thumb" else 1.0)
                for a, b in zip(chain[:-1], chain[1:], strict=True):
                    inside = torch.maximum(inside, half - _segment_distance(gx, gy, xy[a], xy[b]))
            mask = (inside + 0.5).clamp(0, 1).mul(opacity).to(frames.dtype)[None]
            out[i, :, y0:y1, x0:x1] = mask * colour + (1 - mask) * out[i, :, y0:y1, x0:x1]
    return out
