"""Augmentation that makes clean procedural motion look like extracted motion.

Applied to the driving motion only (what the model sees), never to the motion that
renders the ground truth, so the model learns to produce the clean result from
noisy input. Three effects, each mimicking a failure of a landmark tracker:

- jitter: temporally correlated noise on bone directions and face features (an
  AR(1) process, like a tracker's frame-to-frame wobble), larger as confidence drops;
- dropped parts: a hand or the face vanishes for a stretch of frames (presence 0,
  hand directions None), as when a hand leaves the frame or is occluded;
- confidence decay: a part's presence ramps down and back up over a stretch, as
  tracking degrades before it is lost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from realtime.motion.types import PARTS, NormalizedMotion


@dataclass(frozen=True)
class AugmentConfig:
    jitter: float = 0.03             # std of direction noise (unit vectors) at full confidence
    face_jitter: float = 0.04        # std of face feature noise
    jitter_memory: float = 0.6       # AR(1) coefficient: 0 = white noise, ->1 = slow wobble
    drop_rate: float = 0.25          # per part per clip: chance of one dropped stretch
    drop_frames: tuple[int, int] = (5, 30)
    decay_rate: float = 0.3          # per part per clip: chance of one confidence dip
    decay_frames: tuple[int, int] = (8, 40)
    decay_floor: float = 0.2         # lowest presence a dip reaches
    droppable: tuple[str, ...] = ("face", "left_hand", "right_hand")

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        presets = {"none": cls(0.0, 0.0, 0.0, 0.0, (1, 1), 0.0), "default": cls(),
                   "heavy": cls(jitter=0.06, face_jitter=0.08, drop_rate=0.5, decay_rate=0.5)}
        if name not in presets:
            raise KeyError(f"unknown augmentation preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _stretch(rng: np.random.Generator, n: int, lo_hi: tuple[int, int]) -> tuple[int, int]:
    length = int(rng.integers(lo_hi[0], lo_hi[1] + 1))
    length = min(length, n)
    start = int(rng.integers(0, n - length + 1))
    return start, start + length


def augment_clip(
    clip: list[NormalizedMotion], seed: int, config: AugmentConfig | None = None
) -> list[NormalizedMotion]:
    """A noisy copy of `clip` (the input is not modified). Deterministic for a seed."""
    cfg = config or AugmentConfig()
    rng = np.random.default_rng(seed)
    n = len(clip)
    if n == 0:
        return []
    # per-part presence multipliers over time, (N_PARTS, n)
    presence = np.ones((len(PARTS), n))
    for part in cfg.droppable:
        k = PARTS.index(part)
        if rng.random() < cfg.decay_rate:
            a, b = _stretch(rng, n, cfg.decay_frames)
            ramp = np.sin(np.linspace(0.0, np.pi, b - a))      # down and back up
            presence[k, a:b] = np.minimum(presence[k, a:b], 1.0 - (1 - cfg.decay_floor) * ramp)
        if rng.random() < cfg.drop_rate:
            a, b = _stretch(rng, n, cfg.drop_frames)
            presence[k, a:b] = 0.0
    out: list[NormalizedMotion] = []
    noise: dict[str, np.ndarray] = {}
    keep = cfg.jitter_memory
    fresh = np.sqrt(max(1.0 - keep * keep, 0.0))

    def ar(name: str, shape: tuple[int, ...]) -> np.ndarray:
        """AR(1) noise with unit stationary std."""
        e = rng.standard_normal(shape)
        noise[name] = keep * noise[name] + fresh * e if name in noise else e
        return noise[name]

    for i, m in enumerate(clip):
        pres = np.asarray(m.presence, np.float32) * presence[:, i].astype(np.float32)
        # less confident -> noisier, up to 3x at zero confidence
        boost = 1.0 + 2.0 * (1.0 - pres)
        body = _unit(m.body_dirs + cfg.jitter * boost[0] * ar("body", m.body_dirs.shape))
        hands: list[np.ndarray | None] = []
        for side, dirs in (("left_hand", m.left_hand_dirs), ("right_hand", m.right_hand_dirs)):
            k = PARTS.index(side)
            noisy = ar(side, (20, 3))  # advance the stream whether or not the hand is there
            if dirs is None or pres[k] <= 0.0:
                hands.append(None)
                pres[k] = 0.0
            else:
                hands.append(_unit(dirs + cfg.jitter * boost[k] * noisy[: len(dirs)]).astype(
                    np.float32))
        kf = PARTS.index("face")
        face = m.face + cfg.face_jitter * boost[kf] * ar("face", m.face.shape)
        if pres[kf] <= 0.0:
            face = np.zeros_like(m.face)                          # unknown, not "neutral"
        root = m.root + 0.2 * cfg.jitter * ar("root", (3,))
        out.append(dataclasses.replace(
            m, body_dirs=body.astype(np.float32), left_hand_dirs=hands[0],
            right_hand_dirs=hands[1], face=face.astype(np.float32), root=root,
            presence=pres.astype(np.float32)))
    return out
