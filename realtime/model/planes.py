"""Motion planes: a frame's condition as image planes, for convolutions to read.

The pose maps (16 channel groups, see `realtime.motion.types.POSE_CHANNELS`) are
already planes. The face vector is not: `face_planes` paints each of its FACE_DIM
features, times the face's presence (an absent face paints nothing whatever its
features say), wherever the dilated head strokes are, 0 elsewhere. So a convolution
finds "mouth open" where the head is, instead of as one number for the whole frame.
Used by the DiT's pose encoder (`ModelConfig.face_maps`) and by the autoencoder's
decoder (`ModelConfig.decoder_motion`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from realtime.motion.types import FACE_DIM, N_POSE_CHANNELS, PARTS, POSE_CHANNELS

HEAD = POSE_CHANNELS.index("head")
FACE_PART = PARTS.index("face")
N_MOTION_PLANES = N_POSE_CHANNELS + FACE_DIM


def maps_at(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Pose maps (N, C, P, P) as a model that reads `size`-pixel maps takes them: as
    they are at that size; finer ones (drawn for a model at a larger `pose_scale`)
    averaged down to it; coarser ones refused, since no resampling adds the detail."""
    if maps.shape[-1] < size or maps.shape[-2] < size:
        raise ValueError(f"pose maps of {tuple(maps.shape[-2:])} px are coarser than the "
                         f"{size} px this model reads (draw them at cfg.pose_size)")
    if maps.shape[-1] != size or maps.shape[-2] != size:
        maps = F.interpolate(maps, size=(size, size), mode="area")
    return maps


def head_dilation(size: int) -> int:
    """Odd max-pool size that widens the head strokes of a `size`-pixel map to about
    the head's extent (~1/8 of the map)."""
    return max(3, size // 8) | 1


def face_planes(maps: torch.Tensor, face: torch.Tensor, present: torch.Tensor,
                ) -> torch.Tensor:
    """(N, 16, P, P) maps, (N, FACE_DIM) face, (N,) face presence -> (N, FACE_DIM, P, P)."""
    k = head_dilation(maps.shape[-1])
    head = F.max_pool2d(maps[:, HEAD:HEAD + 1], k, stride=1, padding=k // 2)
    return (face * present[:, None])[:, :, None, None] * head


def motion_planes(maps: torch.Tensor, face: torch.Tensor, presence: torch.Tensor,
                  ) -> torch.Tensor:
    """(N, 16, P, P) maps, (N, FACE_DIM) face, (N, N_PARTS) presence
    -> (N, 16 + FACE_DIM, P, P): the maps, then the face painted on the head."""
    face = face.to(maps.dtype)
    present = presence[:, FACE_PART].to(maps.dtype)
    return torch.cat((maps, face_planes(maps, face, present)), dim=1)
