"""The dataset builder: round-trips, deterministic, resumable, honest splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime.avatars.dataset import (
    SPLITS,
    DatasetConfig,
    build,
    character,
    config_from_json,
    iterate_dataset,
    make_sample,
    plan,
    read_index,
    unpack_motion,
)
from realtime.avatars.motion import ProceduralMotion, fk
from realtime.avatars.render import Framing, render
from realtime.motion.types import BODY_BONES, FACE_DIM, HAND_BONES, N_PARTS

CFG = DatasetConfig(characters=5, clips=8, resolution=48, frames=3, seed=11,
                    clips_per_shard=2, performers=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds")
    build(CFG, out, progress=False)
    return out


def _meta(sample: dict[str, np.ndarray]) -> dict[str, Any]:
    """A read sample's 'meta': iterate_dataset decodes it to a dict (the rest are arrays)."""
    meta: object = sample["meta"]
    assert isinstance(meta, dict)
    return meta


def _all(folder: Path) -> dict[int, dict[str, np.ndarray]]:
    return {_meta(s)["index"]: s for split in SPLITS for s in iterate_dataset(folder, split)}


def test_round_trip_write_read_compare(built: Path) -> None:
    samples = _all(built)
    assert sorted(samples) == list(range(CFG.clips))
    r, f = CFG.resolution, CFG.frames
    clips = plan(CFG, [])
    for k in (0, 5, 7):
        got = samples[k]
        assert got["frames"].shape == (f, r, r, 3) and got["frames"].dtype == np.uint8
        assert got["reference"].shape == (2, r, r, 3)
        assert got["motion_body_dirs"].shape == (f, len(BODY_BONES), 3)
        assert got["motion_left_hand_dirs"].shape == (f, len(HAND_BONES), 3)
        assert got["motion_face"].shape == (f, FACE_DIM)
        assert got["motion_presence"].shape == (f, N_PARTS)
        # what was read is exactly what the builder renders for that clip
        want = make_sample(clips[k], CFG, _no_tracks())
        for key, value in want.items():
            if key == "meta":
                assert json.loads(str(value)) == got["meta"]
            else:
                assert np.array_equal(value, got[key]), key


def _no_tracks():
    from realtime.avatars.dataset import _Tracks

    return _Tracks(None)


def test_frames_are_the_character_performing_the_clean_motion(built: Path) -> None:
    sample = next(iterate_dataset(built, "train"))
    meta = sample["meta"]
    k = meta["index"]
    char = character(CFG, plan(CFG, [])[k].character)
    assert char.seed == meta["character_seed"]
    assert np.allclose(sample["skeleton_body"], char.skeleton.body)
    clean = unpack_motion(sample, "clean")
    cam = Framing(tuple(sample["framing"][:2].tolist()), float(sample["framing"][2]))
    # re-render frame 1 from the stored clean motion, on a transparent background: the
    # character's pixels must match the stored ground truth wherever it is opaque
    rgba = render(char, fk(clean[1], char.skeleton), CFG.resolution, "transparent", cam)
    opaque = rgba[..., 3] == 255
    assert opaque.sum() > 30
    diff = np.abs(rgba[..., :3].astype(int) - sample["frames"][1].astype(int)).max(-1)
    assert np.median(diff[opaque]) <= 2
    # the driving motion is the clean one plus extraction-like noise, not something else
    drive = sample["motion_body_dirs"]
    assert 0 < np.abs(drive - sample["clean_body_dirs"]).mean() < 0.2


def _corners(img: np.ndarray) -> np.ndarray:
    return img[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)          # (4, 3)


def test_references_show_the_clips_own_background() -> None:
    """At run time the reference is the only picture of the scene the first chunk has:
    what the frames show behind the character must be what the reference shows, or the
    model can only guess it (a grey average)."""
    cfg = DatasetConfig(**{**CFG.__dict__, "clips": 12, "resolution": 64, "frames": 4,
                           "framings": ("full",)})
    kinds = set()
    for p in plan(cfg, []):
        s = make_sample(p, cfg, _no_tracks())
        kinds.add(json.loads(str(s["meta"]))["background"])
        want = _corners(s["frames"][0])
        for ref in s["reference"]:                      # rest pose and the other pose
            # three corners of four at least: a limb may cover one
            assert (np.abs(_corners(ref) - want).max(1) <= 2).sum() >= 3, p
    assert kinds == {"plain", "gradient", "textured"}
    # a dataset built before the field existed reads back as it was built: references
    # on the character's own plain background, frames unchanged
    raw = json.loads(json.dumps(cfg.__dict__))
    del raw["reference_on_scene"]
    old = config_from_json(raw)
    assert not old.reference_on_scene
    p = plan(old, [])[0]
    s_old, s_new = make_sample(p, old, _no_tracks()), make_sample(p, cfg, _no_tracks())
    assert np.array_equal(s_old["frames"], s_new["frames"])
    plain = np.array(character(old, p.character).background)
    assert (np.abs(_corners(s_old["reference"][0]) - plain).max(1) <= 1).sum() >= 3


def test_build_is_deterministic_and_resumable(built: Path, tmp_path: Path) -> None:
    build(CFG, tmp_path, progress=False, workers=2)      # parallel: the same result
    index = read_index(tmp_path)
    assert index["complete"] and index == read_index(built)
    first = _all(tmp_path)
    reference = _all(built)
    for k in first:
        assert np.array_equal(first[k]["frames"], reference[k]["frames"])
        assert np.array_equal(first[k]["motion_body_dirs"], reference[k]["motion_body_dirs"])
    # kill one shard and tear another; a rebuild only redoes those two
    shards = sorted(tmp_path.glob("*.npz"))
    shards[0].unlink()
    shards[1].write_bytes(b"torn")
    untouched = {p: p.stat().st_mtime_ns for p in shards[2:]}
    build(CFG, tmp_path, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())
    again = _all(tmp_path)
    for k in reference:
        assert np.array_equal(again[k]["frames"], reference[k]["frames"])
    # a different configuration in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="another configuration"):
        build(DatasetConfig(**{**CFG.__dict__, "seed": 12}), tmp_path, progress=False)


def test_splits_hold_out_characters_and_motion_sources() -> None:
    cfg = DatasetConfig(characters=10, clips=60, performers=8, seed=3)
    clips = plan(cfg, ["a.npz", "b.npz", "c.npz"])
    by = {s: [c for c in clips if c.split == s] for s in SPLITS}
    assert all(by[s] for s in SPLITS)
    train_chars = {c.character for c in by["train"]}
    train_src = {c.source for c in by["train"]}
    assert not {c.character for c in by["heldout_character"]} & train_chars
    assert {c.source for c in by["heldout_character"]} <= train_src
    assert not {c.source for c in by["heldout_motion"]} & train_src
    assert {c.character for c in by["heldout_motion"]} <= train_chars
    # real tracks are motion sources too, with at least one held out
    assert any(s.startswith("track:") for s in train_src)
    assert "track:c.npz" not in train_src            # the last track is held out


def test_driving_motion_comes_from_another_identity(built: Path) -> None:
    for sample in iterate_dataset(built, "train"):
        meta = _meta(sample)
        kind, _, seed = meta["source"].partition(":")
        assert kind == "performer"
        performer = ProceduralMotion(int(seed)).performer
        assert performer is not None
        char = character(CFG, plan(CFG, [])[meta["index"]].character)
        assert performer.seed != char.seed
        # other proportions: its bone lengths differ from the target's
        assert np.abs(performer.skeleton.body - char.skeleton.body).max() > 1e-3


def test_reader_rejects_an_unknown_split(built: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        next(iterate_dataset(built, "validation"))


def _write_track(path: Path, seed: int, n: int) -> None:
    """A track file as `marionette motion --track` writes it, of a procedural performer
    (body and hands; no face), so the real-track path runs without MediaPipe."""
    from realtime.motion.track import save_track
    from realtime.motion.types import MotionFrame

    gen = ProceduralMotion(seed)
    assert gen.performer is not None
    frames = []
    for i in range(n):
        pose = fk(gen.frame(i), gen.performer.skeleton)
        assert pose.left_hand is not None and pose.right_hand is not None
        body = np.concatenate([pose.body, np.ones((33, 1))], axis=1).astype(np.float32)
        hands = [h - np.array([0.0, 0.0, h[0, 2]]) for h in (pose.left_hand, pose.right_hand)]
        frames.append(MotionFrame(i, i / 30.0, (256, 256), body, hands[0].astype(np.float32),
                                  hands[1].astype(np.float32), None,
                                  {"body": 1.0, "left_hand": 1.0, "right_hand": 1.0,
                                   "face": 0.0}))
    save_track(path, frames, {"source": "procedural test track"})


def test_extracted_tracks_are_motion_sources(tmp_path: Path) -> None:
    pytest.importorskip("realtime.motion.track")
    pytest.importorskip("realtime.motion.processor")
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    for k in range(2):
        _write_track(tracks / f"clip{k}.npz", 20 + k, 40)
    cfg = DatasetConfig(characters=3, clips=12, resolution=32, frames=4, seed=2,
                        clips_per_shard=4, performers=1)
    build(cfg, tmp_path / "ds", tracks, progress=False)
    samples = [s for split in SPLITS for s in iterate_dataset(tmp_path / "ds", split)]
    from_tracks = [s for s in samples if _meta(s)["source"].startswith("track:")]
    assert from_tracks, "no clip drew its motion from a track"
    assert not any(_meta(s)["source"] == "track:clip1.npz" for s in samples
                   if _meta(s)["split"] == "train")                # held out
    for s in from_tracks:
        # normalised by the motion stage: unit bone directions, hands present, no face
        dirs = s["motion_body_dirs"]
        assert np.allclose(np.linalg.norm(dirs, axis=-1), 1.0, atol=1e-3)
        assert (s["clean_presence"][:, 0] > 0).all() and (s["clean_presence"][:, 1] == 0).all()
        assert s["frames"].std() > 5                              # a character was drawn
