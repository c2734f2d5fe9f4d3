"""StreamingEngine: chunked output with ids and stamps, determinism, reference swap,
presence flags, bounded state. Synthetic MotionConditions, tiny preset, random weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from realtime.engine import StreamingEngine
from realtime.model.bundle import AnimationModel
from realtime.model.config import get_preset
from realtime.motion.types import FACE_DIM, N_POSE_CHANNELS, MotionCondition


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from more threads; spinning ones slow a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

CFG = get_preset("tiny")
MODEL = AnimationModel.random(CFG, seed=0)


def _conditions(n: int, seed: int = 0, face_present: float = 1.0,
                size: int = CFG.pose_size) -> list[MotionCondition]:
    rng = np.random.default_rng(seed)
    presence = np.array([1.0, face_present, 1.0, 0.0], np.float32)
    return [MotionCondition(frame_id=100 + i, t_capture=10.0 + i / 30,
                            pose_maps=rng.random((N_POSE_CHANNELS, size, size), np.float32),
                            face=rng.standard_normal(FACE_DIM).astype(np.float32),
                            presence=presence, stamps={"extract": (1.0, 2.0)})
            for i in range(n)]


def _reference(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)


def _engine(seed: int = 0, ref_seed: int = 0, **kw: object) -> StreamingEngine:
    e = StreamingEngine(MODEL, seed=seed, **kw)  # type: ignore[arg-type]
    e.set_reference([_reference(ref_seed)])
    return e


def _run(e: StreamingEngine, conds: list[MotionCondition]) -> np.ndarray:
    frames = [f for c in conds for f in e.push([c])]
    return np.stack([f.image for f in frames])


def test_frames_arrive_per_chunk_with_their_inputs_ids_and_stamps() -> None:
    e = _engine()
    conds = _conditions(3)
    assert e.push(conds[:1]) == []                       # chunk of K=2 still filling
    out = e.push(conds[1:])
    assert [f.frame_id for f in out] == [100, 101]
    assert [f.t_capture for f in out] == [c.t_capture for c in conds[:2]]
    for f in out:
        assert f.image.shape == (CFG.resolution, CFG.resolution, 3)
        assert f.image.dtype == np.uint8
        assert f.stamps["extract"] == (1.0, 2.0)
        m0, m1 = f.stamps["model"]
        d0, d1 = f.stamps["decode"]
        assert m0 <= m1 <= d0 <= d1
        # the thread's CPU time for the chunk: positive, and no more than its wall time
        assert 0 < f.cpu_ms["model"] <= (m1 - m0) * 1e3 + 1
        assert 0 < f.cpu_ms["decode"] <= (d1 - d0) * 1e3 + 1
    assert e.resolution == (CFG.resolution, CFG.resolution)


@pytest.mark.parametrize("mode", ["clean", "last_step"])
def test_deterministic_per_seed_and_reset_replays_the_stream(mode: str) -> None:
    conds = _conditions(6)
    a = _run(_engine(seed=1, cache_write=mode), conds)
    e = _engine(seed=1, cache_write=mode)
    b = _run(e, conds)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _run(_engine(seed=2, cache_write=mode), conds))
    e.reset()
    assert np.array_equal(_run(e, conds), a)


@pytest.mark.parametrize("mode", ["clean", "last_step"])
def test_a_chunks_cache_write_can_wait_until_its_frames_have_left(mode: str) -> None:
    """A session settles each chunk after its frames are out, so the write pass is not
    in their latency; an engine nobody settles writes before the next chunk. The
    stream and the cache are the same either way."""
    conds = _conditions(8)
    settled, lazy = _engine(cache_write=mode), _engine(cache_write=mode)
    a: list[np.ndarray] = []
    b: list[np.ndarray] = []
    for i in range(0, 8, CFG.chunk):
        got_a, got_b = settled.push(conds[i:i + CFG.chunk]), lazy.push(conds[i:i + CFG.chunk])
        assert settled.settle()
        assert not settled.settle()                               # nothing left to write
        assert "cache_write" not in got_a[0].stamps
        assert ("cache_write" in got_b[0].stamps) == (i > 0)     # made first, and stamped
        a += [f.image for f in got_a]
        b += [f.image for f in got_b]
    assert np.array_equal(np.stack(a), np.stack(b))
    assert lazy.settle()
    for name in ("k", "v", "window_len", "ring_start", "frame_pos"):
        assert torch.equal(getattr(settled.cache, name), getattr(lazy.cache, name))


def test_cache_write_modes_give_different_histories() -> None:
    conds = _conditions(6)
    a = _run(_engine(cache_write="clean"), conds)
    b = _run(_engine(cache_write="last_step"), conds)
    assert np.array_equal(a[:2], b[:2])                  # the first chunk sees no history
    assert not np.array_equal(a[2:], b[2:])


def test_swapping_the_reference_changes_the_output_and_the_session_goes_on() -> None:
    conds = _conditions(8)
    same = _engine(ref_seed=0)
    swapped = _engine(ref_seed=0)
    assert np.array_equal(_run(same, conds[:4]), _run(swapped, conds[:4]))
    swapped.set_reference([_reference(5)])
    after_same, after_swap = _run(same, conds[4:]), _run(swapped, conds[4:])
    assert after_swap.shape == after_same.shape == (4, CFG.resolution, CFG.resolution, 3)
    assert np.abs(after_swap.astype(int) - after_same.astype(int)).mean() > 0.5
    with pytest.raises(ValueError, match="reference image 0"):
        swapped.set_reference([np.zeros((4, 4), np.uint8)])
    assert len(swapped.push(_conditions(2, seed=9))) == 2   # still running


def test_motion_changes_the_output() -> None:
    a = _run(_engine(), _conditions(4, seed=0))
    b = _run(_engine(), _conditions(4, seed=1))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_an_absent_face_is_unknown_whatever_its_feature_values() -> None:
    absent_a = _conditions(4, seed=0, face_present=0.0)
    absent_b = _conditions(4, seed=0, face_present=0.0)
    present_b = _conditions(4, seed=0, face_present=1.0)
    for c, d in zip(absent_b, present_b, strict=True):
        c.face = c.face + 3.0
        d.face = d.face + 3.0
    ref = _run(_engine(), absent_a)
    assert np.array_equal(ref, _run(_engine(), absent_b))
    assert not np.array_equal(_run(_engine(), _conditions(4, seed=0)), _run(_engine(), present_b))


def test_pose_maps_at_another_size_are_resized() -> None:
    out = _run(_engine(), _conditions(2, size=CFG.pose_size * 3))
    assert out.shape == (2, CFG.resolution, CFG.resolution, 3)


def test_state_is_the_same_size_after_a_long_stream() -> None:
    e = _engine(steps=1, cache_write="last_step")
    _run(e, _conditions(10))
    ptr, nbytes = e.cache.k.data_ptr(), e.cache.nbytes
    _run(e, _conditions(60, seed=3))
    assert (e.cache.k.data_ptr(), e.cache.nbytes) == (ptr, nbytes)
    assert int(e.cache.window_len[0]) == CFG.window
    assert e.frames_out == 70


def test_steps_are_validated() -> None:
    e = _engine()
    e.set_steps(4)
    assert e.steps == 4
    with pytest.raises(ValueError):
        e.set_steps(0)


def test_reference_keeps_its_proportions() -> None:
    from realtime.engine import pad_square

    tall = np.zeros((40, 20, 3), np.uint8)
    tall[:, :] = (200, 10, 10)
    tall[0] = tall[-1] = (0, 0, 255)
    sq = pad_square(tall)
    assert sq.shape == (40, 40, 3)
    assert np.array_equal(sq[:, 10:30], tall)              # centred, unscaled
    assert tuple(sq[20, 0]) == (200, 10, 10)               # border median fills the sides


def test_bfloat16_inference_streams() -> None:
    from realtime.model.checkpoint import prepare

    bf16 = prepare(AnimationModel.random(CFG, seed=0), "cpu", "bfloat16")
    e = StreamingEngine(bf16)
    e.set_reference([_reference(0)])
    out = _run(e, _conditions(6))
    ref32 = _run(_engine(), _conditions(6))
    assert e.cache.k.dtype == torch.bfloat16
    assert out.shape == ref32.shape
    # lower precision, same model: ~1 level from fp32 on average (another noise seed: ~90)
    assert np.abs(out.astype(int) - ref32.astype(int)).mean() < 8


def test_a_built_in_characters_face_is_pasted_on_its_head_alone() -> None:
    """Given the reference's head, the engine pastes the reference's face where each
    condition's head is, and leaves the rest of the frame as decoded; without a head in
    the conditions, or told not to, it pastes nothing."""
    import dataclasses

    from realtime.avatars.character import make_character
    from realtime.avatars.render import framing_for
    from realtime.model.face_paste import LIMB_CHANNELS, HeadShape

    char = make_character(5, accessories=())
    shape = HeadShape.of(char, framing_for(char, "face"))
    head = np.array([*shape.ears, shape.torso], np.float32)
    conds = [dataclasses.replace(c, head=head, face=np.zeros(FACE_DIM, np.float32))
             for c in _conditions(3, seed=4)]                   # the head unturned
    for c in conds:                                             # no arm before the face
        c.pose_maps[list(LIMB_CHANNELS)] = 0.0
    bare = [dataclasses.replace(c, head=None) for c in conds]

    def frames(cs: list[MotionCondition], paste: bool = True) -> np.ndarray:
        e = StreamingEngine(MODEL, seed=0, face_paste=paste)
        e.set_reference([_reference(0)], head=shape)
        return _run(e, cs)

    plain = frames(conds, paste=False)
    assert np.array_equal(frames(bare), plain)
    pasted = frames(conds)
    changed = np.abs(pasted.astype(int) - plain.astype(int)).max(axis=-1).max(axis=0) > 0
    res = CFG.resolution
    pts = shape.points() * res
    assert changed[int(pts[0, 1]), int(pts[0, 0])]              # over the eyes
    # the frame's corners stay as decoded
    assert not changed[:2].any() and not changed[-2:, :2].any() and not changed[-2:, -2:].any()


def test_a_built_in_characters_hands_are_drawn_where_the_fingers_are() -> None:
    """Given the reference's head, the engine draws each condition's present hand over
    the decoded frame, and, the face paste left out (an upload's head), nothing
    outside the hand's box; without hands in the conditions, without a head or told
    not to, it draws none."""
    import dataclasses

    from realtime.avatars.character import make_character
    from realtime.avatars.render import framing_for
    from realtime.model.face_paste import LIMB_CHANNELS, HeadShape

    char = make_character(5, accessories=())
    shape = HeadShape.of(char, framing_for(char, "face"))
    hand = char.rest_hand("left") * 2.5                      # a close-up's hand size
    hand = hand - hand[9] + np.array([0.5, 0.75, 0.0])       # below the eyes
    hands = np.full((2, 21, 3), np.nan, np.float32)
    hands[0] = hand                                          # the left hand, present
    head = np.array([*shape.ears, shape.torso], np.float32)  # the head at rest
    conds = [dataclasses.replace(c, hands=hands, head=head, face=np.zeros(FACE_DIM, np.float32))
             for c in _conditions(3, seed=4)]
    for c in conds:                                          # no arm before the face
        c.pose_maps[list(LIMB_CHANNELS)] = 0.0
    bare = [dataclasses.replace(c, hands=None) for c in conds]

    def frames(cs: list[MotionCondition], paste: bool = True, head: bool = True,
               face: bool = False) -> np.ndarray:
        e = StreamingEngine(MODEL, seed=0, face_paste=True, hand_paste=paste)
        # an upload's head (paste_face False) gives the hands their skin, no face
        e.set_reference([_reference(0)], head=shape if head else None, paste_face=face)
        assert e.pastes_hands == (paste and head) and e.pastes_faces == (face and head)
        return _run(e, cs)

    plain = frames(conds, paste=False)
    assert np.array_equal(frames(bare), plain)
    assert np.array_equal(frames(conds, head=False), plain)
    face = np.abs(frames(bare, face=True).astype(int) - plain.astype(int)).max(-1).max(0) > 0
    eye = (shape.points()[0] * CFG.resolution).astype(int)
    assert face[eye[1], eye[0]]                              # with paste_face, the face too
    drawn = frames(conds)
    changed = np.abs(drawn.astype(int) - plain.astype(int)).max(axis=-1).max(axis=0) > 0
    res = CFG.resolution
    for j in (4, 8, 12, 16, 20):                             # every fingertip
        x, y = (hand[j, :2] * res).astype(int)
        assert changed[y, x]
    x0, y0 = (hand[:, :2].min(0) * res).astype(int) - 3
    x1, y1 = (hand[:, :2].max(0) * res).astype(int) + 4
    outside = changed.copy()
    outside[max(0, y0):y1, max(0, x0):x1] = False
    assert not outside.any()
