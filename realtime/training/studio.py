"""The avatar studio's dataset as training clips, conditions made as inference makes them.

For every sample of `realtime.avatars.dataset` (a character performing a driving
motion, rendered through a camera framing), the condition is built with the very
functions the live pipeline uses: `retarget(motion, skeleton)` then
`render_condition(pose, cfg.pose_size)`. The only training-side step is the camera:
the studio renders each clip through a `Framing` (centre, zoom), and retargeting
onto the *framed* skeleton (bone lengths x zoom, rest root moved into the frame) puts
the pose exactly where the renderer drew the character. That is the retargeting
module's own framing rule ("a close-up reference gives a close-up avatar"): the
skeleton carries the shot.

The driving motion used is the augmented one (`motion_*`: what extraction noise and
dropouts look like at inference); the ground truth frames were rendered from the
clean motion.

`heldout_clips` renders evaluation clips on the fly, of any length: by default
characters held out of training driven by motion sources held out of training (the
dataset's own splits each hold out only one of the two); or new clips of either
split's kind, with twins whose motion is edited (which the stored splits lack).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.config import ModelConfig
from realtime.motion.types import NormalizedMotion, Skeleton
from realtime.training.data import Clip, maps_u8

if TYPE_CHECKING:
    from collections.abc import Iterator

    from realtime.avatars.dataset import ClipPlan, DatasetConfig, MotionEdit


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, size, size, 3), area-resized as the engine resizes
    reference images; unchanged when already that size."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="area")
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def framed_skeleton(body: np.ndarray, hand: np.ndarray, rest_root: np.ndarray,
                    framing: np.ndarray) -> Skeleton:
    """The skeleton as seen through a studio camera (center x, y, zoom)."""
    cx, cy, zoom = (float(v) for v in framing)
    rest = Skeleton(body=np.asarray(body), hand=np.asarray(hand),
                    rest_root=(float(rest_root[0]), float(rest_root[1])))
    return rest.through((cx, cy), zoom)


def reframe(image: np.ndarray, framing: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) drawn through the "full" camera (centre 0.5, 0.5, zoom 1) ->
    the same picture through `framing` (centre x, y, zoom): canvas p sits at
    (p - centre) * zoom + 0.5 of the frame, so in grid_sample's [-1, 1] units a frame
    point u reads the full picture at u / zoom + 2 centre - 1 (edges repeat)."""
    cx, cy, zoom = (float(v) for v in framing)
    theta = torch.tensor([[[1 / zoom, 0.0, 2 * cx - 1], [0.0, 1 / zoom, 2 * cy - 1]]])
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return y[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def shot_references(sample: dict[str, Any]) -> np.ndarray:
    """The sample's identity images with the first one shown as its frames are shot.

    A session's reference and its stream share a camera: retargeting onto the
    character's skeleton puts the avatar where its reference shows it (a built-in
    character's full-body reference gives a full-body stream). The studio films each
    clip through its own framing (full, upper body, face) while its first reference is
    always full-body, so training on that pair asks the model to zoom a ten-pixel face
    up to forty, which a session never asks. The rest pose through the clip's own
    camera (`reference_shot`) is the pair a session gives; datasets built before it
    get the full-body picture resampled through the same camera (blurrier where it
    zooms in). The second reference (another pose and framing) is kept as it is."""
    refs = np.asarray(sample["reference"])
    if "reference_shot" in sample:
        first = np.asarray(sample["reference_shot"])[0]
    else:
        first = reframe(refs[0], np.asarray(sample["framing"]))
    return np.concatenate([first[None], refs[1:]])


def sample_to_clip(sample: dict[str, Any], cfg: ModelConfig, compact: bool = False) -> Clip:
    """One studio sample -> a Clip at the model's resolution and pose-map size.
    `compact` keeps its condition maps as uint8 k (`data.maps_u8`; exact, as the
    renderer draws k/255), a quarter of float32's memory, for clips only encoded."""
    from realtime.avatars.dataset import unpack_motion
    from realtime.motion.condition import render_condition
    from realtime.motion.retarget import retarget

    skel = framed_skeleton(sample["skeleton_body"], sample["skeleton_hand"],
                           sample["rest_root"], sample["framing"])
    conds = [render_condition(retarget(m, skel), cfg.pose_size, i, sketch=cfg.face_sketch)
             for i, m in enumerate(unpack_motion(sample, "motion"))]
    meta = sample["meta"]
    return Clip(
        character=str(meta.get("character", "?")),
        motion=str(meta.get("source", "?")),
        reference=_resize(shot_references(sample)[:cfg.ref_frames], cfg.resolution),
        frames=_resize(sample["frames"], cfg.resolution),
        pose=np.stack([maps_u8(c.pose_maps).numpy() if compact else c.pose_maps
                       for c in conds]),
        face=np.stack([c.face for c in conds]).astype(np.float32),
        presence=np.stack([c.presence for c in conds]).astype(np.float32),
        figure=(_resize(np.repeat(sample["figure"][..., None], 3, -1), cfg.resolution)[..., 0]
                if "figure" in sample else None),
        head=np.stack([c.head for c in conds if c.head is not None]),  # render_condition's
        hands=np.stack([c.hands for c in conds if c.hands is not None]),
    )


def read_split(data: Path, split: str, cfg: ModelConfig, limit: int | None = None,
               compact: bool = False) -> list[Clip]:
    """The clips of one dataset split ('train', 'heldout_character', 'heldout_motion');
    `compact` as `sample_to_clip`'s."""
    from realtime.avatars.dataset import iterate_dataset

    _require_dataset(data)
    out = []
    for sample in iterate_dataset(data, split):
        out.append(sample_to_clip(sample, cfg, compact))
        if limit is not None and len(out) >= limit:
            break
    return out


# which characters and which procedural performers each kind of fresh clip draws on
HELD_KINDS: dict[str, tuple[str, str]] = {
    "heldout_both": ("heldout_character", "heldout_motion"),
    "heldout_character": ("heldout_character", "train"),   # unseen characters
    "heldout_motion": ("train", "heldout_motion"),          # training characters
}


def heldout_clips(data: Path, cfg: ModelConfig, n: int, frames: int,
                  edit: MotionEdit | None = None, kind: str = "heldout_both") -> list[Clip]:
    """`n` new clips of `frames` frames of the dataset at `data` (same seed and split
    rule as its build): held-out characters driven by held-out procedural performers,
    or one of `HELD_KINDS`. `edit` (see `make_sample`) gives the same clips with their
    motion changed."""
    from realtime.avatars.dataset import ClipPlan, _Tracks, character, make_sample, plan
    from realtime.avatars.render import Framing
    from realtime.model.face_paste import HeadShape

    if kind not in HELD_KINDS:
        raise ValueError(f"no fresh clips of kind {kind!r}: one of {sorted(HELD_KINDS)}")
    conf = dataset_config(data)
    plans = plan(conf, [])
    char_split, source_split = HELD_KINDS[kind]
    chars = sorted({p.character for p in plans if p.split == char_split})
    sources = sorted({p.source for p in plans if p.split == source_split})
    if not chars or not sources:
        raise ValueError(f"{data}: the dataset holds out no characters or no motion "
                         f"sources (build it with more characters / performers)")
    conf = dataclasses.replace(conf, frames=frames)
    seen = "train" if char_split == "train" else "heldout"
    clips = []
    for k in range(n):
        # indices past the dataset's own, so noise/background draws are fresh
        p = ClipPlan(10_000_000 + k, kind, chars[k % len(chars)],
                     sources[k % len(sources)])
        # the figure's coverage only for the clips themselves: the metrics that use it
        # score a clip's own frames, never those of its edited twins
        sample: dict[str, Any] = dict(make_sample(p, conf, _Tracks(None), edit,
                                                  figure=edit is None))
        sample["meta"] = {"character": f"{seen}-char{p.character}", "source": p.source}
        cx, cy, zoom = (float(v) for v in sample["framing"])
        clips.append(dataclasses.replace(
            sample_to_clip(sample, cfg),
            head_shape=HeadShape.of(character(conf, p.character), Framing((cx, cy), zoom))))
    return clips


def dataset_config(data: Path) -> DatasetConfig:
    """The `DatasetConfig` a studio dataset was built with (from its index)."""
    from realtime.avatars.dataset import config_from_json, read_index

    _require_dataset(data)
    return config_from_json(read_index(data)["config"])


def _require_dataset(data: Path) -> None:
    if not (Path(data) / "index.json").is_file():
        raise FileNotFoundError(f"{data} is not a studio dataset (no index.json); build one "
                                f"with `marionette avatar dataset --out {data}`")


def detail_backwards(motion: list[NormalizedMotion]) -> list[NormalizedMotion]:
    """The motion with its fine detail played backwards: frame i takes the expression
    (the face vector but the head's rotation) and the finger articulation (each
    hand's bone directions, where the hand is there in both frames) of frame N-1-i.
    Body, head rotation and presence stay: rendered, the clip differs from the
    original only in the face and the hands."""
    from realtime.training.evaluate import head_rotation_mask

    keep = head_rotation_mask()
    n = len(motion)
    out = []
    for i, m in enumerate(motion):
        r = motion[n - 1 - i]
        hands = [mine if mine is None or theirs is None else theirs.copy()
                 for mine, theirs in ((m.left_hand_dirs, r.left_hand_dirs),
                                      (m.right_hand_dirs, r.right_hand_dirs))]
        out.append(dataclasses.replace(
            m, face=np.where(keep, m.face, r.face).astype(m.face.dtype),
            left_hand_dirs=hands[0], right_hand_dirs=hands[1]))
    return out


def counterfactual_split(data: Path, split: str, cfg: ModelConfig,
                         edit: MotionEdit = detail_backwards, workers: int | None = None,
                         compact: bool = False) -> tuple[list[Clip], list[Clip]]:
    """(clips, twins): every clip of a dataset split as stored, and its twin rendered
    again from the same plan with `edit` applied to the clean motion (every random
    draw unchanged: same character, camera, background and augmentation noise), so a
    pair differs only in what `edit` changed. A clip driven by an extracted track
    (which needs the track files) is its own twin: a pair that differs in nothing.

    The twins render in `workers` processes (default: every core, once there are
    enough twins to pay for starting them); the twins are the same whatever the
    number, as each clip draws from its own plan's seed. `compact` as
    `sample_to_clip`'s."""
    from realtime.avatars.dataset import iterate_dataset, plan

    conf = dataset_config(data)
    plans = plan(conf, [])          # procedural performers' plans need no track names
    clips: list[Clip] = []
    metas: list[Any] = []
    todo: list[tuple[int, ClipPlan]] = []       # (clip number, its plan) to render again
    for sample in iterate_dataset(data, split):
        index = int(sample["meta"]["index"])
        p = plans[index] if index < len(plans) else None
        if p is not None and p.source.startswith("performer:"):
            todo.append((len(clips), p))
        clips.append(sample_to_clip(sample, cfg, compact))
        metas.append(sample["meta"])
    twins = list(clips)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if len(todo) >= TWINS_PER_WORKER else 1
    for (i, _), twin in zip(todo, _render_twins([p for _, p in todo], conf, edit, workers),
                            strict=True):
        twins[i] = sample_to_clip({**twin, "meta": metas[i]}, cfg, compact)
    return clips, twins


# below this many twins a core renders them sooner than a process pool starts (each
# twin about 0.1 s at 128 px, a spawned worker about 2 s to import the renderer)
TWINS_PER_WORKER = 64


def _render_twins(plans: list[ClipPlan], conf: DatasetConfig, edit: MotionEdit,
                  workers: int) -> Iterator[dict[str, Any]]:
    """Each plan's sample with `edit` applied, in order, in `workers` processes. They
    are spawned, not forked: the trainer that asks has torch (and on a GPU, CUDA) up."""
    if workers <= 1 or len(plans) < 2:
        yield from (_twin_sample(p, conf, edit) for p in plans)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(plans)), mp_context=ctx) as pool:
        chunk = max(1, len(plans) // (4 * workers))
        yield from pool.map(_twin_sample, plans, [conf] * len(plans), [edit] * len(plans),
                            chunksize=chunk)


def _twin_sample(p: ClipPlan, conf: DatasetConfig, edit: MotionEdit) -> dict[str, Any]:
    from realtime.avatars.dataset import _Tracks, make_sample

    return dict(make_sample(p, conf, _Tracks(None), edit))
