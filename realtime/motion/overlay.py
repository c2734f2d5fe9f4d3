"""The overlay video of `marionette motion --overlay`: landmarks drawn over the
frame, plus a panel of gauges for the face features and part presence.

Draws on RGB uint8 frames in place of a copy; nothing here runs in the live path.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.motion.condition import BODY_GROUPS, HAND_GROUPS
from realtime.motion.types import FACE_FEATURES, PARTS, MotionFrame, NormalizedMotion

_BODY_RGB = (80, 220, 80)
_LEFT_RGB = (80, 160, 255)      # performer's left hand
_RIGHT_RGB = (255, 120, 80)
_FACE_RGB = (240, 240, 240)
_PANEL_W = 210


def _px(points: np.ndarray, w: int, h: int) -> np.ndarray:
    xy = np.nan_to_num(points[:, :2] * np.array([w, h]), nan=-1e4)
    return np.clip(xy, -10 * max(w, h), 10 * max(w, h)).round().astype(np.int32)


def draw_landmarks(image: np.ndarray, frame: MotionFrame, min_visibility: float = 0.5) -> None:
    """Draw body bones, hand bones and face points onto `image` (RGB, in place)."""
    h, w = image.shape[:2]
    lw = max(1, round(min(w, h) / 240))
    if frame.body is not None:
        body = frame.body
        mids = np.stack([body[[23, 24], :2].mean(0), body[[11, 12], :2].mean(0)])
        px = _px(np.concatenate([body[:, :2], mids]), w, h)
        vis = np.append(body[:, 3], [1.0, 1.0]) >= min_visibility
        for bones in BODY_GROUPS.values():
            for a, b in bones:
                if vis[a] and vis[b]:
                    cv2.line(image, tuple(px[a]), tuple(px[b]), _BODY_RGB, lw, cv2.LINE_AA)
    for hand, rgb in ((frame.left_hand, _LEFT_RGB), (frame.right_hand, _RIGHT_RGB)):
        if hand is None:
            continue
        px = _px(hand, w, h)
        for bones in HAND_GROUPS.values():
            for a, b in bones:
                cv2.line(image, tuple(px[a]), tuple(px[b]), rgb, lw, cv2.LINE_AA)
        for p in px:
            cv2.circle(image, tuple(p), lw + 1, rgb, -1, cv2.LINE_AA)
    if frame.face is not None:
        for x, y in _px(frame.face[::2], w, h):     # every other point keeps it readable
            image[min(max(y, 0), h - 1), min(max(x, 0), w - 1)] = _FACE_RGB


def draw_gauges(image: np.ndarray, motion: NormalizedMotion) -> np.ndarray:
    """A side panel (returned image is wider) with one centred bar per face feature
    (full scale +-1; angles in radians) and one bar per part's presence."""
    h = image.shape[0]
    panel = np.full((h, _PANEL_W, 3), 24, dtype=np.uint8)
    rows = len(FACE_FEATURES) + len(PARTS) + 1
    row_h = max(12, min(28, h // rows))
    scale = row_h / 28
    x0, x1 = 96, _PANEL_W - 8
    xc = (x0 + x1) // 2
    face_on = motion.presence[1] > 0
    for i, (name, value) in enumerate(zip(FACE_FEATURES, motion.face, strict=True)):
        y = 6 + i * row_h
        cv2.putText(panel, name, (4, y + row_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    (220, 220, 220), 1, cv2.LINE_AA)
        cv2.rectangle(panel, (x0, y + 4), (x1, y + row_h - 6), (70, 70, 70), 1)
        if face_on:
            v = float(np.clip(value, -1.0, 1.0))
            xv = int(xc + v * (x1 - xc))
            color = (90, 200, 255) if v >= 0 else (255, 170, 60)
            cv2.rectangle(panel, (min(xc, xv), y + 5), (max(xc, xv), y + row_h - 7), color, -1)
        cv2.line(panel, (xc, y + 2), (xc, y + row_h - 4), (160, 160, 160), 1)
    base = 6 + (len(FACE_FEATURES) + 1) * row_h
    for k, part in enumerate(PARTS):
        y = base + k * row_h
        cv2.putText(panel, part, (4, y + row_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    (220, 220, 220), 1, cv2.LINE_AA)
        p = float(np.clip(motion.presence[k], 0.0, 1.0))
        cv2.rectangle(panel, (x0, y + 4), (x1, y + row_h - 6), (70, 70, 70), 1)
        if p > 0:
            cv2.rectangle(panel, (x0, y + 5), (int(x0 + p * (x1 - x0)), y + row_h - 7),
                          (90, 220, 90), -1)
    return np.concatenate([image, panel], axis=1)


def render_overlay(image: np.ndarray, frame: MotionFrame,
                   motion: NormalizedMotion) -> np.ndarray:
    """(H, W, 3) RGB frame -> (H, W + panel, 3) RGB with landmarks and gauges."""
    out = np.ascontiguousarray(image[:, :, :3]).copy()
    draw_landmarks(out, frame)
    return draw_gauges(out, motion)
