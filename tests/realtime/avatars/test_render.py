"""The renderer: deterministic, identity follows the character's skeleton, expressive
face features stay in the face, hands have five bending fingers, alpha is right."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.avatars.character import make_character
from realtime.avatars.motion import MotionConfig, ProceduralMotion, fk, pose_to_motion
from realtime.avatars.render import (
    CHROMA_GREEN,
    Framing,
    framing_for,
    render,
    render_reference,
    rest_pose,
)
from realtime.motion.types import FACE_FEATURES, FINGERS, L_ELBOW, L_WRIST


def test_same_seed_same_pixels_different_seeds_differ() -> None:
    a = render_reference(make_character(7), 96)
    b = render_reference(make_character(7), 96)
    assert np.array_equal(a, b)
    # the characters themselves (not only their backgrounds) differ: compare the
    # transparent renders; stated margin: mean |diff| over RGBA > 8 levels of 255 and
    # more than 10% of the pixels differ by more than 8.
    imgs = [render(make_character(s), rest_pose(make_character(s)), 96, "transparent")
            for s in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            d = np.abs(imgs[i].astype(int) - imgs[j].astype(int))
            assert d.mean() > 8.0, (i, j, d.mean())
            assert (d.max(-1) > 8).mean() > 0.10


def _rows_with(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    """Vertical extent, in pixels, of the pixels of exactly this (flat) colour."""
    ys = np.nonzero((np.abs(img[..., :3].astype(int) - np.array(rgb)).max(-1) <= 2)
                    & (img[..., 3] == 255))[0]
    return int(ys.max() - ys.min())


def test_bone_lengths_follow_the_character_not_the_driver() -> None:
    # a chibi drives a long-limbed character: the character keeps its own long legs
    driver = make_character(3, build="chibi")
    target = make_character(4, build="long", legwear="trousers", bottom=(0, 0, 255),
                            shading=0.0, shoes=(0, 0, 0))
    size = 256
    for i in (0, 40):   # standing, and a frame of procedural motion (idle sway + action)
        motion = (pose_to_motion(rest_pose(driver), driver.skeleton) if i == 0 else
                  ProceduralMotion(1, MotionConfig(actions=("idle",)),
                                   performer=driver).frame(i))
        img = render(target, fk(motion, target.skeleton), size, "transparent")
        legs = _rows_with(img, target.bottom)

        def hip_to_ankle(skeleton, motion=motion) -> float:
            b = fk(motion, skeleton).body
            return float((b[[27, 28], 1].max() - b[[23, 24], 1].min()) * size)

        leg_w = target.limb_width * 1.25 * size
        want, driver_legs = hip_to_ankle(target.skeleton), hip_to_ankle(driver.skeleton)
        assert abs(legs - want) < leg_w, (legs, want, driver_legs)
        assert abs(legs - want) < abs(legs - driver_legs) / 4


def _head_box(c, framing: Framing, size: int, grow: float) -> np.ndarray:
    """Boolean mask of the head's rest ellipse, scaled by `grow`, in pixels."""
    body = c.rest_body
    ears = (body[7] + body[8]) / 2
    cx = (ears[0] - framing.center[0]) * framing.zoom * size + size / 2
    cy = (ears[1] - 0.05 * c.head_h - framing.center[1]) * framing.zoom * size + size / 2
    rx = c.head_w / 2 * framing.zoom * size * grow
    ry = c.head_h / 2 * framing.zoom * size * grow
    yy, xx = np.mgrid[0:size, 0:size]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_face_feature_changes_the_face_and_almost_nothing_else(seed: int) -> None:
    c = make_character(seed, hair_style="short", accessories=(), build="adult")
    size = 128
    cam = framing_for(c, "face")
    base = render(c, rest_pose(c), size, "plain", cam).astype(int)
    inside = _head_box(c, cam, size, 1.35)
    assert inside.mean() < 0.5                 # the face region is a part of the frame
    for k, name in enumerate(FACE_FEATURES):
        pose = rest_pose(c)
        pose.face[k] = {"yaw": 0.5, "pitch": 0.35, "roll": 0.3}.get(
            name, -1.0 if name.startswith("eye_open") else 0.8)
        img = render(c, pose, size, "plain", cam).astype(int)
        changed = np.abs(img - base).max(-1) > 4
        n_in, n_out = int((changed & inside).sum()), int((changed & ~inside).sum())
        assert n_in >= 15, (name, n_in)
        assert n_out <= 0.02 * n_in + 2, (name, n_in, n_out)


def _hand_pose(c, curled: tuple[str, ...] = ()):
    """The left hand held up, palm to the camera, fingers fanned; `curled` fingers
    folded down onto the palm (their landmarks move towards the wrist)."""
    L = c.hand_len
    pose = rest_pose(c)
    wrist = np.array([0.5, 0.5, 0.0])
    hand = np.zeros((21, 3))
    hand[0] = wrist
    angles = {"index": -25.0, "middle": -8.0, "ring": 8.0, "pinky": 25.0}
    for j, (finger, ang) in enumerate(angles.items()):
        chain = FINGERS[finger]
        base = wrist + (L * (-0.15 + 0.1 * j), -0.4 * L, 0.0)
        d = np.array([np.sin(np.radians(ang)), -np.cos(np.radians(ang)), 0.0])
        hand[chain[0]] = base
        for s in range(1, 4):
            if finger in curled:      # fold back over the palm, towards the camera
                hand[chain[s]] = base + (0.0, 0.1 * L * s, -0.05 * L * s)
            else:
                hand[chain[s]] = base + d * 0.18 * L * s
    thumb = FINGERS["thumb"]
    d = np.array([-np.sin(np.radians(60)), -np.cos(np.radians(60)), 0.0])
    for s, idx in enumerate(thumb):
        if "thumb" in curled:
            hand[idx] = wrist + (-0.1 * L + 0.05 * L * s, -0.15 * L, -0.02 * L * s)
        else:
            hand[idx] = wrist + (-0.08 * L, -0.1 * L, 0.0) + d * 0.17 * L * s
    pose.left_hand = hand
    pose.body[L_WRIST] = wrist
    pose.body[L_ELBOW] = wrist + (0.0, 0.3, 0.0)          # forearm hangs below the hand
    cam = Framing((0.5, 0.5 - 0.45 * L), 0.75 / (1.1 * L))
    return pose, cam


def _finger_runs(c, img: np.ndarray, cam: Framing, size: int) -> int:
    """Runs of skin colour along an arc around the palm, crossing every finger."""
    L = c.hand_len * cam.zoom * size
    cx = (0.5 - cam.center[0]) * cam.zoom * size + size / 2
    cy = (0.5 - 0.25 * c.hand_len - cam.center[1]) * cam.zoom * size + size / 2
    angles = np.radians(np.linspace(-120, 60, 720))        # from the thumb side over the top
    radius = 0.52 * L
    xs = np.clip(np.round(cx + radius * np.sin(angles)).astype(int), 0, size - 1)
    ys = np.clip(np.round(cy - radius * np.cos(angles)).astype(int), 0, size - 1)
    skin = np.abs(img[ys, xs, :3].astype(int) - np.array(c.skin)).max(-1) < 24
    return int(np.sum(skin[1:] & ~skin[:-1]) + skin[0])


def test_hand_has_five_fingers_that_bend_with_the_landmarks() -> None:
    c = make_character(5, shading=0.0, outline=0.04, long_sleeves=True,
                       background=(120, 120, 140), skin=(255, 224, 196))
    size = 192
    pose, cam = _hand_pose(c)
    open_hand = render(c, pose, size, "plain", cam)
    assert _finger_runs(c, open_hand, cam, size) == 5
    for n_curled, curled in ((1, ("index",)), (2, ("index", "middle")),
                             (5, tuple(FINGERS))):
        bent, _ = _hand_pose(c, curled)
        img = render(c, bent, size, "plain", cam)
        assert _finger_runs(c, img, cam, size) == 5 - n_curled, curled
        assert not np.array_equal(img, open_hand)


def test_alpha_composites_exactly_over_chroma_and_plain() -> None:
    c = make_character(9)
    pose = rest_pose(c)
    rgba = render(c, pose, 128, "transparent")
    chroma = render(c, pose, 128, "chroma")
    plain = render(c, pose, 128, "plain")
    a = rgba[..., 3:4].astype(float) / 255

    def over(bg: tuple[int, int, int]) -> np.ndarray:
        return rgba[..., :3] * a + np.array(bg, float) * (1 - a)

    # the chroma frame is the transparent frame composited over pure green ...
    assert np.abs(over(CHROMA_GREEN) - chroma[..., :3]).max() <= 1.5
    assert np.array_equal(chroma[..., 3], rgba[..., 3])
    # ... and over the plain colour it is what the plain render drew (AA edges included)
    assert np.abs(over(c.background) - plain[..., :3]).max() <= 3.0
    assert (plain[..., 3] == 255).all()
    # background is fully transparent and exactly key green; the body is opaque
    assert rgba[0, 0, 3] == 0 and tuple(chroma[0, 0, :3]) == CHROMA_GREEN
    hips = ((c.rest_body[23] + c.rest_body[24]) / 2 * 128).astype(int)
    assert rgba[hips[1] - 3, hips[0], 3] == 255


def test_framings_zoom_from_full_body_to_face() -> None:
    c = make_character(12, build="adult")
    areas = {}
    for name in ("full", "upper", "face"):
        cam = framing_for(c, name)
        head = _head_box(c, cam, 128, 1.0)
        areas[name] = int(head.sum())
        img = render(c, rest_pose(c), 128, "transparent", cam)
        assert img[..., 3][head].mean() > 200            # the head is where we expect it
    assert areas["full"] < areas["upper"] < areas["face"]
    assert areas["face"] > 0.12 * 128 * 128


def test_limb_depth_decides_what_is_in_front() -> None:
    c = make_character(6, long_sleeves=False, top=(200, 30, 30), top_pattern="plain",
                       shading=0.0, skin=(255, 224, 196), accessories=())
    size = 160
    body = c.rest_body
    chest = (body[11] + body[12] + body[23] + body[24]) / 4        # torso centre
    crossed = {}
    for z in (-0.1, 0.1):                                          # in front of / behind
        pose = rest_pose(c)
        assert pose.left_hand is not None
        pose.body[L_ELBOW] = chest + (0.12, 0.0, z)
        pose.body[L_WRIST] = chest + (-0.12, 0.0, z)
        pose.left_hand = pose.left_hand - pose.left_hand[0] + pose.body[L_WRIST]
        img = render(c, pose, size, "plain")
        x, y = int(chest[0] * size), int(chest[1] * size)
        crossed[z] = tuple(int(v) for v in img[y, x, :3])
    assert crossed[-0.1] == c.skin          # the forearm passes in front of the torso
    assert crossed[0.1] == c.top            # ... or is hidden behind it


def test_the_neck_never_covers_the_face() -> None:
    """A torso nearer the camera than the head (a performer leaning in) still shows the
    whole face: the neck is drawn behind the head whatever the torso's depth. Before
    stop 49 it was drawn with the torso, over the mouth, in one frame in twenty of
    stop 26's dataset."""
    from realtime.motion.types import L_HIP, L_SHOULDER, R_HIP, R_SHOULDER

    c = make_character(3, accessories=())
    size = 160
    body = rest_pose(c).body
    head_z = (body[7, 2] + body[8, 2]) / 2 - 0.01       # as the renderer sorts them
    torso_z = body[[L_SHOULDER, R_SHOULDER, L_HIP, R_HIP], 2].mean() + 0.02 * c.height
    nearer = head_z - torso_z - 0.02                    # the torso just nearer than the head
    faces = {}
    for dz in (0.0, nearer):
        pose = rest_pose(c)
        pose.face = np.zeros(len(FACE_FEATURES))
        pose.face[FACE_FEATURES.index("mouth_open")] = 1.0
        for j in (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP):
            pose.body[j, 2] += dz
        img = render(c, pose, size, "plain")
        ears = (pose.body[7] + pose.body[8]) / 2
        half = int(0.5 * c.head_w * size)
        x, y = int(ears[0] * size), int(ears[1] * size)
        faces[dz] = img[y - half:y + half, x - half:x + half]
    assert nearer < 0
    assert np.array_equal(faces[0.0], faces[nearer])
