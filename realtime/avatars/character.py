"""Procedural characters: style parameters drawn from a seed, and the skeleton they imply.

A `Character` is a frozen bag of style choices (proportions, head shape, colours,
patterns, outline/shading style, accessories). Its rest template — the 35 body joints
(33 MediaPipe landmarks + MID_HIP/MID_SHOULDER) and a 21-joint hand, in canvas units
(fraction of the canvas height at the full-body rest framing) — fixes its bone
lengths, so `character.skeleton` is in exactly the motion module's format and
`retarget(motion, character.skeleton)` works on it directly.

Proportions follow the usual "heads tall" canon of figure drawing: a chibi is about
2.5 heads tall, a child 4.5, an adult 7, a long-limbed (fashion) figure 8 with longer
legs and arms.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np

from realtime.motion.types import (
    BODY_BONES,
    FINGERS,
    HAND_BONES,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    MID_HIP,
    MID_SHOULDER,
    N_BODY_EXT,
    NOSE,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    WRIST,
    Skeleton,
)

RGB = tuple[int, int, int]

BUILDS: tuple[str, ...] = ("chibi", "child", "adult", "long")
HEAD_SHAPES: tuple[str, ...] = ("round", "oval", "square", "heart")
HAIR_STYLES: tuple[str, ...] = ("short", "bob", "long", "spiky", "bun", "bald")
PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "check")
LEGWEAR: tuple[str, ...] = ("trousers", "shorts", "skirt")
EYE_STYLES: tuple[str, ...] = ("round", "almond", "big")
ACCESSORIES: tuple[str, ...] = ("glasses", "hat", "scarf", "earrings", "bow", "headband")

# build -> (heads tall, leg share of the body below the neck, limb scale, shoulder width
#           in head widths, hand length in head heights)
_BUILD_PRESETS: dict[str, tuple[float, float, float, float, float]] = {
    "chibi": (2.6, 0.40, 0.85, 1.05, 0.42),
    "child": (4.6, 0.47, 0.95, 1.20, 0.55),
    "adult": (7.0, 0.52, 1.00, 1.75, 0.72),
    "long": (8.0, 0.56, 1.12, 1.70, 0.78),
}

_SKINS: tuple[RGB, ...] = (
    (255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 140, 100),
    (160, 105, 70), (110, 70, 48), (255, 236, 220), (186, 220, 255),  # last: fantasy blue
    (196, 240, 190),                                                   # fantasy green
)
_HAIRS: tuple[RGB, ...] = (
    (30, 24, 20), (90, 56, 32), (170, 120, 60), (235, 205, 120), (200, 70, 40),
    (230, 230, 235), (120, 80, 200), (60, 150, 230), (240, 120, 170), (40, 170, 120),
)
_EYES: tuple[RGB, ...] = (
    (60, 40, 25), (40, 90, 160), (40, 130, 80), (120, 90, 40), (150, 60, 170), (20, 20, 20),
)


@dataclass(frozen=True)
class Character:
    """One procedural character. Colours are RGB 0..255; lengths in canvas units."""

    name: str
    seed: int
    build: str = "adult"                    # one of BUILDS (a label; the numbers below rule)
    heads_tall: float = 7.0                 # figure height in head heights
    leg_ratio: float = 0.52                 # legs / (height below the neck)
    limb_scale: float = 1.0                 # arm length multiplier
    shoulder_width: float = 1.75            # in head widths
    hand_size: float = 0.72                 # hand length in head heights
    head_shape: str = "oval"                # one of HEAD_SHAPES
    head_aspect: float = 0.82               # head width / head height
    skin: RGB = (241, 194, 160)
    hair: RGB = (90, 56, 32)
    hair_style: str = "short"               # one of HAIR_STYLES
    eyes: RGB = (60, 40, 25)
    eye_style: str = "round"                # one of EYE_STYLES
    top: RGB = (60, 120, 200)
    top_pattern: str = "plain"              # one of PATTERNS
    pattern_color: RGB = (240, 240, 240)
    long_sleeves: bool = True
    bottom: RGB = (50, 50, 70)
    legwear: str = "trousers"               # one of LEGWEAR
    shoes: RGB = (40, 30, 30)
    outline: float = 0.04                   # outline width in head heights (0 = none)
    outline_color: RGB = (30, 25, 35)
    shading: float = 0.0                    # 0 = flat cartoon .. 1 = soft-shaded
    accessories: tuple[str, ...] = ()       # subset of ACCESSORIES
    accent: RGB = (220, 60, 80)             # accessory colour
    background: RGB = (236, 236, 240)       # plain background of reference images

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.build, BUILDS, "build"),
            (self.head_shape, HEAD_SHAPES, "head_shape"),
            (self.hair_style, HAIR_STYLES, "hair_style"),
            (self.eye_style, EYE_STYLES, "eye_style"),
            (self.top_pattern, PATTERNS, "top_pattern"),
            (self.legwear, LEGWEAR, "legwear"),
        ):
            if value not in allowed:
                raise ValueError(f"{what}={value!r}; expected one of {allowed}")
        unknown = set(self.accessories) - set(ACCESSORIES)
        if unknown:
            raise ValueError(f"unknown accessories {sorted(unknown)}; expected {ACCESSORIES}")

    # --- derived sizes, canvas units ----------------------------------------------

    @property
    def height(self) -> float:
        """Figure height (head top to soles) at the rest framing."""
        return 0.86

    @property
    def head_h(self) -> float:
        return self.height / self.heads_tall

    @property
    def head_w(self) -> float:
        return self.head_h * self.head_aspect

    @property
    def hand_len(self) -> float:
        return self.head_h * self.hand_size

    @property
    def limb_width(self) -> float:
        """Upper-arm thickness; the renderer derives the other widths from it."""
        return self.head_w * (0.36 if self.build == "chibi" else 0.36)

    # --- rest template -------------------------------------------------------------

    @cached_property
    def rest_body(self) -> np.ndarray:
        """(35, 3) rest joints: arms slightly out, palms forward, facing the camera."""
        return _rest_body(self)

    def rest_hand(self, side: str) -> np.ndarray:
        """(21, 3) rest hand ('left' or 'right'), positioned at that wrist."""
        wrist = self.rest_body[L_WRIST if side == "left" else R_WRIST]
        return wrist + hand_template(self, side)

    @cached_property
    def skeleton(self) -> Skeleton:
        body = self.rest_body
        lengths = np.array([np.linalg.norm(body[c] - body[p]) for p, c in BODY_BONES])
        hand = hand_template(self, "left")
        hand_lengths = np.array([np.linalg.norm(hand[c] - hand[p]) for p, c in HAND_BONES])
        root = (float(body[MID_HIP, 0]), float(body[MID_HIP, 1]))
        return Skeleton(body=lengths.astype(np.float32), hand=hand_lengths.astype(np.float32),
                        rest_root=root)


# hand template in units of the hand length, performer's RIGHT hand, palm facing the
# camera, fingers pointing down (+y), thumb away from the body (-x in the image).
_KNUCKLES = {"index": (-0.15, 0.45), "middle": (-0.04, 0.47), "ring": (0.07, 0.45),
             "pinky": (0.17, 0.41)}
_SEGMENTS = {"index": (0.22, 0.14, 0.11), "middle": (0.25, 0.16, 0.12),
             "ring": (0.23, 0.15, 0.11), "pinky": (0.18, 0.11, 0.10)}
_THUMB = ((-0.12, 0.12), (-0.25, 0.25), (-0.33, 0.37), (-0.39, 0.47))


def hand_template(character: Character, side: str) -> np.ndarray:
    """(21, 3) hand joints relative to the wrist, canvas units, rest (open) hand."""
    pts = np.zeros((21, 3))
    for i, (x, y) in enumerate(_THUMB):
        pts[FINGERS["thumb"][i]] = (x, y, -0.02 * i)
    for finger, (x, y) in _KNUCKLES.items():
        chain = FINGERS[finger]
        pts[chain[0]] = (x, y, 0.0)
        for j, seg in enumerate(_SEGMENTS[finger]):
            # fingers fan out slightly from the middle finger
            spread = x * 0.25
            pts[chain[j + 1]] = pts[chain[j]] + (spread * seg, seg, 0.0)
    pts[WRIST] = 0.0
    if side == "left":
        pts[:, 0] *= -1
    return pts * character.hand_len


def _rest_body(c: Character) -> np.ndarray:
    """Place the 35 joints of a standing figure, feet at the bottom of the frame."""
    hh, hw = c.head_h, c.head_w
    top = 0.5 - c.height / 2 + 0.01           # head top; soles at top + height
    floor = top + c.height
    neck = hh * (0.06 if c.build == "chibi" else 0.28 if c.build != "child" else 0.18)
    shoulder_y = top + hh + neck
    below = floor - shoulder_y
    legs = below * c.leg_ratio
    torso = below - legs
    hip_y = shoulder_y + torso
    sw = hw * c.shoulder_width / 2             # shoulder half-width
    hip_w = sw * 0.55
    arm = (torso + legs * 0.55) * 0.8 * c.limb_scale
    upper, fore = arm * 0.52, arm * 0.48
    foot_h = legs * 0.06
    thigh, shin = (legs - foot_h) * 0.5, (legs - foot_h) * 0.5

    b = np.zeros((N_BODY_EXT, 3))
    cx = 0.5
    head_cy = top + hh / 2
    b[MID_HIP] = (cx, hip_y, 0.0)
    b[MID_SHOULDER] = (cx, shoulder_y, 0.0)
    b[NOSE] = (cx, head_cy + 0.08 * hh, -0.5 * hw)
    eye_y = head_cy + (0.12 if c.build == "chibi" else 0.0) * hh
    for side, sgn in ((0, 1.0), (1, -1.0)):     # 0: performer's left = image right (+x)
        base = 1 if side == 0 else 4           # left eye: 1,2,3; right eye: 4,5,6
        for k, dx in enumerate((0.12, 0.22, 0.32)):
            b[base + k] = (cx + sgn * dx * hw, eye_y, -0.42 * hw)
        b[7 if side == 0 else 8] = (cx + sgn * 0.5 * hw, head_cy + 0.05 * hh, 0.0)
        b[9 if side == 0 else 10] = (cx + sgn * 0.14 * hw, head_cy + 0.28 * hh, -0.4 * hw)
    # MediaPipe: left landmarks are the performer's left, seen on the image's right.
    for sh, el, wr, sgn in ((L_SHOULDER, L_ELBOW, L_WRIST, 1.0),
                            (R_SHOULDER, R_ELBOW, R_WRIST, -1.0)):
        b[sh] = (cx + sgn * sw, shoulder_y, 0.0)
        out = np.deg2rad(12.0)
        d = np.array([sgn * np.sin(out), np.cos(out), 0.0])
        b[el] = b[sh] + d * upper
        b[wr] = b[el] + d * fore
    for hip, knee, ankle, sgn in ((L_HIP, L_KNEE, L_ANKLE, 1.0), (R_HIP, R_KNEE, R_ANKLE, -1.0)):
        b[hip] = (cx + sgn * hip_w, hip_y, 0.0)
        b[knee] = b[hip] + (sgn * 0.02 * thigh, thigh, 0.0)
        b[ankle] = b[knee] + (0.0, shin, 0.0)
    for ankle, heel, toe, sgn in ((L_ANKLE, 29, 31, 1.0), (R_ANKLE, 30, 32, -1.0)):
        b[heel] = b[ankle] + (0.0, foot_h, 0.3 * foot_h)
        b[toe] = b[ankle] + (sgn * 0.3 * foot_h, foot_h, -2.2 * foot_h)
    for wrist, hand_side in ((L_WRIST, "left"), (R_WRIST, "right")):
        hand = hand_template(c, hand_side)
        b[wrist + 2] = b[wrist] + hand[17]     # pinky (pose landmarks 17/18)
        b[wrist + 4] = b[wrist] + hand[5]      # index (19/20)
        b[wrist + 6] = b[wrist] + hand[2]      # thumb (21/22)
    return b


# --- random characters ----------------------------------------------------------------


T = TypeVar("T")


def _pick(rng: np.random.Generator, options: tuple[T, ...]) -> T:
    return options[int(rng.integers(len(options)))]


def _rgb(rng: np.random.Generator, lo: int = 30, hi: int = 235) -> RGB:
    r, g, b = rng.integers(lo, hi, 3)
    return int(r), int(g), int(b)


def make_character(seed: int, **style: object) -> Character:
    """A character drawn from `seed`; any `Character` field given in `style` overrides
    the draw (e.g. `make_character(3, build="chibi", shading=1.0)`). Proportions are
    drawn around the preset of the (given or drawn) build."""
    fields = {f.name for f in dataclasses.fields(Character)}
    unknown = set(style) - fields
    if unknown:
        raise TypeError(f"unknown style parameters {sorted(unknown)}; expected some of {fields}")
    rng = np.random.default_rng(seed)
    build = str(style.get("build", _pick(rng, BUILDS)))
    if build not in _BUILD_PRESETS:
        raise ValueError(f"build={build!r}; expected one of {BUILDS}")
    heads, legs, limbs, shoulders, hand = _BUILD_PRESETS[build]
    jitter = rng.uniform(-1.0, 1.0, 5)
    n_acc = int(rng.integers(0, 3))
    accessories = tuple(sorted(rng.choice(ACCESSORIES, n_acc, replace=False).tolist()))
    top = _rgb(rng)
    drawn: dict[str, object] = dict(
        name=f"character-{seed}",
        seed=seed,
        build=build,
        heads_tall=heads * (1 + 0.07 * jitter[0]),
        leg_ratio=legs + 0.025 * jitter[1],
        limb_scale=limbs * (1 + 0.06 * jitter[2]),
        shoulder_width=shoulders * (1 + 0.1 * jitter[3]),
        hand_size=hand * (1 + 0.08 * jitter[4]),
        head_shape=_pick(rng, HEAD_SHAPES),
        head_aspect=float(rng.uniform(0.92, 1.02) if build == "chibi" else rng.uniform(0.74, 0.88)),
        skin=_pick(rng, _SKINS),
        hair=_pick(rng, _HAIRS),
        hair_style=_pick(rng, HAIR_STYLES),
        eyes=_pick(rng, _EYES),
        eye_style="big" if build == "chibi" else _pick(rng, EYE_STYLES),
        top=top,
        top_pattern=_pick(rng, PATTERNS),
        pattern_color=_rgb(rng, 120, 255),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=_rgb(rng, 20, 200),
        legwear=_pick(rng, LEGWEAR),
        shoes=_rgb(rng, 10, 120),
        outline=float(_pick(rng, (0.0, 0.025, 0.04, 0.06))),
        outline_color=_pick(rng, ((25, 20, 30), (60, 40, 40), (20, 30, 60))),
        shading=float(_pick(rng, (0.0, 0.0, 0.5, 1.0))),
        accessories=accessories,
        accent=_rgb(rng),
        background=_rgb(rng, 200, 250),
    )
    drawn.update(style)
    return Character(**drawn)  # type: ignore[arg-type]
