"""Procedural motion: a performer acting out idle sway, nods, head turns, talking,
blinks, waves, pointing, finger counting, clapping, covering the face and dance
loops, with changing expressions — as NormalizedMotion, the form the model sees.

A performance is a timeline of actions. Each action is a smooth function of its
local time that returns offsets of a small set of controls (segment angles, finger
curls, head angles, face features) from the rest pose; consecutive actions
cross-fade with a smoothstep over `blend_s`, and idle sway, blinks and
expression changes are layered on top, so every trajectory is C1-smooth.

Controls become bone directions directly (kinematics.py), so the output is
identity-agnostic by construction; the performer's own proportions only enter
through its face, foot and hand rest directions and its root offset in torso
lengths.

    gen = ProceduralMotion(seed=3)          # endless, deterministic for a seed
    gen.frame(i)  -> NormalizedMotion       # frame i at cfg.fps
    demo_performer(seed)                    # iterator the server uses without a camera
    pose_to_motion(pose, skeleton)          # any Pose -> NormalizedMotion (its inverse
                                            #   is realtime.motion.retarget.retarget)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from realtime.avatars.character import Character, make_character
from realtime.avatars.kinematics import (
    REST_ARM,
    Controls,
    RestDirections,
    controls_to_motion,
    fk,
    pose_to_motion,
    rest_directions,
    to_pose,
)
from realtime.motion.types import FINGERS, NormalizedMotion

__all__ = [
    "ACTIONS", "EXPRESSIONS", "REST_ARM", "Controls", "MotionConfig", "ProceduralMotion",
    "RestDirections", "controls_to_motion", "demo_performer", "fk", "pose_to_motion",
    "rest_directions", "to_pose",
]

ACTIONS: tuple[str, ...] = (
    "idle", "nod", "turn", "talk", "wave", "point", "count", "clap", "cover_face", "dance",
)


@dataclass(frozen=True)
class MotionConfig:
    fps: float = 30.0
    min_action_s: float = 1.6
    max_action_s: float = 4.0
    blend_s: float = 0.8                 # cross-fade between consecutive actions
    sway: float = 1.0                    # idle sway amplitude multiplier
    actions: tuple[str, ...] = ACTIONS   # what the timeline draws from

    @classmethod
    def preset(cls, name: str) -> MotionConfig:
        presets = {"default": cls(), "calm": cls(sway=0.5, actions=("idle", "nod", "turn", "talk")),
                   "lively": cls(min_action_s=1.2, max_action_s=2.8, blend_s=0.45)}
        if name not in presets:
            raise KeyError(f"unknown motion preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


# --- controls -------------------------------------------------------------------------



def _curls(prefix: str, values: tuple[float, float, float, float, float]) -> Controls:
    return {f"{prefix}curl_{f}": v for f, v in zip(FINGERS, values, strict=True)}


def _arm(side: str, ua: float, uf: float, fa: float, ff: float, roll: float = 0.0) -> Controls:
    """Absolute arm angles as offsets from the rest A-pose."""
    return {f"{side}ua": ua - REST_ARM, f"{side}uf": uf, f"{side}fa": fa - REST_ARM,
            f"{side}ff": ff, f"{side}roll": roll}


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


Action = Callable[[float, np.random.Generator], Controls]


def _wave(t: float, side: str) -> Controls:
    c = _arm(side, 2.0, 0.15, 2.9 + 0.35 * np.sin(2 * np.pi * 2.0 * t), 0.1)
    c.update({"mouth_width": 0.8, "eye_open_l": -0.2, "eye_open_r": -0.2, "brow_l": 0.2,
              "brow_r": 0.2})
    return c


def _point(t: float, side: str) -> Controls:
    c = _arm(side, 1.2, 0.7, 1.35, 1.1, roll=0.4)
    c.update(_curls(f"{side}", (1.0, 0.0, 1.5, 1.5, 1.5)))
    c.update({"yaw": 0.35 if side == "l" else -0.35, "gaze_x": 0.6 if side == "l" else -0.6})
    return c


def _count(t: float, side: str) -> Controls:
    p = (t / 0.8) % 6.0                        # 0..5 fingers up, one every 0.8 s, again
    fold = _smooth((6.0 - p) / 0.6)            # all fold back at the end of a count
    c = _arm(side, 0.35, 0.5, -2.75, 0.55)
    order = ("index", "middle", "ring", "pinky", "thumb")
    c.update({f"{side}curl_{f}": 1.3 * (1.0 - _smooth((p - k - 0.4) / 0.6) * fold)
              for k, f in enumerate(order)})
    c.update({"pitch": -0.15, "gaze_y": 0.5})
    return c


def _clap(t: float) -> Controls:
    close = 0.5 + 0.5 * np.cos(2 * np.pi * 2.2 * t)       # 1 = hands together
    c: Controls = {}
    for side in ("l", "r"):
        c.update(_arm(side, 0.3, 0.55, -1.05 - 0.45 * close, 0.75,
                      roll=1.4 if side == "l" else -1.4))
    c.update({"mouth_width": 1.0, "mouth_open": 0.3})
    return c


def _cover(t: float) -> Controls:
    c: Controls = {}
    for side in ("l", "r"):
        c.update(_arm(side, 0.25, 1.0, -2.85, 0.8))
    c.update({"pitch": -0.2, "eye_open_l": -1.0, "eye_open_r": -1.0})
    return c


def _dance(t: float) -> Controls:
    beat = 2 * np.pi * 1.2 * t
    up = 0.5 + 0.5 * np.sin(beat)
    c: Controls = {"root_y": 0.06 * np.abs(np.sin(beat)), "lean": 0.12 * np.sin(beat / 2),
                   "body_yaw": 0.25 * np.sin(beat / 4), "roll": 0.12 * np.sin(beat / 2),
                   "mouth_width": 0.9, "mouth_open": 0.2}
    c.update(_arm("l", 0.6 + 1.6 * up, 0.2, 1.2 + 1.7 * up, 0.2))
    c.update(_arm("r", 2.2 - 1.6 * up, 0.2, 2.9 - 1.7 * up, 0.2))
    bend = 0.35 * np.abs(np.sin(beat))
    for side in ("l", "r"):
        c[f"{side}ta"] = 0.0
        c[f"{side}tf"] = bend
        c[f"{side}sf"] = -bend
    return c


def _action(name: str, side: str) -> Callable[[float], Controls]:
    table: dict[str, Callable[[float], Controls]] = {
        "idle": lambda t: {},
        "nod": lambda t: {"pitch": -0.28 * np.sin(np.pi * 1.4 * t) ** 2},
        "turn": lambda t: {"yaw": (0.7 if side == "l" else -0.7) * _smooth(t / 0.8),
                           "gaze_x": (0.5 if side == "l" else -0.5) * _smooth(t / 0.5)},
        "talk": lambda t: {
            "mouth_open": max(0.0, 0.55 * np.sin(2 * np.pi * 3.1 * t) + 0.25 * np.sin(
                2 * np.pi * 4.7 * t + 1.0) + 0.15),
            "jaw": max(0.0, 0.3 * np.sin(2 * np.pi * 3.1 * t)),
            "brow_l": 0.25 * np.sin(2 * np.pi * 0.7 * t), "brow_r": 0.25 * np.sin(
                2 * np.pi * 0.7 * t),
            **_arm(side, 0.3, 0.6, -0.9 + 0.25 * np.sin(2 * np.pi * 0.9 * t), 0.9, roll=0.8)},
        "wave": lambda t: _wave(t, side),
        "point": lambda t: _point(t, side),
        "count": lambda t: _count(t, side),
        "clap": _clap,
        "cover_face": _cover,
        "dance": _dance,
    }
    return table[name]


# expression targets layered over any action
EXPRESSIONS: dict[str, Controls] = {
    "neutral": {},
    "happy": {"mouth_width": 0.7, "eye_open_l": -0.15, "eye_open_r": -0.15, "brow_l": 0.15,
              "brow_r": 0.15},
    "surprised": {"brow_l": 0.9, "brow_r": 0.9, "eye_open_l": 0.45, "eye_open_r": 0.45,
                  "mouth_open": 0.45, "jaw": 0.3},
    "sad": {"brow_l": -0.3, "brow_r": -0.3, "mouth_width": -0.4, "pitch": -0.1},
    "angry": {"brow_l": -0.7, "brow_r": -0.7, "mouth_width": -0.3, "eye_open_l": -0.1,
              "eye_open_r": -0.1},
}


@dataclass
class _Segment:
    start: float
    end: float
    fn: Callable[[float], Controls]
    expression: Controls
    name: str


@dataclass
class ProceduralMotion:
    """An endless, deterministic performance by a procedural performer."""

    seed: int
    config: MotionConfig = field(default_factory=MotionConfig)
    performer: Character | None = None      # default: a random character from the seed

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 7])
        if self.performer is None:
            self.performer = make_character(int(self._rng.integers(2**31)))
        self._segments: list[_Segment] = []
        self._blinks: list[float] = []
        self._phase = self._rng.uniform(0, 2 * np.pi, 8)
        self._rest = rest_directions(self.performer)

    # --- timeline ---------------------------------------------------------------

    def _extend(self, t: float) -> None:
        cfg = self.config
        while not self._segments or self._segments[-1].end < t + cfg.blend_s:
            start = self._segments[-1].end - cfg.blend_s if self._segments else -cfg.blend_s
            name = cfg.actions[int(self._rng.integers(len(cfg.actions)))]
            side = "l" if self._rng.random() < 0.5 else "r"
            dur = float(self._rng.uniform(cfg.min_action_s, cfg.max_action_s))
            dur = max(dur, 2 * cfg.blend_s)         # room to fade in and out
            expr = list(EXPRESSIONS)[int(self._rng.integers(len(EXPRESSIONS)))]
            self._segments.append(_Segment(start, start + dur, _action(name, side),
                                            EXPRESSIONS[expr], name))
        while not self._blinks or self._blinks[-1] < t + 1.0:
            last = self._blinks[-1] if self._blinks else 0.0
            self._blinks.append(last + float(self._rng.uniform(1.8, 5.0)))

    def action_at(self, t: float) -> str:
        """The name of the action dominating at time t (seconds)."""
        self._extend(t)
        live = [s for s in self._segments if s.start <= t < s.end]
        return live[-1].name if live else "idle"

    def controls(self, t: float) -> Controls:
        self._extend(t)
        cfg = self.config
        out: Controls = {}

        def add(c: Controls, w: float) -> None:
            for k, v in c.items():
                out[k] = out.get(k, 0.0) + w * float(v)

        for seg in self._segments:
            if seg.end <= t or seg.start > t:
                continue
            w = _smooth((t - seg.start) / cfg.blend_s) * _smooth((seg.end - t) / cfg.blend_s)
            add(seg.fn(t - seg.start), w)
            add(seg.expression, w)
        # idle layer: sway, breathing, small head drift, gaze drift
        ph, k = self._phase, cfg.sway
        add({"root_x": 0.03 * np.sin(2 * np.pi * 0.23 * t + ph[0]),
             "lean": 0.03 * np.sin(2 * np.pi * 0.23 * t + ph[0]),
             "root_y": 0.006 * np.sin(2 * np.pi * 0.3 * t + ph[1]),
             "yaw": 0.08 * np.sin(2 * np.pi * 0.17 * t + ph[2]),
             "pitch": 0.05 * np.sin(2 * np.pi * 0.21 * t + ph[3]),
             "roll": 0.04 * np.sin(2 * np.pi * 0.13 * t + ph[4]),
             "gaze_x": 0.2 * np.sin(2 * np.pi * 0.11 * t + ph[5]),
             "gaze_y": 0.1 * np.sin(2 * np.pi * 0.09 * t + ph[6]),
             "lua": 0.04 * np.sin(2 * np.pi * 0.25 * t + ph[7]),
             "rua": 0.04 * np.sin(2 * np.pi * 0.25 * t + ph[7] + 1.0)}, k)
        # blinks: a 0.2 s close-open that adds to whatever the eyes do
        for b in self._blinks:
            if abs(t - b) < 0.1:
                close = 1.0 - abs(t - b) / 0.1
                add({"eye_open_l": -2.0 * close, "eye_open_r": -2.0 * close}, 1.0)
        return out

    # --- controls -> NormalizedMotion -----------------------------------------

    def frame(self, i: int, t_capture: float | None = None) -> NormalizedMotion:
        t = i / self.config.fps
        return controls_to_motion(self.controls(t), self._rest, i,
                                  t if t_capture is None else t_capture)

    def clip(self, n_frames: int, start: int = 0) -> list[NormalizedMotion]:
        return [self.frame(start + i) for i in range(n_frames)]


def demo_performer(seed: int = 0, config: MotionConfig | None = None) -> Iterator[NormalizedMotion]:
    """Endless NormalizedMotion, frame i showing the performance at i / 30 s (the
    server's built-in demo motion; the caller paces it). Frame ids count from 0;
    t_capture is time.monotonic() when the frame is made, since for generated motion
    that is the moment of "capture" the latency record starts from."""
    gen = ProceduralMotion(seed, config or MotionConfig())
    for i in itertools.count():
        yield gen.frame(i, time.monotonic())
