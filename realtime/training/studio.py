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

`heldout_clips` renders evaluation clips on the fly: characters held out of
training driven by motion sources held out of training (the dataset's own splits
each hold out only one of the two), of any length.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.config import ModelConfig
from realtime.motion.types import Skeleton
from realtime.training.data import Clip

if TYPE_CHECKING:
    from realtime.avatars.dataset import MotionEdit


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
    """The skeleton as seen through a studio camera (center x, y, zoom): the renderer
    maps canvas p to (p - center) * zoom + 0.5 of a square frame."""
    cx, cy, zoom = (float(v) for v in framing)
    root = ((float(rest_root[0]) - cx) * zoom + 0.5, (float(rest_root[1]) - cy) * zoom + 0.5)
    return Skeleton(body=np.asarray(body, np.float64) * zoom,
                    hand=np.asarray(hand, np.float64) * zoom, rest_root=root)


def sample_to_clip(sample: dict[str, Any], cfg: ModelConfig) -> Clip:
    """One studio sample -> a Clip at the model's resolution and pose-map size."""
    from realtime.avatars.dataset import unpack_motion
    from realtime.motion.condition import render_condition
    from realtime.motion.retarget import retarget

    skel = framed_skeleton(sample["skeleton_body"], sample["skeleton_hand"],
                           sample["rest_root"], sample["framing"])
    conds = [render_condition(retarget(m, skel), cfg.pose_size, i)
             for i, m in enumerate(unpack_motion(sample, "motion"))]
    meta = sample["meta"]
    return Clip(
        character=str(meta.get("character", "?")),
        motion=str(meta.get("source", "?")),
        reference=_resize(sample["reference"][:cfg.ref_frames], cfg.resolution),
        frames=_resize(sample["frames"], cfg.resolution),
        pose=np.stack([c.pose_maps for c in conds]),
        face=np.stack([c.face for c in conds]).astype(np.float32),
        presence=np.stack([c.presence for c in conds]).astype(np.float32),
    )


def read_split(data: Path, split: str, cfg: ModelConfig, limit: int | None = None,
               ) -> list[Clip]:
    """The clips of one dataset split ('train', 'heldout_character', 'heldout_motion')."""
    from realtime.avatars.dataset import iterate_dataset

    if not (Path(data) / "index.json").is_file():
        raise FileNotFoundError(f"{data} is not a studio dataset (no index.json); build one "
                                f"with `marionette avatar dataset --out {data}`")
    out = []
    for sample in iterate_dataset(data, split):
        out.append(sample_to_clip(sample, cfg))
        if limit is not None and len(out) >= limit:
            break
    return out


def heldout_clips(data: Path, cfg: ModelConfig, n: int, frames: int,
                  edit: MotionEdit | None = None) -> list[Clip]:
    """`n` clips of `frames` frames: held-out characters driven by held-out procedural
    performers of the dataset at `data` (same seed and split rule as its build).
    `edit` (see `make_sample`) gives the same clips with their motion changed."""
    from realtime.avatars.dataset import (
        ClipPlan,
        DatasetConfig,
        _Tracks,
        make_sample,
        plan,
        read_index,
    )

    raw = read_index(data)["config"]
    fields = {f.name for f in dataclasses.fields(DatasetConfig)}
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                               for k, v in raw.items() if k in fields}
    conf = DatasetConfig(**kwargs)
    plans = plan(conf, [])
    chars = sorted({p.character for p in plans if p.split == "heldout_character"})
    sources = sorted({p.source for p in plans if p.split == "heldout_motion"})
    if not chars or not sources:
        raise ValueError(f"{data}: the dataset holds out no characters or no motion "
                         f"sources (build it with more characters / performers)")
    conf = dataclasses.replace(conf, frames=frames)
    clips = []
    for k in range(n):
        # indices past the dataset's own, so noise/background draws are fresh
        p = ClipPlan(10_000_000 + k, "heldout_both", chars[k % len(chars)],
                     sources[k % len(sources)])
        sample: dict[str, Any] = dict(make_sample(p, conf, _Tracks(None), edit))
        sample["meta"] = {"character": f"heldout-char{p.character}", "source": p.source}
        clips.append(sample_to_clip(sample, cfg))
    return clips
