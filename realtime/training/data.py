"""Training data: studio clips -> model conditions -> cached latents.

A `Clip` is one character performing one motion clip: reference image(s), the
ground-truth frames, and the motion conditions made exactly as inference makes
them (`realtime.motion.retarget` + `render_condition` at the model's pose size, via
`conditions_for`). Clips come from the avatar studio's sharded dataset
(`marionette avatar dataset`), read with its own reader.

Training never decodes images in the loop: `encode_clips` runs the frozen
autoencoder once over every clip and keeps latents in memory (`LatentClips`), and a
step draws random windows from them (`LatentClips.sample`), so every random choice
comes from the loop's generators and resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.config import ModelConfig
from realtime.model.face_paste import HeadShape
from realtime.motion.types import MotionCondition


@dataclass
class Clip:
    """One character driven by one motion clip, ready for the model."""

    character: str
    motion: str
    reference: np.ndarray           # (R, H, W, 3) uint8 RGB at the model's resolution
    frames: np.ndarray              # (F, H, W, 3) uint8 RGB ground truth
    # (F, 16, P, P) float32 condition maps; uint8 k (for k/255) where loaded `compact`
    pose: np.ndarray
    face: np.ndarray                # (F, 12) float32
    presence: np.ndarray            # (F, 4) float32
    # (F, H, W) uint8 coverage of the character (255 = figure, 0 = scene), where known
    figure: np.ndarray | None = None
    # (F, 3) where the head is in each frame (`condition.head_place`), and the built-in
    # character's head in the reference (`face_paste.HeadShape`), where known: they
    # place the face paste
    head: np.ndarray | None = None
    head_shape: HeadShape | None = None
    # (F, 2, 21, 3) the hands' points in each frame (`condition.hand_place`), where
    # known: they place the hand paste (`realtime.model.hand_paste`)
    hands: np.ndarray | None = None

    def frame_range(self, s: slice) -> Clip:
        """The same clip (same reference) over frames `s` only."""
        return replace(self, frames=self.frames[s], pose=self.pose[s], face=self.face[s],
                       presence=self.presence[s],
                       figure=None if self.figure is None else self.figure[s],
                       head=None if self.head is None else self.head[s],
                       hands=None if self.hands is None else self.hands[s])

    def condition(self, j: int) -> MotionCondition:
        """Frame j's condition, as the live pipeline gives it to the engine."""
        return MotionCondition(j, 0.0, self.pose[j], self.face[j], self.presence[j],
                               head=None if self.head is None else self.head[j],
                               hands=None if self.hands is None else self.hands[j])


@dataclass
class LatentBatch:
    ref: torch.Tensor               # (B, R, c, h, w)
    latents: torch.Tensor           # (B, N, c, h, w)
    pose: torch.Tensor              # (B, N, 16, P, P)
    face: torch.Tensor              # (B, N, 12)
    presence: torch.Tensor          # (B, N, 4)


def cat_batches(a: LatentBatch, b: LatentBatch) -> LatentBatch:
    """a's samples then b's, one batch."""
    return LatentBatch(*(torch.cat((x, y)) for x, y in zip(
        (a.ref, a.latents, a.pose, a.face, a.presence),
        (b.ref, b.latents, b.pose, b.face, b.presence), strict=True)))


@dataclass
class LatentClips:
    """Every clip's latents and conditions, stacked (clips padded to no length: all
    clips of a dataset have the same frame count F)."""

    ref: torch.Tensor               # (C, R, c, h, w)
    latents: torch.Tensor           # (C, F, c, h, w)
    pose: torch.Tensor              # (C, F, 16, P, P) uint8: the renderer's own 8-bit
                                    # planes, so `maps_float` restores them exactly
    face: torch.Tensor              # (C, F, 12)
    presence: torch.Tensor          # (C, F, 4)

    @property
    def n_clips(self) -> int:
        return int(self.latents.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.latents.shape[1])

    def window(self, clip: int, start: int, frames: int, device: torch.device | str = "cpu",
               ) -> LatentBatch:
        """Frames [start, start + frames) of one clip, batch of one."""
        s = slice(start, start + frames)
        return LatentBatch(self.ref[clip:clip + 1].to(device),
                           self.latents[clip:clip + 1, s].to(device),
                           maps_float(self.pose[clip:clip + 1, s].to(device)),
                           self.face[clip:clip + 1, s].to(device),
                           self.presence[clip:clip + 1, s].to(device))

    def sample(self, rng: np.random.Generator, batch: int, frames: int,
               device: torch.device | str = "cpu") -> LatentBatch:
        """`batch` random windows of `frames` frames (random clip, random start)."""
        return self.gather(*self.draw(rng, batch, frames), device)

    def draw(self, rng: np.random.Generator, batch: int, frames: int,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (clips (B,), frame indices (B, N)) of `sample`, to gather the same
        windows from another LatentClips (a clip's counterfactual twin)."""
        if frames > self.n_frames:
            raise ValueError(f"windows of {frames} frames from clips of {self.n_frames}")
        clips = rng.integers(0, self.n_clips, batch)
        starts = rng.integers(0, self.n_frames - frames + 1, batch)
        idx = torch.from_numpy(starts)[:, None] + torch.arange(frames)[None]  # (B, N)
        return torch.from_numpy(clips), idx

    def gather(self, clips: torch.Tensor, idx: torch.Tensor,
               device: torch.device | str = "cpu") -> LatentBatch:
        """Frames idx[b] (B, N) of clip clips[b] (B,), with each clip's reference."""
        ci = clips.long()
        idx = idx.long()
        return LatentBatch(self.ref[ci].to(device),
                           self.latents[ci[:, None], idx].to(device),
                           maps_float(self.pose[ci[:, None], idx].to(device)),
                           self.face[ci[:, None], idx].to(device),
                           self.presence[ci[:, None], idx].to(device))


def maps_u8(maps: np.ndarray) -> torch.Tensor:
    """Condition maps (float32 k/255, as `render_pose_maps` makes them) -> uint8 k.
    Maps already uint8 (a `compact` clip's) are k already."""
    if maps.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(maps))
    return torch.from_numpy(np.rint(maps * 255.0).astype(np.uint8))


def maps_float(maps: torch.Tensor) -> torch.Tensor:
    """uint8 k -> float32 k * float32(1/255), bit-identical to the renderer's output."""
    return maps.float() * torch.tensor(1.0 / 255.0, dtype=torch.float32, device=maps.device)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def encode_clips(ae: TinyAutoencoder, clips: list[Clip], batch: int = 64) -> LatentClips:
    """Encode every clip's reference and frames once with the (frozen) autoencoder."""
    if not clips:
        raise ValueError("no clips to encode")
    n = min(len(c.frames) for c in clips)
    dev = ae.encoder.out.weight.device

    def enc(images: np.ndarray) -> torch.Tensor:
        x = to_unit(images)
        return torch.cat([ae.encode(x[i:i + batch].to(dev)).cpu()
                          for i in range(0, len(x), batch)])

    return LatentClips(
        ref=torch.stack([enc(c.reference) for c in clips]),
        latents=torch.stack([enc(c.frames[:n]) for c in clips]),
        pose=torch.stack([maps_u8(c.pose[:n]) for c in clips]),
        face=torch.stack([torch.from_numpy(c.face[:n]).float() for c in clips]),
        presence=torch.stack([torch.from_numpy(c.presence[:n]).float() for c in clips]),
    )


@dataclass
class FramePool:
    """The autoencoder's training frames, each with the motion that drove it. A frame
    nothing drove (a reference image, a photograph) has zero maps, a zero face and
    every part absent: decoded as "no motion known"."""

    images: torch.Tensor            # (N, 3, H, W) uint8
    pose: torch.Tensor              # (N, 16, P, P) uint8 (see `maps_u8`)
    face: torch.Tensor              # (N, 12)
    presence: torch.Tensor          # (N, 4)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def undriven(cls, images: torch.Tensor, pose_size: int) -> FramePool:
        from realtime.motion.types import FACE_DIM, N_PARTS, N_POSE_CHANNELS

        n = images.shape[0]
        return cls(images, torch.zeros(n, N_POSE_CHANNELS, pose_size, pose_size,
                                       dtype=torch.uint8),
                   torch.zeros(n, FACE_DIM), torch.zeros(n, N_PARTS))

    @classmethod
    def cat(cls, pools: list[FramePool]) -> FramePool:
        """The pools one after another (one copy, however many pools)."""
        return cls(*(torch.cat(fs) for fs in zip(*(p.fields() for p in pools), strict=True)))

    def __add__(self, other: FramePool) -> FramePool:
        return FramePool.cat([self, other])

    def __getitem__(self, idx: torch.Tensor | slice) -> FramePool:
        return FramePool(*(f[idx] for f in self.fields()))

    def fields(self) -> tuple[torch.Tensor, ...]:
        return (self.images, self.pose, self.face, self.presence)

    def planes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(N, 16 + FACE_DIM, P, P) motion planes, as the decoder reads them."""
        from realtime.model.planes import motion_planes

        return motion_planes(maps_float(self.pose.to(device)), self.face.to(device),
                             self.presence.to(device))


def studio_pool(clips: list[Clip], every: int = 1) -> FramePool:
    """Studio frames (every `every`-th) with their motion, and the references (none)."""
    frames = FramePool(
        torch.from_numpy(np.concatenate([c.frames[::every] for c in clips]))
        .permute(0, 3, 1, 2).contiguous(),
        torch.cat([maps_u8(c.pose[::every]) for c in clips]),
        torch.from_numpy(np.concatenate([c.face[::every] for c in clips])).float(),
        torch.from_numpy(np.concatenate([c.presence[::every] for c in clips])).float())
    refs = torch.from_numpy(np.concatenate([c.reference for c in clips]))
    return frames + FramePool.undriven(refs.permute(0, 3, 1, 2).contiguous(),
                                       clips[0].pose.shape[-1])


def load_clips(data: Path, split: str, cfg: ModelConfig, limit: int | None = None,
               compact: bool = False) -> list[Clip]:
    """Clips of `split` from a studio dataset directory, at the model's resolution,
    with conditions rendered as inference renders them (`compact` as
    `studio.sample_to_clip`'s)."""
    from realtime.training.studio import read_split

    return read_split(data, split, cfg, limit, compact)
