"""The hand paste: a built-in character's hands drawn where the pose's fingers are, in
the skin its reference shows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from realtime.avatars import gallery
from realtime.avatars.character import Character, make_character
from realtime.avatars.render import Framing, framing_for, render, render_reference, rest_pose
from realtime.model.face_paste import HeadShape
from realtime.model.hand_paste import paste_hands, skin_colour
from realtime.motion.types import FINGERS, N_PARTS, PARTS, Pose

S = 128
CHAR = make_character(5, accessories=())
CAM = framing_for(CHAR, "upper")
SHAPE = HeadShape.of(CHAR, CAM)
LEFT = PARTS.index("left_hand")


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1


def image(x: torch.Tensor) -> np.ndarray:
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def shot(p: np.ndarray) -> np.ndarray:
    """Rest-canvas points -> the frame's canvas units, through CAM."""
    out = np.asarray(p, np.float64).copy()
    out[:, :2] = (out[:, :2] - np.asarray(CAM.center)) * CAM.zoom + 0.5
    return out


def raised_pose() -> tuple[Pose, np.ndarray]:
    """The character at rest with its left hand lifted before the chest, fingers up,
    and that hand's points in the frame's canvas units."""
    pose = rest_pose(CHAR)
    assert pose.left_hand is not None
    hand = pose.left_hand.copy()
    hand[:, 1] = 2 * hand[0, 1] - hand[:, 1]                # fingers up, not down
    chest = (pose.body[11] + pose.body[12]) / 2 * 0.5 + (pose.body[23] + pose.body[24]) / 4
    hand = hand - hand[9] + chest                           # palm on the chest
    return dataclasses.replace(pose, left_hand=hand), shot(hand)


def paste(frame: np.ndarray, left: np.ndarray | None, skin: torch.Tensor,
          opacity: float = 1.0, present: float = 1.0) -> np.ndarray:
    hands = np.full((1, 2, 21, 3), np.nan, np.float32)
    if left is not None:
        hands[0, 0] = left
    presence = np.ones((1, N_PARTS), np.float32)
    presence[0, LEFT] = present
    out = paste_hands(tensor(frame)[None], skin, torch.from_numpy(hands),
                      torch.from_numpy(presence), opacity)
    return image(out[0])


def skin_of(char: Character = CHAR, cam: Framing = CAM) -> torch.Tensor:
    ref = render_reference(char, S, framing=cam)
    return skin_colour(tensor(ref), HeadShape.of(char, cam))


def test_the_skin_is_the_references_own() -> None:
    """The colour is read off the reference: every gallery character, in every shot,
    repainted with a green or a brown skin, gives a colour nearer that skin than the
    other (the studio shades skin, so near, not equal)."""
    green, brown = (120, 200, 110), (150, 95, 60)
    for name in gallery.names():
        for framing in ("full", "upper", "face"):
            got = {}
            for skin in (green, brown):
                char = dataclasses.replace(gallery.get(name), skin=skin)
                got[skin] = (skin_of(char, framing_for(char, framing)).numpy() + 1) * 127.5
            for skin, other in ((green, brown), (brown, green)):
                near = np.abs(got[skin] - np.array(skin)).mean()
                assert near < np.abs(got[skin] - np.array(other)).mean(), (name, framing)
                assert near < 40, (name, framing)


def test_a_rendered_frame_without_the_hand_gets_it_back() -> None:
    """The studio draws the lifted hand; the same frame with the hand lost (a mitten at
    the wrist) gets it back from the paste: in the hand's box the pasted frame is
    nearer the studio's than the handless one, fully drawn or at the default opacity."""
    pose, left = raised_pose()
    with_hand = render(CHAR, pose, S, "plain", CAM)[..., :3]
    lost = dataclasses.replace(pose, presence=np.where(np.arange(N_PARTS) == LEFT, 0.0, 1.0))
    without = render(CHAR, lost, S, "plain", CAM)[..., :3]
    x0, y0 = (left[:, :2].min(0) * S).astype(int) - 2
    x1, y1 = (left[:, :2].max(0) * S).astype(int) + 3
    box = np.s_[y0:y1, x0:x1]

    def err(img: np.ndarray) -> float:
        return float(np.abs(img[box].astype(int) - with_hand[box].astype(int)).mean())

    full = paste(without, left, skin_of())
    half = paste(without, left, skin_of(), opacity=0.5)
    assert err(full) < 0.6 * err(without)
    assert err(half) < err(without)
    far = np.s_[:, :x0 - 8]                                 # the rest of the frame
    assert np.array_equal(full[far], without[far])


def test_the_fingers_follow_the_pose() -> None:
    """Bending the index finger down moves what is drawn: its tip's old place goes
    back to the frame, the new one is painted."""
    _, left = raised_pose()
    blank = np.full((S, S, 3), 40, np.uint8)
    skin = torch.tensor([0.8, 0.4, 0.1])
    straight = paste(blank, left, skin)
    bent = left.copy()
    knuckle = left[FINGERS["index"][0]]
    for j in FINGERS["index"][1:]:                          # folded down past the knuckle
        bent[j, 1] = 2 * knuckle[1] - left[j, 1]
    curled = paste(blank, bent, skin)
    tip_up, tip_down = (left[8, :2] * S).astype(int), (bent[8, :2] * S).astype(int)
    assert straight[tip_up[1], tip_up[0], 0] > 200 and curled[tip_up[1], tip_up[0], 0] == 40
    assert curled[tip_down[1], tip_down[0], 0] > 200 and straight[tip_down[1], tip_down[0], 0] == 40


@pytest.mark.parametrize("case", ["absent", "unknown", "off frame"])
def test_no_hand_no_paste(case: str) -> None:
    """A hand the tracker lost (presence low), one with no points, or one wholly out of
    the frame leaves the frame as it is."""
    frame = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    _, left = raised_pose()
    if case == "absent":
        out = paste(frame, left, skin_of(), present=0.02)
    elif case == "unknown":
        out = paste(frame, None, skin_of())
    else:
        out = paste(frame, left + np.array([2.0, 0.0, 0.0]), skin_of())
    assert np.array_equal(out, frame)
