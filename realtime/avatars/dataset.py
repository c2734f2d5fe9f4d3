"""The synthetic training set: characters performing other performers' motion.

Each sample (one clip) holds what the model sees and what it should produce:

    reference        (n_ref, R, R, 3) uint8   identity images: rest pose, + one more
                                              pose/framing, on the clip's background
    reference_shot   (1, R, R, 3) uint8       the rest pose through the clip's own camera:
                                              the character where and as large as the
                                              frames draw it, as a session's reference is
    skeleton_body    (len(BODY_BONES),)       the character's bone lengths
    skeleton_hand    (len(HAND_BONES),)
    rest_root        (2,)
    motion_*         the driving motion after normalisation and augmentation, per frame:
                     root (F, 3), scale (F,), body_dirs (F, B, 3),
                     left/right_hand_dirs (F, 20, 3) (zeros where presence is 0),
                     face (F, FACE_DIM), presence (F, N_PARTS)
    clean_*          the same fields before augmentation (what rendered the target)
    frames           (F, R, R, 3) uint8       ground truth: the character performing it
    framing          (3,) center x, y, zoom   the camera of `frames`
    meta             JSON: split, character, motion source, background, …

The references show the character on the same background as the clip's frames (same
kind and colours; a texture is drawn in canvas pixels, so it lines up too). At run time
the reference is the only picture of the scene the model has for its first chunk: a
background drawn independently of it (as datasets built before `reference_on_scene`
were) cannot be predicted from anything the model sees, so the loss-optimal first
chunk is a grey average, and every later chunk copies it from the cache window.

Cross-identity by construction: the driver is a procedural performer (a character
drawn from a separate seed stream, with its own proportions) or a real extracted
track, never the target character. Splits: `train`, `heldout_character` (characters
never in train, train motion) and `heldout_motion` (train characters, motion sources
never in train).

On disk: `index.json` plus `<split>-<k>.npz` shards of `clips_per_shard` samples,
each written atomically, so a killed build resumes by skipping finished shards.
Every clip is drawn from `rng([seed, clip])`, so the result is deterministic for a
seed regardless of which shards were already there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.avatars.augment import AugmentConfig, augment_clip
from realtime.avatars.character import Character, make_character
from realtime.avatars.motion import ProceduralMotion, to_pose
from realtime.avatars.render import Framing, framing_for, render, render_reference
from realtime.motion.types import HAND_BONES, NormalizedMotion

SPLITS: tuple[str, ...] = ("train", "heldout_character", "heldout_motion")
INDEX = "index.json"
FORMAT_VERSION = 1
_MOTION_FIELDS = ("root", "scale", "body_dirs", "left_hand_dirs", "right_hand_dirs", "face",
                  "presence")


@dataclass(frozen=True)
class DatasetConfig:
    characters: int = 32
    clips: int = 64
    resolution: int = 128
    frames: int = 16
    seed: int = 0
    clips_per_shard: int = 8
    performers: int = 12                  # procedural motion sources
    heldout_fraction: float = 0.15        # of characters, of motion sources, of clips
    augment: str = "default"              # AugmentConfig preset for the driving motion
    backgrounds: tuple[str, ...] = ("plain", "gradient", "textured")
    framings: tuple[str, ...] = ("full", "upper", "upper", "face")
    # references drawn on the clip's own background (module docstring); False: on the
    # character's plain one, as datasets built before this field were
    reference_on_scene: bool = True

    @classmethod
    def preset(cls, name: str) -> DatasetConfig:
        presets = {"tiny": cls(characters=4, clips=6, resolution=64, frames=4, clips_per_shard=2,
                               performers=3),
                   "default": cls(),
                   "large": cls(characters=512, clips=20000, resolution=256, frames=24,
                                clips_per_shard=32, performers=64)}
        if name not in presets:
            raise KeyError(f"unknown dataset preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


def _held(n: int, fraction: float) -> int:
    """How many of n items to hold out: at least one when there are two or more."""
    return 0 if n < 2 else max(1, int(round(n * fraction)))


@dataclass(frozen=True)
class ClipPlan:
    index: int
    split: str
    character: int
    source: str          # "performer:<seed>" or "track:<file name>"


def plan(config: DatasetConfig, tracks: list[str]) -> list[ClipPlan]:
    """Which character performs which motion source in every clip, split by split."""
    n_chars = config.characters
    held_chars = _held(n_chars, config.heldout_fraction)
    train_chars = list(range(n_chars - held_chars)) or list(range(n_chars))
    test_chars = list(range(n_chars - held_chars, n_chars))
    perf = [f"performer:{_seed(config.seed, 'performer', i)}" for i in range(config.performers)]
    trk = [f"track:{name}" for name in sorted(tracks)]
    hp, ht = _held(len(perf), config.heldout_fraction), _held(len(trk), config.heldout_fraction)
    train_src = perf[: len(perf) - hp] + trk[: len(trk) - ht]
    test_src = perf[len(perf) - hp:] + trk[len(trk) - ht:]
    n = config.clips
    n_hc = _held(n, config.heldout_fraction) if test_chars and n >= 3 else 0
    n_hm = _held(n, config.heldout_fraction) if test_src and n >= 3 else 0
    out = []
    for k in range(n):
        rng = np.random.default_rng([config.seed, k, 1])
        if k >= n - n_hm:
            split, chars, srcs = "heldout_motion", train_chars, test_src
        elif k >= n - n_hm - n_hc:
            split, chars, srcs = "heldout_character", test_chars, train_src
        else:
            split, chars, srcs = "train", train_chars, train_src
        out.append(ClipPlan(k, split, chars[int(rng.integers(len(chars)))],
                            srcs[int(rng.integers(len(srcs)))]))
    return out


def _seed(seed: int, what: str, i: int) -> int:
    tag = sum(ord(ch) * 31 ** j for j, ch in enumerate(what)) % (2**31)
    return int(np.random.default_rng([seed, tag, i]).integers(2**31))


def character(config: DatasetConfig, i: int) -> Character:
    return make_character(_seed(config.seed, "character", i))


# --- one clip ---------------------------------------------------------------------


class _Tracks:
    """Real extracted tracks, normalised once each (lazily imports the motion stage)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._cache: dict[str, list[NormalizedMotion]] = {}

    def names(self) -> list[str]:
        return [] if self.folder is None else sorted(p.name for p in self.folder.glob("*.npz"))

    def get(self, name: str) -> list[NormalizedMotion]:
        if name not in self._cache:
            from realtime.motion.processor import MotionProcessor
            from realtime.motion.track import load_track

            assert self.folder is not None
            proc = MotionProcessor()
            self._cache[name] = [proc.process(f) for f in load_track(self.folder / name)]
        return self._cache[name]


def _driving(p: ClipPlan, config: DatasetConfig, rng: np.random.Generator,
             tracks: _Tracks) -> list[NormalizedMotion]:
    kind, _, ident = p.source.partition(":")
    if kind == "performer":
        gen = ProceduralMotion(int(ident))
        start = int(rng.integers(0, 30 * 30))          # anywhere in its first 30 s
        return gen.clip(config.frames, start)
    motion = tracks.get(ident)
    if len(motion) < config.frames:
        raise ValueError(f"track {ident} has {len(motion)} frames, fewer than {config.frames}")
    start = int(rng.integers(0, len(motion) - config.frames + 1))
    return motion[start:start + config.frames]


def _camera(c: Character, name: str, rng: np.random.Generator) -> Framing:
    f = framing_for(c, name)
    cx, cy = f.center
    return Framing((cx + float(rng.normal(0, 0.02)), cy + float(rng.normal(0, 0.02))),
                   f.zoom * float(rng.uniform(0.9, 1.1)))


MotionEdit = Callable[[list[NormalizedMotion]], list[NormalizedMotion]]


def make_sample(p: ClipPlan, config: DatasetConfig, tracks: _Tracks,
                edit: MotionEdit | None = None, figure: bool = False) -> dict[str, np.ndarray]:
    """Render one clip. Deterministic in (config.seed, p.index). `edit` changes the
    clean motion before it is augmented and rendered (every random draw unchanged):
    the same clip with, say, the expression held still, for counterfactual metrics.
    `figure`: also "figure" (F, R, R) uint8, the character's coverage of each frame
    (its alpha on a transparent background), for metrics that split figure and scene;
    not stored in datasets."""
    rng = np.random.default_rng([config.seed, p.index, 2])
    char = character(config, p.character)
    clean = _driving(p, config, rng, tracks)
    if edit is not None:
        clean = edit(clean)
    driving = augment_clip(clean, int(rng.integers(2**31)), AugmentConfig.preset(config.augment))
    background = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    cam = _camera(char, config.framings[int(rng.integers(len(config.framings)))], rng)
    bg_seed = int(rng.integers(1, 2**31))
    r = config.resolution
    frames = np.stack([
        render(char, to_pose(m, char.skeleton), r, background, cam, bg_seed)[..., :3]
        for m in clean])
    # a second reference: the character in another pose, framed differently
    other = ProceduralMotion(int(rng.integers(2**31))).frame(int(rng.integers(300)))
    scene = (background, bg_seed) if config.reference_on_scene else ("plain", 0)
    ref2 = render(char, to_pose(other, char.skeleton), r, scene[0],
                  _camera(char, ("upper", "face")[int(rng.integers(2))], rng), scene[1])[..., :3]
    sample: dict[str, np.ndarray] = {
        "reference": np.stack([render_reference(char, r, *scene), ref2]),
        "reference_shot": render_reference(char, r, *scene, framing=cam)[None],
        "frames": frames,
        "skeleton_body": char.skeleton.body.astype(np.float32),
        "skeleton_hand": char.skeleton.hand.astype(np.float32),
        "rest_root": np.asarray(char.skeleton.rest_root, np.float32),
        "framing": np.array([*cam.center, cam.zoom], np.float32),
    }
    if figure:
        sample["figure"] = np.stack([
            render(char, to_pose(m, char.skeleton), r, "transparent", cam)[..., 3]
            for m in clean])
    sample.update(_pack("motion", driving))
    sample.update(_pack("clean", clean))
    meta = {"index": p.index, "split": p.split, "character": char.name,
            "character_seed": char.seed, "build": char.build, "source": p.source,
            "background": background}
    sample["meta"] = np.array(json.dumps(meta))
    return sample


def _pack(prefix: str, clip: list[NormalizedMotion]) -> dict[str, np.ndarray]:
    n_hand = len(HAND_BONES)
    out: dict[str, np.ndarray] = {}
    for name in _MOTION_FIELDS:
        rows = []
        for m in clip:
            v = getattr(m, name)
            rows.append(np.zeros((n_hand, 3)) if v is None else np.asarray(v))
        out[f"{prefix}_{name}"] = np.stack(rows).astype(np.float32)
    return out


def unpack_motion(sample: dict[str, np.ndarray], prefix: str = "motion") -> list[NormalizedMotion]:
    """The per-frame NormalizedMotion of a sample ('motion': driving, 'clean': target's)."""
    out = []
    pres = sample[f"{prefix}_presence"]
    for i in range(len(pres)):
        hands = [None if pres[i, k] <= 0 else sample[f"{prefix}_{side}_hand_dirs"][i]
                 for k, side in ((2, "left"), (3, "right"))]
        out.append(NormalizedMotion(
            frame_id=i, t_capture=i / 30.0, root=sample[f"{prefix}_root"][i],
            scale=float(sample[f"{prefix}_scale"][i]), body_dirs=sample[f"{prefix}_body_dirs"][i],
            left_hand_dirs=hands[0], right_hand_dirs=hands[1], face=sample[f"{prefix}_face"][i],
            presence=pres[i]))
    return out


# --- building ----------------------------------------------------------------------


def _config_json(config: DatasetConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_json(raw: dict) -> DatasetConfig:
    """The `DatasetConfig` of an index's "config" entry; fields added since it was
    written take the value that reproduces what it was built with."""
    fields = {f.name for f in dataclasses.fields(DatasetConfig)}
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in raw.items() if k in fields}
    kwargs.setdefault("reference_on_scene", False)
    return DatasetConfig(**kwargs)


def build(config: DatasetConfig, out: Path, tracks_dir: Path | None = None,
          progress: bool = True, workers: int = 1) -> dict:
    """Write (or finish writing) the dataset under `out`, rendering shards in `workers`
    processes. Returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    tracks = _Tracks(tracks_dir)
    clips = plan(config, tracks.names())
    index_path = out / INDEX
    cfg_json = _config_json(config)
    if index_path.exists():
        old = json.loads(index_path.read_text())
        if config_from_json(old.get("config", {})) != config or old.get("tracks") != tracks.names():
            raise ValueError(f"{out} holds a dataset built with another configuration; "
                             "use a new --out or the same arguments to resume")
    shards: list[tuple[str, list[ClipPlan]]] = []
    for split in SPLITS:
        members = [c for c in clips if c.split == split]
        for j in range(0, len(members), config.clips_per_shard):
            shards.append((f"{split}-{j // config.clips_per_shard:05d}.npz",
                           members[j:j + config.clips_per_shard]))
    index = {"version": FORMAT_VERSION, "config": cfg_json, "tracks": tracks.names(),
             "complete": False,
             "shards": [{"file": f, "split": m[0].split, "samples": len(m)} for f, m in shards]}
    index_path.write_text(json.dumps(index, indent=1))
    todo = [(f, m) for f, m in shards if not _finished(out / f, len(m))]
    n_todo = sum(len(m) for _, m in todo)
    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"rendering {n_todo} clips ({len(shards) - len(todo)} shards done)",
                            total=n_todo)
        if workers <= 1:
            for name, members in todo:
                _render_shard(out / name, members, config, tracks_dir)
                bar.advance(task, len(members))
        else:
            # shards are independent and each clip draws from its own seed, so the
            # output is the same whatever the number of workers or their order
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(workers) as pool:
                futures = {pool.submit(_render_shard, out / name, members, config, tracks_dir):
                           len(members) for name, members in todo}
                for fut in as_completed(futures):
                    fut.result()                    # re-raise a worker's error here
                    bar.advance(task, futures[fut])
    index["complete"] = True
    index_path.write_text(json.dumps(index, indent=1))
    return index


def _render_shard(path: Path, members: list[ClipPlan], config: DatasetConfig,
                  tracks_dir: Path | None) -> None:
    tracks = _Tracks(tracks_dir)
    _write_shard(path, [make_sample(p, config, tracks) for p in members])


def _finished(path: Path, n: int) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path) as z:
            return int(z["frames"].shape[0]) == n
    except (OSError, ValueError, KeyError):
        return False          # a torn or foreign file: render it again


def _write_shard(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
    stacked = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **stacked)
    os.replace(tmp, path)     # atomic: a shard is either whole or absent


# --- reading -----------------------------------------------------------------------


def read_index(folder: Path | str) -> dict:
    return json.loads((Path(folder) / INDEX).read_text())


def iterate_dataset(folder: Path | str, split: str = "train",
                    shuffle_seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yield the samples of one split as dicts of numpy arrays (keys in the module
    docstring; `meta` decoded to a dict under 'meta'). Shards are read one at a
    time; with `shuffle_seed`, shard order and order within a shard are shuffled."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    folder = Path(folder)
    index = read_index(folder)
    shards = [s["file"] for s in index["shards"] if s["split"] == split]
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    if rng is not None:
        shards = [shards[i] for i in rng.permutation(len(shards))]
    for name in shards:
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing: the build did not finish; "
                                    "run the same `marionette avatar dataset` again to resume")
        with np.load(folder / name) as z:
            arrays = {k: z[k] for k in z.files}
        n = arrays["frames"].shape[0]
        order = rng.permutation(n) if rng is not None else range(n)
        for i in order:
            sample = {k: v[i] for k, v in arrays.items()}
            sample["meta"] = json.loads(str(sample["meta"]))  # type: ignore[assignment]
            yield sample
